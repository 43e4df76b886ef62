"""The README's promises that can drift: the CI command, the exit-code table."""

from __future__ import annotations

import re
from pathlib import Path

from streamq.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_cmd = ci[ci.index("# README: the test command") + 1]
    # The README's command, less the venv creation that .ci/run does itself.
    assert test_cmd.split(" && ", 2)[2] == ci_cmd


def test_exit_code_table_matches_the_code() -> None:
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert codes == {int(c) for c in ExitCode}
