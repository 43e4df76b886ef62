"""Property-based fuzzing of every input parser (hypothesis): whatever the input, the
parser succeeds or raises a StreamqError with a documented exit code and a one-line
message; never another exception (issue 9).

Parsers: --where (down to the DynamoDB expression), durations (--older-than,
--stuck-after, config-trigger's windows), --segment, --status, ids lines and key JSON
(four key schemas), refire journals, config-trigger --from-file and its flags, filter
patterns (parse, validate, evaluate, explain, lint), streamq.toml (and the settings it
resolves to), endpoint URLs and region names.

CI runs the fixed, derandomized profile ``streamq-ci`` (the same examples every run);
``STREAMQ_FUZZ=streamq-deep`` runs a longer random campaign locally.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamq.errors import ExitCode, StreamqError
from streamq.outbox import KeyAttr, TableInfo

settings.register_profile(
    "streamq-ci", max_examples=120, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
settings.register_profile(
    "streamq-deep", max_examples=5000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
FUZZ = settings.get_profile(os.environ.get("STREAMQ_FUZZ", "streamq-ci"))

T = TypeVar("T")
DOCUMENTED = {int(c) for c in ExitCode}


def printed(message: str) -> str:
    """What the CLI prints for an error with this message (stderr, not a terminal)."""
    from streamq import render

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        render.error(message)
    return err.getvalue()


def one_line(message: str) -> None:
    out = printed(message)
    assert message and out.count("\n") == 1 and out.endswith("\n"), out
    assert all(c.isprintable() for c in out[:-1]), out  # no escape sequence reaches a tty


def clean(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | StreamqError:
    """Run a parser: its result, or the StreamqError it raised (checked: a documented
    exit code, printed as one line). Any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except StreamqError as exc:
        assert int(exc.exit_code) in DOCUMENTED, exc
        one_line(exc.message)
        return exc


# ------------------------------------------------------------------------ strategies

#: Characters that mean something to the parsers, mixed into arbitrary text.
SYNTAX = '=!<>~?"\\{}[]:,./-+eE0123456789 \t\n#\ufeff\x00aZ_'
text = st.one_of(st.text(max_size=80), st.text(alphabet=SYNTAX, max_size=80))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                         st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=20)


def deep(levels: int, opener: str = "[", closer: str = "]") -> str:
    return opener * levels + closer * levels


nested_json = st.integers(min_value=50, max_value=3000).map(deep)

TABLES = {
    "S": TableInfo(name="t", hash_key=KeyAttr("id", "S")),
    "N": TableInfo(name="t", hash_key=KeyAttr("id", "N")),
    "B": TableInfo(name="t", hash_key=KeyAttr("id", "B")),
    "SN": TableInfo(name="t", hash_key=KeyAttr("tenant", "S"), range_key=KeyAttr("seq", "N")),
}
tables = st.sampled_from(sorted(TABLES)).map(TABLES.__getitem__)


# ----------------------------------------------------------------- --where and friends


@FUZZ
@given(st.lists(text, max_size=3), st.one_of(st.none(), text),
       st.lists(st.sampled_from(["failed", "stuck", "pending", "all", "x", ""]), max_size=3))
def test_where_older_than_status_down_to_the_expression(where: list[str], older: str | None,
                                                       status: list[str]) -> None:
    from streamq.api import build_selection
    from streamq.config import Settings
    from streamq.outbox import plan_scan

    sel = clean(build_selection, status, older, where)
    if not isinstance(sel, StreamqError):
        plan = clean(plan_scan, TABLES["S"], Settings(table="t"), sel)
        if not isinstance(plan, StreamqError):
            json.dumps(plan.params, default=str)


@FUZZ
@given(text)
def test_durations(value: str) -> None:
    from streamq.durations import parse_duration
    from streamq.trigger import _parse_seconds

    seconds = clean(parse_duration, value)
    if not isinstance(seconds, StreamqError):
        assert seconds >= 0 and seconds == seconds and seconds != float("inf")
    for infinite in (True, False):
        clean(_parse_seconds, value, "--max-record-age", infinite=infinite)


@FUZZ
@given(st.one_of(text, st.builds(lambda i, n: f"{i}/{n}", st.integers(), st.integers()),
                 st.integers(min_value=4300, max_value=6000).map(lambda n: "1" * n + "/2")))
def test_segment(value: str) -> None:
    from streamq.outbox import parse_segment

    got = clean(parse_segment, value)
    if not isinstance(got, StreamqError):
        i, n = got
        assert 0 <= i < n


# ------------------------------------------------------------------ ids and key JSON


key_lines = st.one_of(
    text, nested_json.map(lambda s: '{"id": ' + s + "}"),
    json_values.map(lambda v: json.dumps(v)),
    st.dictionaries(st.sampled_from(["id", "tenant", "seq", "key", "status", "x"]),
                    json_values, max_size=3).map(json.dumps))


@FUZZ
@given(tables, st.lists(key_lines, max_size=5))
def test_ids_lines(info: TableInfo, lines: list[str]) -> None:
    from streamq.outbox import iter_key_lines, key_id

    keys = clean(lambda: list(iter_key_lines(lines, info)))
    if not isinstance(keys, StreamqError):
        for k in keys:
            key_id(k)


@FUZZ
@given(tables, json_values)
def test_key_objects(info: TableInfo, obj: Any) -> None:
    from streamq.outbox import parse_key_object

    clean(parse_key_object, obj, info)


S_VALUES = st.text(min_size=1, max_size=30)
N_VALUES = st.one_of(  # DynamoDB numbers: up to 38 significant digits
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1).map(str),
    st.builds(lambda i, f: f"{i}.{f}", st.integers(min_value=-(10**18), max_value=10**18),
              st.integers(min_value=0, max_value=10**19)))
B_VALUES = st.binary(min_size=1, max_size=30)


@FUZZ
@given(st.data())
def test_key_text_round_trips(data: st.DataObject) -> None:
    """What `list -o ids` prints, `refire --ids-from` reads back as the same key."""
    from streamq.outbox import iter_key_lines, key_id, key_text

    kind = data.draw(st.sampled_from(sorted(TABLES)))
    info = TABLES[kind]
    values = {"S": S_VALUES.map(lambda v: {"S": v}), "N": N_VALUES.map(lambda v: {"N": v}),
              "B": B_VALUES.map(lambda v: {"B": v})}
    key = {a.name: data.draw(values[a.type]) for a in info.key_attrs}
    line = key_text(key, info)
    assert "\n" not in line and "\r" not in line
    (back,) = list(iter_key_lines(line.split("\n"), info))
    assert key_id(back) == key_id(key)


# ------------------------------------------------------------------------- journals


def _journal_lines() -> st.SearchStrategy[list[str]]:
    header = st.fixed_dictionaries({"journal": st.sampled_from(["streamq.refire/1", "x"]),
                                    "run": st.one_of(st.text(max_size=8), json_values),
                                    "table": st.sampled_from(["t", "u"]),
                                    "only_if": st.sampled_from(["any", "failed", "stuck"])})
    planned = st.fixed_dictionaries({"planned": st.one_of(json_values, st.fixed_dictionaries(
        {"id": json_values})), "cond": json_values, "created": json_values})
    outcome = st.fixed_dictionaries({"key": json_values, "outcome": json_values})
    line = st.one_of(header.map(json.dumps), planned.map(json.dumps),
                     outcome.map(json.dumps), text, nested_json)
    return st.tuples(header.map(json.dumps), st.lists(line, max_size=6)).map(
        lambda t: [t[0], *t[1]])


@FUZZ
@given(tables, st.one_of(_journal_lines(), st.lists(text, max_size=4)), st.booleans())
def test_journals(info: TableInfo, lines: list[str], torn: bool) -> None:
    from streamq.refire import read_journal

    body = "\n".join(lines) + ("" if torn else "\n")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.jsonl"
        path.write_text(body, encoding="utf-8", errors="surrogatepass")
        clean(read_journal, path, info)
        clean(read_journal, path, None)


# ------------------------------------------------------------ config-trigger inputs

MAPPING = {"UUID": "u-1", "FunctionArn": "arn:aws:lambda:us-east-1:1:function:f",
           "EventSourceArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/2020", "BatchSize": 10}
SETTABLE_KEYS = ["BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts",
                 "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError",
                 "ParallelizationFactor", "FilterCriteria", "DestinationConfig",
                 "FunctionResponseTypes", "TumblingWindowInSeconds", "Enabled", "Format",
                 "UUID", "FunctionArn", "EventSourceArn", "Other"]
from_file_docs = st.one_of(
    st.dictionaries(st.sampled_from(SETTABLE_KEYS), json_values, max_size=5).map(json.dumps),
    st.dictionaries(st.sampled_from(SETTABLE_KEYS), st.one_of(json_values, st.fixed_dictionaries(
        {"Filters": st.lists(st.fixed_dictionaries({"Pattern": text}), max_size=3)})),
        max_size=3).map(json.dumps),
    text, nested_json, nested_json.map(lambda s: '{"BatchSize": ' + s + "}"))


@FUZZ
@given(st.one_of(from_file_docs.map(lambda s: s.encode("utf-8", "surrogatepass")),
                 st.binary(max_size=60)), st.booleans())
def test_from_file(data: bytes, force: bool) -> None:
    from streamq.trigger import changes_from_file

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cfg.json"
        path.write_bytes(data)
        clean(changes_from_file, str(path), MAPPING, force=force)


flag_values = st.one_of(st.none(), text, st.integers().map(str))


@FUZZ
@given(flag_values, flag_values, flag_values, flag_values, flag_values, flag_values,
       st.one_of(st.none(), text), st.lists(text, max_size=2), flag_values)
def test_config_trigger_flags(batch: str | None, window: str | None, retries: str | None,
                              age: str | None, par: str | None, tumbling: str | None,
                              event_filter: str | None, patterns: list[str],
                              on_failure: str | None) -> None:
    from streamq.trigger import changes_from_flags

    clean(changes_from_flags, batch_size=batch, batching_window=window,
          retry_attempts=retries, max_record_age=age, parallelization=par,
          tumbling_window=tumbling, event_filter=event_filter,
          filter_patterns=patterns or None, on_failure=on_failure)


# --------------------------------------------------------------------- filter patterns

RULES = st.one_of(
    json_scalars, st.fixed_dictionaries({"prefix": st.text(max_size=5)}),
    st.fixed_dictionaries({"anything-but": st.one_of(json_scalars, st.lists(json_scalars,
                                                                            max_size=3))}),
    st.fixed_dictionaries({"numeric": st.lists(st.one_of(st.sampled_from(
        ["=", ">", ">=", "<", "<="]), json_scalars), max_size=4)}),
    st.fixed_dictionaries({"exists": json_scalars}),
    st.fixed_dictionaries({"wildcard": st.text(alphabet="ab*\\", max_size=6)}),
    st.fixed_dictionaries({"cidr": st.text(max_size=18)}), json_values)
PATTERNS = st.recursive(
    st.dictionaries(st.sampled_from(["eventName", "dynamodb", "NewImage", "S", "N", "a"]),
                    st.lists(RULES, max_size=3), max_size=3),
    lambda c: st.one_of(
        st.dictionaries(st.sampled_from(["dynamodb", "NewImage", "Keys", "M", "a", "$or"]),
                        st.one_of(c, st.lists(c, max_size=3)), max_size=3)),
    max_leaves=12)
pattern_texts = st.one_of(
    PATTERNS.map(json.dumps), text,
    st.integers(min_value=90, max_value=700).map(
        lambda n: '{"dynamodb": ' + '{"a": ' * n + '["x"]' + "}" * n + "}"))
EVENTS = st.fixed_dictionaries({
    "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    "dynamodb": st.fixed_dictionaries({"NewImage": st.dictionaries(
        st.sampled_from(["a", "b", "id"]), st.one_of(
            st.fixed_dictionaries({"S": st.text(max_size=5)}),
            st.fixed_dictionaries({"N": st.integers().map(str)}),
            st.fixed_dictionaries({"M": json_values})), max_size=3)})})


@FUZZ
@given(pattern_texts, EVENTS)
def test_filter_patterns(pattern: str, event: dict[str, Any]) -> None:
    from streamq.filters import (
        FilterPatternError,
        evaluate_criteria,
        explain_mismatch,
        lint_pattern,
        parse_pattern,
    )
    from streamq.trigger import check_patterns

    clean(check_patterns, [pattern], "flags")
    try:
        parsed = parse_pattern(pattern)
    except FilterPatternError as exc:
        one_line(str(exc))
        return
    lint_pattern(parsed)
    explain_mismatch(parsed, event)
    with contextlib.suppress(FilterPatternError):
        evaluate_criteria([pattern], event)


# ------------------------------------------------------------------------ streamq.toml

TOML_KEYS = ["table", "function", "created_attr", "error_attr", "stuck_after", "region",
             "endpoint_url", "profile", "refired_attr", "refire_count_attr", "nope"]
toml_values = st.one_of(
    st.text(max_size=20).map(json.dumps),  # a basic string
    st.integers().map(str), st.floats().map(lambda f: repr(f).replace("inf", "inf")),
    st.sampled_from(["true", "false", "1e400", "-1e400", "nan", "inf", "1979-05-27",
                     "[1, 2]", "{ a = 1 }", '"http://[::1"', '"eu-west-1"', '"5m"',
                     '"http://127.0.0.1:8000"', "'lit'", '"""multi\nline"""']),
    st.integers(min_value=100, max_value=2000).map(lambda n: deep(n)),
    st.integers(min_value=100, max_value=2000).map(lambda n: "{a=" * n + "1" + "}" * n))


def _toml(pairs: list[tuple[str, str]], section: list[tuple[str, str]] | None) -> str:
    lines = [f"{k} = {v}" for k, v in pairs]
    if section is not None:
        lines += ["[outbox.x]", *[f"{k} = {v}" for k, v in section]]
    return "\n".join(lines) + "\n"


toml_texts = st.one_of(
    st.builds(_toml, st.lists(st.tuples(st.sampled_from(TOML_KEYS), toml_values), max_size=4,
                              unique_by=lambda kv: kv[0]),
              st.one_of(st.none(), st.lists(st.tuples(st.sampled_from(TOML_KEYS), toml_values),
                                            max_size=3, unique_by=lambda kv: kv[0]))),
    text, st.text(alphabet=string.printable, max_size=80))


@FUZZ
@given(st.one_of(toml_texts.map(lambda s: s.encode("utf-8", "surrogatepass")),
                 st.binary(max_size=40)), st.booleans(), st.booleans())
def test_streamq_toml(data: bytes, with_outbox: bool, with_flags: bool) -> None:
    from streamq.config import resolve

    flags = {"outbox": "x"} if with_outbox else {}
    if with_flags:
        flags.update(table="t", stuck_after="90s")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "streamq.toml").write_bytes(data)
        got = clean(resolve, flags, {}, Path(d))
    if not isinstance(got, StreamqError):
        for key in ("table", "function", "region", "endpoint_url", "profile"):
            value = getattr(got, key)
            assert value is None or isinstance(value, str)
        assert got.table not in ("inf", "-inf", "nan")


# ------------------------------------------------------------- endpoints and regions

urls = st.one_of(
    text,
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
              st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
              st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "[::1", "localhost", "a_b",
                                         "ex ample", "-x.com", "x" * 70, "[zz]", "",
                                         "user:pw@h", "dynamodb.eu-west-1.amazonaws.com"]),
                        st.text(max_size=12)),
              st.one_of(st.just(""), st.integers(min_value=-5, max_value=99999).map(
                  lambda p: f":{p}"), st.text(max_size=4).map(lambda t: ":" + t)),
              st.sampled_from(["", "/", "/path", "?q=1", "#f", "/a b"])))


@FUZZ
@given(urls)
def test_endpoint_urls(url: str) -> None:
    """check_endpoint_url accepts only what botocore and urllib3 accept: a client with
    an accepted URL is created and its endpoint parses (port included)."""
    from streamq.config import check_endpoint_url

    got = clean(check_endpoint_url, url, "flag --endpoint-url")
    if isinstance(got, StreamqError):
        assert got.exit_code == ExitCode.USAGE
        return
    import boto3
    from urllib3.util import parse_url

    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                   region_name="us-east-1").client("dynamodb",
                                                                   endpoint_url=url)
    assert parse_url(client.meta.endpoint_url).host


@FUZZ
@given(st.one_of(text, st.from_regex(r"[a-z]{2}-[a-z]+-[0-9]", fullmatch=True)))
def test_region_names(region: str) -> None:
    """Accepted region names are the ones botocore accepts."""
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    from streamq.config import check_region

    got = clean(check_region, region, "flag --region")
    if isinstance(got, StreamqError):
        return
    try:
        validate_region_name(got)
    except InvalidRegionError:  # pragma: no cover - would be a bug in check_region
        pytest.fail(f"check_region accepted {region!r}, botocore does not")


def test_profile_is_derandomized_in_ci() -> None:
    """CI runs the same examples every time (no flaky CI from a lucky draw)."""
    if "STREAMQ_FUZZ" not in os.environ:
        assert FUZZ.derandomize and FUZZ.database is None


def test_decimal_keys_keep_their_value() -> None:
    """A number key read back from its text keeps its value (38 digits, DynamoDB's)."""
    from streamq.outbox import iter_key_lines, key_id

    big = "9" * 38
    (k,) = list(iter_key_lines([big], TABLES["N"]))
    assert key_id(k) == key_id({"id": {"N": str(Decimal(big))}})


# ------------------------------------------------- what the fuzzing found (regressions)


def test_found_number_key_that_a_float_rounds_reads_back() -> None:
    """`list -o ids` printed {"seq":1.343525316521211} for 1.3435253165212111 (a float
    rounds it): refire then looked for another record. Journals had the same key codec."""
    from streamq.outbox import iter_key_lines, key_id, key_plain, key_text

    info = TABLES["SN"]
    key = {"tenant": {"S": "0"}, "seq": {"N": "1.3435253165212111"}}
    (back,) = list(iter_key_lines([key_text(key, info)], info))
    assert key_id(back) == key_id(key)
    assert key_plain(key, info)["seq"] == "1.3435253165212111"
    # typed by hand as a JSON number, every digit is kept too
    (typed,) = list(iter_key_lines(['{"tenant": "0", "seq": 1.3435253165212111}'], info))
    assert typed["seq"] == {"N": "1.3435253165212111"}


def test_found_segment_with_thousands_of_digits() -> None:
    from streamq.errors import BadInput
    from streamq.outbox import parse_segment

    with pytest.raises(BadInput, match="invalid --segment"):
        parse_segment("1" * 4301 + "/2")


def test_found_from_file_identifier_that_is_not_a_string(tmp_path: Path) -> None:
    from streamq.errors import BadInput
    from streamq.trigger import changes_from_file

    path = tmp_path / "cfg.json"
    path.write_text('{"EventSourceArn": {"": []}}')
    with pytest.raises(BadInput, match="EventSourceArn must be a string"):
        changes_from_file(str(path), MAPPING)


def test_found_number_key_a_float_rounds_to_an_integer() -> None:
    """0.9999999999999999445 reads as the float 1.0 and printed as the int 1 (deep
    campaign): it is printed as a string, read back exactly."""
    from streamq.outbox import iter_key_lines, key_id, key_text

    info = TABLES["SN"]
    key = {"tenant": {"S": "0"}, "seq": {"N": "0.9999999999999999445"}}
    (back,) = list(iter_key_lines([key_text(key, info)], info))
    assert key_id(back) == key_id(key)


def test_found_error_text_from_input_is_one_printable_line(cli: Any) -> None:
    """A filter pattern whose operator is a newline, a table name with a terminal escape:
    the error stays one line and sends no escape sequence (deep campaign)."""
    res = cli("config-trigger", "-t", "outbox", "--endpoint-url", "http://127.0.0.1:9",
              "--filter-pattern", '{"eventName": [{"\\n": null}]}')
    assert res.code == 2 and res.err.count("\n") == 1, res.err
    assert "\\n" in res.err
    res = cli("list", "-t", "x\x1b]0;owned\x07", "--region", "bad\nregion")
    assert res.code == 2 and res.err.count("\n") == 1 and "\x1b" not in res.err, res.err
