"""``streamq config show``: every resolved setting and where it came from."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import DEFAULTS, Settings, config_files
from .common import TableOrJson, outbox_command, value_of

config_app = typer.Typer(help="Inspect streamq's configuration.", no_args_is_help=True)


def show(
    settings: Settings,
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o",
        help="table on a terminal, json when piped [default: auto].", show_default=False)
    ] = None,
) -> None:
    """Print each resolved setting and its source (flag, env, file, default).

    Precedence: flags > STREAMQ_* environment > streamq.toml (current directory,
    then the user config directory; [outbox.NAME] with --outbox NAME) > defaults.

    Examples:

      streamq config show

      STREAMQ_TABLE=orders_outbox streamq config show -o json
    """
    from .. import render
    from ..durations import exact_duration

    rows = []
    for key in DEFAULTS:
        value = getattr(settings, key)
        # A duration reads as --stuck-after takes it (5m), not as seconds (300.0).
        text = ("" if value is None else exact_duration(value) if key == "stuck_after"
                else str(value))
        rows.append((key, text, settings.sources.get(key, "")))
    if render.table_or_json(value_of(output)) == "json":
        from ..schemas import CONFIG

        render.print_json({
            "schema_version": CONFIG,
            "settings": {k: {"value": getattr(settings, k), "source": settings.sources.get(k)}
                         for k in DEFAULTS},
            "outbox": settings.outbox,
            "sandbox": settings.sandbox,
            "files": [str(p) for p in config_files()],
        })
    else:
        render.kv_table(rows, ("SETTING", "VALUE", "SOURCE"))
        files = ", ".join(str(p) for p in config_files()) or "none"
        render.info(f"config files read: {files}")


def register(app: typer.Typer) -> None:
    config_app.command("show")(outbox_command(show))
    app.add_typer(config_app, name="config")
