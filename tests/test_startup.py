"""Start-up stays light: --help and shell completion never import boto3 (or rich);
completions/ matches what the app generates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import sys
from streamq.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("boto3", "botocore", "rich", "moto") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _probe(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["stats", "--help"],
                                  ["doctor", "--help"], ["tail", "--help"], ["watch", "--help"],
                                  ["--version"], ["schema"], ["schema", "record"],
                                  ["schema", "nope"]])
def test_help_imports_no_boto3(args: list[str]) -> None:
    res = _probe(args)
    assert "HEAVY=\n" in res.stderr or res.stderr.rstrip().endswith("HEAVY="), res.stderr
    assert res.stdout or "streamq: error: unknown schema 'nope'" in res.stderr


def test_completion_imports_no_boto3_and_answers() -> None:
    res = _probe([], {"_STREAMQ_COMPLETE": "complete_bash", "COMP_WORDS": "streamq list --st",
                      "COMP_CWORD": "2"})
    assert "--status" in res.stdout.split() and "--stuck-after" in res.stdout.split()
    assert "HEAVY=\n" in res.stderr or res.stderr.rstrip().endswith("HEAVY="), res.stderr
    res = _probe([], {"_STREAMQ_COMPLETE": "complete_bash", "COMP_WORDS": "streamq ",
                      "COMP_CWORD": "1"})
    assert {"list", "show", "stats", "config"} <= set(res.stdout.split())


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions_dir_is_up_to_date(shell: str) -> None:
    from streamq.cli.completion_cmd import script

    path = ROOT / "completions" / f"streamq.{shell}"
    assert path.read_text() == script(shell), (
        f"{path} is stale: regenerate with `streamq completion {shell} > {path}`")


def test_cli_defaults_are_the_librarys() -> None:
    """The CLI repeats a few library defaults (so --help imports no library module):
    they must agree."""
    from streamq import redrive, refire
    from streamq.cli import redrive_cmd, refire_cmd

    assert (refire_cmd.DEFAULT_RATE, refire_cmd.DEFAULT_CONCURRENCY) == (
        refire.DEFAULT_RATE, refire.DEFAULT_CONCURRENCY)
    assert redrive_cmd.DEFAULT_MAX_MESSAGES == redrive.DEFAULT_MAX_MESSAGES
