"""Commands streamq prints for the user to run, carrying the connection they came from.

A hint such as "continue with: streamq refire --resume run.jsonl --yes" is copied into
another shell, often hours later: it must reach the same AWS account, region, endpoint
and table as the command that printed it, whatever supplied them then (flags,
``STREAMQ_*``/``AWS_*`` environment, streamq.toml, the sandbox).

Pure: no boto3, no I/O beyond the environment.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .config import Settings

#: Record-shape settings a hint repeats when they were given as flags.
ATTRS = ("created_attr", "error_attr", "attempts_attr", "refired_attr", "refire_count_attr",
         "refire_run_attr", "last_attempt_attr", "stuck_after", "function")
#: The attributes a refire writes and reads: a resumed run must use the same ones.
REFIRE_ATTRS = ("created_attr", "error_attr", "refired_attr", "refire_count_attr",
                "refire_run_attr")


def _env(*names: str, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    for name in names:
        if env.get(name):
            return env[name]
    return None


def endpoint_of(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The endpoint URL in effect (a flag, STREAMQ_/AWS_ENDPOINT_URL, the sandbox)."""
    return settings.endpoint_url or _env("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL",
                                         env=env)


def profile_of(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    if settings.sandbox:
        return None
    return settings.profile or _env("AWS_PROFILE", "AWS_DEFAULT_PROFILE", env=env)


def connection_flags(settings: Settings, *, region: str | None = None,
                     env: Mapping[str, str] | None = None) -> list[str]:
    """The flags that reach the same AWS and outbox: ``--sandbox`` or ``--profile``,
    ``--region``, ``--endpoint-url``; then ``--outbox``/``--table``; then record-shape
    flags the user gave on the command line. ``region``: the region the session
    resolved (from the profile or the environment) when no setting named one."""
    out: list[str] = []
    sources = settings.sources
    if settings.sandbox:
        out.append("--sandbox")
    else:
        profile = profile_of(settings, env)
        if profile:
            out += ["--profile", profile]
        reg = settings.region or region or _env("AWS_REGION", "AWS_DEFAULT_REGION", env=env)
        if reg:
            out += ["--region", reg]
        endpoint = endpoint_of(settings, env)
        if endpoint:
            out += ["--endpoint-url", endpoint]
    if settings.outbox:
        out += ["--outbox", settings.outbox]
    table_from = sources.get("table", "")
    if settings.table and not (settings.sandbox and table_from == "sandbox") and not (
            settings.outbox and "[outbox." in table_from):
        out += ["--table", settings.table]
    for name in ATTRS:
        if sources.get(name, "").startswith("flag"):
            value: Any = getattr(settings, name)
            if name == "stuck_after":
                value = f"{value:g}s"
            out += ["--" + name.replace("_", "-"), str(value)]
    return out


def command(settings: Settings, *words: str, region: str | None = None,
            env: Mapping[str, str] | None = None) -> str:
    """``streamq WORDS... <connection flags>``, quoted for a POSIX shell."""
    return shlex.join(["streamq", *words, *connection_flags(settings, region=region, env=env)])


#: ``streamq`` starting a command inside a hint written as prose ("see them: streamq list").
_COMMAND = re.compile(r"(?<![\w./-])streamq (?=[a-z])(?!sandbox )")


def with_connection(text: str, settings: Settings, *, region: str | None = None,
                    env: Mapping[str, str] | None = None) -> str:
    """A hint in prose with the connection flags after every ``streamq`` that starts a
    command (the shared options are accepted before the command too), so that
    ``streamq list`` printed by ``streamq --sandbox doctor`` reads
    ``streamq --sandbox list``."""
    flags = connection_flags(settings, region=region, env=env)
    if not flags:
        return text
    return _COMMAND.sub(lambda _: f"streamq {shlex.join(flags)} ", text)


#: ``aws SERVICE OPERATION`` where an AWS CLI command starts in a hint (not ``/aws/``
#: or ``arn:aws:`` inside a value).
_AWS_COMMAND = re.compile(r"(?<![\w/:.-])aws (?=[a-z0-9-]+ [a-z0-9-]+)")


def aws_cli_flags(settings: Settings, *, region: str | None = None,
                  env: Mapping[str, str] | None = None) -> list[str]:
    """The AWS CLI's global options that reach the same AWS as these settings:
    ``--profile``, ``--region``, ``--endpoint-url`` (AWS CLI v2 reference: global
    options, accepted before the service command)."""
    out: list[str] = []
    profile = None if settings.sandbox else profile_of(settings, env)
    if profile:
        out += ["--profile", profile]
    reg = settings.region or region or _env("AWS_REGION", "AWS_DEFAULT_REGION", env=env)
    if reg:
        out += ["--region", reg]
    # Not AWS_ENDPOINT_URL_DYNAMODB: the commands are for other services too.
    endpoint = settings.endpoint_url or _env("AWS_ENDPOINT_URL", env=env)
    if endpoint:
        out += ["--endpoint-url", endpoint]
    return out


def with_aws_connection(text: str, settings: Settings, *, region: str | None = None,
                        env: Mapping[str, str] | None = None) -> str:
    """A hint in prose with the AWS CLI's connection options after every ``aws`` that
    starts a command, so that ``aws lambda put-function-concurrency ...`` printed for a
    profile and region acts on the same function when pasted."""
    flags = aws_cli_flags(settings, region=region, env=env)
    if not flags:
        return text
    return _AWS_COMMAND.sub(lambda _: f"aws {shlex.join(flags)} ", text)


def connection_record(settings: Settings, region: str | None,
                      env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a journal header records of the connection and the record shape, so that
    ``--resume`` can reach the same table with the same attributes."""
    return {
        "region": settings.region or region,
        "endpoint_url": endpoint_of(settings, env),
        "sandbox": settings.sandbox,
        "profile": profile_of(settings, env),
        "outbox": settings.outbox,
        "attrs": {name: getattr(settings, name) for name in REFIRE_ATTRS},
    }
