"""Resolved settings: flag > STREAMQ_* environment > streamq.toml > defaults.

Resolution happens once, into a frozen :class:`Settings` that remembers where
every value came from (``streamq config show`` prints it).

This module knows nothing of the sandbox's internals (it imports only ``errors``,
``durations`` and ``retry``): ``--sandbox`` takes the endpoint and names of the running
sandbox from a lookup the caller passes in (the CLI passes
``streamq.sandbox.state.running_sandbox``), so the import graph runs one way.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .durations import parse_duration
from .errors import BadInput
from .retry import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    RetryPolicy,
    parse_backoff,
    parse_max_attempts,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

T = TypeVar("T")

CONFIG_FILE = "streamq.toml"

#: setting name -> default. Order is the order ``config show`` prints.
DEFAULTS: dict[str, Any] = {
    "table": None,
    "function": None,
    "created_attr": "created_at",
    "error_attr": "last_error",
    "attempts_attr": "attempts",
    "refired_attr": "refired_at",
    "refire_count_attr": "refire_count",
    "refire_run_attr": "refire_run",
    "stuck_after": "5m",
    "last_attempt_attr": "last_attempt_at",
    "backoff": DEFAULT_BACKOFF,
    "max_attempts": DEFAULT_MAX_ATTEMPTS,
    "profile": None,
    "region": None,
    "endpoint_url": None,
}

HELP: dict[str, str] = {
    "table": "the outbox table",
    "function": "the trigger's Lambda function, when the stream has several triggers "
                "(NAME, NAME:QUALIFIER or ARN; matched as the full function ARN)",
    "created_attr": "attribute holding the record's creation time (ISO-8601 or epoch s/ms)",
    "error_attr": "attribute holding the last delivery error (present and non-empty = failed)",
    "attempts_attr": "attribute counting delivery attempts",
    "refired_attr": "attribute refire sets to the current time",
    "refire_count_attr": "attribute refire increments",
    "refire_run_attr": "attribute refire sets to its run token",
    "stuck_after": "age after which an undelivered record without an error is stuck",
    "last_attempt_attr": "attribute holding the last delivery attempt's time (the created "
                         "time when absent)",
    "backoff": "retry backoff: base, factor, jitter (a fraction), cap",
    "max_attempts": "attempts after which a failed record is dead (never chosen by --due)",
    "profile": "AWS profile",
    "region": "AWS region",
    "endpoint_url": "AWS endpoint URL (also AWS_ENDPOINT_URL)",
}


@dataclass(frozen=True)
class SandboxTarget:
    """The endpoint and names of a running sandbox: what ``--sandbox`` points at."""

    endpoint: str
    region: str
    table: str
    function: str


#: Finds the running sandbox (None: none is running).
SandboxLookup = Callable[[], "SandboxTarget | None"]


def wants_sandbox(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bool:
    """--sandbox given, or STREAMQ_SANDBOX set (not 0)."""
    env = os.environ if env is None else env
    return bool(flags.get("sandbox")) or env.get("STREAMQ_SANDBOX", "") not in ("", "0")


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "streamq"


def user_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "streamq"


@dataclass(frozen=True)
class Settings:
    table: str | None = None
    function: str | None = None
    created_attr: str = "created_at"
    error_attr: str = "last_error"
    attempts_attr: str = "attempts"
    refired_attr: str = "refired_at"
    refire_count_attr: str = "refire_count"
    refire_run_attr: str = "refire_run"
    stuck_after: float = 300.0
    last_attempt_attr: str = "last_attempt_at"
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    outbox: str | None = None
    sandbox: bool = False
    debug: bool = False
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: A caller's boto3 session (the Python API's ``Outbox(session=...)``), which
    #: streamq.aws.Aws wraps instead of making its own; None: Aws makes one.
    session: Any = field(default=None, compare=False, repr=False)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.backoff, self.max_attempts)

    def require_table(self) -> str:
        if not self.table:
            raise BadInput(
                "no table: pass --table NAME, set STREAMQ_TABLE, add table = \"...\" to "
                "streamq.toml, or use --sandbox"
            )
        return self.table


#: streamq.toml is a few lines; anything past this is not a config file.
MAX_CONFIG_BYTES = 1024 * 1024


def _load_file(path: Path) -> dict[str, Any]:
    from .inputs import read_input

    text = read_input(path, what=str(path), max_bytes=MAX_CONFIG_BYTES)
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise BadInput(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    return data


#: Settings a number may give (``stuck_after = 300``); every other one is a string.
NUMERIC = frozenset({"stuck_after", "backoff", "max_attempts"})


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if key not in DEFAULTS:
            known = ", ".join(DEFAULTS)
            raise BadInput(f"{where}: unknown setting {key!r} (known: {known})")
        if isinstance(value, str):
            continue
        if key in NUMERIC and isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "an array",
                dict: "a table"}.get(type(value), type(value).__name__)
        want = "a string or a number of seconds" if key in NUMERIC else "a string"
        raise BadInput(f"{where}: {key} must be {want}, not {kind} (write {key} = \"...\")")


def config_files(cwd: Path | None = None) -> list[Path]:
    """Files read, lowest precedence first (user config dir, then current directory)."""
    paths = [user_config_dir() / CONFIG_FILE, (cwd or Path.cwd()) / CONFIG_FILE]
    return [p for p in paths if p.is_file()]


def _file_layers(outbox: str | None, cwd: Path | None) -> list[tuple[dict[str, Any], str]]:
    layers: list[tuple[dict[str, Any], str]] = []
    found_section = False
    for path in config_files(cwd):
        data = _load_file(path)
        sections = data.pop("outbox", {})
        if not isinstance(sections, dict):
            raise BadInput(f"{path}: [outbox] must be a table of [outbox.NAME] sections")
        _check_keys(data, str(path))
        layers.append((data, str(path)))
        if outbox is not None and outbox in sections:
            section = sections[outbox]
            if not isinstance(section, dict):
                raise BadInput(f"{path}: [outbox.{outbox}] must be a table")
            _check_keys(section, f"{path} [outbox.{outbox}]")
            layers.append((section, f"{path} [outbox.{outbox}]"))
            found_section = True
    if outbox is not None and not found_section:
        where = " or ".join(str(p) for p in config_files(cwd)) or "no streamq.toml found"
        raise BadInput(f"no [outbox.{outbox}] section ({where})")
    return layers


def resolve(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    *,
    sandbox: SandboxLookup | None = None,
) -> Settings:
    """Resolve settings. ``flags`` holds only what the user passed (None = not passed).

    ``sandbox`` finds the running sandbox; it is called only when the sandbox is asked
    for (``--sandbox``, STREAMQ_SANDBOX). Asked for without a lookup: an error."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    outbox = flags.get("outbox") or env.get("STREAMQ_OUTBOX") or None

    values: dict[str, Any] = dict(DEFAULTS)
    sources: dict[str, str] = {k: "default" for k in DEFAULTS}
    # Lowest to highest precedence: files (user dir, cwd, then each's section), env, flags.
    for data, where in _file_layers(outbox, cwd):
        for key, value in data.items():
            values[key] = value
            sources[key] = where
    for key in DEFAULTS:
        env_name = "STREAMQ_" + key.upper()
        if env.get(env_name):
            values[key] = env[env_name]
            sources[key] = f"env {env_name}"
    for key in DEFAULTS:
        if key in flags:
            values[key] = flags[key]
            sources[key] = "flag --" + key.replace("_", "-")

    use_sandbox = wants_sandbox(flags, env)

    def point_at_sandbox() -> None:
        if use_sandbox:
            _point_at_sandbox(values, sources, sandbox)

    return _build(values, sources, outbox=outbox, sandbox=use_sandbox,
                  debug=bool(flags.get("debug")), then=point_at_sandbox)


def from_values(values: Mapping[str, Any], *, session: Any = None) -> Settings:
    """Settings from explicit values only (the Python API's way in): no streamq.toml, no
    STREAMQ_* environment, no sandbox lookup; checked exactly as :func:`resolve` checks
    them (BadInput naming the argument). ``session``: a caller's boto3 session, which
    :class:`streamq.aws.Aws` then wraps instead of making its own."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise BadInput(f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    merged: dict[str, Any] = dict(DEFAULTS)
    sources: dict[str, str] = {k: "default" for k in DEFAULTS}
    for key, value in values.items():
        if value is not None:
            merged[key] = value
            sources[key] = f"argument {key}"
    return _build(merged, sources, outbox=None, sandbox=False, debug=False, session=session)


def _build(values: dict[str, Any], sources: dict[str, str], *, outbox: str | None,
           sandbox: bool, debug: bool, session: Any = None,
           then: Callable[[], None] | None = None) -> Settings:
    """Check the merged values and make the frozen Settings (``then`` runs after the
    checks, before the values are taken: --sandbox's endpoint and names)."""
    for key in ("created_attr", "error_attr", "attempts_attr", "refired_attr",
                "refire_count_attr", "refire_run_attr", "last_attempt_attr"):
        if not isinstance(values[key], str) or not values[key]:
            raise BadInput(f"{key} must be a non-empty attribute name ({sources[key]})")
    stuck = parse_duration(str(values["stuck_after"]),
                           what=f"stuck-after ({sources['stuck_after']})")
    backoff = _sourced(parse_backoff, str(values["backoff"]), sources["backoff"])
    max_attempts = _sourced(parse_max_attempts, values["max_attempts"],
                            sources["max_attempts"])
    names = [values[k] for k in ("refired_attr", "refire_count_attr", "refire_run_attr")]
    if len(set(names)) != 3:
        raise BadInput("refired_attr, refire_count_attr and refire_run_attr must be distinct")
    if values["last_attempt_attr"] in names:
        raise BadInput("last_attempt_attr must differ from the attributes refire writes "
                       f"({', '.join(names)})")

    if _opt_str(values["endpoint_url"]) is not None:
        check_endpoint_url(str(values["endpoint_url"]), sources["endpoint_url"])
    if _opt_str(values["region"]) is not None:
        check_region(str(values["region"]), sources["region"])
    if then is not None:
        then()
    return Settings(
        table=_opt_str(values["table"]),
        function=_opt_str(values["function"]),
        created_attr=values["created_attr"],
        error_attr=values["error_attr"],
        attempts_attr=values["attempts_attr"],
        refired_attr=values["refired_attr"],
        refire_count_attr=values["refire_count_attr"],
        refire_run_attr=values["refire_run_attr"],
        stuck_after=stuck,
        last_attempt_attr=values["last_attempt_attr"],
        backoff=backoff,
        max_attempts=max_attempts,
        profile=_opt_str(values["profile"]),
        region=_opt_str(values["region"]),
        endpoint_url=_opt_str(values["endpoint_url"]),
        outbox=outbox,
        sandbox=sandbox,
        debug=debug,
        sources=sources,
        session=session,
    )


def _sourced(parse: Callable[[Any], T], value: Any, source: str) -> T:
    """``parse(value)``; a BadInput names where the value came from."""
    try:
        return parse(value)
    except BadInput as exc:
        raise BadInput(f"{exc.message} ({source})") from None


_ENDPOINT_EXAMPLE = "http(s)://HOST[:PORT][/PATH]"
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# botocore.utils.validate_region_name: a region must be a valid host label.
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")


def check_endpoint_url(url: str, where: str) -> str:
    """An endpoint URL botocore and urllib3 take: ``http(s)://HOST[:PORT][/PATH]``; else
    BadInput naming ``where`` it came from. (botocore raises a bare ValueError at client
    creation for some of these, ``Invalid IPv6 URL``, and others only at the first call.)"""
    from urllib.parse import urlsplit

    from .inputs import clip

    def bad(why: str) -> BadInput:
        return BadInput(f"invalid endpoint URL {clip(url)} ({where}): {why} (expected "
                        f"{_ENDPOINT_EXAMPLE})")

    if any(c.isspace() or not c.isprintable() for c in url):
        raise bad("it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise bad(str(exc).lower().rstrip(".")) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise bad("the scheme must be http:// or https://")
    if not host:
        raise bad("it has no host")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials do not go in the URL")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise bad("no ?query or #fragment")
    if "[" in parts.netloc:
        import ipaddress

        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise bad(f"[{host}] is not an IPv6 address") from None
    else:
        name = host[:-1] if host.endswith(".") else host
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in name.split(".")):
            raise bad(f"{clip(host, 60)} is not a host name or IP address")
    return url


def check_region(region: str, where: str) -> str:
    if not _REGION.fullmatch(region):
        from .inputs import clip

        raise BadInput(f"invalid region {clip(region)} ({where}): a region is a name such "
                       "as us-east-1 or eu-west-1")
    return region


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _point_at_sandbox(values: dict[str, Any], sources: dict[str, str],
                      lookup: SandboxLookup | None) -> None:
    """--sandbox: endpoint, region, table and function come from the running sandbox.

    Never mixed with real AWS: an explicit profile or endpoint is a conflict, and
    a sandbox that is not running is an error, not a fallback.
    """
    from .errors import StreamqError

    for key in ("profile", "endpoint_url"):
        if sources[key] != "default":
            raise BadInput(f"--sandbox conflicts with {key} ({sources[key]})")
    state = lookup() if lookup is not None else None
    if state is None:
        raise StreamqError("the sandbox is not running: start it with `streamq sandbox up`")
    values["endpoint_url"], sources["endpoint_url"] = state.endpoint, "sandbox"
    values["region"], sources["region"] = state.region, "sandbox"
    for key, value in (("table", state.table), ("function", state.function)):
        if sources[key] == "default":
            values[key], sources[key] = value, "sandbox"
