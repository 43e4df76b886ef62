"""ids, --count and stats read only what they need: the key, the created time and the
error, plus what the retry state reads when a retry status is selected or counted
(filters run server-side, before the projection)."""

from __future__ import annotations

from typing import Any

from streamq.config import resolve
from streamq.outbox import KeyAttr, Selection, TableInfo, parse_where, plan_scan


def _projected(params: dict[str, Any]) -> set[str]:
    names = params.get("ExpressionAttributeNames", {})
    text = params.get("ProjectionExpression")
    return set() if text is None else {names[p.strip()] for p in text.split(",")}


def test_keys_only_projects_what_status_age_and_retry_state_read() -> None:
    settings = resolve({"table": "t", "created_attr": "enq", "error_attr": "err"})
    info = TableInfo("t", KeyAttr("tenant", "S"), KeyAttr("seq", "N"))
    sel = Selection(keys_only=True, where=(parse_where("attempts>=3"),))
    plan = plan_scan(info, settings, sel)
    assert _projected(plan.params) == {"tenant", "seq", "enq", "err"}
    assert "attempts" in plan.params["ExpressionAttributeNames"].values()  # the filter
    retry = {settings.attempts_attr, settings.last_attempt_attr, settings.refired_attr}
    for sel in (Selection(keys_only=True, statuses=("due",)),
                Selection(keys_only=True, retry_counts=True)):
        assert _projected(plan_scan(info, settings, sel).params) == {
            "tenant", "seq", "enq", "err", *retry}
    assert "ProjectionExpression" not in plan_scan(info, settings, Selection()).params
