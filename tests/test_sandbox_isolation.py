"""``sandbox up`` runs isolated from the user's directory, takes only the user's own
handler file or package, and keeps its files private (issue 9)."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CliRunner

#: Modules the sandbox process imports (or, on Python 3.10, runpy): a file of the same name
#: in the current directory must never be imported in their place.
SHADOWS = ("moto", "werkzeug", "boto3", "runpy")


def plant_shadows(directory: Path, marker: Path) -> None:
    for name in SHADOWS:
        (directory / f"{name}.py").write_text(
            "import pathlib\n"
            f"with open({str(marker)!r}, 'a') as fh:\n"
            f"    fh.write({name!r} + ' imported from the current directory\\n')\n")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def sandbox_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                cli: CliRunner) -> Iterator[Path]:
    directory = tmp_path / "sbx"
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(directory))
    try:
        yield directory
    finally:
        cli("sandbox", "down")


@pytest.mark.slow
@pytest.mark.parametrize("safe_path_flag", [True, False], ids=["python-P", "python3.10-boot"])
def test_sandbox_never_imports_from_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner, sandbox_dir: Path,
        safe_path_flag: bool) -> None:
    """A ./moto.py (and ./werkzeug.py, ./boto3.py, ./runpy.py) that would write a marker
    file: the sandbox starts, handles records, and none of them ran. Both ways of
    starting it: -P (3.11+) and the 3.10 bootstrap."""
    from streamq.sandbox import control

    if safe_path_flag and sys.version_info < (3, 11):
        pytest.skip("python -P needs 3.11")
    if not safe_path_flag:
        real = control.sandbox_command
        monkeypatch.setattr(control, "sandbox_command",
                            lambda args: real(args, safe_path_flag=False))
    marker = tmp_path / "imported.txt"
    plant_shadows(tmp_path, marker)
    res = cli("sandbox", "up", "-o", "json")
    assert res.code == 0, res.err + cli("sandbox", "logs").out
    res = cli("sandbox", "seed", "--count", "4", "--wait")
    assert res.code == 0, res.err
    assert not marker.exists(), marker.read_text()


HANDLER = '''
from helper import note  # a sibling module: the handler's directory is importable
from streamq.sandbox.demo import handler as demo


def handler(event, context):
    note(len(event["Records"]))
    return demo(event, context)
'''
HELPER = '''
import os


def note(n):
    with open(os.environ["NOTES_FILE"], "a") as fh:
        fh.write(f"{n}\\n")
'''


@pytest.mark.slow
def test_handler_file_runs_and_sandbox_files_are_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner,
        sandbox_dir: Path) -> None:
    """``--handler path/to/handler.py:handler``: the user's file, its sibling import
    works; the state directory is 0700 and every file the sandbox writes 0600 (umask 0,
    so nothing comes from the umask)."""
    code = tmp_path / "src" / "mail"
    code.mkdir(parents=True)
    (code / "handler.py").write_text(HANDLER)
    (code / "helper.py").write_text(HELPER)
    notes = tmp_path / "notes.txt"
    monkeypatch.setenv("NOTES_FILE", str(notes))
    old = os.umask(0)
    try:
        res = cli("sandbox", "up", "--handler", "src/mail/handler.py:handler", "-o", "json")
        assert res.code == 0, res.err + cli("sandbox", "logs").out
        res = cli("sandbox", "seed", "--count", "4", "--wait")
        assert res.code == 0, res.err
        status = cli("sandbox", "status", "-o", "json").json()
    finally:
        os.umask(old)
    assert status["handler"] == f"{code / 'handler.py'}:handler"
    assert sum(int(n) for n in notes.read_text().split()) >= 4
    assert mode(sandbox_dir) == 0o700
    files = {p.name: mode(p) for p in sandbox_dir.iterdir()}
    for name in ("state.json", "sandbox.log", "poller.json", "fake-mail-api.jsonl"):
        assert files.get(name) == 0o600, files


# ------------------------------------------------------------------- refused handlers


@pytest.mark.parametrize(("spec", "needle"), [
    ("os:system", "no os.py (or package os/) in the current directory"),
    ("json:loads", "no json.py"),
    ("subprocess:run", "no subprocess.py"),
    ("/etc/passwd:root", "passwd is not a Python module (.py)"),
    ("missing.py:handler", "no such file"),
    ("code:handler", "a directory without __init__.py"),
    ("code/handler.py:not-a-name", "invalid --handler"),
    ("code/handler.py:import", "invalid --handler"),
    ("code/handler.py", "invalid --handler"),
    ("my-dir/handler.py:handler", "cannot be imported"),
])
def test_handler_must_be_the_users_own_file_or_package(tmp_path: Path, cli: CliRunner,
                                                       sandbox_dir: Path,
                                                       spec: str, needle: str) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "handler.py").write_text("def handler(e, c):\n    return {}\n")
    (tmp_path / "my-dir").mkdir()
    (tmp_path / "my-dir" / "__init__.py").write_text("")
    (tmp_path / "my-dir" / "handler.py").write_text("def handler(e, c):\n    return {}\n")
    res = cli("sandbox", "up", "--handler", spec)
    assert res.code == 2, (res.code, res.err)
    assert needle in res.err and "Traceback" not in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err


@pytest.mark.parametrize(("spec", "expect"), [
    ("handler:handler", "handler.py:handler"),
    ("handler.py:handler", "handler.py:handler"),
    ("./handler.py:handler", "handler.py:handler"),
    ("pkg:handler", "pkg:handler"),
    ("pkg.mod:handler", "pkg/mod.py:handler"),
    ("pkg/mod.py:handler", "pkg/mod.py:handler"),
])
def test_accepted_handler_forms(tmp_path: Path, spec: str, expect: str) -> None:
    from streamq.sandbox.run import resolve_handler

    (tmp_path / "handler.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("")
    h = resolve_handler(spec, tmp_path)
    assert str(h) == f"{tmp_path / expect.split(':')[0]}:{expect.split(':')[1]}"
    if "pkg/mod" in expect:
        assert (h.module, h.root) == ("pkg.mod", tmp_path)


def test_loading_refuses_what_resolving_refuses(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox process checks again (it may be started by hand): os:system is not a
    handler there either, and a file named like an installed module is not silently
    swapped for it."""
    from streamq.errors import BadInput
    from streamq.sandbox.run import load_handler

    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(BadInput, match=r"no os\.py"):
        load_handler("os:system")
    (tmp_path / "json.py").write_text("def handler(e, c):\n    return {}\n")
    with pytest.raises(ValueError, match="a module of the same name is installed"):
        load_handler("json.py:handler")
    (tmp_path / "mine_xyz.py").write_text("def handler(e, c):\n    return {'ok': 1}\n")
    assert load_handler("mine_xyz.py:handler")({}, None) == {"ok": 1}
    assert sys.path[-1] == str(tmp_path)  # appended, never in front of the sandbox's own
    assert json.loads("1") == 1
