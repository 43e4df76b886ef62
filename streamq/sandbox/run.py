"""The sandbox process: moto's server, the world, the poller, in one process.

``python -m streamq.sandbox.run --port P --state-dir D [--handler module:function]``

Started detached by ``streamq sandbox up`` (stdout/stderr go to ``D/sandbox.log``).
It writes ``D/state.json`` only once the endpoint answers, the world is provisioned and
the handler is imported; SIGTERM (``streamq sandbox down``) stops the poller and the
server, removes the state file and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..files import private_dir
from .fakeapi import DEFAULT_RATE, DEFAULT_UNDELIVERABLE

LOG_FILE = "sandbox.log"
API_LOG = "fake-mail-api.jsonl"
STATUS_FILE = "poller.json"
DEMO_HANDLER = "streamq.sandbox.demo:handler"


def load_handler(spec: str) -> Any:
    """``module:function`` -> the callable (the current directory is importable)."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"--handler {spec!r}: expected module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"--handler {spec!r}: {module_name} has no function {func_name!r}")
    return func


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--handler", default=DEMO_HANDLER)
    parser.add_argument("--api-rate", type=float, default=DEFAULT_RATE)
    parser.add_argument("--undeliverable", default=DEFAULT_UNDELIVERABLE)
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
                                            if not k.startswith("AWS_")})
    except Exception as exc:
        log.error("sandbox: failed to start: %s: %s", type(exc).__name__, exc)
        server.shutdown()
        return 1
    log.info("sandbox: provisioned table %s (stream %s), history %s, function %s, "
             "queue %s, trigger %s", world.table, world.stream_arn, world.history_table,
             world.function, world.queue_url, world.mapping_uuid)
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
                             state_dir=str(state_dir)))
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
