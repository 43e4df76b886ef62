"""``streamq doctor``: one screen of checks over the whole pipeline."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import Settings
from .common import TableOrJson, outbox_command, value_of


def doctor_cmd(
    settings: Settings,
    since: Annotated[str, typer.Option(
        "--since", help="CloudWatch window for the metric checks (5m, 1h, 2d) "
        "[default: 1h].", show_default=False)] = "1h",
    max_iterator_age: Annotated[str, typer.Option(
        "--max-iterator-age", help="metrics.iterator-age fails when the trigger's "
        "IteratorAge went above this [default: 5m].", show_default=False)] = "5m",
    scan_budget: Annotated[str, typer.Option(
        "--scan-budget", help="Stop counting the outbox after this long and report a "
        "partial count [default: 30s].", show_default=False)] = "30s",
    timeout: Annotated[str, typer.Option(
        "--timeout", help="Deadline of each step's AWS calls; a step that overruns is "
        "reported as not checked [default: 30s].", show_default=False)] = "30s",
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o", help="table on a terminal, json when piped [default: auto].",
        show_default=False)] = None,
) -> None:
    """Check the whole pipeline: table, stream, trigger, function, destination,
    CloudWatch metrics and the outbox itself.

    Every check is ok, warn, fail or skip (not evaluated, e.g. CloudWatch has no
    metrics) with a one-line hint naming the fix. A check that cannot run (access
    denied: it names the IAM action; no answer in time) is a warn, and the others
    still run. -o json is a stable document (schema_version 1, docs/doctor.md).

    Exit codes: 0 nothing failed (warnings allowed), 3 at least one check failed,
    1 AWS error before any check could run, 2 bad option or no table configured.

    Examples:

      streamq doctor

      streamq doctor --since 6h -o json | jq '.checks[] | select(.status=="fail")'

      streamq --sandbox doctor --max-iterator-age 30s
    """
    from .. import render
    from ..api import Outbox
    from ..errors import ExitCode
    from ..render import health as view

    fmt = render.table_or_json(value_of(output))
    outbox = Outbox.from_settings(settings)
    with render.progress("checking"):
        # Every AWS call bounded (streamq.waits), each step with its deadline.
        report = outbox.doctor(since=since, max_iterator_age=max_iterator_age,
                               scan_budget=scan_budget, timeout=timeout)
    doc = report.to_json()
    if fmt == "json":
        render.print_json(doc)
    else:
        view.show_doctor(doc)
    if report.status == "fail":
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(app: typer.Typer) -> None:
    app.command("doctor")(outbox_command(doctor_cmd))
