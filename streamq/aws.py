"""The only place that creates boto3 sessions and clients, and turns AWS
exceptions into one-line :class:`StreamqError`s.

boto3 is imported lazily: ``streamq --help`` and shell completion never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .config import Settings, check_endpoint_url
from .errors import AwsError, BadInput, NotFound, StreamqError
from .waits import INFLIGHT, Timeouts

if TYPE_CHECKING:  # pragma: no cover
    import boto3


class Aws:
    """Lazily-built boto3 session and clients for one resolved :class:`Settings`."""

    def __init__(self, settings: Settings, *, max_pool_connections: int = 16,
                 max_attempts: int | None = None, timeouts: Timeouts | None = None,
                 share: Aws | None = None,
                 credentials: tuple[str, str, str | None] | None = None) -> None:
        """``share``: another Aws whose boto3 session (loaded service models, resolved
        credentials) this one reuses, so its clients are cheap to make. ``credentials``:
        (access key, secret key, session token) already resolved (a scan worker gets its
        parent's), used instead of resolving them again; the profile still gives the
        rest of the configuration."""
        self.settings = settings
        self._credentials = credentials
        self.max_pool_connections = max_pool_connections
        # AWS_MAX_ATTEMPTS is the AWS CLI's own knob; 5 attempts in standard mode otherwise.
        env = os.environ.get("AWS_MAX_ATTEMPTS", "")
        # max_attempts is botocore's: retries after the first try (0: no retries).
        self.max_attempts = (max_attempts if max_attempts is not None
                             else int(env) if env.isdigit() and int(env) > 0 else 5)
        self.timeouts = timeouts or Timeouts.from_env()
        self._session: boto3.session.Session | None = settings.session
        self._clients: dict[str, Any] = {}
        # A boto3 session is not thread-safe: every Aws sharing one shares this lock (a
        # caller's session, given through Settings.session, has one lock for all).
        self._lock: threading.RLock = (share._lock if share is not None
                                       else _session_lock(settings.session)
                                       if settings.session is not None
                                       else threading.RLock())
        self._share = share

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            with self._lock:
                if self._session is None and self._share is not None:
                    self._session = self._share.session
        if self._session is None:
            with self._lock, aws_errors():
                if self._session is not None:
                    return self._session
                import boto3

                kwargs: dict[str, Any] = {}
                if self.settings.sandbox:
                    # The local sandbox: fixed keys, and no AWS_PROFILE from the
                    # environment (a profile the sandbox does not need must not break it).
                    import botocore.session

                    core = botocore.session.Session()
                    core.session_var_map["profile"] = (None, None, None, None)
                    kwargs.update(aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                                  botocore_session=core)
                elif self.settings.profile:
                    kwargs["profile_name"] = self.settings.profile
                if self._credentials is not None and not self.settings.sandbox:
                    # Keys given to the Session come before every other source (boto3
                    # User Guide, Credentials: "Passing credentials as parameters when
                    # creating a Session object"); the profile still gives the region,
                    # endpoint and the rest of the configuration.
                    key, secret, token = self._credentials
                    kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret,
                                  aws_session_token=token)
                # AWS_REGION is the region variable of the AWS CLI and the other SDKs
                # (ahead of AWS_DEFAULT_REGION: "Environment variables to configure the
                # AWS CLI", docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html);
                # botocore reads only AWS_DEFAULT_REGION (boto/boto3#3620), so pass it on.
                region = self.settings.region or os.environ.get("AWS_REGION") or None
                if region:
                    kwargs["region_name"] = region
                self._session = boto3.session.Session(**kwargs)
        return self._session

    @property
    def region(self) -> str | None:
        # A caller's session keeps its own region; an explicit region applies to the
        # clients made from it (see client()).
        if self.settings.session is not None and self.settings.region:
            return self.settings.region
        return self.session.region_name

    def frozen_credentials(self) -> tuple[str, str, str | None] | None:
        """The credentials this session resolved, as they are now (None: none)."""
        with aws_errors():
            creds = self.session.get_credentials()
            if creds is None:
                return None
            frozen = creds.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            return None
        return frozen.access_key, frozen.secret_key, frozen.token

    def prefetch(self, *services: str) -> None:
        """Make these clients on a background thread (client creation is mostly CPU,
        but it overlaps with requests already in flight); errors surface on first use."""
        def make() -> None:
            for service in services:
                with contextlib.suppress(Exception):
                    self.client(service)

        threading.Thread(target=make, name="aws-prefetch", daemon=True).start()

    def client(self, service: str, *, scan: bool = False) -> Any:
        """The client for ``service``; ``scan``: the one for Scan and Query pages, with
        the long read timeout (see streamq.waits for the timeouts and why)."""
        made = self._clients.get(f"{service}:scan" if scan else service)
        if made is not None:
            return made
        with self._lock:
            name = f"{service}:scan" if scan else service
            if name not in self._clients:
                from botocore.config import Config

                read_timeout = self.timeouts.scan if scan else self.timeouts.read
                cfg = Config(
                    retries={"mode": "standard", "max_attempts": self.max_attempts},
                    max_pool_connections=self.max_pool_connections,
                    connect_timeout=self.timeouts.connect,
                    read_timeout=read_timeout,
                    parameter_validation=False,
                )
                with aws_errors():
                    try:
                        client = self.session.client(
                            service,  # type: ignore[call-overload]
                            endpoint_url=self.settings.endpoint_url, config=cfg,
                            # None: the session's region (ours was made with it).
                            region_name=self.settings.region,
                        )
                    except ValueError as exc:
                        if isinstance(exc, StreamqError) or translate(exc) is not None:
                            raise
                        # botocore's bare ValueError for an endpoint it cannot parse
                        # (`Invalid IPv6 URL`, `Invalid endpoint: ...`): name the variable.
                        for var in self._endpoint_vars():
                            check_endpoint_url(os.environ[var], f"env {var}")
                        raise BadInput(f"invalid endpoint URL for {service} "
                                       f"({self._endpoint_source()}): {exc}") from None
                # The endpoint as botocore resolved it (flag, AWS_ENDPOINT_URL[_SERVICE] or
                # the AWS config): one urllib3 would only reject at the first call (a bad
                # port) is bad input now.
                check_endpoint_url(client.meta.endpoint_url, self._endpoint_source())
                if service == "dynamodb":
                    # Scan/Query pages parsed from the wire, skipping botocore's per-
                    # attribute walk (signing, retries and errors stay botocore's).
                    from . import wire

                    wire.install(client)
                _track(client, read_timeout)
                self._clients[name] = client
            return self._clients[name]

    def _endpoint_source(self) -> str:
        if self.settings.endpoint_url:
            return self.settings.sources.get("endpoint_url", "--endpoint-url")
        named = self._endpoint_vars()
        return "env " + " or ".join(named) if named else "the AWS config"

    @staticmethod
    def _endpoint_vars() -> list[str]:
        return sorted(k for k in os.environ
                      if k == "AWS_ENDPOINT_URL" or k.startswith("AWS_ENDPOINT_URL_"))


_SESSION_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_SESSION_LOCKS_GUARD = threading.Lock()


def _session_lock(session: Any) -> threading.RLock:
    """One lock per caller's boto3 session, shared by every Aws that wraps it: "Session
    objects are not thread safe and should not be shared across threads and processes"
    (boto3 User Guide, Session, "Multithreading or multiprocessing with sessions"); the
    clients made from it are thread safe (same guide, Low-level clients), so only making
    them is locked."""
    with _SESSION_LOCKS_GUARD:
        lock = _SESSION_LOCKS.get(session)
        if lock is None:
            lock = _SESSION_LOCKS[session] = threading.RLock()
        return lock


def _track(client: Any, read_timeout: float) -> None:
    """Report the client's requests to streamq.waits.INFLIGHT (what the terminal shows
    while an endpoint does not answer). ``before-send`` handlers must return None (a
    value would replace the HTTP response)."""

    def begin(request: Any = None, **kwargs: Any) -> None:
        op = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1] or "request"
        INFLIGHT.begin(op, read_timeout)

    def end(**kwargs: Any) -> None:
        INFLIGHT.end()

    client.meta.events.register("before-send", begin)
    client.meta.events.register("response-received", end)


_THROTTLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_EXPIRED = {"ExpiredTokenException", "ExpiredToken", "RequestExpired", "TokenRefreshRequired"}
_BAD_CREDS = {"UnrecognizedClientException", "InvalidSignatureException",
              "InvalidClientTokenId", "SignatureDoesNotMatch"}


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_throttle(exc: BaseException) -> bool:
    if error_code(exc) in _THROTTLE:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return isinstance(status, int) and status >= 500
    return False


def translate(exc: BaseException) -> StreamqError | None:
    """Map a botocore exception to a StreamqError; None if it is not one we know."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        raw = str(exc.response.get("Error", {}).get("Message", "") or exc)
        msg = one_line(raw, 300)
        op = getattr(exc, "operation_name", "") or ""
        if code.isdigit():
            # botocore found no AWS error in the body (it names the HTTP status): a proxy's
            # or a web server's page, usually HTML; one line of it, and what it means.
            return AwsError(f"{op or 'AWS call'} failed: HTTP {code} from the endpoint, not "
                            f"an AWS error response ({msg or 'empty body'}): is the "
                            "endpoint URL right, or is a proxy in the way?")
        if code == "ResourceNotFoundException":
            return NotFound(f"not found: {msg} ({op})")
        if code in _DENIED:
            m = re.search(r"perform: ([\w-]+:\w+)", raw)
            action = m.group(1) if m else _guess_action(exc, op)
            return AwsError(f"access denied: {action} is not allowed for these credentials",
                            hint=msg)
        if code in _EXPIRED:
            return AwsError("AWS credentials have expired: refresh them "
                            "(e.g. `aws sso login --profile NAME`) and retry")
        if code in _BAD_CREDS:
            return AwsError(f"AWS rejected the credentials ({code}): check the profile or keys")
        if code in _THROTTLE:
            return AwsError(f"throttled by AWS ({code}) after retries during {op}: "
                            "retry later or lower --rate/--segments")
        if code == "ValidationException":
            return BadInput(f"AWS rejected the request ({op}): {msg}")
        return AwsError(f"{op or 'AWS call'} failed: {code}: {msg}")
    if isinstance(exc, bx.InvalidRegionError):
        # botocore.utils.validate_region_name: from AWS_REGION or the profile.
        return BadInput(f"invalid region: {exc} (a region is a name such as eu-west-1)")
    if isinstance(exc, bx.NoRegionError):
        return BadInput("no AWS region: pass --region, set AWS_REGION, or configure the profile")
    if isinstance(exc, bx.NoCredentialsError):
        return BadInput("no AWS credentials found: pass --profile, set AWS_PROFILE or "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --sandbox")
    if isinstance(exc, bx.ProfileNotFound):
        return BadInput(f"AWS profile not found: {exc}")
    sso = (bx.SSOTokenLoadError, bx.TokenRetrievalError, bx.UnauthorizedSSOTokenError)
    if isinstance(exc, sso):
        return AwsError(f"AWS SSO token expired or missing: run `aws sso login` ({exc})")
    if isinstance(exc, bx.EndpointConnectionError):
        return AwsError(f"cannot reach AWS endpoint: {exc}")
    if isinstance(exc, bx.ConnectionError):
        return AwsError(f"connection to AWS failed: {exc}")
    if isinstance(exc, bx.ParamValidationError):
        return BadInput(f"invalid request: {exc}")
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"AWS client error: {exc}")
    return None


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def one_line(text: str, limit: int = 300) -> str:
    """An error text from the wire as one short line: an HTML page becomes its title (or
    its text without tags), whitespace runs become one space, the rest is cut."""
    if "<" in text and re.search(r"<(!doctype|html|head|body|title|h1|p)\b", text, re.I):
        m = _TITLE.search(text)
        text = m.group(1) if m and m.group(1).strip() else _TAG.sub(" ", text)
        import html

        text = html.unescape(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _guess_action(exc: BaseException, op: str) -> str:
    model = getattr(exc, "operation_name", None)
    prefix = ""
    response = getattr(exc, "response", {}) or {}
    url = str(response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("host", ""))
    for service in ("dynamodb", "lambda", "sqs", "iam", "streams.dynamodb"):
        if url.startswith(service):
            prefix = service.split(".")[-1] + ":"
    return f"{prefix}{model or op}" if (model or op) else "an AWS action"


@contextmanager
def aws_errors() -> Iterator[None]:
    """Re-raise known botocore exceptions as StreamqError (keeping the cause)."""
    try:
        yield
    except StreamqError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
