"""Where a running sandbox records itself, so ``--sandbox`` can find it."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..config import SandboxTarget, user_state_dir
from ..files import private_dir, write_private

SANDBOX_REGION = "us-east-1"
SANDBOX_TABLE = "mail_outbox"
SANDBOX_HISTORY_TABLE = "mail_history"
SANDBOX_FUNCTION = "mail-sender"


MODULE = "streamq.sandbox.run"


def state_dir() -> Path:
    return Path(os.environ.get("STREAMQ_SANDBOX_DIR") or user_state_dir() / "sandbox")


def state_file() -> Path:
    return state_dir() / "state.json"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    endpoint: str
    region: str = SANDBOX_REGION
    table: str = SANDBOX_TABLE
    history_table: str = SANDBOX_HISTORY_TABLE
    function: str = SANDBOX_FUNCTION
    started_at: float = 0.0
    handler: str = ""
    queue_url: str = ""
    state_dir: str = ""
    bucket: str = ""  # the S3 on-failure bucket
    on_failure: str = "sqs"  # the trigger's on-failure destination: sqs | s3


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state_file() -> SandboxState | None:
    """What the state file says, whether or not its process still runs."""
    from ..errors import StreamqError
    from ..inputs import MiB, loads, read_input

    path = state_file()
    if not path.is_file():
        return None
    try:
        data = loads(read_input(path, what=str(path), max_bytes=MiB), what=str(path))
        known = {f.name for f in fields(SandboxState)}
        return SandboxState(**{k: v for k, v in data.items() if k in known})
    except (StreamqError, AttributeError, TypeError):  # unreadable, or not our format
        return None


def is_sandbox_process(pid: int) -> bool:
    """Is ``pid`` really a streamq sandbox (its command line runs streamq.sandbox.run)?
    A recycled pid of some other process is not."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        try:
            cmdline = subprocess.run(["ps", "-p", str(pid), "-o", "command="],
                                     capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return False
    return MODULE in cmdline


def read_state() -> SandboxState | None:
    """The running sandbox, or None (no state file, or its process is gone or is not ours)."""
    state = read_state_file()
    if state is None or not pid_alive(state.pid) or not is_sandbox_process(state.pid):
        return None
    return state


def running_sandbox() -> SandboxTarget | None:
    """The endpoint and names of the running sandbox (None when none runs): what the CLI
    hands to settings resolution for ``--sandbox``."""
    state = read_state()
    if state is None:
        return None
    return SandboxTarget(endpoint=state.endpoint, region=state.region, table=state.table,
                         function=state.function)


def write_state(state: SandboxState) -> None:
    path = state_file()
    private_dir(path.parent)
    write_private(path, json.dumps(asdict(state), indent=2))


def clear_state() -> None:
    state_file().unlink(missing_ok=True)
