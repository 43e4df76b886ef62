"""The outbox's own retry policy: exponential backoff per attempt, then dead.

After its ``n``-th failed attempt (``n`` = the attempts attribute) a failed record waits

    delay(n) = min(cap, base * factor ** (n - 1)) * (1 - jitter * u)

since its last attempt, where ``u`` in [0, 1) is derived from a hash of the record's key
and ``n``: the same record with the same attempts always gets the same delay, so
``list``, ``stats``, ``refire --due`` and two schedulers on two machines agree on when it
is due. Jitter only shortens the delay, so ``cap`` is a hard bound and ``base`` the
nominal first wait; records that failed in the same burst still spread out (also once
capped). With ``attempts >= max_attempts`` a failed record is **dead**: ``refire --due``
never chooses it; ``refire --status dead`` re-fires it on purpose.

Taken from Sidekiq's retry design (sidekiq/sidekiq lib/sidekiq/job_retry.rb and its
wiki page "Error Handling"): a per-attempt growing delay with per-job jitter so that jobs
failing together do not retry together; a retry limit after which a job moves to a
*dead* set that is shown apart and retried only by hand; and the failure time per job
(``failed_at``/``retried_at`` there, ``last_attempt_at`` here). Not taken: Sidekiq's
polynomial ``count**4 + 15 + rand(30)*(count+1)`` (an outbox in front of a rate-limited
API wants a plain ``base * factor**n`` that its operator can read off), its random (not
reproducible) jitter, and its 25 retries over ~21 days (a stream outbox's records are
usually worth less after hours: default 8 attempts, capped at 6 h per wait).

Pure: no AWS, no configuration lookup (``config`` parses settings with it).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from .durations import exact_duration, humanize, parse_duration
from .errors import BadInput

DEFAULT_BACKOFF = "base=1m,factor=2,jitter=0.2,cap=6h"
DEFAULT_MAX_ATTEMPTS = 8

#: Retry states of a failed record (None for records that are not failed).
DUE, WAITING, DEAD = "due", "waiting", "dead"
RETRY_STATES = (DUE, WAITING, DEAD)

_FIELDS = ("base", "factor", "jitter", "cap")
_SPEC_HELP = ("use e.g. base=1m,factor=2,jitter=0.2,cap=6h (any subset; a bare duration "
              "is the base)")


@dataclass(frozen=True)
class Backoff:
    """``base`` and ``cap`` in seconds; ``factor`` >= 1; ``jitter`` a fraction in [0, 1)."""

    base: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2
    cap: float = 21600.0

    def __str__(self) -> str:
        return (f"base={exact_duration(self.base)},factor={self.factor:g},"
                f"jitter={self.jitter:g},cap={exact_duration(self.cap)}")

    def nominal(self, attempts: int) -> float:
        """The delay after ``attempts`` failed attempts, before jitter (capped)."""
        n = max(int(attempts), 1)
        if self.factor == 1.0:
            return min(self.cap, self.base)
        # factor ** (n - 1) overflows a float for large n: compare in logs first.
        if self.base <= 0:
            return 0.0
        if math.log(self.base) + (n - 1) * math.log(self.factor) >= math.log(self.cap):
            return self.cap
        return min(self.cap, self.base * self.factor ** (n - 1))

    def delay(self, attempts: int, seed: str = "") -> float:
        """The delay after ``attempts`` failed attempts, jittered by ``seed`` (a record's
        identity): within ``[nominal * (1 - jitter), nominal]``."""
        return self.nominal(attempts) * (1.0 - self.jitter * unit_hash(seed, attempts))


def unit_hash(seed: str, attempts: int) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``attempts``."""
    digest = hashlib.sha256(f"{seed}\x00{int(attempts)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def parse_backoff(text: str, *, what: str = "backoff") -> Backoff:
    """``base=1m,factor=2,jitter=0.2,cap=6h`` (comma or space separated, any subset, the
    rest from the default); ``jitter`` also as a percentage (``20%``); a bare duration
    (``30s``) sets the base only."""
    s = str(text).strip()
    if not s:
        raise BadInput(f"empty {what}: {_SPEC_HELP}")
    values: dict[str, float] = {}
    parts = [p for p in s.replace(",", " ").split() if p]
    if len(parts) == 1 and "=" not in parts[0]:
        parts = [f"base={parts[0]}"]
    for part in parts:
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in _FIELDS or not raw.strip():
            raise BadInput(f"invalid {what} {text!r}: {part!r} is not NAME=VALUE with NAME "
                           f"one of {', '.join(_FIELDS)}; {_SPEC_HELP}")
        if name in values:
            raise BadInput(f"invalid {what} {text!r}: {name} given twice")
        values[name] = _field(name, raw.strip(), text, what)
    default = Backoff()
    b = Backoff(base=values.get("base", default.base),
                factor=values.get("factor", default.factor),
                jitter=values.get("jitter", default.jitter),
                cap=values.get("cap", max(default.cap, values.get("base", 0.0))))
    if b.cap < b.base:
        raise BadInput(f"invalid {what} {text!r}: cap ({exact_duration(b.cap)}) is below "
                       f"base ({exact_duration(b.base)})")
    return b


def _field(name: str, raw: str, text: str, what: str) -> float:
    if name in ("base", "cap"):
        value = parse_duration(raw, what=f"{what} {name}")
        if name == "cap" and value <= 0:
            raise BadInput(f"invalid {what} {text!r}: cap must be more than 0")
        return value
    pct = raw.endswith("%")
    try:
        value = float(raw[:-1] if pct else raw)
    except ValueError:
        raise BadInput(f"invalid {what} {text!r}: {name} must be a number, got {raw!r}"
                       ) from None
    if not math.isfinite(value):
        raise BadInput(f"invalid {what} {text!r}: {name} must be finite")
    if pct:
        value /= 100.0
    if name == "factor" and not 1.0 <= value <= 100.0:
        raise BadInput(f"invalid {what} {text!r}: factor must be from 1 to 100")
    if name == "jitter" and not 0.0 <= value < 1.0:
        raise BadInput(f"invalid {what} {text!r}: jitter must be from 0 to below 1 "
                       "(a fraction of the delay, e.g. 0.2 or 20%)")
    return value


def parse_max_attempts(value: object, *, what: str = "max_attempts") -> int:
    """A whole number from 1 to 1,000,000 (given as a number or a string)."""
    bad = BadInput(f"invalid {what} {value!r}: use a whole number from 1 to 1000000")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, float):
        if not value.is_integer():
            raise bad
        value = int(value)
    if isinstance(value, int):
        n = value
    else:
        try:
            n = int(str(value).strip())
        except ValueError:
            raise bad from None
    if not 1 <= n <= 1_000_000:
        raise bad
    return n


@dataclass(frozen=True)
class RetryPolicy:
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def state(self, attempts: int | None, last_attempt: float | None, seed: str,
              now: float, *, min_wait: float = 0.0) -> tuple[str, float | None]:
        """(due | waiting | dead, next due time) of a failed record.

        ``attempts`` None (absent or not a number): it failed at least once, its count
        is unknown, so it is never dead and waits the first delay. ``last_attempt`` None
        (no readable time): due now, next due time unknown (None). Dead: None.
        ``min_wait``: the least wait (a refire in flight waits for the pipeline)."""
        if attempts is not None and attempts >= self.max_attempts:
            return DEAD, None
        if last_attempt is None:
            return DUE, None
        due_at = last_attempt + max(self.backoff.delay(attempts or 1, seed), min_wait)
        return (DUE if now >= due_at else WAITING), due_at

    def schedule(self, seed: str | None = None) -> list[tuple[int, float, float]]:
        """(attempt, delay after it, total wait so far) until dead; nominal delays (no
        jitter) unless ``seed`` names a record."""
        out, total = [], 0.0
        for n in range(1, self.max_attempts):
            d = (self.backoff.nominal(n) if seed is None else self.backoff.delay(n, seed))
            total += d
            out.append((n, d, total))
        return out


def describe(policy: RetryPolicy) -> str:
    """One line: ``backoff base=1m,... · max 8 attempts (waits 1m .. 1h04m, 2h07m in all)``."""
    sched = policy.schedule()
    span = (f"waits {humanize(sched[0][1])} .. {humanize(sched[-1][1])}, "
            f"{humanize(sched[-1][2])} in all" if sched else "no retries")
    return f"backoff {policy.backoff} · max {policy.max_attempts} attempts ({span})"
