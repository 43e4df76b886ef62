"""The import graph runs one way: cli -> engines -> aws -> config -> errors.

Every ``import`` in the package is read, the ones inside functions included (a lazy
import is still a dependency), and checked against the layers (issue 8, item 15:
settings resolution does not know the sandbox)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "streamq"

#: Where the layers start: everything that (transitively) imports one of these is above
#: the helpers. A helper imports no streamq module but other helpers (errors, durations,
#: retry, files, filters, inputs, waits, ...), so new ones need no list here.
UPPER_ROOTS = ("streamq.config", "streamq.aws", "streamq.cli", "streamq.sandbox",
               "streamq.render")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """module -> the streamq modules it imports (anywhere in its code)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = _module(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if _exists(sub) else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = {d for d in deps if d == "streamq" or d.startswith("streamq.")} - {mod}
    return graph


def _in(mod: str, package: str) -> bool:
    return mod == package or mod.startswith(package + ".")


def test_the_graph_is_read() -> None:
    graph = import_graph()
    # the reader sees lazy (function-level) imports: trigger_cmd imports the engine lazily
    assert "streamq.trigger" in graph["streamq.cli.trigger_cmd"]
    assert "streamq.errors" in graph["streamq.config"]


def helpers(graph: dict[str, set[str]]) -> set[str]:
    """Modules that import, directly or not, none of UPPER_ROOTS (nor their packages)."""
    upper: set[str] = {m for m in graph if any(_in(m, r) for r in UPPER_ROOTS)}
    changed = True
    while changed:
        changed = False
        for mod, deps in graph.items():
            if mod not in upper and deps & upper:
                upper.add(mod)
                changed = True
    return set(graph) - upper - {"streamq"}


def test_layers() -> None:
    graph = import_graph()
    leaf = helpers(graph)
    assert {"streamq.errors", "streamq.durations", "streamq.filters"} <= leaf
    problems = []
    for mod, deps in graph.items():
        for dep in sorted(deps):
            if _in(dep, "streamq.cli") and not _in(mod, "streamq.cli"):
                problems.append(f"{mod} imports the CLI ({dep})")
            if _in(dep, "streamq.sandbox") and not (_in(mod, "streamq.cli")
                                                    or _in(mod, "streamq.sandbox")):
                problems.append(f"{mod} imports the sandbox ({dep}): the sandbox is a "
                                "client of the library, never a dependency")
            if _in(dep, "streamq.render") and not (_in(mod, "streamq.cli")
                                                   or _in(mod, "streamq.render")):
                problems.append(f"{mod} imports render ({dep})")
    if graph["streamq.errors"]:
        problems.append(f"streamq.errors imports {sorted(graph['streamq.errors'])}")
    # config -> helpers only; aws -> config and helpers only (cli -> engines -> aws ->
    # config -> errors).
    if graph["streamq.config"] - leaf:
        problems.append(f"streamq.config imports {sorted(graph['streamq.config'] - leaf)}")
    if graph["streamq.aws"] - leaf - {"streamq.config"}:
        problems.append(f"streamq.aws imports "
                        f"{sorted(graph['streamq.aws'] - leaf - {'streamq.config'})}")
    assert problems == []


def test_settings_resolution_does_not_load_the_sandbox(tmp_path: Path) -> None:
    """--sandbox resolves from the lookup the caller passes; importing and resolving
    settings (sandbox asked for or not) never loads streamq.sandbox."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from streamq.config import SandboxTarget, resolve
        from streamq.errors import StreamqError

        target = SandboxTarget(endpoint="http://127.0.0.1:1", region="eu-west-3",
                               table="t", function="f")
        s = resolve({{"sandbox": True}}, env={{}}, cwd=Path({str(tmp_path)!r}),
                    sandbox=lambda: target)
        assert (s.endpoint_url, s.region, s.table, s.function, s.sandbox) == (
            "http://127.0.0.1:1", "eu-west-3", "t", "f", True), s
        assert s.sources["endpoint_url"] == "sandbox"
        try:
            resolve({{}}, env={{"STREAMQ_SANDBOX": "1"}}, cwd=Path({str(tmp_path)!r}),
                    sandbox=lambda: None)
        except StreamqError as exc:
            assert "not running" in str(exc)
        else:
            raise AssertionError("a sandbox that is not running must be an error")
        plain = resolve({{"table": "x"}}, env={{}}, cwd=Path({str(tmp_path)!r}))
        assert plain.table == "x" and not plain.sandbox
        loaded = sorted(m for m in sys.modules if m.startswith("streamq.sandbox"))
        assert loaded == [], loaded
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


@pytest.mark.parametrize("env_sandbox", [False, True])
def test_cli_feeds_the_running_sandbox_into_settings(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     env_sandbox: bool) -> None:
    """The CLI layer looks the sandbox up (streamq.sandbox.state.running_sandbox) and
    hands it to settings resolution: `config show --sandbox` reports its values."""
    import json
    import os

    from streamq.sandbox.state import SandboxState, write_state

    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    args = ["config", "show", "-o", "json"]
    if env_sandbox:
        monkeypatch.setenv("STREAMQ_SANDBOX", "1")
    else:
        args.insert(2, "--sandbox")
    r = cli(*args)
    assert r.code == 1 and "not running" in r.err
    # A state file whose pid is this test process is not a sandbox (its command line does
    # not run streamq.sandbox.run): still not running.
    write_state(SandboxState(pid=os.getpid(), endpoint="http://127.0.0.1:9"))
    assert cli(*args).code == 1
    monkeypatch.setattr("streamq.sandbox.state.is_sandbox_process", lambda pid: True)
    r = cli(*args)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["sandbox"] is True
    assert doc["settings"]["endpoint_url"] == {"value": "http://127.0.0.1:9",
                                               "source": "sandbox"}
    assert doc["settings"]["table"] == {"value": "mail_outbox", "source": "sandbox"}
    assert doc["settings"]["function"]["value"] == "mail-sender"
