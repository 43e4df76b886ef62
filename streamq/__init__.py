"""streamq: operate a DynamoDB-stream outbox, from the command line or from Python.

The Python API (``docs/api.md``)::

    from streamq import Outbox

    outbox = Outbox("mail_outbox", region="eu-west-1")
    for record in outbox.records(status="failed", older_than="1h"):
        print(record.key_text, record.error)

The names below are imported on first use (``streamq --help`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Outbox": "streamq.api",
    "Record": "streamq.api",
    "Records": "streamq.api",
    "Stats": "streamq.api",
    "RefirePlan": "streamq.api",
    "RefireResult": "streamq.api",
    "RefireSummary": "streamq.api",
    "TriggerConfig": "streamq.api",
    "TriggerChange": "streamq.api",
    "TriggerChangePlan": "streamq.api",
    "FieldChange": "streamq.api",
    "Lint": "streamq.api",
    "DoctorReport": "streamq.api",
    "DriftReport": "streamq.api",
    "FieldCheck": "streamq.api",
    "Check": "streamq.api",
    "trigger_changes": "streamq.api",
    "StreamqError": "streamq.errors",
    "AwsError": "streamq.errors",
    "BadInput": "streamq.errors",
    "NotFound": "streamq.errors",
    "Refused": "streamq.errors",
    "PartialFailure": "streamq.errors",
    "Interrupted": "streamq.errors",
    "ExitCode": "streamq.errors",
}

__all__ = [
    "AwsError",
    "BadInput",
    "Check",
    "DoctorReport",
    "DriftReport",
    "ExitCode",
    "FieldChange",
    "FieldCheck",
    "Interrupted",
    "Lint",
    "NotFound",
    "Outbox",
    "PartialFailure",
    "Record",
    "Records",
    "RefirePlan",
    "RefireResult",
    "RefireSummary",
    "Refused",
    "Stats",
    "StreamqError",
    "TriggerChange",
    "TriggerChangePlan",
    "TriggerConfig",
    "__version__",
    "trigger_changes",
]

if TYPE_CHECKING:  # pragma: no cover
    from .api import (
        Check,
        DoctorReport,
        DriftReport,
        FieldChange,
        FieldCheck,
        Lint,
        Outbox,
        Record,
        Records,
        RefirePlan,
        RefireResult,
        RefireSummary,
        Stats,
        TriggerChange,
        TriggerChangePlan,
        TriggerConfig,
        trigger_changes,
    )
    from .errors import (
        AwsError,
        BadInput,
        ExitCode,
        Interrupted,
        NotFound,
        PartialFailure,
        Refused,
        StreamqError,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
