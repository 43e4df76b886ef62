"""``streamq config-trigger``: see and tune the Lambda trigger on the outbox's stream."""

from __future__ import annotations

import enum
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import Settings
from ..errors import BadInput, ExitCode, Refused

if TYPE_CHECKING:
    from pathlib import Path

    from ..api import TriggerConfig
from .common import TableOrJson, outbox_command, value_of

CHANGES = "Changes"


class ExportFormat(str, enum.Enum):
    json = "json"
    cloudformation = "cloudformation"
    terraform = "terraform"


APPLY = "Apply"


def _opt(*decls: str, help: str, panel: str = CHANGES, **kw: Any) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=panel, show_default=False, **kw)


def config_trigger_cmd(
    settings: Settings,
    uuid: Annotated[str | None, _opt(
        "--uuid", help="The mapping's UUID (when the stream has several triggers).",
        panel="Outbox")] = None,
    output: Annotated[TableOrJson | None, _opt(
        "--output", "-o", help="table on a terminal, json when piped [default: auto].",
        panel="Outbox")] = None,
    batch_size: Annotated[str | None, _opt(
        "--batch-size", help="Records per batch, 1-10000 [AWS default: 100].")] = None,
    batching_window: Annotated[str | None, _opt(
        "--batching-window", help="Wait up to this long to fill a batch: seconds or 5s, 2m; "
        "0-300 s [AWS default: 0].")] = None,
    retry_attempts: Annotated[str | None, _opt(
        "--retry-attempts", help="Retries of a failed batch: 0-10000, or -1/infinite "
        "[AWS default: -1].")] = None,
    max_record_age: Annotated[str | None, _opt(
        "--max-record-age", help="Discard records older than this: -1/infinite, or 60s to 7d "
        "(seconds or 1h, 2d) [AWS default: -1].")] = None,
    bisect: Annotated[bool | None, _opt(
        "--bisect/--no-bisect", help="Split a failing batch in two and retry each half "
        "[AWS default: off].")] = None,
    parallelization: Annotated[str | None, _opt(
        "--parallelization", help="Concurrent batches per shard, 1-10 [AWS default: 1].")
    ] = None,
    event_filter: Annotated[str | None, _opt(
        "--filter", help="Pass only these stream events: insert, modify, remove "
        "(comma-separated). Replaces the filter.")] = None,
    filter_pattern: Annotated[list[str] | None, _opt(
        "--filter-pattern", help="A Lambda filter pattern (JSON), repeatable (ORed): 5 by "
        "default, up to 10 with a quota increase (more than 5 warns). Replaces the filter; "
        "an alternative to --filter.")] = None,
    no_filter: Annotated[bool, _opt(
        "--no-filter", help="Remove the filter: every record reaches the function.")] = False,
    on_failure: Annotated[str | None, _opt(
        "--on-failure", help="Destination for discarded batches: an SQS queue, SNS topic or "
        "S3 bucket ARN, or none to remove it.")] = None,
    report_batch_item_failures: Annotated[bool | None, _opt(
        "--report-batch-item-failures/--no-report-batch-item-failures",
        help="Let the function report the failed records of a batch (partial batch "
        "response).")] = None,
    tumbling_window: Annotated[str | None, _opt(
        "--tumbling-window", help="Tumbling window for stateful aggregation, 0-900 s "
        "[AWS default: 0, none].")] = None,
    metrics: Annotated[str | None, _opt(
        "--metrics", help="on: the trigger publishes its event-count metrics to "
        "CloudWatch (MetricsConfig EventCount); off: none [AWS default: off].",
        metavar="on|off")] = None,
    enable: Annotated[bool | None, _opt(
        "--enable/--disable", help="Resume or pause the trigger (it resumes where it "
        "stopped, within the stream's 24 h).")] = None,
    starting_position: Annotated[str | None, _opt(
        "--starting-position", help="Cannot be changed on an existing trigger; says what to "
        "do instead.")] = None,
    export: Annotated[bool, _opt(
        "--export", help="Print the current configuration: JSON, the --from-file and "
        "--check format, or see --format.",
        panel=APPLY)] = False,
    export_format: Annotated[ExportFormat | None, _opt(
        "--format", help="With --export: json (the --from-file and --check format), "
        "cloudformation (an AWS::Lambda::EventSourceMapping resource, YAML) or terraform "
        "(an aws_lambda_event_source_mapping resource, HCL) [default: json].",
        panel=APPLY)] = None,
    check: Annotated[str | None, _opt(
        "--check", help="Compare the trigger with a configuration saved by --export (- "
        "reads stdin): exit 0 when they match, 3 when they differ or a field cannot be "
        "read, with the differences on stdout. Fields the file leaves out are not "
        "checked.", metavar="FILE", panel=APPLY)] = None,
    from_file: Annotated[str | None, _opt(
        "--from-file", help="Apply a configuration saved by --export (or a backup); - reads "
        "stdin.", panel=APPLY)] = None,
    force: Annotated[bool, _opt(
        "--force", help="Apply a change whose result has an error-level lint (such as a "
        "filter that drops refires), or a --from-file exported from another trigger.",
        panel=APPLY)] = False,
    dry_run: Annotated[bool, _opt(
        "--dry-run", help="Show the diff and the lints, change nothing.", panel=APPLY)] = False,
    yes: Annotated[bool, _opt(
        "--yes", "-y", help="Do not ask (required when stdin is not a terminal).",
        panel=APPLY)] = False,
    wait: Annotated[bool, _opt(
        "--wait/--no-wait", help="Wait until the trigger's State settles, then verify "
        "[default: wait].", panel=APPLY)] = True,
    wait_timeout: Annotated[str, _opt(
        "--wait-timeout", help="Give up waiting after this long [default: 2m].",
        panel=APPLY)] = "2m",
) -> None:
    """Show the trigger's settings, or change them with a diff, a backup and a check.

    With no change flag: every setting that applies to a DynamoDB stream trigger (AWS's
    defaults marked), its State, and warnings (lints) such as infinite retries, no
    on-failure destination, or a filter that drops the MODIFY records refire sends.

    With change flags: validates every value against AWS's documented ranges (exit 2,
    nothing sent), shows the diff and the lints of the result, refuses a result with an
    error-level lint unless --force (exit 5, --yes or not), asks (a non-terminal needs
    --yes), saves the current configuration to a backup file, applies, waits for the
    State to settle, reads the trigger back and checks it holds what was asked.

    A filter encrypted with a customer KMS key that AWS does not return in plain text
    (no kms:Decrypt) is shown as unknown, never as "no filter", and left alone unless a
    filter flag replaces it.

    --check FILE compares the trigger with a saved --export (drift, for CI and cron):
    only the fields the file has; a filter that cannot be read is unknown, never equal.

    Exit codes: 0 ok (or nothing to change; --check: in sync), 1 AWS error or
    verification failed, 2 bad value or bad file, 3 --check: drift (or a checked field
    cannot be read), 4 no stream or no trigger, 5 refused (no --yes, an error-level
    lint, or --from-file of another trigger, without --force).

    Examples:

      streamq config-trigger

      streamq config-trigger --retry-attempts 3 --max-record-age 1h --dry-run

      streamq config-trigger --filter insert,modify --yes

      streamq config-trigger --on-failure arn:aws:sqs:eu-west-1:123456789012:dlq

      streamq config-trigger --metrics on --yes

      streamq config-trigger --export > trigger.json

      streamq config-trigger --export --format cloudformation > trigger.yaml

      streamq config-trigger --export --format terraform > trigger.tf

      streamq config-trigger --from-file trigger.json --yes

      streamq config-trigger --check trigger.json || echo "the trigger drifted"

      streamq config-trigger --disable --yes
    """
    from .. import render
    from ..api import Outbox
    from ..durations import parse_duration
    from ..render import trigger as view
    from ..trigger import STARTING_POSITION_MESSAGE, changes_from_flags, display_value

    # Everything the user typed is checked before any AWS call.
    if starting_position is not None:
        raise BadInput(STARTING_POSITION_MESSAGE)
    asked = changes_from_flags(
        batch_size=batch_size, batching_window=batching_window,
        retry_attempts=retry_attempts, max_record_age=max_record_age, bisect=bisect,
        parallelization=parallelization, event_filter=event_filter,
        filter_patterns=filter_pattern, no_filter=no_filter, on_failure=on_failure,
        report_batch_item_failures=report_batch_item_failures,
        tumbling_window=tumbling_window, enabled=enable, metrics=metrics)
    if export and (asked or from_file):
        raise BadInput("--export prints the current configuration; it takes no change flag "
                       "and no --from-file")
    if export_format is not None and not export:
        raise BadInput("--format goes with --export")
    if check is not None and (asked or from_file or export or dry_run or yes or force):
        raise BadInput("--check only compares: it takes no change flag, --from-file, "
                       "--export, --dry-run, --yes or --force")
    if from_file and asked:
        raise BadInput("--from-file applies a whole configuration; combine it with no change "
                       "flag (edit the file instead)")
    if force and not (from_file or asked):
        raise BadInput("--force goes with change flags or --from-file")
    timeout = parse_duration(wait_timeout, what="--wait-timeout")
    fmt = render.table_or_json(value_of(output))
    outbox = Outbox.from_settings(settings)

    if check is not None:
        from ..drift import IN_SYNC

        # The file is read (a bad one is exit 2) before any AWS call.
        report = outbox.check_trigger(check, uuid=uuid)
        doc = report.to_json()
        if fmt == "json":
            render.print_json(doc)
        else:
            view.show_drift(doc)
        for note in report.notes:
            render.info(note)
        if report.status == IN_SYNC:
            render.info(report.summary())
            return
        render.warn(report.summary())
        raise typer.Exit(int(ExitCode.PARTIAL))
    if export or not (asked or from_file):
        trigger = outbox.trigger(uuid=uuid)
        if export:
            if trigger.filter_unreadable:
                render.warn(f"the trigger's filter is {trigger.filter_unreadable}; the export "
                            "leaves FilterCriteria out, so applying it leaves the filter as "
                            "it is")
            chosen = value_of(export_format) or "json"
            if chosen == "json":
                render.print_json(trigger.export())
            else:
                sys.stdout.write(trigger.export_text(chosen))
                sys.stdout.flush()
            return
        _show(trigger, fmt, dry_run=dry_run, yes=yes)
        return

    plan = outbox.plan_trigger_change(asked, from_file=from_file, uuid=uuid, force=force)
    for note in plan.notes:
        render.warn(note)
    if not plan.asked:  # a saved configuration with no settings in it
        _show(outbox.trigger(uuid=uuid), fmt, dry_run=dry_run, yes=yes)
        return
    result = plan.preview(dry_run=dry_run)
    if not plan.changes:
        render.info("nothing to change: the trigger already has these settings")
        if fmt == "json":
            render.print_json(result.to_json())
        return
    if fmt != "json":
        view.show_target(plan.uuid, plan.function_arn, plan.table)
        view.show_diff([(c.field, display_value(c.field, c.current),
                         display_value(c.field, c.new)) for c in plan.changes])
        view.show_lints([x.to_json() for x in plan.lints], title="after this change:")
    blocking = [x.to_json() for x in plan.blocking]
    if dry_run:
        if blocking and not force:
            render.info(f"without --force this change would be refused: "
                        f"{_lint_names(blocking)}")
        render.info("dry run: nothing changed")
        if fmt == "json":
            render.print_json(result.to_json())
        return
    refusal = plan.refusal()
    if refusal is not None:
        raise refusal
    plan.check_settled()
    if not yes:
        if not render.is_tty(sys.stdin):
            raise Refused("not applied: stdin is not a terminal; pass --yes to apply "
                          "(or --dry-run to only see the diff)")
        what = (f"Apply {len(plan.changes)} change(s) to the trigger {plan.uuid} "
                f"({plan.function_arn})?")
        if not render.confirm(what):
            raise Refused("not applied: not confirmed")

    from .. import hints
    from ..errors import Interrupted, StreamqError
    from ..trigger import ApplyFailed

    restore = ""

    def backed_up(backup: Path) -> None:
        nonlocal restore
        restore = hints.command(settings, "config-trigger", "--uuid", plan.uuid,
                                "--from-file", str(backup), region=outbox.region)
        render.info(f"backup of the previous configuration: {backup}")
        render.info(f"restore it with: {restore}")

    try:
        done = plan.apply(wait=wait, timeout=timeout, on_backup=backed_up)
    except (StreamqError, KeyboardInterrupt) as exc:
        if not restore:  # refused or failed before anything was sent
            raise
        # Never leave a change half-known without saying so: what may have happened,
        # how to look, how to go back.
        check = hints.command(settings, "config-trigger", "--uuid", plan.uuid,
                              region=outbox.region)
        if isinstance(exc, ApplyFailed) and exc.accepted:
            state = ("the update was accepted, but the trigger was not seen to hold it: it "
                     "may still be changing, or hold part of it")
        else:
            state = "the change may or may not have been applied"
        what = exc.message if isinstance(exc, StreamqError) else "interrupted"
        text = f"{what}; {state}: check with: {check}; go back with: {restore}"
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(text) from None
        error = StreamqError(text, hint=exc.hint)
        error.exit_code = exc.exit_code
        raise error from exc
    for warning in done.warnings:
        render.warn(warning)
    render.info(f"applied {len(done.changes)} change(s) to the trigger {plan.uuid} "
                f"({plan.function_arn}); it reads back as asked (State {done.state})")
    if fmt == "json":
        render.print_json(done.to_json())


def _show(trigger: TriggerConfig, fmt: str, *, dry_run: bool, yes: bool) -> None:
    """The read view (no change asked)."""
    from .. import render
    from ..render import trigger as view

    if dry_run or yes:
        raise BadInput("--dry-run and --yes go with change flags or --from-file")
    if fmt == "json":
        render.print_json(trigger.to_json())
    else:
        view.show_trigger(trigger.to_json())


def _lint_names(lints: list[dict[str, str]]) -> str:
    return ", ".join(f"{x['severity']}[{x['code']}]" for x in lints)


def register(app: typer.Typer) -> None:
    app.command("config-trigger")(outbox_command(config_trigger_cmd))
