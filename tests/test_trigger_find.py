"""Finding the trigger on the outbox's stream."""

from __future__ import annotations

from streamq.aws import Aws
from streamq.config import resolve
from streamq.errors import BadInput, NotFound
from streamq.outbox import describe_table
from streamq.trigger import find_trigger, function_name_of
from tests.helpers import create_table, create_trigger


def test_function_name_of() -> None:
    assert function_name_of("arn:aws:lambda:us-east-1:123:function:f:live") == "f"
    assert function_name_of("f") == "f"


def test_find_trigger(ddb, endpoint) -> None:
    import pytest

    create_table(ddb, "outbox")
    create_table(ddb, "nostream", stream=False)
    aws = Aws(resolve({"endpoint_url": endpoint}))
    info = describe_table(aws, "outbox")
    with pytest.raises(NotFound):
        find_trigger(aws, info)
    with pytest.raises(NotFound, match="no stream"):
        find_trigger(aws, describe_table(aws, "nostream"))
    one = create_trigger(endpoint, "outbox", function="a", BatchSize=10)
    assert find_trigger(aws, info)["UUID"] == one["UUID"]
    two = create_trigger(endpoint, "outbox", function="b")
    with pytest.raises(BadInput, match="2 triggers"):
        find_trigger(aws, info)
    assert find_trigger(aws, info, function="b")["UUID"] == two["UUID"]
    assert find_trigger(aws, info, uuid=one["UUID"])["BatchSize"] == 10
    with pytest.raises(NotFound):
        find_trigger(aws, info, function="c")


# ----------------------------------------- --function is a full function ARN (issue 9)

ACCOUNT = "123456789012"
FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:alfn"


def _versioned_function(endpoint: str) -> None:
    """Function alfn with version 1 and alias prod -> 1."""
    import boto3

    from tests.helpers import ROLE_POLICY, _zip_bytes

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    iam, lam = boto3.client("iam", **kw), boto3.client("lambda", **kw)
    role = iam.create_role(RoleName="alfn-role",
                           AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    lam.create_function(FunctionName="alfn", Runtime="python3.12", Role=role,
                        Handler="handler.handler", Code={"ZipFile": _zip_bytes()})
    lam.publish_version(FunctionName="alfn")
    lam.create_alias(FunctionName="alfn", Name="prod", FunctionVersion="1")


def _mapping(endpoint: str, ddb, function: str) -> dict:  # type: ignore[no-untyped-def]
    import boto3

    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    arn = ddb.describe_table(TableName="outbox")["Table"]["LatestStreamArn"]
    return dict(lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function,
                                                StartingPosition="TRIM_HORIZON"))


def _batch_size(endpoint: str, uuid: str) -> int:
    import boto3

    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    return int(lam.get_event_source_mapping(UUID=uuid)["BatchSize"])


def test_function_resolves_to_the_full_arn_and_matches_it_exactly(cli, ddb,  # type: ignore[no-untyped-def]
                                                                  endpoint) -> None:
    create_table(ddb, "outbox")
    _versioned_function(endpoint)
    one = _mapping(endpoint, ddb, "alfn:1")
    assert one["FunctionArn"] == f"{FN}:1"

    def change(function: str, *extra: str):  # type: ignore[no-untyped-def]
        return cli("config-trigger", "--table", "outbox", "--function", function,
                   "--batch-size", "5", *extra)

    # Another qualifier, region or account, or the unqualified function: not alfn:1.
    for other in (f"{FN}:prod", "alfn:prod", "alfn",
                  f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:alfn:1",
                  "arn:aws:lambda:us-east-1:210987654321:function:alfn:1"):
        r = change(other, "--yes")
        assert r.code == 4, (other, r.err)
        assert "no trigger" in r.err and f"{FN}:1 (uuid {one['UUID']})" in r.err, r.err
    assert "unqualified" in change("alfn", "--yes").err
    assert _batch_size(endpoint, one["UUID"]) == 100

    # The same function in every spelling: alfn:1.
    for same in ("alfn:1", f"{FN}:1", f"{ACCOUNT}:function:alfn:1", "function:alfn:1"):
        r = change(same, "--dry-run", "-o", "json")
        assert r.code == 0, (same, r.err)
        assert r.json()["UUID"] == one["UUID"] and r.json()["FunctionArn"] == f"{FN}:1"
    for bad in ("arn:aws:lambda:alfn", "al fn", "arn:aws:lambda:us-east-1:1:function:alfn"):
        assert change(bad, "--dry-run").code == 2, bad

    # The diff names the mapping it changes: UUID and function ARN.
    r = change("alfn:1", "--yes", "-o", "table")
    assert r.code == 0, r.err
    assert f"trigger   {one['UUID']}" in r.out and f"function  {FN}:1" in r.out
    assert f"{FN}:1" in r.err  # "applied ... to the trigger UUID (ARN)"
    assert _batch_size(endpoint, one["UUID"]) == 5

    # A second mapping, on the alias: each qualifier chooses its own.
    prod = _mapping(endpoint, ddb, "alfn:prod")
    assert prod["FunctionArn"] == f"{FN}:prod"  # as AWS records it (not the version's ARN)
    r = cli("config-trigger", "--table", "outbox", "--batch-size", "9", "--yes")
    assert r.code == 2 and one["UUID"] in r.err and prod["UUID"] in r.err
    assert f"{FN}:1" in r.err and f"{FN}:prod" in r.err
    r = cli("config-trigger", "--table", "outbox", "--function", f"{FN}:prod",
            "--batch-size", "7", "--yes")
    assert r.code == 0, r.err
    assert (_batch_size(endpoint, one["UUID"]), _batch_size(endpoint, prod["UUID"])) == (5, 7)

    # An export of alfn:prod's trigger is another trigger's for alfn:1.
    exported = cli("config-trigger", "--table", "outbox", "--function", "alfn:prod",
                   "--export").out
    r = cli("config-trigger", "--table", "outbox", "--function", "alfn:1", "--from-file",
            "-", "--yes", input=exported)
    assert r.code == 5 and f"{FN}:prod" in r.err, r.err
    assert _batch_size(endpoint, one["UUID"]) == 5

    # refire's pre-flight resolves --function the same way.
    ddb.put_item(TableName="outbox", Item={"id": {"S": "a"}, "last_error": {"S": "x"}})
    r = cli("refire", "--table", "outbox", "--function", "alfn", "--id", "a", "--yes")
    assert r.code == 5 and "unqualified" in r.err, r.err
    # Its plan names the trigger by the qualified function it invokes (alfn:prod, not alfn).
    r = cli("refire", "--table", "outbox", "--function", "alfn:prod", "--id", "a",
            "--dry-run", "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["trigger"].startswith(f"alfn:prod (Enabled, uuid {prod['UUID']}"), r.out
