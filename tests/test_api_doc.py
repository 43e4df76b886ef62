"""docs/api.md's examples run as written: every ```python block, in order, in one
namespace, against the local endpoint holding the sandbox's world (tests.helpers.
sandbox_world); the block after ``<!-- api-doc: sandbox -->`` starts the real sandbox."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import sandbox_world

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """(group, code) of each python block: ``sandbox`` after the marker, else ``world``."""
    out = []
    for m in re.finditer(r"(<!-- api-doc: (\w+) -->\n)?```python\n(.*?)\n```", text, re.S):
        out.append((m.group(2) or "world", m.group(3)))
    return out


def run_blocks(codes: list[str], namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    for i, code in enumerate(codes, 1):
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{DOC.name} block {i}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/api.md block {i} failed: {exc!r}\n{code}\n--- "
                                 f"printed so far:\n{out.getvalue()}") from exc
    return out.getvalue()


def test_the_doc_has_examples_of_each_part() -> None:
    text = DOC.read_text()
    codes = "\n".join(code for _, code in blocks(text))
    for call in ("Outbox(", "session=", ".records(", ".count(", ".stats(", ".show(",
                 ".refire(", ".plan_refire(", ".run(", "resume=", "due=True", ".trigger()",
                 ".change_trigger(", "from_file=", ".check_trigger(", ".doctor(",
                 "streamq.sandbox.start()", "raise_for_outcome()", "NotFound", "BadInput",
                 "Refused"):
        assert call in codes, f"docs/api.md has no runnable example of {call}"


def test_api_doc_examples_run(endpoint: str) -> None:
    sandbox_world(endpoint)
    level = logging.getLogger("streamq").level
    try:
        printed = run_blocks([code for group, code in blocks(DOC.read_text())
                              if group == "world"], {"__name__": "api_doc"})
    finally:
        logging.getLogger("streamq").setLevel(level)
    lines = printed.splitlines()
    # What the examples print is what the world holds.
    assert "Outbox('mail_outbox')" in lines
    assert "15 failed" in lines
    assert "{'failed': 15, 'stuck': 3, 'pending': 5} due: 9 dead: 2" in lines
    assert "6 refired, 0 missing, 0 skipped" in lines
    assert "3 due record(s) refired" in lines  # the timeouts: the 429s were just refired
    assert "0 left to do in the journal" in lines
    assert "4 record(s); passes (2 filter(s), checked on 4 record(s))" in lines
    assert "MaximumRetryAttempts 2 -> 3" in lines
    assert any(line.startswith("5 not applied: the result has error[filter-drops-refire]")
               for line in lines)
    assert any(line.startswith("4 no item with key no-such-id") for line in lines)
    assert any(line.startswith("2 invalid --status 'lost'") for line in lines)
    assert "['MaximumRetryAttempts']" in lines  # the restore changed it back
    assert "in_sync []" in lines


def test_readme_python_example_runs(endpoint: str) -> None:
    """The README's "From Python" example, against the same world."""
    sandbox_world(endpoint)
    codes = [code for _, code in blocks((ROOT / "README.md").read_text())]
    assert len(codes) == 1 and "Outbox(" in codes[0]
    printed = run_blocks(codes, {"__name__": "readme"})
    assert printed == "refired 9 of 9\n"  # the 429s and the timeouts were due


@pytest.mark.slow
def test_api_doc_sandbox_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamq.sandbox

    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sandbox"))
    codes = [code for group, code in blocks(DOC.read_text()) if group == "sandbox"]
    assert codes
    try:
        printed = run_blocks(codes, {"__name__": "api_doc"})
    finally:
        streamq.sandbox.stop()
    assert re.search(r"^\d+ failed in the sandbox$", printed, re.M), printed
    assert streamq.sandbox.running() is None
