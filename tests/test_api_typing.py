"""The API is typed for its users: the built wheel ships ``py.typed`` (PEP 561), and mypy
--strict checks a small client script against the installed package: the right calls
pass with the right types, the wrong ones are errors (the types are real, not Any)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CLIENT = '''
from datetime import timedelta

import boto3

import streamq.sandbox
from streamq import BadInput, Outbox, Record, RefireResult, RefireSummary, StreamqError


def runbook(session: boto3.session.Session) -> int:
    outbox = Outbox("mail_outbox", session=session, stuck_after=timedelta(minutes=10))
    stuck: list[Record] = list(outbox.records(status=["failed", "stuck"], older_than="1h",
                                              where="last_error~429", limit=50))
    reveal_type(stuck[0].created_at)
    reveal_type(outbox.stats().counts)
    seen: list[RefireResult] = []
    summary: RefireSummary = outbox.refire(stuck, rate=5, concurrency=4, only_if="failed",
                                           journal="run.jsonl", on_result=seen.append)
    reveal_type(summary.refired)
    trigger = outbox.trigger()
    reveal_type(trigger.filter_patterns)
    change = outbox.change_trigger(retry_attempts=3, bisect=True, dry_run=True)
    reveal_type(change.changes[0].field)
    try:
        summary.raise_for_outcome()
    except StreamqError as exc:
        return int(exc.exit_code)
    with streamq.sandbox.start() as sandbox:
        reveal_type(sandbox.outbox().count())
    return 0
'''

WRONG = '''
from streamq import Outbox

outbox = Outbox("mail_outbox", regoin="eu-west-1")
outbox.records(limit="10")
outbox.refire(rate="fast")
outbox.refire(only_if="sometimes")
n: str = outbox.count()
outbox.trigger().batch_size.upper()
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a wheel installs it (built from a copy of the sources, so no
    build/ or egg-info is left in the checkout), unpacked into a directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "streamq", src / "streamq",
                    ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                          str(tmp / "dist"), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp / "dist").glob("streamq-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "streamq/py.typed" in names
    # the output schemas are package data (`streamq schema NAME` reads them)
    from streamq.schemas import names as schema_names

    assert {f"streamq/schemas/{n}.json" for n in schema_names()} <= set(names)
    return site


def _mypy(site: Path, code: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    script = tmp / "client.py"
    script.write_text(code)
    # mypy finds PEP 561 packages on the interpreter's path (PYTHONPATH included), and
    # skips an installed package without py.typed (import-untyped).
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", os.devnull, str(script)], capture_output=True,
                          text=True, cwd=tmp, env=env, timeout=300)


@pytest.mark.slow
def test_a_client_type_checks_against_the_installed_package(installed: Path,
                                                             tmp_path: Path) -> None:
    res = _mypy(installed, CLIENT, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    # (older mypy versions spell builtins out: "builtins.int")
    revealed = [line.split("Revealed type is ", 1)[1].replace("builtins.", "")
                for line in res.stdout.splitlines() if "Revealed type is" in line]
    assert revealed == ['"datetime.datetime | None"', '"dict[str, int]"', '"int"',
                        '"list[str] | None"', '"str"', '"int"'], res.stdout


@pytest.mark.slow
def test_wrong_calls_are_type_errors(installed: Path, tmp_path: Path) -> None:
    res = _mypy(installed, WRONG, tmp_path)
    assert res.returncode == 1
    errors = [line for line in res.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == [4, 5, 6, 7, 8, 9], res.stdout


@pytest.mark.slow
def test_without_py_typed_the_types_are_lost(installed: Path, tmp_path: Path) -> None:
    """The check above depends on py.typed (it is what this test removes)."""
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    (site / "streamq" / "py.typed").unlink()
    res = _mypy(site, WRONG, tmp_path)
    assert "import-untyped" in res.stdout and "missing library stubs or py.typed" in \
        res.stdout
