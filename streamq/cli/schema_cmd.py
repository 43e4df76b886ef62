"""``streamq schema [NAME]``: the JSON Schemas of streamq's JSON output."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import BadInput
from ..schemas import names


def schema_cmd(
    name: Annotated[str | None, typer.Argument(
        help="The schema to print; without it, the names, one a line.",
        autocompletion=names, show_default=False)] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of one of streamq's JSON documents, or
    without NAME the schemas' names.

    Names: record (list, show), stats, refire-plan (refire --dry-run), refire-result
    (refire -o json|jsonl), refire-summary (the API's), refire-round (refire --every),
    trigger (config-trigger), trigger-change, trigger-check (--check), trigger-export
    (--export), doctor, tail-record, watch-snapshot, redrive, redrive-message (redrive
    -o jsonl), config (config show), sandbox-status, sandbox-up, iam-policy.

    Each document carries its schema's schema_version (not trigger-export, versioned by
    its Format, nor iam-policy, an IAM policy document). Within a version fields are
    only added, never removed or changed in meaning; a breaking change bumps it.

    Examples:

      streamq schema

      streamq schema record > record.schema.json

      streamq schema doctor | jq .properties.status
    """
    from .. import schemas

    if name is None:
        for each in names():
            typer.echo(each)
        return
    try:
        typer.echo(schemas.text(name), nl=False)
    except KeyError:
        raise BadInput(f"unknown schema {name!r}: use one of {', '.join(names())} "
                       "(streamq schema lists them)") from None


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_cmd)
