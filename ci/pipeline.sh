#!/usr/bin/env bash
# venuedb's deployment pipeline: the steps both ci/github-actions.yml and ci/gitlab-ci.yml
# run, kept here once so that the two pipelines and tests/test_pipeline_examples.py (which
# runs them in the order the YAML files declare) cannot drift apart.
#
#   ci/pipeline.sh STEP...     run these steps in order; stop at the first that fails
#   ci/pipeline.sh all         every step, in the order below
#   ci/pipeline.sh steps       print that order
#
# Steps: lint, sql, rehearse, apply, verify, check, records (see each function's comment).
# Every step writes its `--json` document (or the SQL) to $ARTIFACTS_DIR and its log lines
# to $ARTIFACTS_DIR/<step>.log as well as to this job's log.
#
# Pass or fail is decided here, per exit code of venuedb (README "Exit codes and statuses"):
# 0 passes; anything else fails the step, with what the code means for that step. Two are
# spelled out because a pipeline could mistake them for a pass: 5 (verify compared nothing,
# check measured nothing) and 4 (another deploy held the lock: apply is retried, then fails).
# The script exits with venuedb's own code, so the job log and the CI status carry it.
#
# Environment:
#   DATABASE_URL           the database to deploy to (required by every step but lint, sql;
#                          never guessed: venuedb alone would fall back to ./.env or the
#                          embedded server)
#   ARTIFACTS_DIR          where the documents go (default: artifacts)
#   SCRATCH_DATABASE_URL   a server where this role may CREATE DATABASE, for the rehearsal's
#                          copy and verify's reference schema, when DATABASE_URL's role may not
#   CHECK_NAMES            health checks to run, space separated (default: all of them)
#   CHECK_WINDOW           look back this far in every check (venuedb check --window)
#   LOCK_WAIT              how long apply waits for another deploy's lock (default: 30s)
#   LOCKED_RETRIES         apply runs again this often after exit 4 (default: 2)
#   LOCKED_PAUSE           seconds between those runs (default: 30)
#   RECORDS_LAST           how many deployment records to export (default: 20)
#   VENUEDB                the venuedb command (default: venuedb, from PATH)
#   VENUEDB_ACTOR          who deploys, written into the deployment record (venuedb reads it)
#   VENUEDB_RECORDS_DIR    Markdown deployment records (default: $ARTIFACTS_DIR/deployment-records)

set -euo pipefail

STEPS=(lint sql rehearse apply verify check records)

VENUEDB=${VENUEDB:-venuedb}
ARTIFACTS_DIR=${ARTIFACTS_DIR:-artifacts}
LOCK_WAIT=${LOCK_WAIT:-30s}
LOCKED_RETRIES=${LOCKED_RETRIES:-2}
LOCKED_PAUSE=${LOCKED_PAUSE:-30}
RECORDS_LAST=${RECORDS_LAST:-20}
# apply writes each run's Markdown record here: collected with the other artifacts.
export VENUEDB_RECORDS_DIR=${VENUEDB_RECORDS_DIR:-$ARTIFACTS_DIR/deployment-records}

header() {
    printf '\n==> venuedb pipeline: %s\n    %s\n' "$1" "$2"
}

pass() {
    printf 'PASS %s: %s\n' "$1" "$2"
}

# A failure names the step, the exit code and what to do; on GitHub Actions also as an
# annotation on the run's summary page.
fail() {
    local step=$1 code=$2 message=$3
    printf 'FAIL %s (exit %s): %s\n' "$step" "$code" "$message" >&2
    if [[ ${GITHUB_ACTIONS:-} == true ]]; then
        printf '::error title=venuedb %s (exit %s)::%s\n' "$step" "$code" "$message"
    fi
    return "$code"
}

# The "status" word of a --json document, for the log (the document is the artifact).
status_of() {
    python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1], encoding="utf-8"))["status"])
except (OSError, ValueError, KeyError, TypeError):
    print("(no JSON document)")' "$1"
}

# venuedb ARGS for STEP: stdout (the JSON document, or the SQL) into $ARTIFACTS_DIR/OUT,
# stderr (the lines an operator reads) into the job log and $ARTIFACTS_DIR/STEP.log.
# Returns venuedb's exit code.
run_venuedb() {
    local step=$1 out=$2
    shift 2
    local code=0
    { "$VENUEDB" "$@" 2>&1 >"$ARTIFACTS_DIR/$out" | tee -a "$ARTIFACTS_DIR/$step.log" >&2; } ||
        code=$?
    return "$code"
}

# PASS, with the status word of the step's own document.
passed() {
    pass "$1" "$(status_of "$ARTIFACTS_DIR/$1.json")"
}

require_database() {
    if [[ -z ${DATABASE_URL:-} ]]; then
        fail "$1" 2 "DATABASE_URL is not set: give the database to deploy to (a CI secret or the service container's URL)"
    fi
}

# What an exit code means, the same for every step that talks to the database.
common_failure() {
    local step=$1 code=$2
    case $code in
        2) fail "$step" 2 "bad input or unreachable database: see the log above ($step.log)" ;;
        3) fail "$step" 3 "drift or tampering (a released file changed, the records altered): venuedb verify says which" ;;
        4) fail "$step" 4 "another deploy holds the lock, or a lock was not granted in time: nothing of the waiting revision changed" ;;
        5) fail "$step" 5 "nothing was compared or measured: that is not a pass" ;;
        *) fail "$step" "$code" "failed: see the log above ($step.log) and $step.json" ;;
    esac
}

scratch_args=()
if [[ -n ${SCRATCH_DATABASE_URL:-} ]]; then
    scratch_args=(--scratch-url "$SCRATCH_DATABASE_URL")
fi

# lint: sqlfluff, the PL/pgSQL bodies and squawk on every revision, before anything touches
# a database; the same squawk gate apply runs, so a finding fails here first, at file:line.
step_lint() {
    header lint "venuedb lint --json > $ARTIFACTS_DIR/lint.json"
    local code=0
    run_venuedb lint lint.json lint --json || code=$?
    case $code in
        0) passed lint ;;
        1) fail lint 1 "unjustified findings (file:line above): fix the statement, or justify it with -- squawk-ignore <rule> -- <why>" ;;
        *) common_failure lint "$code" ;;
    esac
}

# sql: the upgrade as SQL, offline (no database), for a reviewer to read beside the
# rehearsal. It is the whole script from base: which revisions are pending on the target
# is in rehearse.json and status.json.
step_sql() {
    header sql "venuedb apply --sql > $ARTIFACTS_DIR/upgrade.sql"
    local code=0
    run_venuedb sql upgrade.sql apply --sql || code=$?
    case $code in
        0) pass sql "$(wc -l <"$ARTIFACTS_DIR/upgrade.sql") lines in upgrade.sql" ;;
        *) common_failure sql "$code" ;;
    esac
}

# rehearse: the pending revisions on a scratch copy of the target (schema and small
# tables), reporting what would change and the table locks each statement takes. The
# target is only read. Its role needs CREATEDB, else SCRATCH_DATABASE_URL.
step_rehearse() {
    require_database rehearse
    header rehearse "venuedb apply --rehearse --json${scratch_args[*]+ --scratch-url ***} > $ARTIFACTS_DIR/rehearse.json"
    local code=0
    run_venuedb rehearse rehearse.json apply --rehearse --json ${scratch_args[@]+"${scratch_args[@]}"} || code=$?
    case $code in
        0) passed rehearse ;;
        1) fail rehearse 1 "a revision failed on the copy, or squawk refused it (lint_failed): the target is unchanged" ;;
        2) fail rehearse 2 "bad input, unreachable database, or no CREATEDB for the copy: set SCRATCH_DATABASE_URL to a server where it may create one" ;;
        *) common_failure rehearse "$code" ;;
    esac
}

# apply: the real upgrade, one transaction per revision, recorded in the database and as
# Markdown. Exit 4 (another deploy holds the lock, or a lock was not granted after apply's
# own retries) changed nothing of the waiting revision, and apply resumes from the revision
# the database is at: running it again later is safe, so it is retried LOCKED_RETRIES times.
step_apply() {
    require_database apply
    header apply "venuedb apply --json --lock-wait $LOCK_WAIT > $ARTIFACTS_DIR/apply.json"
    local code attempt=1
    while true; do
        code=0
        run_venuedb apply apply.json apply --json --lock-wait "$LOCK_WAIT" || code=$?
        if [[ $code -ne 4 || $attempt -gt $LOCKED_RETRIES ]]; then
            break
        fi
        printf 'apply: lock held (exit 4), attempt %s of %s; again in %ss\n' \
            "$attempt" "$((LOCKED_RETRIES + 1))" "$LOCKED_PAUSE" >&2
        sleep "$LOCKED_PAUSE"
        attempt=$((attempt + 1))
    done
    case $code in
        0) passed apply ;;
        1) fail apply 1 "a revision failed and rolled back alone; the database is at the revision before it (apply.json, the deployment record)" ;;
        3) fail apply 3 "refused: a released file differs from migrations/released.json; nothing changed" ;;
        4) fail apply 4 "another deploy still holds the lock after $attempt attempts (the holder is named above); nothing of the waiting revision changed: run the pipeline again when it is done" ;;
        *) common_failure apply "$code" ;;
    esac
}

# verify: the postconditions of every applied release, the live schema against the
# snapshot (drift) and the files against the manifest (tampering). Only "clean" passes:
# 5 means verify could not compare, which must not read as clean.
step_verify() {
    require_database verify
    header verify "venuedb verify --json${scratch_args[*]+ --scratch-url ***} > $ARTIFACTS_DIR/verify.json"
    local code=0
    run_venuedb verify verify.json verify --json ${scratch_args[@]+"${scratch_args[@]}"} || code=$?
    case $code in
        0) passed verify ;;
        3) fail verify 3 "$(status_of "$ARTIFACTS_DIR/verify.json"): the live schema or files are not what the migrations build (verify.json lists each)" ;;
        5) fail verify 5 "not compared: no reference schema could be built (SCRATCH_DATABASE_URL), or an unknown revision; that is not clean" ;;
        *) common_failure verify "$code" ;;
    esac
}

# check: the health checks, read-only. A warning passes (listed in check.json); critical or
# error fails; no_data (5) fails too: nothing was measured. On an empty database the rate
# checks measure nothing, so a pipeline there names the checks that read every row
# (CHECK_NAMES); a quiet production hour may need a longer CHECK_WINDOW instead.
step_check() {
    require_database check
    local names=() window=()
    read -r -a names <<<"${CHECK_NAMES:-}"
    if [[ -n ${CHECK_WINDOW:-} ]]; then
        window=(--window "$CHECK_WINDOW")
    fi
    header check "venuedb check --json ${window[*]+${window[*]} }${names[*]:-(all checks)} > $ARTIFACTS_DIR/check.json"
    local code=0
    run_venuedb check check.json \
        check --json ${window[@]+"${window[@]}"} ${names[@]+"${names[@]}"} || code=$?
    case $code in
        0) passed check ;;
        1) fail check 1 "$(status_of "$ARTIFACTS_DIR/check.json"): a check breached its critical threshold or its query failed (check.json)" ;;
        5) fail check 5 "no_data: nothing was measured (no row in the window, or a named check does not apply here); name the checks that apply (CHECK_NAMES) or widen CHECK_WINDOW" ;;
        *) common_failure check "$code" ;;
    esac
}

# records: what happened, for the artifacts even when a step before failed: the newest
# deployment records from the database (the Markdown ones are in $VENUEDB_RECORDS_DIR
# already) and the status after the run (revision per branch, pending, releases).
step_records() {
    require_database records
    header records "venuedb records --json --last $RECORDS_LAST > $ARTIFACTS_DIR/records.json; venuedb status --json > $ARTIFACTS_DIR/status.json"
    local code=0
    run_venuedb records records.json records --json --last "$RECORDS_LAST" || code=$?
    if [[ $code -ne 0 ]]; then
        common_failure records "$code"
        return
    fi
    run_venuedb records status.json status --json || code=$?
    case $code in
        0) pass records "records.json, status.json" ;;
        1) fail records 1 "in_progress: a shadow-table swap a dead run left half done (status.json)" ;;
        *) common_failure records "$code" ;;
    esac
}

usage() {
    printf 'usage: %s STEP... | all | steps\nsteps, in order: %s\n' "$0" "${STEPS[*]}" >&2
    exit 2
}

main() {
    [[ $# -gt 0 ]] || usage
    if [[ $1 == steps ]]; then
        printf '%s\n' "${STEPS[@]}"
        return
    fi
    local requested=("$@")
    if [[ $1 == all ]]; then
        requested=("${STEPS[@]}")
    fi
    local step
    for step in "${requested[@]}"; do
        [[ " ${STEPS[*]} " == *" $step "* ]] || usage
    done
    mkdir -p "$ARTIFACTS_DIR"
    for step in "${requested[@]}"; do
        : >"$ARTIFACTS_DIR/$step.log" # this run's lines only, when a directory is reused
        "step_$step"
    done
}

main "$@"
