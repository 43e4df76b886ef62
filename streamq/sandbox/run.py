"""The sandbox process: moto's server, the world, the poller, in one process.

``python -m streamq.sandbox.run --port P --state-dir D [--handler module:function]``

Started detached by ``streamq sandbox up`` (stdout/stderr go to ``D/sandbox.log``).
It writes ``D/state.json`` only once the endpoint answers, the world is provisioned, the
handler is imported and the poller has polled once; SIGTERM (``streamq sandbox down``)
stops the poller and the server, removes the state file and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import private_dir
from .fakeapi import DEFAULT_RATE, DEFAULT_UNDELIVERABLE

LOG_FILE = "sandbox.log"
API_LOG = "fake-mail-api.jsonl"
STATUS_FILE = "poller.json"
DEMO_HANDLER = "streamq.sandbox.demo:handler"


HANDLER_FORMS = ("path/to/handler.py:function, path/to/package:function, or "
                 "module:function for ./module.py in the current directory")


@dataclass(frozen=True)
class HandlerSpec:
    """A handler the user named: a module file or a package of theirs, never any
    importable callable (``os:system`` is not a handler)."""

    path: Path  # the module's file (a package's __init__.py)
    function: str
    module: str  # the dotted name it is imported as
    root: Path  # the directory that goes on the import path for it

    def __str__(self) -> str:
        target = self.path.parent if self.path.name == "__init__.py" else self.path
        return f"{target}:{self.function}"


def resolve_handler(spec: str, cwd: Path) -> HandlerSpec:
    """``--handler`` as a file or package of the user's (BadInput otherwise):

    * ``path/to/handler.py:function``: a module file, relative to ``cwd`` or absolute;
    * ``path/to/package:function``: a package directory (it holds ``__init__.py``);
    * ``module:function`` or ``pkg.module:function``: ``./module.py`` (or
      ``./pkg/module.py``, or a package there) under ``cwd`` only, the form of Lambda's
      Handler setting for code in the current directory.

    A module inside a package (its directory holds ``__init__.py``) is imported as part
    of the package, so its relative imports work."""
    from ..errors import BadInput
    from ..inputs import clip

    target, sep, function = spec.rpartition(":")
    if not sep or not target or not function.isidentifier() or keyword.iskeyword(function):
        raise BadInput(f"invalid --handler {clip(spec)}: expected {HANDLER_FORMS}")
    if target.endswith(".py") or "/" in target or os.sep in target or target.startswith("."):
        path = (cwd / Path(target).expanduser()).resolve()
        if path.is_dir():
            if not (path / "__init__.py").is_file():
                raise BadInput(f"--handler {clip(spec)}: {path} is a directory without "
                               f"__init__.py, not a package; name the module file, e.g. "
                               f"{target.rstrip('/')}/handler.py:{function}")
            path = path / "__init__.py"
        elif not path.is_file():
            raise BadInput(f"--handler {clip(spec)}: no such file {path}")
        elif path.suffix != ".py":
            raise BadInput(f"--handler {clip(spec)}: {path.name} is not a Python module "
                           "(.py)")
    else:
        parts = target.split(".")
        if not all(p.isidentifier() for p in parts):
            raise BadInput(f"invalid --handler {clip(spec)}: expected {HANDLER_FORMS}")
        base = cwd.joinpath(*parts)
        if base.with_suffix(".py").is_file():
            path = base.with_suffix(".py").resolve()
        elif (base / "__init__.py").is_file():
            path = (base / "__init__.py").resolve()
        elif base.is_dir():
            raise BadInput(f"--handler {clip(spec)}: {base} is a directory without "
                           f"__init__.py, not a package; name the module file, e.g. "
                           f"{'/'.join(parts)}/handler.py:{function}")
        else:
            raise BadInput(f"--handler {clip(spec)}: no {'/'.join(parts)}.py (or package "
                           f"{'/'.join(parts)}/) in the current directory {cwd}; the handler "
                           f"is your code, named as {HANDLER_FORMS}")
    names = [path.parent.name] if path.name == "__init__.py" else [path.stem]
    root = path.parent.parent if path.name == "__init__.py" else path.parent
    while (root / "__init__.py").is_file() and root != root.parent:
        names.insert(0, root.name)
        root = root.parent
    if not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        raise BadInput(f"--handler {clip(spec)}: {'.'.join(names)} cannot be imported "
                       "(each directory and file name must be a Python identifier)")
    return HandlerSpec(path=path, function=function, module=".".join(names), root=root)


def load_handler(spec: str) -> Any:
    """The callable ``--handler`` names (see :func:`resolve_handler`), imported from the
    user's file; the demo handler is streamq's own.

    The handler's directory goes at the end of the import path: its sibling modules
    import (as from a Lambda task root), but nothing of the user's shadows a module the
    sandbox itself imports. An installed module of the same name would be imported
    instead of the user's file: that is refused, not silently used."""
    if spec == DEMO_HANDLER:
        from .demo import handler

        return handler
    h = resolve_handler(spec, Path.cwd())
    if str(h.root) not in sys.path:
        sys.path.append(str(h.root))
    module = importlib.import_module(h.module)
    got = Path(getattr(module, "__file__", None) or "").resolve()
    if got != h.path:
        raise ValueError(f"--handler {spec}: importing {h.module!r} gives {got}, not your "
                         f"{h.path} (a module of the same name is installed): rename yours")
    func = getattr(module, h.function, None)
    if not callable(func):
        raise ValueError(f"--handler {spec}: {h.path.name} has no function {h.function!r}")
    return func


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--handler", default=DEMO_HANDLER)
    parser.add_argument("--api-rate", type=float, default=DEFAULT_RATE)
    parser.add_argument("--undeliverable", default=DEFAULT_UNDELIVERABLE)
    parser.add_argument("--on-failure", choices=("sqs", "s3"), default="sqs")
    args = parser.parse_args(argv)

    state_dir = Path(args.state_dir).resolve()
    private_dir(state_dir)
    os.environ["STREAMQ_SANDBOX_DIR"] = str(state_dir)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    log = logging.getLogger("streamq.sandbox")
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from ..aws import Aws
    from ..config import Settings
    from .metrics import MetricsPublisher
    from .poller import Poller
    from .server import make_server
    from .state import SANDBOX_REGION, SandboxState, clear_state, read_state, write_state
    from .world import provision

    server = make_server("127.0.0.1", args.port)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    serving = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    serving.start()
    log.info("sandbox: endpoint %s (pid %d)", endpoint, os.getpid())

    # The handler runs as a Lambda function would: its configuration in the environment,
    # AWS SDK calls pointed at the sandbox with dummy credentials.
    env = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": SANDBOX_REGION,
        "AWS_DEFAULT_REGION": SANDBOX_REGION, "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_LAMBDA_FUNCTION_NAME": "mail-sender",
        "MAIL_OUTBOX_TABLE": "mail_outbox", "MAIL_HISTORY_TABLE": "mail_history",
        "FAKE_MAIL_LOG": str(state_dir / API_LOG), "FAKE_MAIL_RATE": str(args.api_rate),
        "FAKE_MAIL_UNDELIVERABLE": args.undeliverable,
    }
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(env)

    stop = threading.Event()

    def _terminate(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    try:
        handler = load_handler(args.handler)
        aws = Aws(Settings(endpoint_url=endpoint, region=SANDBOX_REGION, sandbox=True))
        world = provision(aws, environment={k: v for k, v in env.items()
                                            if not k.startswith("AWS_")},
                          on_failure=args.on_failure)
    except Exception as exc:
        log.error("sandbox: failed to start: %s: %s", type(exc).__name__, exc)
        server.shutdown()
        return 1
    log.info("sandbox: provisioned table %s (stream %s), history %s, function %s, "
             "queue %s, bucket %s, trigger %s (on failure: %s)", world.table,
             world.stream_arn, world.history_table, world.function, world.queue_url,
             world.bucket, world.mapping_uuid, world.on_failure)
    log.info("sandbox: handler %s", args.handler)

    poller = Poller(aws, table=world.table, function=world.function, handler=handler,
                    region=SANDBOX_REGION, status_path=state_dir / STATUS_FILE, stop=stop,
                    metrics=MetricsPublisher(aws, world.function))
    polling = threading.Thread(target=poller.run, name="poller", daemon=True)
    polling.start()
    # Ready means the trigger emulation runs: its first poll is done (and its status
    # written), so `sandbox status` right after `up` shows the poller.
    poller.polled_once.wait(timeout=30)
    write_state(SandboxState(pid=os.getpid(), endpoint=endpoint, started_at=time.time(),
                             handler=args.handler, queue_url=world.queue_url,
                             state_dir=str(state_dir), bucket=world.bucket,
                             on_failure=world.on_failure))
    log.info("sandbox: ready")
    while not stop.is_set():
        stop.wait(1.0)
        if not polling.is_alive():
            log.error("sandbox: the poller thread died; stopping")
            break
    log.info("sandbox: stopping")
    stop.set()
    polling.join(timeout=10)
    server.shutdown()
    current = read_state()
    if current is not None and current.pid == os.getpid():
        clear_state()
    log.info("sandbox: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
