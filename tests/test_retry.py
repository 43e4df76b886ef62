"""The retry policy (streamq.retry) and its configuration: the backoff schedule, jitter
bounds, the cap, the due/waiting/dead boundaries and how records are classified."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamq.config import resolve, user_config_dir
from streamq.errors import BadInput
from streamq.outbox import Classifier, KeyAttr, TableInfo, key_id
from streamq.retry import Backoff, RetryPolicy, parse_backoff, parse_max_attempts, unit_hash

INFO = TableInfo("outbox", KeyAttr("id", "S"))
SEEDS = [key_id({"id": {"S": f"msg-{i:05d}"}}) for i in range(2000)]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "want"), [
    ("base=1m,factor=2,jitter=0.2,cap=6h", Backoff(60, 2, 0.2, 21600)),
    ("base=1s", Backoff(1, 2, 0.2, 21600)),
    ("30s", Backoff(30, 2, 0.2, 21600)),
    ("base=10s factor=3 jitter=10% cap=5m", Backoff(10, 3, 0.1, 300)),
    ("jitter=0", Backoff(60, 2, 0, 21600)),
    ("factor=1, cap=2m", Backoff(60, 1, 0.2, 120)),
    ("12h", Backoff(43200, 2, 0.2, 43200)),  # a base above the default cap lifts the cap
    (" BASE=1m30s ", Backoff(90, 2, 0.2, 21600)),
])
def test_parse_backoff(text: str, want: Backoff) -> None:
    assert parse_backoff(text) == want
    assert parse_backoff(str(want)) == want  # config show prints what it reads back


@pytest.mark.parametrize(("text", "needle"), [
    ("", "empty backoff"),
    ("base", "invalid backoff"),  # a bare word is a base duration that does not parse
    ("speed=2", "NAME=VALUE with NAME one of base, factor, jitter, cap"),
    ("base=1m,base=2m", "base given twice"),
    ("factor=0.5", "factor must be from 1 to 100"),
    ("factor=nan", "factor must be finite"),
    ("jitter=1", "jitter must be from 0 to below 1"),
    ("jitter=-0.1", "jitter must be from 0 to below 1"),
    ("jitter=150%", "jitter must be from 0 to below 1"),
    ("cap=0", "cap must be more than 0"),
    ("base=10m,cap=1m", "cap (1m) is below base (10m)"),
    ("base=soon", "invalid backoff base"),
    ("factor=", "is not NAME=VALUE"),
])
def test_bad_backoff(text: str, needle: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_backoff(text)
    assert needle in exc.value.message


@pytest.mark.parametrize("value", [0, -1, "x", 2.5, True, "1e3", 1_000_001])
def test_bad_max_attempts(value: object) -> None:
    with pytest.raises(BadInput):
        parse_max_attempts(value)


def test_max_attempts_accepts_numbers_and_strings() -> None:
    assert parse_max_attempts(8) == 8 and parse_max_attempts(" 3 ") == 3
    assert parse_max_attempts(5.0) == 5 and parse_max_attempts(1) == 1


# --------------------------------------------------------------------------- the schedule


def test_nominal_schedule_doubles_from_base_up_to_the_cap() -> None:
    b = Backoff(base=60, factor=2, jitter=0.2, cap=21600)
    assert [b.nominal(n) for n in range(1, 12)] == [
        60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]
    assert b.nominal(0) == b.nominal(1) == 60  # unknown/zero attempts: the first wait
    assert b.nominal(10**6) == 21600  # no overflow for absurd counts
    assert Backoff(base=5, factor=1, jitter=0, cap=60).nominal(40) == 5
    assert Backoff(base=0, factor=2, jitter=0, cap=60).nominal(3) == 0


@pytest.mark.parametrize("attempts", [1, 2, 5, 9, 10, 30])
def test_jitter_stays_within_bounds_and_spreads(attempts: int) -> None:
    b = Backoff(base=60, factor=2, jitter=0.2, cap=21600)
    nominal = b.nominal(attempts)
    delays = [b.delay(attempts, seed) for seed in SEEDS]
    assert all(nominal * 0.8 <= d <= nominal for d in delays)
    assert max(delays) <= b.cap  # the cap is a hard bound, jitter only shortens
    # It really spreads (2000 records cover the whole band, not one point), also capped.
    assert min(delays) < nominal * 0.81 and max(delays) > nominal * 0.99
    assert len({round(d, 6) for d in delays}) > 1900


def test_jitter_is_deterministic_per_record_and_attempt() -> None:
    b = Backoff(base=60, factor=2, jitter=0.5, cap=21600)
    seed = SEEDS[7]
    assert b.delay(3, seed) == b.delay(3, seed) == Backoff(60, 2, 0.5, 21600).delay(3, seed)
    assert unit_hash(seed, 3) != unit_hash(seed, 4)  # a new attempt draws again
    assert unit_hash(SEEDS[7], 3) != unit_hash(SEEDS[8], 3)
    assert min(unit_hash(s, 1) for s in SEEDS) >= 0 and max(unit_hash(s, 1) for s in SEEDS) < 1
    assert Backoff(base=60, factor=2, jitter=0, cap=600).delay(2, seed) == 120


def test_schedule_table() -> None:
    p = RetryPolicy(Backoff(base=60, factor=2, jitter=0.2, cap=21600), max_attempts=4)
    assert p.schedule() == [(1, 60, 60), (2, 120, 180), (3, 240, 420)]
    assert RetryPolicy(max_attempts=1).schedule() == []


# --------------------------------------------------------------------------- boundaries


def test_due_waiting_dead_boundaries() -> None:
    p = RetryPolicy(Backoff(base=10, factor=2, jitter=0, cap=100), max_attempts=3)
    # attempts 1: due 10 s after the last attempt, not a moment before
    assert p.state(1, 1000.0, "k", now=1009.999) == ("waiting", 1010.0)
    assert p.state(1, 1000.0, "k", now=1010.0) == ("due", 1010.0)
    # attempts 2 waits 20 s
    assert p.state(2, 1000.0, "k", now=1019.0) == ("waiting", 1020.0)
    assert p.state(2, 1000.0, "k", now=1020.0) == ("due", 1020.0)
    # max_attempts 3: the 3rd failed attempt was the last one
    assert p.state(3, 1000.0, "k", now=10**9) == ("dead", None)
    assert p.state(4, None, "k", now=0) == ("dead", None)
    # unknown attempts: never dead, waits the first delay; unknown time: due now
    assert p.state(None, 1000.0, "k", now=1005.0) == ("waiting", 1010.0)
    assert p.state(None, None, "k", now=0) == ("due", None)
    assert p.state(0, 1000.0, "k", now=1010.0) == ("due", 1010.0)


def test_min_wait_is_a_floor_under_the_backoff() -> None:
    p = RetryPolicy(Backoff(base=10, factor=2, jitter=0, cap=100), max_attempts=3)
    assert p.state(1, 1000.0, "k", now=1010.0, min_wait=30) == ("waiting", 1030.0)
    assert p.state(2, 1000.0, "k", now=1030.0, min_wait=5) == ("due", 1020.0)
    assert p.state(3, 1000.0, "k", now=0, min_wait=30) == ("dead", None)


def test_jittered_boundary_is_the_records_own() -> None:
    p = RetryPolicy(Backoff(base=100, factor=2, jitter=0.5, cap=1000), max_attempts=8)
    seed = SEEDS[3]
    due_at = 5000.0 + p.backoff.delay(2, seed)
    assert 5100.0 <= due_at <= 5200.0
    assert p.state(2, 5000.0, seed, now=due_at - 0.001)[0] == "waiting"
    assert p.state(2, 5000.0, seed, now=due_at)[0] == "due"


def _settings(**flags: object) -> object:
    return resolve({"backoff": "base=10s,factor=2,jitter=0,cap=1h", "max_attempts": 3,
                    **flags}, env={})


def _item(key: str, **attrs: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"id": {"S": key}, "last_error": {"S": "429 Too Many Requests"}, **attrs}


def test_classifier_reads_the_last_attempt_the_refire_and_the_created_time() -> None:
    from streamq.outbox import parse_timestamp

    iso = "2027-01-15T08:00:00Z"
    t = parse_timestamp({"S": iso})
    assert t is not None
    c = Classifier(_settings(), INFO, now=t + 15)  # type: ignore[arg-type]
    # attempts 1 -> waits 10 s after last_attempt_at
    r = c.classify(_item("a", attempts={"N": "1"}, last_attempt_at={"S": iso}))
    assert (r.status, r.retry, r.next_due_at, r.last_attempt_from) == (
        "failed", "due", t + 10, "last_attempt_at")
    # attempts 2 -> waits 20 s
    r = c.classify(_item("b", attempts={"N": "2"}, last_attempt_at={"S": iso}))
    assert (r.retry, r.next_due_at) == ("waiting", t + 20)
    # a refire after the last attempt is in flight: from the refire, it waits at least
    # stuck-after (default 5 m), or its backoff when that is longer
    r = c.classify(_item("c", attempts={"N": "1"}, last_attempt_at={"N": str(t - 1000)},
                         refired_at={"S": iso}))
    assert (r.retry, r.next_due_at, r.last_attempt_from) == ("waiting", t + 300, "refired_at")
    c.now = t + 300
    assert c.classify(r.item).retry == "due"  # the refire was lost: due again
    c.now = t + 15
    r = c.classify(_item("c2", attempts={"N": "2"}, last_attempt_at={"N": str(t)},
                         refired_at={"N": str(t + 8)}))
    assert (r.retry, r.next_due_at) == ("waiting", t + 308)
    short = Classifier(_settings(stuck_after="5s"), INFO, now=t + 15)  # type: ignore[arg-type]
    assert short.classify(r.item).next_due_at == t + 8 + 20  # the backoff is longer
    # an older refire (the handler attempted since) does not count
    r = c.classify(_item("d", attempts={"N": "1"}, last_attempt_at={"S": iso},
                         refired_at={"N": str(t - 50)}))
    assert r.last_attempt_from == "last_attempt_at"
    # no last attempt: the created time, said so by last_attempt_from
    r = c.classify(_item("e", attempts={"N": "1"}, created_at={"N": str((t - 60) * 1000)}))
    assert (r.retry, r.next_due_at, r.last_attempt_from) == ("due", t - 50, "created_at")
    # dead at max attempts, whatever the time
    r = c.classify(_item("f", attempts={"N": "3"}, last_attempt_at={"S": iso}))
    assert (r.status, r.retry, r.next_due_at) == ("failed", "dead", None)
    assert r.selected_by({"dead"}) and r.selected_by({"failed"}) and not r.selected_by({"due"})
    # not failed: no retry state
    r = c.classify({"id": {"S": "g"}, "attempts": {"N": "9"}})
    assert (r.status, r.retry) == ("stuck", None) and not r.selected_by({"dead"})
    # the other attribute names are honoured
    c2 = Classifier(_settings(last_attempt_attr="tried", attempts_attr="n"), INFO,  # type: ignore[arg-type]
                    now=t + 15)
    r = c2.classify(_item("h", n={"N": "3"}, tried={"S": iso}))
    assert r.retry == "dead"
    r = c2.classify(_item("i", n={"N": "2"}, tried={"S": iso}))
    assert (r.retry, r.last_attempt_from) == ("waiting", "tried")


def test_to_json_carries_retry_and_next_due() -> None:
    c = Classifier(_settings(), INFO, now=1_000_100.0)  # type: ignore[arg-type]
    doc = c.classify(_item("a", attempts={"N": "1"}, last_attempt_at={"N": "1000000"})
                     ).to_json(INFO)
    assert doc["retry"] == "due" and doc["next_due_at"] == "1970-01-12T13:46:50Z"


# --------------------------------------------------------------------------- configuration


def test_policy_precedence_flag_env_file_per_outbox(tmp_path: Path) -> None:
    user = user_config_dir()
    user.mkdir(parents=True)
    (user / "streamq.toml").write_text('backoff = "base=2m"\n')
    (tmp_path / "streamq.toml").write_text(
        'max_attempts = 5\n[outbox.orders]\nbackoff = "base=5s,cap=1m"\nmax_attempts = 3\n'
        'last_attempt_attr = "tried_at"\n')
    s = resolve({}, env={}, cwd=tmp_path)
    assert s.backoff == Backoff(base=120) and s.max_attempts == 5
    assert s.last_attempt_attr == "last_attempt_at" and s.sources["backoff"].startswith(str(user))
    s = resolve({"outbox": "orders"}, env={}, cwd=tmp_path)
    assert s.backoff == Backoff(base=5, cap=60) and s.max_attempts == 3
    assert s.last_attempt_attr == "tried_at" and "[outbox.orders]" in s.sources["max_attempts"]
    s = resolve({"outbox": "orders"}, env={"STREAMQ_MAX_ATTEMPTS": "4",
                                           "STREAMQ_BACKOFF": "base=1s"}, cwd=tmp_path)
    assert s.max_attempts == 4 and s.backoff == Backoff(base=1)
    assert s.sources["backoff"] == "env STREAMQ_BACKOFF"
    s = resolve({"outbox": "orders", "max_attempts": 9, "backoff": "factor=3"},
                env={"STREAMQ_MAX_ATTEMPTS": "4"}, cwd=tmp_path)
    assert s.max_attempts == 9 and s.backoff == Backoff(factor=3)
    assert s.sources["max_attempts"] == "flag --max-attempts"
    assert s.retry_policy == RetryPolicy(Backoff(factor=3), 9)


@pytest.mark.parametrize(("text", "env", "needle"), [
    ("backoff = 'base=x'\n", {}, "invalid backoff base 'x'"),
    ("max_attempts = 0\n", {}, "invalid max_attempts"),
    ("", {"STREAMQ_MAX_ATTEMPTS": "many"}, "env STREAMQ_MAX_ATTEMPTS"),
    ("last_attempt_attr = 'refired_at'\n", {}, "last_attempt_attr must differ"),
    ("last_attempt_attr = ''\n", {}, "non-empty attribute name"),
])
def test_bad_policy_config(tmp_path: Path, text: str, env: dict[str, str],
                           needle: str) -> None:
    (tmp_path / "streamq.toml").write_text(text)
    with pytest.raises(BadInput) as exc:
        resolve({}, env=env, cwd=tmp_path)
    assert needle in exc.value.message


def test_config_show_lists_the_policy(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STREAMQ_MAX_ATTEMPTS", "5")
    res = cli("config", "show", "--backoff", "base=30s", "-o", "json")
    assert res.code == 0, res.err
    doc = res.json()["settings"]
    assert doc["backoff"] == {"value": "base=30s,factor=2,jitter=0.2,cap=6h",
                              "source": "flag --backoff"}
    assert doc["max_attempts"] == {"value": 5, "source": "env STREAMQ_MAX_ATTEMPTS"}
    assert doc["last_attempt_attr"] == {"value": "last_attempt_at", "source": "default"}
    res = cli("config", "show", "--max-attempts", "0")  # 0 is a value, not "not given"
    assert res.code == 2 and "invalid max_attempts 0" in res.err
    assert "(flag --max-attempts)" in res.err
    res = cli("--max-attempts", "0", "config", "show")
    assert res.code == 2 and "invalid max_attempts 0" in res.err
    res = cli("config", "show", "--backoff", "jitter=2")
    assert res.code == 2 and "jitter must be from 0 to below 1" in res.err
