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
