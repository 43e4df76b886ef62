"""pytest plugin: record every AWS call streamq's commands make during the test session.

Every client streamq uses comes from :meth:`streamq.aws.Aws.client`; each gets a botocore
``before-call`` hook that records (command, IAM action, whether the invocation could
write). The command is the one the in-process CLI (``streamq.cli.app.main``, which
``tests.helpers.CliRunner`` calls) is running. Calls from the sandbox's own code (its
world, its poller, ``sandbox seed``) are not streamq operating an outbox and are left
out.

``tests/test_zz_iam_policy.py::test_every_recorded_call_is_granted`` runs last (this
plugin moves it there) and fails, naming command and action, for any call the policy of
``streamq iam-policy`` does not grant: a command added later is checked by its own tests.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

import pytest

#: Options of the root command and the shared options that take a value.
_VALUE_OPTIONS = frozenset({
    "--table", "-t", "--outbox", "--function", "--created-attr", "--error-attr",
    "--attempts-attr", "--refired-attr", "--refire-count-attr", "--refire-run-attr",
    "--stuck-after", "--profile", "--region", "--endpoint-url"})
COVERAGE_TEST = "test_every_recorded_call_is_granted"
#: Commands that never write (with --dry-run, every command).
READ_ONLY_COMMANDS = frozenset({"list", "show", "stats", "doctor", "tail", "watch", "config",
                                "iam-policy", "completion"})


@dataclass(frozen=True)
class Call:
    command: str
    action: str
    #: An invocation that must not write: --dry-run, or a command that only reads.
    read_only: bool
    argv: tuple[str, ...]


RECORDED: set[Call] = set()
_lock = threading.Lock()
_current: list[tuple[str, ...]] = []  # the CLI invocation in progress (a stack: nesting)
_SANDBOX_DIR = "/streamq/sandbox/"


def command_of(argv: tuple[str, ...]) -> str:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in _VALUE_OPTIONS
            continue
        return arg
    return ""


def _from_sandbox() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if _SANDBOX_DIR in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _on_call(model: Any, **_: Any) -> None:
    if not _current or _from_sandbox():
        return
    from streamq.iam import iam_action

    argv = _current[-1]
    command = command_of(argv)
    if command == "sandbox":
        return
    call = Call(command, iam_action(model.service_model.service_name, model.name),
                read_only="--dry-run" in argv or command in READ_ONLY_COMMANDS, argv=argv)
    with _lock:
        RECORDED.add(call)


def _install() -> list[tuple[Any, str, Any]]:
    from streamq.aws import Aws
    from streamq.cli import app as cli_app

    original_client, original_main = Aws.client, cli_app.main

    def client(self: Aws, service: str, **kwargs: Any) -> Any:
        c = original_client(self, service, **kwargs)
        c.meta.events.register("before-call", _on_call, unique_id="streamq-tests-iam-recorder")
        return c

    def main(argv: list[str] | None = None) -> None:
        _current.append(tuple(argv if argv is not None else sys.argv[1:]))
        try:
            original_main(argv)
        finally:
            _current.pop()

    Aws.client = client  # type: ignore[method-assign]
    cli_app.main = main
    return [(Aws, "client", original_client), (cli_app, "main", original_main)]


_restore: list[tuple[Any, str, Any]] = []


def pytest_configure(config: pytest.Config) -> None:
    _restore.extend(_install())


def pytest_unconfigure(config: pytest.Config) -> None:
    for owner, name, value in reversed(_restore):
        setattr(owner, name, value)
    _restore.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The coverage check runs after every other test, whatever the order given."""
    last = [i for i in items if i.name == COVERAGE_TEST]
    items[:] = [i for i in items if i.name != COVERAGE_TEST] + last
