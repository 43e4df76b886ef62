"""Settings precedence: flag > STREAMQ_* env > streamq.toml (cwd over user dir) > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamq.config import resolve, user_config_dir
from streamq.errors import BadInput


def test_defaults(tmp_path: Path) -> None:
    s = resolve({}, env={}, cwd=tmp_path)
    assert (s.created_attr, s.error_attr, s.attempts_attr) == ("created_at", "last_error",
                                                                "attempts")
    assert (s.refired_attr, s.refire_count_attr, s.refire_run_attr) == (
        "refired_at", "refire_count", "refire_run")
    assert s.stuck_after == 300 and s.table is None
    assert s.sources["table"] == "default"


def test_precedence(tmp_path: Path) -> None:
    user = user_config_dir()
    user.mkdir(parents=True)
    (user / "streamq.toml").write_text('table = "from-user"\nerror_attr = "user_err"\n'
                                       'region = "eu-west-1"\n')
    (tmp_path / "streamq.toml").write_text('table = "from-cwd"\nstuck_after = "15m"\n'
                                           '[outbox.orders]\ntable = "orders_outbox"\n'
                                           'created_attr = "enqueued_at"\n')
    s = resolve({}, env={}, cwd=tmp_path)
    assert s.table == "from-cwd" and s.sources["table"].endswith("streamq.toml")
    assert s.error_attr == "user_err" and str(user) in s.sources["error_attr"]
    assert s.stuck_after == 900 and s.region == "eu-west-1"
    s = resolve({"outbox": "orders"}, env={}, cwd=tmp_path)
    assert s.table == "orders_outbox" and s.created_attr == "enqueued_at"
    assert "[outbox.orders]" in s.sources["table"]
    s = resolve({}, env={"STREAMQ_OUTBOX": "orders", "STREAMQ_TABLE": "env-table"},
                cwd=tmp_path)
    assert s.table == "env-table" and s.sources["table"] == "env STREAMQ_TABLE"
    assert s.created_attr == "enqueued_at"
    s = resolve({"table": "flag-table"}, env={"STREAMQ_TABLE": "env-table"}, cwd=tmp_path)
    assert s.table == "flag-table" and s.sources["table"] == "flag --table"


@pytest.mark.parametrize(("text", "flags", "needle"), [
    ("tabel = 'x'\n", {}, "unknown setting 'tabel'"),
    ("table = [\n", {}, "invalid TOML"),
    ("table = true\n", {}, "must be a string"),
    ("table = 'x'\n", {"outbox": "nope"}, "no [outbox.nope] section"),
    ("stuck_after = 'soon'\n", {}, "invalid stuck-after"),
    ("refired_attr = 'a'\nrefire_run_attr = 'a'\n", {}, "distinct"),
])
def test_bad_config(tmp_path: Path, text: str, flags: dict[str, str], needle: str) -> None:
    (tmp_path / "streamq.toml").write_text(text)
    with pytest.raises(BadInput, match=needle.replace("[", r"\[").replace("]", r"\]")):
        resolve(flags, env={}, cwd=tmp_path)


def test_config_show_cli(cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "streamq.toml").write_text('table = "mail_outbox"\n')
    monkeypatch.setenv("STREAMQ_ERROR_ATTR", "err")
    res = cli("config", "show", "--stuck-after", "1h", "-o", "json")
    assert res.code == 0, res.err
    doc = res.json()["settings"]
    assert doc["table"] == {"value": "mail_outbox",
                            "source": str(tmp_path / "streamq.toml")}
    assert doc["error_attr"] == {"value": "err", "source": "env STREAMQ_ERROR_ATTR"}
    assert doc["stuck_after"] == {"value": 3600.0, "source": "flag --stuck-after"}
    # A global flag before the command works the same as after it.
    assert cli("--table", "t2", "config", "show", "-o", "json").json()["settings"]["table"][
        "value"] == "t2"
    bad = cli("config", "show", "--outbox", "missing")
    assert bad.code == 2 and "no [outbox.missing] section" in bad.err
