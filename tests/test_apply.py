"""apply / rollback: locks, lock_timeout retries, failures that leave the previous revision,
records and checksums, rehearsal."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from typer.testing import Result

from tests.clihelpers import as_json, invoke, records_while, rollback_with_data_loss, spawn
from tests.queries import dict_of, row_at, rows_at
from toolkit.engine import revisions as revs
from toolkit.engine.locks import DEPLOY_LOCK, DEPLOY_WORK_LOCK, NAMESPACE


def _heads(url: str) -> dict[str, str | None]:
    result = invoke("status", "--json", "--database-url", url)
    assert result.exit_code == 0, result.output
    return as_json(result)["branches"]


def _deployments(url: str) -> list[tuple]:
    return rows_at(
        url,
        "SELECT command, result, planned, done, error, from_revisions, to_revisions, actor, "
        "os_user FROM venuedb.deployments ORDER BY id",
    )


def test_apply_upgrades_every_branch_and_records_it(empty_db_url: str) -> None:
    result = invoke("apply", "--database-url", empty_db_url, "--actor", "alice", "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    every = [s.revision for s in revs.all_steps()]
    assert sorted(document["done"]) == sorted(every)
    assert all(document["to"][branch] for branch in revs.BRANCHES)
    ((command, outcome, planned, done, error, before, after, actor, os_user),) = _deployments(
        empty_db_url
    )
    assert (command, outcome, error, actor) == ("apply", "succeeded", None, "alice")
    assert sorted(done) == sorted(planned) == sorted(every)
    assert before == dict.fromkeys(revs.BRANCHES) and after == document["to"]
    assert os_user


def test_checksums_recorded_for_every_applied_revision(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = dict_of(conn, "SELECT revision, sha256 FROM venuedb.revision_checksums")
    for step in revs.all_steps():
        assert rows[step.revision] == hashlib.sha256(Path(step.path).read_bytes()).hexdigest()


def test_apply_again_does_nothing(db_url: str) -> None:
    result = invoke("apply", "--database-url", db_url, "--json")
    assert result.exit_code == 0
    assert as_json(result)["done"] == []


def test_second_deploy_waits_then_exits_4_naming_the_holder(empty_db_url: str) -> None:
    with psycopg.connect(
        empty_db_url, autocommit=True, application_name="venuedb apply (on-call laptop)"
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (NAMESPACE, DEPLOY_LOCK))
        started = time.monotonic()
        result = invoke("apply", "--database-url", empty_db_url, "--lock-wait", "700ms")
        waited = time.monotonic() - started
        assert result.exit_code == 4, result.output
        assert f"pid {holder.info.backend_pid}" in result.stderr
        assert "on-call laptop" in result.stderr
        assert waited >= 0.7
    assert _heads(empty_db_url) == dict.fromkeys(revs.BRANCHES)


def test_concurrent_applies_apply_each_revision_exactly_once(empty_db_url: str) -> None:
    procs = [
        spawn("apply", "--database-url", empty_db_url, "--lock-wait", "60s", "--json")
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    rows = _deployments(empty_db_url)
    applied = [rev for row in rows for rev in row[3]]
    assert sorted(applied) == sorted(s.revision for s in revs.all_steps())
    assert all(row[1] == "succeeded" for row in rows)


def test_failing_revision_leaves_the_previous_revision_and_records_why(empty_db_url: str) -> None:
    # audit_logs is created late in bar_001: the revision fails half-way through.
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.audit_logs (squatter int)")
    result = invoke("apply", "--database-url", empty_db_url)
    assert result.exit_code == 1
    assert "bar_001 failed and was rolled back" in result.stderr
    assert "already exists" in result.stderr
    # What is true: earlier revisions were committed and stay; only bar_001's transaction was undone.
    text = " ".join(result.stderr.split())
    assert "Committed before the failure and kept:" in text and "core_001" in text
    assert "The transaction of bar_001 was rolled back: nothing of it was kept" in text
    assert "Whatever ran in that transaction was rolled back" not in text
    assert "Traceback" not in result.output
    heads = _heads(empty_db_url)
    assert heads["bar"] is None and heads["core"] == "core_001"
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.bars')").fetchone() == (None,)
    ((_, outcome, _, done, error, *_),) = _deployments(empty_db_url)
    assert outcome == "failed"
    assert "bar_001" not in done and "core_001" in done
    assert "audit_logs" in error and "already exists" in error


def _blocking_bar_baseline(url: str, application_name: str | None = None) -> psycopg.Connection:
    """booking-baseline applied, and a session (returned: the caller rolls it back or closes
    it) with an open write transaction on auth.users: bar_001's foreign keys to it must
    wait."""
    assert invoke("apply", "booking-baseline", "--database-url", url).exit_code == 0
    blocker = psycopg.connect(url, application_name=application_name)  # None: not set
    blocker.execute("INSERT INTO auth.users (email) VALUES ('blocker@example.com')")
    return blocker


def _apply_bar_baseline(url: str, *options: str) -> Result:
    return invoke("apply", "bar-baseline", "--database-url", url, *options)


def test_lock_timeout_retries_then_exits_4_naming_the_blocker(empty_db_url: str) -> None:
    blocker = _blocking_bar_baseline(empty_db_url, application_name="busy app")
    try:
        result = _apply_bar_baseline(empty_db_url, "--lock-timeout", "100ms", "--retries", "2")
        assert result.exit_code == 4, result.output
        assert result.stdout.count("retry:") == 2
        assert f"pid {blocker.info.backend_pid} (busy app)" in result.stderr
        assert "INSERT INTO auth.users" in result.stderr
        assert "Nothing was changed" in result.stderr
        assert _heads(empty_db_url)["bar"] is None
    finally:
        blocker.rollback()
        blocker.close()
    assert invoke("apply", "bar-baseline", "--database-url", empty_db_url).exit_code == 0


def test_lock_released_during_retries_lets_the_apply_finish(empty_db_url: str) -> None:
    blocker = _blocking_bar_baseline(empty_db_url)
    # Released once the apply has waited out at least one 200 ms lock_timeout (two waits
    # seen), not after a fixed time: on a loaded machine the apply may start late.
    releaser = _release_when_waited_on(empty_db_url, blocker, waits=2)
    try:
        result = invoke(
            "apply", "--database-url", empty_db_url, "--lock-timeout", "200ms", "--retries", "5"
        )
    finally:
        releaser.join()
        blocker.close()
    assert result.exit_code == 0, result.output
    assert "retry:" in result.stdout
    bar_head = [s.revision for s in revs.all_steps() if s.branch == "bar"][-1]
    assert _heads(empty_db_url)["bar"] == bar_head


def test_rehearse_reports_changes_and_changes_nothing(empty_db_url: str) -> None:
    result = invoke("apply", "--rehearse", "--json", "--database-url", empty_db_url)
    assert result.exit_code == 0, result.output
    changes = {(c["action"], c["kind"], c["name"]) for c in as_json(result)["changes"]}
    assert ("added", "table", "public.bookings") in changes
    assert ("added", "table", "public.allocations") in changes
    assert _heads(empty_db_url) == dict.fromkeys(revs.BRANCHES)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.bookings')").fetchone() == (None,)
        # It ran on a scratch copy: not even the toolkit's own schema was created here.
        assert conn.execute("SELECT to_regnamespace('venuedb')").fetchone() == (None,)


def test_rollback_refuses_without_yes_when_not_a_terminal(db_url: str) -> None:
    before = _heads(db_url)
    result = invoke("rollback", "bar-baseline", "--cascade", "--database-url", db_url)
    assert result.exit_code == 2
    assert "bar_001" in result.stdout  # the plan is shown first
    assert "--yes" in result.stderr
    assert _heads(db_url) == before


def test_rollback_of_a_release_touches_only_its_branch(db_url: str) -> None:
    before = _heads(db_url)
    result = invoke(
        "rollback", "bar-baseline", "--cascade", "--yes", "--database-url", db_url, "--json"
    )
    assert result.exit_code == 0, result.output
    after = _heads(db_url)
    assert after["bar"] is None
    assert after["booking"] == before["booking"] and after["core"] == before["core"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.sales')").fetchone() == (None,)
        rows = conn.execute("SELECT revision FROM venuedb.revision_checksums").fetchall()
    assert "bar_001" not in {r[0] for r in rows}


def test_rollback_of_core_takes_its_dependents_first(db_url: str) -> None:
    result = invoke("rollback", "core", "--cascade", "--yes", "--database-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    done = as_json(result)["done"]
    assert done[-1] == "core_001"
    assert _heads(db_url) == dict.fromkeys(revs.BRANCHES)


@pytest.mark.parametrize("connectable", ["engine", "connection"])
def test_env_py_uses_a_passed_engine_or_connection(empty_db_url: str, connectable: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from toolkit.server.urls import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(empty_db_url), poolclass=NullPool)
    try:
        if connectable == "engine":
            command.upgrade(revs.alembic_config(engine), "heads")
        else:
            with engine.connect() as conn:
                command.upgrade(revs.alembic_config(conn), "heads")
                conn.commit()
    finally:
        engine.dispose()
    assert all(_heads(empty_db_url).values())


def test_rollback_reports_the_data_it_drops_before_asking(db_url: str, tmp_path: Path) -> None:
    from tests.conftest import DATA, load_sql

    load_sql(db_url, DATA / "rows" / "core_001.sql")
    load_sql(db_url, DATA / "rows" / "bar_001.sql")
    refused = invoke("rollback", "bar-baseline", "--cascade", "--database-url", db_url)
    assert refused.exit_code == 2
    assert "table sales: 60 rows dropped" in refused.stdout
    done = rollback_with_data_loss(
        db_url,
        "bar-baseline",
        tmp_path,
        "--json",
    )
    risk = as_json(done)["data_at_risk"]
    assert {"table": "sales", "rows": 60, "release": "bar-baseline"} in risk["tables"]


def _record_result(url: str) -> tuple:
    """Read without venuedb, which would mark the record while reading it."""
    return row_at(
        url,
        "SELECT id, result, interrupted_at FROM venuedb.deployments "
        "WHERE command = 'apply' ORDER BY id DESC LIMIT 1",
    )


def _release_when_waited_on(
    url: str, blocker: psycopg.Connection, waits: int, then: float = 0.0
) -> threading.Thread:
    """Roll `blocker` back once `waits` distinct waits (a retry starts a new one) of another
    session for a lock `blocker` holds have been seen, `then` seconds after the last one (at
    most 60 s). Only waits on `blocker` count: any other brief wait of the migration (a
    full suite saw one) would release it before the wait under test began."""
    holder = blocker.info.backend_pid

    def release() -> None:
        seen: set[tuple[int, object]] = set()
        deadline = time.monotonic() + 60
        try:
            with psycopg.connect(url, autocommit=True) as observer:
                while len(seen) < waits and time.monotonic() < deadline:
                    for pid, started in observer.execute(
                        "SELECT a.pid, a.query_start FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE NOT l.granted AND a.datname = current_database() "
                        "AND %s = ANY(pg_blocking_pids(l.pid))",
                        (holder,),
                    ):
                        seen.add((pid, started))
                    time.sleep(0.02)
            time.sleep(then)
        finally:
            blocker.rollback()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def _migration_waits_on_a_lock(url: str) -> bool:
    """The deploy's migration session holds its work lock (toolkit.engine.locks: taken with
    pg_try_advisory_lock, so it never waits on it) and waits for a table lock: the
    migration is under way, not merely connected."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks work JOIN pg_locks waiting "
            "ON waiting.pid = work.pid AND NOT waiting.granted "
            "WHERE work.locktype = 'advisory' AND work.granted "
            "AND work.classid = %s::oid AND work.objid = %s::oid AND work.objsubid = 2 "
            "AND work.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()))",
            (NAMESPACE, DEPLOY_WORK_LOCK),
        ).fetchone()
    return bool(row and row[0])


@contextmanager
def _apply_waiting_on_a_lock(
    url: str,
) -> Iterator[tuple[subprocess.Popen[str], psycopg.Connection]]:
    """`venuedb apply bar-baseline` as a real process, its migration under way and waiting:
    bar_001 references auth.users, and an open transaction holds a conflicting lock there
    until the caller rolls `blocker` back (or leaves the block)."""
    blocker = _blocking_bar_baseline(url)
    try:
        runner = spawn("apply", "bar-baseline", "--database-url", url, "--lock-timeout", "60s")
        deadline = time.monotonic() + 30
        while not _migration_waits_on_a_lock(url) or _record_result(url)[1] != "running":
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the apply never started migrating"
            time.sleep(0.05)
        yield runner, blocker
    finally:
        blocker.rollback()
        blocker.close()


def test_a_killed_apply_is_marked_interrupted_and_a_live_one_is_not(empty_db_url: str) -> None:
    with _apply_waiting_on_a_lock(empty_db_url) as (runner, _):
        try:
            time.sleep(0.3)
            for command in (("records",), ("status",)):
                assert invoke(*command, "--database-url", empty_db_url).exit_code == 0
                assert _record_result(empty_db_url)[1:] == ("running", None), command
        finally:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
        records_while(empty_db_url, lambda: _record_result(empty_db_url)[1] == "running")
        record_id, result, found_at = _record_result(empty_db_url)
        assert result == "interrupted" and found_at is not None
        shown = as_json(
            invoke("records", "show", str(record_id), "--database-url", empty_db_url, "--json")
        )
        assert shown["record"]["result"] == "interrupted"
        assert "interrupted" in shown["record"]["error"]
    again = invoke("apply", "bar-baseline", "--database-url", empty_db_url, "--lock-wait", "30s")
    assert again.exit_code == 0, again.output


def test_markdown_step_seconds_are_the_time_the_revision_took(empty_db_url: str) -> None:
    blocker = _blocking_bar_baseline(empty_db_url)
    # bar_001 waits at least 1.5 s for this lock: released 1.5 s after its wait is seen.
    timer = _release_when_waited_on(empty_db_url, blocker, waits=1, then=1.5)
    try:
        result = _apply_bar_baseline(empty_db_url, "--lock-timeout", "20s", "--json")
    finally:
        timer.join()
        blocker.close()
    assert result.exit_code == 0, result.output
    text = Path(as_json(result)["record"]).read_text()
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| applied ")]
    seconds = {cells[1].strip(): float(cells[4]) for cells in rows}
    assert 1.4 <= seconds["applied bar_001"] < 15, seconds
    assert sum(seconds.values()) < 20


def test_an_idle_in_transaction_blocker_is_named_with_the_action_that_works(
    empty_db_url: str,
) -> None:
    # Wrote, then went idle without committing: pg_cancel_backend() cannot free this lock.
    blocker = _blocking_bar_baseline(empty_db_url, application_name="forgotten psql")
    try:
        time.sleep(0.3)  # a measurable transaction age
        result = _apply_bar_baseline(empty_db_url, "--lock-timeout", "300ms", "--retries", "0")
        pid = blocker.info.backend_pid
        assert result.exit_code == 4, result.output
        text = " ".join(result.stderr.split())
        assert f"SELECT pg_terminate_backend({pid})" in text
        assert f"pid {pid} (forgotten psql)" in text
        assert "idle in transaction" in text
        assert re.search(r"transaction open for \d+\.\ds", text), text
        assert f"pg_cancel_backend({pid})" not in text
        assert _heads(empty_db_url)["bar"] is None
    finally:
        blocker.rollback()
        blocker.close()


_FAIL_OWNER_INDEX = """
CREATE FUNCTION public.test_refuse_owner_index() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_query() LIKE '%idx_bars_owner_id%' THEN
    RAISE EXCEPTION 'test: index build refused';
  END IF;
END $$;
CREATE EVENT TRIGGER test_refuse_owner_index ON ddl_command_start
  WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION public.test_refuse_owner_index();
"""


def test_failing_resumable_revision_says_what_was_committed_and_that_a_rerun_resumes(
    empty_db_url: str,
) -> None:
    # bar_008 (RESUMABLE: CREATE INDEX CONCURRENTLY) fails; bar_007 before it commits.
    assert invoke("apply", "bar_006", "--database-url", empty_db_url).exit_code == 0
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(_FAIL_OWNER_INDEX)
    result = invoke("apply", "bar_008", "--database-url", empty_db_url)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert "index build refused" in text
    assert "Committed before the failure and kept: bar_007." in text
    assert "The open transaction of bar_008 was rolled back" in text
    assert "bar_008 is resumable" in text and "running the same command again resumes" in text
    assert "Whatever ran in that transaction" not in text and "Traceback" not in result.output
    assert _heads(empty_db_url)["bar"] == "bar_007"
    (*_, (_, outcome, _, done, error, *_)) = _deployments(empty_db_url)
    assert outcome == "failed" and done == ["bar_007"] and "bar_008" in error
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DROP EVENT TRIGGER test_refuse_owner_index")
    again = invoke("apply", "bar_008", "--database-url", empty_db_url)
    assert again.exit_code == 0, again.output
    assert _heads(empty_db_url)["bar"] == "bar_008"


def test_database_error_outside_a_revision_does_not_claim_everything_was_rolled_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import typer

    from toolkit.cli.common import Output, handled

    with pytest.raises(typer.Exit) as info, handled(Output(as_json=False)):
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    assert info.value.exit_code == 1
    text = " ".join(capsys.readouterr().err.split())
    assert "statement timeout" in text
    assert "Whatever ran in that transaction was rolled back" not in text
    assert "The open transaction was rolled back; work committed before it" in text


def _backend(url: str, application_name: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            (application_name,),
        ).fetchone()
    return None if row is None else int(row[0])


def test_losing_the_deploy_lock_session_never_lets_a_second_deploy_run(
    empty_db_url: str,
) -> None:
    """Issue 16.1: the deploy lock lives on an idle control session. Terminate that session
    while the migration is under way: a second deploy must still be refused, and the first
    must finish and record what it did."""
    with _apply_waiting_on_a_lock(empty_db_url) as (first, blocker):
        control = _backend(empty_db_url, "venuedb apply (control)")
        assert control is not None
        with psycopg.connect(empty_db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (control,))
        second = invoke(
            "apply", "bar-baseline", "--database-url", empty_db_url, "--lock-wait", "2s"
        )
        assert second.exit_code == 4, second.output
        assert "still migrating" in second.stderr
        assert _heads(empty_db_url)["bar"] is None  # the second changed nothing
        blocker.rollback()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert "deploy lock's session was lost" in out + err
    assert _heads(empty_db_url)["bar"] == "bar_001"
    with psycopg.connect(empty_db_url) as conn:
        results = [
            r[0]
            for r in conn.execute(
                "SELECT result FROM venuedb.deployments WHERE command = 'apply' ORDER BY id"
            )
        ]
    # booking-baseline, then the first bar-baseline, which finished and says so; the
    # refused second one ran nothing.
    assert results[:2] == ["succeeded", "succeeded"], results
    assert "running" not in results and "interrupted" not in results, results


@pytest.mark.parametrize("typo", ["upgarde", "Upgrade", "down", ""])
def test_a_direction_that_is_neither_is_refused_before_anything_runs(
    db_url: str, typo: str
) -> None:
    """Issue 20's hazard: run() treated every direction but "upgrade" as a downgrade, so a
    typo in a caller rolled the database back. Now nothing is read or written."""
    from toolkit.engine.migrate import run
    from toolkit.server.connection import Target

    def versions() -> list[str]:
        with psycopg.connect(db_url) as conn:
            return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))

    before = versions()
    with pytest.raises(ValueError, match="direction must be 'upgrade' or 'downgrade'"):
        run(Target(db_url, "tests"), typo, "base")  # type: ignore[arg-type]  # the typo under test
    with pytest.raises(ValueError, match="direction must be"):
        revs.plan(typo, "base", tuple(before))  # type: ignore[arg-type]  # the typo under test
    assert versions() == before
