"""The refire writer's Aws reuses the pre-flight's boto3 session (service models already
loaded), and prefetched clients are made off the calling thread, once."""

from __future__ import annotations

import time

from streamq.aws import Aws
from streamq.config import resolve
from streamq.refire import writer_aws


def test_writer_shares_the_session_and_prefetch_makes_each_client_once(endpoint: str) -> None:
    settings = resolve({"table": "t"})
    reader = Aws(settings)
    writer = writer_aws(settings, 8, share=reader)
    writer.prefetch("dynamodb")
    reader.prefetch("lambda")
    deadline = time.monotonic() + 30
    while ("dynamodb" not in writer._clients or "lambda" not in reader._clients):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert writer.session is reader.session
    made = writer.client("dynamodb")
    assert made is writer._clients["dynamodb"] and made is not reader.client("dynamodb")
    assert made.meta.config.retries["total_max_attempts"] == 1  # the writer retries itself
    assert made.meta.config.max_pool_connections == 10
