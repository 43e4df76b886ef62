"""Shared test helpers: an in-process CLI runner and outbox table builders."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


class CliRunner:
    """Runs ``streamq`` in-process exactly as the console script does (``main``),
    with stdin/stdout/stderr captured (so never a TTY)."""

    def __call__(self, *args: str, input: str | None = None) -> Result:
        from streamq.cli.app import main

        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(input or "")
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                       else 1)
        finally:
            sys.stdin = old_stdin
        return Result(code, out.getvalue(), err.getvalue())


def iso_ago(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds, tz=timezone.utc).isoformat()


def create_table(ddb: Any, name: str, hash_key: tuple[str, str] = ("id", "S"),
                 range_key: tuple[str, str] | None = None, stream: bool = True,
                 gsis: list[dict[str, Any]] | None = None,
                 extra_attrs: list[tuple[str, str]] | None = None) -> None:
    attrs = {hash_key[0]: hash_key[1]}
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    if range_key:
        attrs[range_key[0]] = range_key[1]
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
    for n, t in extra_attrs or []:
        attrs[n] = t
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": schema,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                 for n, t in attrs.items()],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True,
                                         "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if gsis:
        kwargs["GlobalSecondaryIndexes"] = gsis
    ddb.create_table(**kwargs)


def batch_put(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]}
        while request:
            resp = ddb.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}


def outbox_items(n: int, *, key: str = "id", key_type: str = "S", failed_every: int = 20,
                 stuck_every: int = 20, range_key: str | None = None) -> tuple[
                     list[dict[str, Any]], dict[str, set[Any]]]:
    """``n`` outbox items: 1 in ``failed_every`` failed, 1 in ``stuck_every`` stuck (10 min
    old), the rest pending (10 s old). Returns the items and the plain key values by status
    (a key value is the hash value, or a (hash, range) tuple for composite keys)."""
    items, truth = [], {"failed": set(), "stuck": set(), "pending": set()}
    for i in range(n):
        hv: Any = f"msg-{i:06d}" if key_type == "S" else i
        item: dict[str, Any] = {key: {key_type: str(hv)},
                                "recipient": {"S": f"user{i}@example.com"},
                                "tenant": {"S": "acme" if i % 3 == 0 else "globex"},
                                "attempts": {"N": str(i % 4)}}
        ident: Any = hv
        if range_key:
            item[range_key] = {"N": str(i % 7)}
            ident = (hv, i % 7)
        if i % failed_every == 1:
            status = "failed"
            item["last_error"] = {"S": f"429 Too Many Requests (try {i % 4})"}
            item["created_at"] = {"S": iso_ago(3600)}
        elif i % stuck_every == 2:
            status = "stuck"
            item["created_at"] = {"N": str(int((time.time() - 600) * 1000))}  # epoch ms
        else:
            status = "pending"
            item["created_at"] = {"N": str(int(time.time() - 10))}  # epoch s
        truth[status].add(ident)
        items.append(item)
    return items, truth


ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})


def _zip_bytes() -> bytes:
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


def create_trigger(endpoint: str, table: str, *, function: str = "sender",
                   **esm: Any) -> dict[str, Any]:
    """An IAM role, a Lambda function and an event source mapping on ``table``'s stream
    (moto stores it and never runs it). ``esm`` are extra CreateEventSourceMapping args."""
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    iam, lam = boto3.client("iam", **kw), boto3.client("lambda", **kw)
    ddb = boto3.client("dynamodb", **kw)
    try:
        role = iam.create_role(RoleName=f"{function}-role",
                               AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName=f"{function}-role")["Role"]["Arn"]
    with contextlib.suppress(lam.exceptions.ResourceConflictException):
        lam.create_function(FunctionName=function, Runtime="python3.12", Role=role,
                            Handler="handler.handler", Code={"ZipFile": _zip_bytes()})
    stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    args: dict[str, Any] = {"EventSourceArn": stream_arn, "FunctionName": function,
                            "StartingPosition": "TRIM_HORIZON"}
    args.update(esm)
    return dict(lam.create_event_source_mapping(**args))


def pty_run(args: list[str], *, answers: list[tuple[bytes, bytes]] | None = None,
            env: dict[str, str] | None = None, cols: int = 80, rows: int = 50,
            timeout: float = 60.0) -> tuple[int, str]:
    """Run ``streamq ARGS`` in a real pseudo-terminal (stdin, stdout and stderr a TTY,
    the pty its controlling terminal), as a person at a terminal would. ``answers``:
    (once this text has appeared, type these bytes), in order; b"\\x03" is Ctrl-C, which
    the terminal turns into SIGINT. Returns (exit code, everything the terminal showed)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    environ = {**os.environ, "COLUMNS": str(cols), "LINES": str(rows),
               "PYTHONFAULTHANDLER": "1", **(env or {})}
    environ.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.execve(sys.executable, [sys.executable, "-m", "streamq.cli", *args], environ)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    pending = list(answers or [])
    seen, pos = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.kill(pid, 6)  # SIGABRT: faulthandler shows where it hangs
                time.sleep(1)
                with contextlib.suppress(OSError):
                    seen += os.read(fd, 65536)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                raise AssertionError(f"streamq {' '.join(args)} did not finish: {seen!r}")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            while pending and pending[0][0] in seen[pos:]:
                os.write(fd, pending.pop(0)[1])
                pos = len(seen)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), strip_ansi(seen.decode("utf-8", "replace"))


def strip_ansi(text: str) -> str:
    """Terminal output without colour and cursor escape sequences."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", text)


def sandbox_world(endpoint: str, *, now: float | None = None) -> Any:
    """The sandbox's outbox world (table mail_outbox and its history table, function
    mail-sender, its on-failure queue, the trigger with the marker filter) on a plain
    endpoint, without the poller, holding a known queue: failed, 6 with a 429 and 3 with
    a timeout (due), 4 with a 550 (waiting: attempted 10 s ago), 2 dead (9 attempts);
    3 stuck; 5 pending. Returns streamq.sandbox.world.World."""
    from streamq.aws import Aws
    from streamq.config import Settings
    from streamq.sandbox.world import provision

    aws = Aws(Settings(endpoint_url=endpoint, region="us-east-1", sandbox=True))
    world = provision(aws)
    ts = time.time() if now is None else now

    def at(ago: float) -> str:
        return datetime.fromtimestamp(ts - ago, tz=timezone.utc).isoformat()

    items: list[dict[str, Any]] = []

    def add(name: str, n: int, **attrs: dict[str, Any]) -> None:
        for i in range(n):
            item = {"id": {"S": f"{name}-{i:03d}"}, "recipient": {"S": f"{name}{i}@example.com"},
                    "subject": {"S": "Your receipt"}, "tenant": {"S": "acme"}}
            item.update(attrs)
            items.append(item)

    add("throttled", 6, created_at={"S": at(7200)}, attempts={"N": "1"},
        last_attempt_at={"S": at(7200)}, last_error={"S": "429 Too Many Requests"})
    add("timeout", 3, created_at={"S": at(3600)}, attempts={"N": "1"},
        last_attempt_at={"S": at(3600)}, last_error={"S": "timeout after 30s"})
    add("bounced", 4, created_at={"S": at(600)}, attempts={"N": "2"},
        last_attempt_at={"S": at(10)}, last_error={"S": "550 mailbox unavailable"})
    add("dead", 2, created_at={"S": at(86400)}, attempts={"N": "9"},
        last_attempt_at={"S": at(3600)}, last_error={"S": "500 server error"})
    add("stuck", 3, created_at={"S": at(600)}, attempts={"N": "0"})
    add("pending", 5, created_at={"S": at(5)}, attempts={"N": "0"})
    batch_put(aws.client("dynamodb"), world.table, items)
    return world


def fill_to_limit(ddb: Any, scratch_table: str, item: dict[str, Any],
                  attr: str = "body") -> dict[str, Any]:
    """``item`` with ``attr`` padded to the largest size the endpoint accepts (found by
    writing to ``scratch_table``, which has the same key): a write that adds anything to
    it fails with ValidationException (item size limit)."""
    lo, hi = 0, 410 * 1024
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            ddb.put_item(TableName=scratch_table, Item={**item, attr: {"S": "x" * mid}})
            lo = mid
        except ddb.exceptions.ClientError as exc:
            if "size" not in str(exc):
                raise
            hi = mid - 1
    ddb.delete_item(TableName=scratch_table, Key={k: item[k] for k in ("id",) if k in item})
    return {**item, attr: {"S": "x" * lo}}


def assert_schema(name: str, doc: Any) -> None:
    """``doc`` is a valid ``name`` document: it validates against the package's schema
    (streamq/schemas/NAME.json, draft 2020-12, formats checked) and carries the
    schema's version (or, for the unversioned ones, no ``schema_version``)."""
    from jsonschema import Draft202012Validator, FormatChecker

    from streamq import schemas

    validator = Draft202012Validator(schemas.load(name), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, f"not a valid {name} document: " + "; ".join(
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
    version = schemas.VERSIONS[name]
    if version is None:
        assert "schema_version" not in doc, name
    else:
        assert doc["schema_version"] == version, name


@contextlib.contextmanager
def running_sandbox(directory: Path, *up_args: str) -> Iterator[Path]:
    """``streamq sandbox up UP_ARGS`` with its state in ``directory`` (STREAMQ_SANDBOX_DIR
    set for the duration), stopped and the variable restored however the block ends."""
    import os

    old = os.environ.get("STREAMQ_SANDBOX_DIR")
    os.environ["STREAMQ_SANDBOX_DIR"] = str(directory)
    try:
        cli = CliRunner()
        res = cli("sandbox", "up", *up_args, "-o", "json")
        assert res.code == 0, res.err
        yield directory
    finally:
        CliRunner()("sandbox", "down")
        if old is None:
            os.environ.pop("STREAMQ_SANDBOX_DIR", None)
        else:
            os.environ["STREAMQ_SANDBOX_DIR"] = old
