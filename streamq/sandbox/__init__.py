"""The local sandbox: moto's server plus a poller that emulates the stream trigger.

From Python (for tests and notebooks), as ``streamq sandbox up``/``down`` do::

    import streamq.sandbox

    with streamq.sandbox.start() as sandbox:      # stopped at the end if it started it
        sandbox.seed(200, wait=True)
        outbox = sandbox.outbox()                 # a streamq.Outbox on its table
        print(outbox.stats().counts)

Its state lives under ``$STREAMQ_SANDBOX_DIR`` (default: ``$XDG_STATE_HOME/streamq/
sandbox``); one sandbox runs per state directory. Imports stay light: the modules
behind these functions load when they are called.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Outbox
    from .state import SandboxState

__all__ = ["Sandbox", "running", "start", "stop"]


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: where it listens and the names of its world. As a context
    manager it stops the sandbox on exit, if this ``start()`` started it."""

    endpoint: str
    region: str
    table: str
    history_table: str
    function: str
    queue_url: str
    pid: int
    #: True when start() found it running (then leaving the ``with`` leaves it running)
    already_running: bool = False

    def outbox(self) -> Outbox:
        """A :class:`streamq.Outbox` on the sandbox's table (its fixed local
        credentials, never an AWS profile)."""
        from dataclasses import replace

        from ..api import Outbox
        from ..config import from_values

        settings = from_values({"table": self.table, "function": self.function,
                                "region": self.region, "endpoint_url": self.endpoint})
        return Outbox.from_settings(replace(settings, sandbox=True))

    def seed(self, count: int = 200, *, undeliverable_every: int = 10, poison: int = 0,
             wait: bool = False, timeout: float = 60.0) -> int:
        """Insert ``count`` demo mails (one in ``undeliverable_every`` to an address the
        fake API rejects; ``poison`` more without a recipient), as ``sandbox seed``
        does; ``wait``: until the handler has delivered or failed each (StreamqError
        after ``timeout`` seconds). Returns how many were inserted."""
        from ..errors import BadInput, StreamqError
        from . import control

        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise BadInput(f"invalid count {count!r}: 1 to 100000")
        state = control.require_running()
        items = control.seed_items(count, undeliverable_every=undeliverable_every,
                                   poison=poison)
        n = control.seed(items, state)
        if wait:
            _, _, waiting = control.wait_handled(items, state, timeout=timeout)
            if waiting:
                raise StreamqError(f"{waiting} record(s) not handled within {timeout:.0f}s")
        return n

    def status(self) -> dict[str, Any]:
        """What ``sandbox status -o json`` prints."""
        from . import control

        return control.status()

    def stop(self) -> None:
        """Stop it (its recorded process only) and forget its state."""
        stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.already_running:
            stop()


def _of(state: SandboxState, already: bool) -> Sandbox:
    return Sandbox(endpoint=state.endpoint, region=state.region, table=state.table,
                   history_table=state.history_table, function=state.function,
                   queue_url=state.queue_url, pid=state.pid, already_running=already)


def start(*, port: int = 0, handler: str | None = None, api_rate: float = 50.0,
          undeliverable: str | None = None, timeout: float = 60.0) -> Sandbox:
    """Start the sandbox in the background (or find it running), as ``streamq sandbox
    up`` does; returns once it answers. ``handler``: your handler (``FILE.py:FUNCTION``)
    instead of the demo mail sender. Needs ``pip install 'streamq[sandbox]'``."""
    from . import control

    state, already = control.up(port=port, handler=handler, api_rate=api_rate,
                                undeliverable=undeliverable, timeout=timeout)
    return _of(state, already)


def running() -> Sandbox | None:
    """The running sandbox, or None."""
    from . import control

    state = control.running()
    return None if state is None else _of(state, True)


def stop() -> bool:
    """Stop the running sandbox; False when none was running."""
    from . import control

    what, _ = control.down()
    return what == "stopped"
