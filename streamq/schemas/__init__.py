"""JSON Schemas (draft 2020-12) for every JSON document streamq prints, and the one
place each document's ``schema_version`` comes from.

Each schema is a file beside this module (``record.json``, ...), shipped as package data;
``streamq schema NAME`` prints one, :func:`load` reads one. Within a schema version,
fields are only added (never removed, renamed or changed in meaning), so the schemas
allow properties they do not name; a breaking change bumps the version. The CLI and the
API (``to_json()``) both take the version from the constants below.

This module imports nothing heavy (``streamq schema`` runs without boto3 or rich).
"""

from __future__ import annotations

import json
from typing import Any

#: ``list -o json`` (each element), ``list -o jsonl`` (each line), ``show -o json``;
#: :meth:`streamq.Record.to_json`.
RECORD = 1
#: ``stats -o json``; :meth:`streamq.Stats.to_json`.
STATS = 1
#: ``refire --dry-run -o json|jsonl``; :meth:`streamq.RefirePlan.to_json`.
REFIRE_PLAN = 1
#: ``refire -o json`` (each element), ``refire -o jsonl`` (each line);
#: :meth:`streamq.RefireResult.to_json`.
REFIRE_RESULT = 1
#: :meth:`streamq.RefireSummary.to_json` (the CLI prints the summary on stderr, as text).
REFIRE_SUMMARY = 1
#: ``refire --due --every -o jsonl`` (each line: one round).
REFIRE_ROUND = 1
#: ``config-trigger -o json``; :meth:`streamq.TriggerConfig.to_json`.
TRIGGER = 1
#: ``config-trigger`` with a change (``--dry-run`` or applied) ``-o json``;
#: :meth:`streamq.TriggerChange.to_json`.
TRIGGER_CHANGE = 1
#: ``config-trigger --check FILE -o json``; :meth:`streamq.DriftReport.to_json`.
TRIGGER_CHECK = 1
#: ``doctor -o json``; :meth:`streamq.DoctorReport.to_json`.
DOCTOR = 1
#: ``tail -o jsonl`` (each line).
TAIL_RECORD = 1
#: ``watch`` piped (each line: one snapshot).
WATCH_SNAPSHOT = 1
#: ``redrive -o json``.
REDRIVE = 1
#: ``redrive -o jsonl`` (each line: one message).
REDRIVE_MESSAGE = 1
#: ``config show -o json``.
CONFIG = 1
#: ``sandbox status -o json``.
SANDBOX_STATUS = 1
#: ``sandbox up -o json``.
SANDBOX_UP = 1

#: name -> the ``schema_version`` its documents carry (None: the document has no
#: ``schema_version``: ``trigger-export`` is versioned by its ``Format`` field, which
#: ``--from-file`` checks, and ``iam-policy`` is an IAM policy document, whose grammar
#: is AWS's and which takes no other fields).
VERSIONS: dict[str, int | None] = {
    "record": RECORD,
    "stats": STATS,
    "refire-plan": REFIRE_PLAN,
    "refire-result": REFIRE_RESULT,
    "refire-summary": REFIRE_SUMMARY,
    "refire-round": REFIRE_ROUND,
    "trigger": TRIGGER,
    "trigger-change": TRIGGER_CHANGE,
    "trigger-check": TRIGGER_CHECK,
    "trigger-export": None,
    "doctor": DOCTOR,
    "tail-record": TAIL_RECORD,
    "watch-snapshot": WATCH_SNAPSHOT,
    "redrive": REDRIVE,
    "redrive-message": REDRIVE_MESSAGE,
    "config": CONFIG,
    "sandbox-status": SANDBOX_STATUS,
    "sandbox-up": SANDBOX_UP,
    "iam-policy": None,
}


def names() -> list[str]:
    """The schemas' names, sorted."""
    return sorted(VERSIONS)


def text(name: str) -> str:
    """The schema ``name`` as its file holds it; KeyError for an unknown name."""
    from importlib.resources import files

    if name not in VERSIONS:
        raise KeyError(name)
    return (files(__name__) / f"{name}.json").read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` as a dict; KeyError for an unknown name."""
    doc: dict[str, Any] = json.loads(text(name))
    return doc


def versioned(version: int, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``schema_version`` first."""
    return {"schema_version": version, **doc}
