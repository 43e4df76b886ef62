"""Bad input and AWS failures: one line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import pytest

from streamq.errors import ExitCode
from tests.helpers import create_table


def _one_line_error(res, code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert res.code == code, (res.code, res.err)
    assert "Traceback" not in res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert any(needle in ln for ln in lines), res.err
    assert res.out == ""


def test_exit_codes_are_pinned() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "PARTIAL": 3, "NOT_FOUND": 4, "REFUSED": 5,
        "INTERRUPTED": 130}


@pytest.mark.parametrize(("args", "needle"), [
    (["--where", "=x"], "invalid --where"),
    (["--where", "attempts"], "invalid --where"),
    (["--where", "attempts>=many"], "needs a number"),
    (["--where", "a?x"], "nothing may follow"),
    (["--where", '"unterminated=1'], "unterminated"),
    (["--status", "broken"], "invalid --status 'broken'"),
    (["--older-than", "ten minutes"], "invalid --older-than"),
    (["--stuck-after", "5 parsecs"], "invalid stuck-after"),
    (["--segment", "4/4"], "invalid --segment"),
    (["--segment", "x"], "invalid --segment"),
    (["--segment", "0/2", "--segments", "4"], "does not combine"),
])
def test_bad_list_input(ddb, cli, args, needle) -> None:
    create_table(ddb, "outbox")
    _one_line_error(cli("list", "-t", "outbox", *args), 2, needle)


def test_click_usage_errors_exit_2(cli) -> None:
    res = cli("list", "-t", "outbox", "--output", "yaml")
    assert res.code == 2 and "Traceback" not in res.err and "yaml" in res.err
    res = cli("list", "--limit", "0")
    assert res.code == 2
    assert cli("no-such-command").code == 2


def test_unknown_table_is_not_found(endpoint, cli) -> None:
    _one_line_error(cli("list", "-t", "ghost"), 4, "table 'ghost' not found")
    _one_line_error(cli("stats", "-t", "ghost"), 4, "not found")
    _one_line_error(cli("show", "-t", "ghost", "k"), 4, "not found")


def test_no_table(endpoint, cli) -> None:
    _one_line_error(cli("list"), 2, "no table")


def test_unknown_index(ddb, cli) -> None:
    create_table(ddb, "outbox")
    _one_line_error(cli("list", "-t", "outbox", "--index", "nope"), 4, "no index 'nope'")


def test_no_region(endpoint, cli, monkeypatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    _one_line_error(cli("list", "-t", "outbox"), 2, "no AWS region")


def test_no_credentials(endpoint, cli, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    _one_line_error(cli("list", "-t", "outbox"), 2, "no AWS credentials")


def test_unknown_profile(endpoint, cli) -> None:
    _one_line_error(cli("list", "-t", "outbox", "--profile", "nope"), 2, "profile")


def test_unreachable_endpoint(cli, monkeypatch) -> None:
    import socket

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli("list", "-t", "outbox", "--endpoint-url", f"http://127.0.0.1:{port}")
    _one_line_error(res, 1, "cannot reach")


def test_debug_shows_traceback(endpoint, cli) -> None:
    res = cli("list", "-t", "ghost", "--debug")
    assert res.code == 4 and "Traceback" in res.err


def test_sandbox_not_running_never_falls_back(endpoint, cli) -> None:
    _one_line_error(cli("--sandbox", "list"), 1, "sandbox is not running")
    res = cli("list", "--sandbox", "--endpoint-url", endpoint)
    _one_line_error(res, 2, "--sandbox conflicts with endpoint_url")


def _client_error(code: str, message: str, op: str = "Scan"):  # type: ignore[no-untyped-def]
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, op)


@pytest.mark.parametrize(("code", "message", "exit_code", "needle"), [
    ("AccessDeniedException",
     "User: arn:aws:iam::1:user/x is not authorized to perform: dynamodb:Scan on resource: t",
     1, "access denied: dynamodb:Scan"),
    ("ExpiredTokenException", "The security token included in the request is expired", 1,
     "expired"),
    ("ProvisionedThroughputExceededException", "slow down", 1, "throttled"),
    ("ThrottlingException", "Rate exceeded", 1, "throttled"),
    ("UnrecognizedClientException", "bad token", 1, "rejected the credentials"),
    ("ResourceNotFoundException", "Requested resource not found", 4, "not found"),
    ("ValidationException", "bad expression", 2, "bad expression"),
])
def test_aws_error_translation(code, message, exit_code, needle) -> None:
    """The mapping from AWS error codes (as botocore raises them) to one-line messages."""
    from streamq.aws import translate

    mapped = translate(_client_error(code, message))
    assert mapped is not None
    assert int(mapped.exit_code) == exit_code and needle in mapped.message
    assert "\n" not in mapped.message


def test_aws_region_alone_is_the_region(ddb, cli, monkeypatch) -> None:
    """AWS_REGION (the AWS CLI's and the other SDKs' variable, which the "no AWS region"
    error names) is honoured although botocore itself reads only AWS_DEFAULT_REGION, and
    it wins over AWS_DEFAULT_REGION as in the AWS CLI."""
    create_table(ddb, "outbox")  # in us-east-1
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    res = cli("list", "-t", "outbox", "--count")
    assert (res.code, res.out.strip()) == (0, "0"), res.err
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    res = cli("list", "-t", "outbox", "--count")
    assert (res.code, res.out.strip()) == (0, "0"), res.err
    from streamq import Outbox

    assert Outbox("outbox").region == "us-east-1"
