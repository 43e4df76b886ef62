"""``streamq refire --due --every 5m``: rounds of due refires until stopped."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..durations import parse_duration
from ..errors import BadInput, Interrupted, Refused

if TYPE_CHECKING:
    from ..schedule import Round


def every_cmd(settings: Settings, *, every: str, due: bool, ids: bool, resume: Path | None,
              dry_run: bool, only_if: str | None, output: str | None,
              older_than: str | None, where: list[str] | None, limit: int | None,
              rate: float, concurrency: int, yes: bool, force: bool, uuid: str | None,
              journal: Path | None) -> None:
    """Check the flags, confirm, then run rounds until SIGTERM (exit 0) or Ctrl-C (130)."""
    from .. import render
    from ..outbox import parse_where
    from ..render import refire as view
    from ..retry import describe
    from ..schedule import default_journal_dir, run_every
    from .refire_cmd import _ctrl_c_stops, _stdin_is_tty

    if not due:
        raise BadInput("--every runs rounds of --due: add --due")
    if ids or resume is not None:
        raise BadInput("--every selects the due records each round: drop --id, --ids-from "
                       "and --resume")
    if dry_run:
        raise BadInput("--dry-run shows one round's plan: drop --every "
                       "(streamq refire --due --dry-run)")
    if only_if not in (None, "due"):
        raise BadInput("--every re-checks that each record is still due (--only-if due): "
                       f"drop --only-if {only_if}")
    if output == "json":
        raise BadInput("-o json is one document at the end, and --every has no end: use "
                       "-o jsonl (one line per round)")
    interval = parse_duration(every, what="--every")
    if interval < 1:
        raise BadInput(f"invalid --every {every!r}: at least 1s")
    if journal is not None and journal.exists() and not journal.is_dir():
        raise BadInput(f"--journal {journal}: with --every it is a directory (one journal "
                       "per round), and this is a file")
    table = settings.require_table()
    directory = journal if journal is not None else default_journal_dir()
    conditions = tuple(parse_where(w) for w in where or ())
    older = None if older_than is None else parse_duration(older_than, what="--older-than")
    if not yes:
        if not _stdin_is_tty():
            raise Refused("refusing to refire rounds without --yes: stdin is not a terminal, "
                          "so nobody can confirm (review one round with --due --dry-run)")
        if not view.confirm(f"Refire the due records of {table} every {every} until "
                            "stopped?"):
            raise Refused("not confirmed: nothing was written")
    render.info(f"refiring the due records of {table} every {every}; "
                f"{describe(settings.retry_policy)}; journals in {directory}; stop with "
                "Ctrl-C or SIGTERM")

    def on_round(rnd: Round) -> None:
        for w in rnd.warnings:
            render.warn(w)
        if settings.debug and rnd.fallbacks:
            render.debug(f"{rnd.fallbacks} failed record(s) have no "
                         f"{settings.last_attempt_attr}: their backoff counts from "
                         f"{settings.created_attr}")
        doc = rnd.to_json()
        view.print_round(doc, jsonl=output == "jsonl")

    with _ctrl_c_stops() as stops:
        rounds = run_every(settings, interval, stop=stops.stop, abandon=stops.abandon,
                           on_round=on_round, journal_dir=directory, where=conditions,
                           older_than=older, limit=limit, rate=rate,
                           concurrency=concurrency, uuid=uuid, force=force)
    if stops.first == signal.SIGINT:
        raise Interrupted(f"interrupted after {rounds} round(s)")
    render.info(f"stopped after {rounds} round(s)"
                + (" (SIGTERM)" if stops.first == signal.SIGTERM else ""))
