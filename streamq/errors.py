"""One error hierarchy, one table of exit codes.

Every expected failure is a :class:`StreamqError` carrying the exit code the
CLI returns.  The codes are part of the public contract (README, tests).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # AWS or runtime error
    USAGE = 2  # usage, bad input, missing configuration
    PARTIAL = 3  # some items failed; doctor: a check failed; config-trigger --check: drift
    NOT_FOUND = 4  # table, stream, trigger or item not found
    REFUSED = 5  # refused for safety (no --yes on a non-TTY, pre-flight failed)
    INTERRUPTED = 130  # Ctrl-C

    def __str__(self) -> str:
        # The number, as Python 3.11+ prints an IntEnum (3.10 printed "ExitCode.USAGE").
        return str(self.value)


class StreamqError(Exception):
    """An expected failure: one line for the user, an exit code for scripts."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class AwsError(StreamqError):
    exit_code = ExitCode.ERROR


class BadInput(StreamqError):
    exit_code = ExitCode.USAGE


class NotFound(StreamqError):
    exit_code = ExitCode.NOT_FOUND


class Refused(StreamqError):
    exit_code = ExitCode.REFUSED


class PartialFailure(StreamqError):
    exit_code = ExitCode.PARTIAL


class Interrupted(StreamqError):
    exit_code = ExitCode.INTERRUPTED
