"""Hostile and broken input (issue 9's traceback list): each ends in one clean
``streamq: error:`` line and the documented exit code, never a traceback."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, Result, create_table, create_trigger

TABLE = "outbox"


def one_line_error(res: Result, code: int, *needles: str) -> None:
    assert res.code == code, (res.code, res.err)
    assert "Traceback" not in res.err, res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamq: error: "), res.err
    for needle in needles:
        assert needle in lines[0], res.err
    assert res.out == ""


def deep_json(levels: int) -> str:
    """A valid JSON key object whose value nests ``levels`` arrays."""
    return '{"id": ' + "[" * levels + "]" * levels + "}"


# --------------------------------------------------------------------- endpoint URL


@pytest.mark.parametrize("url", ["http://[::1", "http://x:99999", "localhost:4566",
                                 "ftp://example.com", "http://a b", "http://[zz]/",
                                 "http://user:pw@example.com", "http://"])
def test_malformed_endpoint_flag_is_bad_input(cli: CliRunner, url: str) -> None:
    one_line_error(cli("list", "-t", TABLE, "--endpoint-url", url), 2, "invalid endpoint URL",
                   "flag --endpoint-url")


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"])
@pytest.mark.parametrize("url", ["http://[::1", "http://x:99999"])
def test_malformed_aws_endpoint_env_is_bad_input(cli: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                 var: str, url: str) -> None:
    monkeypatch.setenv(var, url)
    one_line_error(cli("list", "-t", TABLE), 2, "invalid endpoint URL", var)


def test_malformed_endpoint_in_streamq_toml_is_bad_input(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "streamq.toml").write_text('endpoint_url = "http://[::1"\n')
    one_line_error(cli("list", "-t", TABLE), 2, "invalid endpoint URL", "streamq.toml")
    one_line_error(cli("config", "show"), 2, "invalid endpoint URL")


# ---------------------------------------------------------------------------- region


@pytest.mark.parametrize("region", ["bad region!", "-x", "eu_west_1", "a" * 64])
def test_bad_region_flag_is_bad_input(cli: CliRunner, region: str) -> None:
    one_line_error(cli("list", "-t", TABLE, "--region", region), 2, "invalid region")


def test_bad_region_from_environment_is_bad_input(cli: CliRunner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "bad region!")
    one_line_error(cli("list", "-t", TABLE), 2, "invalid region")


def test_bad_region_in_streamq_toml_is_bad_input(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "streamq.toml").write_text('region = "not a region"\n')
    one_line_error(cli("list", "-t", TABLE), 2, "invalid region", "streamq.toml")


# ---------------------------------------------------------------------- streamq.toml


@pytest.mark.parametrize(("text", "needle"), [
    ("table = 1e400\n", "table must be a string, not a number"),
    ("table = 5\n", "table must be a string"),
    ("table = true\n", "table must be a string, not a boolean"),
    ('table = ["a"]\n', "not an array"),
    ("region = 1\n", "region must be a string"),
    ("stuck_after = inf\n", "must be a finite number"),
    ("stuck_after = [1]\n", "stuck_after must be a string or a number of seconds"),
    ("a = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("a = " + "{b=" * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
    ('[outbox.x]\ntable = 1e400\n', "table must be a string"),
])
def test_streamq_toml_types_and_depth(cli: CliRunner, tmp_path: Path, text: str,
                                      needle: str) -> None:
    (tmp_path / "streamq.toml").write_text(text)
    args = ("--outbox", "x") if "outbox" in text else ()
    one_line_error(cli("config", "show", *args), 2, needle)


def test_streamq_toml_numbers_where_numbers_belong(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "streamq.toml").write_text('table = "mail_outbox"\nstuck_after = 300\n')
    res = cli("config", "show", "-o", "json")
    assert res.code == 0, res.err
    doc = res.json()["settings"]
    assert doc["table"]["value"] == "mail_outbox" and doc["stuck_after"]["value"] == 300.0


def test_streamq_toml_not_utf8_or_huge(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "streamq.toml"
    path.write_bytes(b'table = "\xff"\n')
    one_line_error(cli("config", "show"), 2, "not UTF-8")
    path.write_text("# " + "x" * (1024 * 1024) + "\n")
    one_line_error(cli("config", "show"), 2, "MiB")


# ------------------------------------------------------------------ nested JSON input


@pytest.fixture()
def outbox(ddb: Any, endpoint: str) -> str:
    create_table(ddb, TABLE)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "msg-1"}})
    create_trigger(endpoint, TABLE)
    return TABLE


def test_deeply_nested_id_is_bad_input(cli: CliRunner, outbox: str) -> None:
    res = cli("refire", "-t", outbox, "--id", deep_json(5000), "--dry-run")
    one_line_error(res, 2, "nested deeper than 64 levels")
    # 64 levels is still read (and then refused for what it is: not a key)
    res = cli("refire", "-t", outbox, "--id", deep_json(60), "--dry-run")
    one_line_error(res, 2, "is a string (S)")


def test_deeply_nested_ids_line_is_bad_input(cli: CliRunner, outbox: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("msg-1\n" + deep_json(100_000) + "\n")
    one_line_error(cli("refire", "-t", outbox, "--ids-from", str(ids), "--dry-run"), 2,
                   "line 2", "nested deeper")
    one_line_error(cli("refire", "-t", outbox, "--ids-from", "-", "--dry-run",
                       input=ids.read_text()), 2, "line 2", "nested deeper")


def test_deeply_nested_journal_line_is_bad_input(cli: CliRunner, outbox: str,
                                                 tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    res = cli("refire", "-t", outbox, "--id", "msg-1", "--journal", str(journal), "--yes")
    assert res.code == 0, res.err
    lines = journal.read_text().splitlines()
    lines.insert(1, '{"planned": ' + deep_json(50_000) + "}")
    journal.write_text("\n".join(lines) + "\n")
    one_line_error(cli("refire", "-t", outbox, "--resume", str(journal), "--yes"), 2,
                   "line 2", "nested deeper")


def test_deeply_nested_from_file_is_bad_input(cli: CliRunner, outbox: str,
                                              tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"BatchSize": ' + "[" * 50_000 + "]" * 50_000 + "}")
    one_line_error(cli("config-trigger", "-t", outbox, "--from-file", str(cfg), "--yes"), 2,
                   "nested deeper")
    one_line_error(cli("config-trigger", "-t", outbox, "--from-file", "-", "--yes",
                       input=cfg.read_text()), 2, "nested deeper")


def test_huge_ids_input_is_bad_input(cli: CliRunner, outbox: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from streamq.cli import refire_cmd

    monkeypatch.setattr(refire_cmd, "MAX_IDS_BYTES", 1024)
    ids = tmp_path / "ids.txt"
    ids.write_text("msg-1\n" * 200)
    one_line_error(cli("refire", "-t", outbox, "--ids-from", str(ids), "--dry-run"), 2,
                   "streamq reads at most")
    one_line_error(cli("refire", "-t", outbox, "--ids-from", "-", "--dry-run",
                       input=ids.read_text()), 2, "streamq reads at most")


# --------------------------------------------------------------------- filter depth


def deep_pattern(levels: int) -> str:
    """A valid pattern ``levels`` JSON levels deep, well under 4096 characters."""
    text = '{"dynamodb": ' + '{"a": ' * (levels - 2) + '["x"]' + "}" * (levels - 2) + "}"
    assert len(text) <= 4096
    return text


def test_deep_filter_pattern_is_bad_input(cli: CliRunner, outbox: str) -> None:
    res = cli("config-trigger", "-t", outbox, "--filter-pattern", deep_pattern(300), "--yes")
    one_line_error(res, 2, "nests more than 100 levels")


def test_trigger_holding_a_deep_filter_is_read_not_crashed(cli: CliRunner, ddb: Any,
                                                           endpoint: str) -> None:
    """moto, like Lambda, stores a 300-deep pattern: reading the trigger shows it with an
    error lint; refire's pre-flight cannot evaluate it and refuses (exit 5) without --force."""
    create_table(ddb, TABLE)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "msg-1"}})
    create_trigger(endpoint, TABLE, FilterCriteria={"Filters": [{"Pattern": deep_pattern(300)}]})
    res = cli("config-trigger", "-t", TABLE, "-o", "json")
    assert res.code == 0 and "Traceback" not in res.err, res.err
    lints = {x["code"]: x["message"] for x in res.json()["lints"]}
    assert "nests more than 100 levels" in lints["filter-invalid"]
    res = cli("refire", "-t", TABLE, "--id", "msg-1", "--yes")
    assert res.code == 5 and "Traceback" not in res.err, res.err
    assert "cannot be evaluated" in res.err and "nests more than 100" in res.err


# ------------------------------------------------------------------------- stdin UTF-8


def _streamq(*args: str, stdin: bytes, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run([sys.executable, "-m", "streamq.cli", *args], input=stdin,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_stdin_ids_are_checked_for_utf8_like_a_file(outbox: str, tmp_path: Path,
                                                    locale: str) -> None:
    """A real process (its stdin is bytes): strict UTF-8 whatever the locale, the same
    message as for a file."""
    bad = b"msg-1\nmsg-\xff\n"
    env = {"LC_ALL": locale, "PYTHONIOENCODING": ""}
    res = _streamq("refire", "-t", outbox, "--ids-from", "-", "--dry-run", stdin=bad, env=env)
    one_line_error(res, 2, "--ids-from -: not UTF-8 text (byte 0xff at offset 10)")
    (tmp_path / "ids").write_bytes(bad)
    res = _streamq("refire", "-t", outbox, "--ids-from", str(tmp_path / "ids"), "--dry-run",
                   stdin=b"", env=env)
    one_line_error(res, 2, "not UTF-8 text (byte 0xff at offset 10)")
    res = _streamq("config-trigger", "-t", outbox, "--from-file", "-", "--yes",
                   stdin=b'{"BatchSize": "\xff"}', env=env)
    one_line_error(res, 2, "not UTF-8 text")
    # a UTF-8 BOM is dropped, as it is from a file
    res = _streamq("refire", "-t", outbox, "--ids-from", "-", "--dry-run",
                   stdin=b"\xef\xbb\xbfmsg-1\n", env=env)
    assert res.code == 0 and "missing now  0" in res.out, res.err


# -------------------------------------------------------------------- HTML error body


HTML = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""


@pytest.fixture()
def html_endpoint() -> Iterator[str]:
    """An endpoint that answers every request with a proxy's HTML error page (403)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(403)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(HTML)))
            self.end_headers()
            self.wfile.write(HTML)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", [("list",), ("config-trigger",), ("stats",)])
def test_html_error_body_is_one_line(cli: CliRunner, html_endpoint: str,
                                     command: tuple[str, ...]) -> None:
    res = cli(*command, "-t", TABLE, "--endpoint-url", html_endpoint)
    one_line_error(res, 1, "HTTP 403 from the endpoint", "(502 Bad Gateway)")
    assert "<" not in res.err


def test_one_line_keeps_plain_messages() -> None:
    from streamq.aws import one_line

    assert one_line("Requested resource\n not found") == "Requested resource not found"
    assert one_line("<p>a &amp; b</p>") == "a & b"
    assert len(one_line("x" * 1000)) == 300
    assert json.dumps(one_line("<html><body><h1>Oops</h1>\n<p>down</p></body></html>")) == \
        '"Oops down"'
