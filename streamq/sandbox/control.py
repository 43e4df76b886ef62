"""Start, stop, inspect and feed the sandbox (the library behind ``streamq sandbox``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import BadInput, NotFound, StreamqError
from ..files import open_private, private_dir
from ..inputs import MiB, loads, read_input
from .run import API_LOG, DEMO_HANDLER, LOG_FILE, STATUS_FILE, resolve_handler
from .state import (
    MODULE,
    SandboxState,
    clear_state,
    is_sandbox_process,
    pid_alive,
    read_state,
    read_state_file,
    state_dir,
)


def log_path() -> Path:
    return state_dir() / LOG_FILE


def api_log_path() -> Path:
    return state_dir() / API_LOG


def status_path() -> Path:
    return state_dir() / STATUS_FILE


# ------------------------------------------------------------------ processes


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def _reap(pid: int) -> None:
    """If ``pid`` is a child of this process (tests run the CLI in-process), reap it."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_gone(pid: int) -> bool:
    _reap(pid)
    return not pid_alive(pid) or _proc_state(pid) == "Z"


def endpoint_answers(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/moto-api/", timeout=timeout) as resp:
            resp.read(1)
        return True
    except urllib.error.HTTPError:
        return True  # it answered, with an HTTP error
    except OSError:
        return False


def running() -> SandboxState | None:
    """The sandbox, if its recorded process is alive, is ours and its endpoint answers."""
    state = read_state()
    if state is None or process_gone(state.pid) or not is_sandbox_process(state.pid):
        return None
    return state if endpoint_answers(state.endpoint) else None


# ------------------------------------------------------------------------ up


def check_up_args(port: int, handler: str | None, api_rate: float) -> str | None:
    """Check ``up``'s arguments; returns the handler as the sandbox process gets it
    (its file's absolute path and the function), or None for the demo handler."""
    if not 0 <= port <= 65535:
        raise BadInput(f"invalid --port {port}: use 0 (a free port) to 65535")
    if api_rate < 0:
        raise BadInput(f"invalid --api-rate {api_rate}: use 0 (no limit) or more")
    if handler is None:
        return None
    return str(resolve_handler(handler, Path.cwd()))


#: Python 3.11+: -P, the interpreter puts no unsafe path (the current directory, for
#: -m) on sys.path. Python 3.10 has no -P: the same by hand, before anything is imported.
#: Not -I: it also drops PYTHONPATH and the user's site-packages, where streamq and the
#: handler's dependencies may be installed.
_BOOT_310 = ("import sys\n"
             "if sys.path and sys.path[0] in ('', '.'): del sys.path[0]\n"
             "import runpy\n"
             f"runpy.run_module({MODULE!r}, run_name='__main__', alter_sys=True)\n")


def sandbox_command(args: list[str], *, safe_path_flag: bool | None = None) -> list[str]:
    """The command line that starts the sandbox process with ``args``, isolated from the
    current directory: a ``./moto.py`` (or any module there) is never imported in place
    of the sandbox's own."""
    if safe_path_flag is None:
        safe_path_flag = sys.version_info >= (3, 11)
    if safe_path_flag:
        return [sys.executable, "-P", "-m", MODULE, *args]
    return [sys.executable, "-c", _BOOT_310, *args]


def up(*, port: int = 0, handler: str | None = None, api_rate: float = 50.0,
       undeliverable: str | None = None, timeout: float = 60.0,
       on_failure: str = "sqs") -> tuple[SandboxState, bool]:
    """Start the sandbox in the background; returns (state, already_running).
    ``on_failure``: the trigger's on-failure destination, ``sqs`` (the queue) or ``s3``
    (the bucket). A sandbox already running keeps its own."""
    handler = check_up_args(port, handler, api_rate)
    if on_failure not in ("sqs", "s3"):
        raise BadInput(f"invalid --on-failure {on_failure!r}: use sqs or s3")
    if undeliverable is not None:
        try:
            re.compile(undeliverable)
        except re.error as exc:
            raise BadInput(f"invalid --undeliverable pattern {undeliverable!r}: {exc}") from None
    current = running()
    if current is not None:
        return current, True
    import importlib.util

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("werkzeug") is None:
        raise StreamqError("the sandbox needs moto's server: pip install 'streamq[sandbox]' "
                           "(or pip install 'moto[server]')")
    stale = read_state_file()
    if stale is not None:
        clear_state()
    directory = state_dir()
    private_dir(directory)
    for path in (log_path(), api_log_path(), status_path()):
        path.unlink(missing_ok=True)
    cmd = sandbox_command(["--port", str(port), "--state-dir", str(directory),
                           "--handler", handler or DEMO_HANDLER, "--api-rate", str(api_rate),
                           "--on-failure", on_failure])
    if undeliverable is not None:
        cmd += ["--undeliverable", undeliverable]
    with open_private(log_path(), "ab") as log:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 cwd=os.getcwd(), close_fds=True)
    deadline = time.monotonic() + timeout
    while True:
        state = read_state_file()
        if state is not None and state.pid == child.pid:
            return state, False
        if child.poll() is not None:
            raise StreamqError(f"the sandbox did not start (exit {child.returncode}): "
                               f"{_last_error_line()}", hint=f"log: {log_path()}")
        if time.monotonic() > deadline:
            child.kill()
            child.wait(timeout=10)
            raise StreamqError(f"the sandbox did not get ready within {timeout:.0f}s; "
                               f"see {log_path()}")
        time.sleep(0.1)


def _last_error_line() -> str:
    lines = tail(log_path(), 30)
    for line in reversed(lines):
        if "failed to start" in line or "Error" in line:
            return line.strip()
    return lines[-1].strip() if lines else f"see {log_path()}"


# ---------------------------------------------------------------------- down


def down_plan() -> tuple[str, SandboxState | None]:
    """What ``down`` would do: ('stop', state) | ('stale', state) | ('none', None) |
    ('foreign', state) when the recorded pid is alive but not a sandbox."""
    state = read_state_file()
    if state is None:
        return "none", None
    if process_gone(state.pid):
        return "stale", state
    if not is_sandbox_process(state.pid):
        return "foreign", state
    return "stop", state


def down(timeout: float = 10.0) -> tuple[str, SandboxState | None]:
    """Stop the sandbox by its recorded pid (only if that pid is a sandbox)."""
    what, state = down_plan()
    if what in ("stale", "foreign"):
        clear_state()
    if what != "stop" or state is None:
        return what, state
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not process_gone(state.pid):
        if time.monotonic() > deadline:
            if is_sandbox_process(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state.pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(state.pid)
            break
        time.sleep(0.05)
    current = read_state_file()
    if current is not None and current.pid == state.pid:
        clear_state()
    return "stopped", state


# -------------------------------------------------------------------- status


def status() -> dict[str, Any]:
    state = read_state_file()
    live = running()
    from ..schemas import SANDBOX_STATUS

    doc: dict[str, Any] = {"schema_version": SANDBOX_STATUS, "running": live is not None,
                           "state_dir": str(state_dir()),
                           "log": str(log_path())}
    if live is not None:
        doc.update(pid=live.pid, endpoint=live.endpoint, region=live.region,
                   table=live.table, history_table=live.history_table,
                   function=live.function, handler=live.handler or DEMO_HANDLER,
                   queue_url=live.queue_url, bucket=live.bucket, on_failure=live.on_failure,
                   started_at=iso_seconds(live.started_at),
                   uptime_seconds=round(time.time() - live.started_at, 1))
    elif state is not None:
        doc["stale_state"] = {**asdict(state), "started_at": iso_seconds(state.started_at)}
    try:
        doc["poller"] = (loads(read_input(status_path(), what="poller status", max_bytes=MiB),
                               what="poller status") if live is not None else None)
    except StreamqError:
        doc["poller"] = None
    poller = doc["poller"]
    if isinstance(poller, dict):
        # Times as ISO-8601, as everywhere in streamq (poller.json keeps epoch seconds).
        for key in ("last_invocation_at", "updated_at"):
            if isinstance(poller.get(key), (int, float)):
                poller[key] = iso_seconds(poller[key])
    if live is not None:
        doc["api"] = api_summary(live)
    return doc


def iso_seconds(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_summary(state: SandboxState) -> dict[str, int] | None:
    """What the demo handler delivered, from the fake mail API's log: messages sent
    (distinct ids) and sends refused (429/550). None with a custom --handler."""
    if (state.handler or DEMO_HANDLER) != DEMO_HANDLER:
        return None
    from .fakeapi import read_log

    sent: set[str] = set()
    refused = 0
    try:
        entries = read_log(api_log_path())
    except (OSError, ValueError):
        return None
    for entry in entries:
        if entry.get("outcome") == "sent":
            sent.add(str(entry.get("message_id")))
        else:
            refused += 1
    return {"delivered": len(sent), "refused_sends": refused}


# ---------------------------------------------------------------------- seed


def require_running() -> SandboxState:
    state = running()
    if state is None:
        raise StreamqError("the sandbox is not running: start it with `streamq sandbox up`")
    return state


def seed_items(count: int, *, undeliverable_every: int = 10, poison: int = 0,
               now: float | None = None) -> list[dict[str, Any]]:
    """Realistic outbox records: one in ``undeliverable_every`` to an address the fake API
    rejects; ``poison`` extra records without a recipient (the demo handler fails on them)."""
    ts = time.time() if now is None else now
    run = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H%M%S") + (
        f"{int(ts * 1000) % 1000:03d}")
    created = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
    subjects = ("Your receipt", "Password reset", "Welcome aboard", "Weekly digest",
                "Invoice available", "Shipping update")
    items: list[dict[str, Any]] = []
    for i in range(count + poison):
        domain = ("invalid.example" if undeliverable_every and i % undeliverable_every ==
                  undeliverable_every - 1 else "example.com")
        item: dict[str, Any] = {
            "id": {"S": f"msg-{run}-{i:05d}"},
            "subject": {"S": subjects[i % len(subjects)]},
            "body": {"S": f"Hello user {i}, this is message {i} of the seed."},
            "created_at": {"S": created},
            "attempts": {"N": "0"},
            "tenant": {"S": ("acme", "globex", "initech")[i % 3]},
        }
        if i < count:
            item["recipient"] = {"S": f"user{i}@{domain}"}
        items.append(item)
    # Poison records go in the middle, so records behind them share their batch.
    normal, bad = items[:count], items[count:]
    return normal[:count // 2] + bad + normal[count // 2:]


def seed(items: list[dict[str, Any]], state: SandboxState) -> int:
    from ..aws import Aws, aws_errors
    from ..config import Settings

    aws = Aws(Settings(endpoint_url=state.endpoint, region=state.region, sandbox=True,
                       table=state.table))
    ddb = aws.client("dynamodb")
    written = 0
    for start in range(0, len(items), 25):
        request: dict[str, Any] = {state.table: [{"PutRequest": {"Item": it}}
                                                 for it in items[start:start + 25]]}
        while request:
            with aws_errors():
                resp = ddb.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
        written += len(items[start:start + 25])
    return written


def wait_handled(items: list[dict[str, Any]], state: SandboxState, *,
                 timeout: float = 60.0,
                 on_progress: Callable[[int, int, int], None] | None = None
                 ) -> tuple[int, int, int]:
    """Wait until the handler has dealt with every seeded record (gone = delivered, or an
    error recorded); poison records (no recipient) are not waited for.
    Returns (delivered, failed, still waiting); ``on_progress`` gets the same after each
    look."""
    from ..aws import Aws
    from ..config import Settings
    from ..outbox import describe_table, fetch_items

    aws = Aws(Settings(endpoint_url=state.endpoint, region=state.region, sandbox=True))
    info = describe_table(aws, state.table)
    keys = [{"id": it["id"]} for it in items if "recipient" in it]
    deadline = time.monotonic() + timeout
    while True:
        present = list(fetch_items(aws, info, keys))
        failed = sum(1 for it in present if it.get("last_error"))
        waiting = len(present) - failed
        if on_progress is not None:
            on_progress(len(keys) - len(present), failed, waiting)
        if waiting == 0 or time.monotonic() > deadline:
            return len(keys) - len(present), failed, waiting
        time.sleep(0.5)


# ---------------------------------------------------------------------- logs


def tail(path: Path, n: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block, data = 8192, b""
            while size > 0 and data.count(b"\n") <= n:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
    except FileNotFoundError:
        raise NotFound(f"no sandbox log at {path}: has the sandbox been started?") from None
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:] if n else []


def follow(path: Path, *, poll: float = 0.25) -> Iterator[str]:
    """Lines appended to ``path`` from now on (until the caller stops iterating)."""
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)
        while True:
            line = fh.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(poll)
