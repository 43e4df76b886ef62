"""``streamq iam-policy``: the least-privilege IAM policy for streamq's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import Settings
from .common import outbox_command


def iam_policy_cmd(
    settings: Settings,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Only what the read-only commands need: list, show, stats, "
        "doctor, tail, watch, config-trigger without changes, refire --dry-run.")] = False,
) -> None:
    """Print the least-privilege IAM policy (JSON, on stdout) for streamq's commands on
    the outbox table.

    Each action a command calls, scoped to the table, its indexes and stream, the
    trigger's event source mapping(s) and function, its on-failure destination and the
    key of an encrypted filter, as read from AWS (DescribeTable, ListEventSourceMappings)
    when these credentials can; * for what could not be read, with a note on stderr
    saying why.

    Examples:

      streamq iam-policy --table mail_outbox > streamq-policy.json

      streamq iam-policy --table mail_outbox --read-only

      streamq --sandbox iam-policy
    """
    from .. import iam, render
    from ..aws import Aws

    table = settings.require_table()
    resources = iam.resolve_resources(Aws(settings, max_attempts=1), settings, table)
    render.print_json(iam.build_policy(resources, read_only=read_only))
    for note in iam.policy_notes(resources, read_only=read_only):
        render.info(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command("iam-policy")(outbox_command(iam_policy_cmd))
