"""Test harness: one moto server over HTTP on 127.0.0.1 (a free port) for the
session, reset between tests; CLI runs in-process through ``streamq.cli.app.main``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.realenv  # noqa: F401  (the environment as started, before the fake credentials below)
from tests.helpers import CliRunner

# Records every AWS call streamq's commands make; checked against `streamq iam-policy`.
pytest_plugins = ["tests.iam_recorder"]

# No real AWS ever: fixed fake credentials, one region, no user config.
for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
            "STREAMQ_TABLE", "STREAMQ_SANDBOX", "STREAMQ_OUTBOX"):
    os.environ.pop(var, None)
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/nonexistent",
                  AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "streamq.sandbox.server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"moto server did not start: {line!r}")
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    return proc, url


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    proc, url = _start_server()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto (reset before the test), reached through AWS_ENDPOINT_URL."""
    req = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No streamq.toml, config dir or state dir of the developer's leaks into a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STREAMQ_SANDBOX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def ddb(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()
