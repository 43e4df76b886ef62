#!/usr/bin/env bash
# runbook.sh: refire the outbox's stuck records at a bounded rate, with the streamq CLI.
#
#   STREAMQ_TABLE=mail_outbox RATE=5 OLDER_THAN=15m bash runbook.sh
#
# Connection and table the way every streamq command takes them: STREAMQ_TABLE (or
# STREAMQ_OUTBOX and streamq.toml), AWS_PROFILE / AWS_REGION, AWS_ENDPOINT_URL for a local
# endpoint, STREAMQ_SANDBOX=1 for the local sandbox. Settings: OLDER_THAN (stuck means no
# error and at least this old; default 15m), RATE (writes a second; default 5), MAX_RECORDS
# (default 500), DRY_RUN=1 (print the plan, write nothing).
#
# Exit codes: 0 nothing stuck or every stuck record refired (or skipped: handled
# meanwhile); 3 some were missing (delivered between the list and the write) or failed
# (run it again: only what is still stuck is selected); otherwise streamq's code (1 AWS,
# 2 bad input, 4 no such table, 5 refused: no trigger, a disabled one or a filter that
# would drop the refire; see the message). Tested by tests/test_examples.py.
set -euo pipefail

OLDER_THAN="${OLDER_THAN:-15m}"
RATE="${RATE:-5}"
MAX_RECORDS="${MAX_RECORDS:-500}"
DRY_RUN="${DRY_RUN:-0}"
STREAMQ="${STREAMQ:-streamq}"

log() { printf 'runbook: %s\n' "$*" >&2; }

# 1. The queue as it is (for the incident log).
"$STREAMQ" --stuck-after "$OLDER_THAN" stats -o table

# 2. The stuck records: one key a line. `|| rc=$?` keeps set -e from ending the
# runbook before it can say why.
rc=0
ids="$("$STREAMQ" --stuck-after "$OLDER_THAN" list --status stuck --limit "$MAX_RECORDS" -o ids)" || rc=$?
if [ "$rc" -ne 0 ]; then
  log "listing the stuck records failed (exit $rc)"
  exit "$rc"
fi
if [ -z "$ids" ]; then
  log "nothing stuck (older than $OLDER_THAN): done"
  exit 0
fi
count="$(printf '%s\n' "$ids" | wc -l | tr -d ' ')"
log "$count stuck record(s); refiring at most $RATE a second"

# 3. Refire them: each write re-checks that the record is still stuck (--only-if stuck),
# so one delivered or failed meanwhile is missing or skipped, never fired again.
args=(--ids-from - --only-if stuck --rate "$RATE" --yes)
if [ "$DRY_RUN" = 1 ]; then
  args+=(--dry-run)
fi
rc=0
printf '%s\n' "$ids" | "$STREAMQ" --stuck-after "$OLDER_THAN" refire "${args[@]}" || rc=$?
case "$rc" in
  0) log "refired: every stuck record was refired or skipped" ;;
  3) log "partial: some records were missing (delivered meanwhile) or failed; run again"
     exit 3 ;;
  5) log "refused: the pre-flight found a problem with the trigger (see above); fix it first"
     exit 5 ;;
  *) log "refire failed (exit $rc)"
     exit "$rc" ;;
esac

# 4. What is left (a record the trigger has not processed yet is still counted).
left="$("$STREAMQ" --stuck-after "$OLDER_THAN" list --status stuck --count)"
log "still stuck right after the refire: $left (the trigger takes a moment)"
