"""`apply --rehearse` runs on a scratch copy and never locks the target; the lock report;
`--rehearse-in-place` is the explicit consent to the blocking forms on the target (issue 17,
point 7)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from typer.testing import Result

from tests.clihelpers import as_json, invoke, spawn
from tests.conftest import Server
from tests.queries import scalar
from toolkit.engine.migrate import RunOptions, current_heads, run
from toolkit.engine.rehearsal import LEFTOVER_AGE_S, SCRATCH_PREFIX
from toolkit.server.connection import Target
from toolkit.server.urls import with_database


@pytest.fixture
def at_booking_004(empty_db_url: str) -> str:
    """A database with booking_005 (capacity-overlap's exclusion-constraint swap) pending."""
    run(Target(empty_db_url, "tests"), "upgrade", "booking_004", RunOptions(actor="tests"))
    return empty_db_url


def _scratch_databases(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'venuedb\\_rehearsal\\_%'"
            )
        ]


def _deployments(url: str) -> int:
    with psycopg.connect(url) as conn:
        return scalar(conn, "SELECT count(*) FROM venuedb.deployments")


def _seed_a_restaurant(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO public.restaurants (name, slug) VALUES ('Chez Test', %s)",
            (f"chez-{uuid.uuid4().hex[:8]}",),
        )


@contextmanager
def _holding(url: str, sql: str) -> Iterator[None]:
    """Another session holding a table lock in an open transaction."""
    with psycopg.connect(url) as blocker:
        blocker.execute(sql)
        try:
            yield
        finally:
            blocker.rollback()


def _apply_booking_005_while_held(url: str, *options: str) -> Result:
    """`venuedb apply booking_005 OPTIONS` (200 ms per lock, no retry) while a session holds
    allocations of `url` in EXCLUSIVE mode: every lock a DDL statement or a write takes on it
    must wait; only ACCESS SHARE (a SELECT, pg_dump) gets through."""
    with _holding(url, "LOCK TABLE public.allocations IN EXCLUSIVE MODE"):
        return invoke("apply", "booking_005", *options, "--lock-timeout", "200ms", "--retries", "0")


def _locks(document: dict) -> set[tuple[str, str, str]]:
    return {
        (revision["revision"], lock["table"], lock["mode"])
        for revision in document["locks"]
        for statement in revision["statements"]
        for lock in statement["locks"]
    }


def test_default_rehearsal_takes_no_lock_on_the_target_and_leaves_it_untouched(
    at_booking_004: str,
) -> None:
    url = at_booking_004
    _seed_a_restaurant(url)
    records_before = _deployments(url)
    # An in-place rehearsal could not finish under that lock.
    result = _apply_booking_005_while_held(url, "--rehearse", "--json", "--database-url", url)
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert document["status"] == "ok" and document["rehearsed"] is True
    assert document["rehearsal"]["where"] == "scratch copy"
    assert "not those of production" in document["rehearsal"]["caveat"]
    assert document["done"] == ["booking_005"]
    changes = {(c["action"], c["kind"], c["name"]) for c in document["changes"]}
    assert ("added", "constraint", "public.allocations.allocations_no_overlap") in changes
    assert ("removed", "constraint", "public.allocations.allocations_resource_window_excl") in (
        changes
    )
    # The lock report names the plain form's lock: ALTER TABLE ... ADD CONSTRAINT EXCLUDE.
    assert ("booking_005", "public.allocations", "AccessExclusiveLock") in _locks(document)
    lock = next(
        lock
        for revision in document["locks"]
        for statement in revision["statements"]
        for lock in statement["locks"]
        if lock["mode"] == "AccessExclusiveLock"
    )
    assert lock["blocks"] == "reads and writes"
    # The target: same revision, no constraint added, no record written, no scratch left.
    with psycopg.connect(url) as conn:
        heads = current_heads(conn)
        assert "booking_004" in heads and "booking_005" not in heads
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'allocations_no_overlap'"
        ).fetchone() == (0,)
    assert _deployments(url) == records_before
    assert not [d for d in _scratch_databases(url) if d.startswith(SCRATCH_PREFIX)]


def test_the_same_held_lock_stops_an_in_place_rehearsal(at_booking_004: str) -> None:
    """The control of the test above: rehearsing in place does wait for the target's lock."""
    url = at_booking_004
    result = _apply_booking_005_while_held(url, "--rehearse-in-place", "--database-url", url)
    assert result.exit_code == 4, result.output
    assert "could not get the locks for revision booking_005" in result.stderr


def test_in_place_lists_populated_tables_and_reports_the_real_locks(at_booking_004: str) -> None:
    url = at_booking_004
    _seed_a_restaurant(url)  # never analysed: reltuples is -1, the row is still seen
    result = invoke("apply", "booking_005", "--rehearse-in-place", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "blocking forms run under the real locks" in result.stdout
    assert "public.restaurants (rows, never analysed)" in result.stdout
    assert "ran in place" in result.stdout
    assert "AccessExclusiveLock" in result.stdout
    json_result = invoke(
        "apply", "booking_005", "--rehearse-in-place", "--json", "--database-url", url
    )
    document = as_json(json_result)
    assert document["rehearsal"]["where"] == "in place"
    populated = {t["table"] for t in document["rehearsal"]["populated_tables"]}
    assert populated == {"public.restaurants"}
    assert ("booking_005", "public.allocations", "AccessExclusiveLock") in _locks(document)
    with psycopg.connect(url) as conn:
        assert "booking_005" not in current_heads(conn)


def test_without_createdb_the_rehearsal_refuses_and_names_both_ways_out(
    at_booking_004: str, pg_server: Server
) -> None:
    url = at_booking_004
    _seed_a_restaurant(url)
    role = f"rehearser_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB")
        # What pg_dump needs to read the target; nothing that could change it.
        conn.execute(f"GRANT USAGE ON SCHEMA auth, venuedb TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, auth, venuedb TO {role}")
        conn.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, auth, venuedb TO {role}")
    host = f"{pg_server.host}:{pg_server.port}"
    dbname = url.rsplit("/", 1)[1]
    as_role = f"postgresql://{role}:pw@{host}/{dbname}"
    try:
        result = _apply_booking_005_while_held(url, "--rehearse", "--database-url", as_role)
        assert result.exit_code == 2, result.output
        assert "--scratch-url" in result.stderr and "--rehearse-in-place" in result.stderr
        assert "nothing was run" in result.stderr
        assert not _scratch_databases(url)
        # --scratch-url: a server where a scratch database may be created (here: as a
        # superuser on the same server); the target is still only read, as the role.
        result = invoke(
            "apply", "booking_005", "--rehearse", "--json", "--database-url", as_role,
            "--scratch-url", pg_server.base_url,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert as_json(result)["rehearsal"]["where"] == "scratch copy"
        assert not _scratch_databases(url)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_killed_rehearsals_scratch_database_is_dropped_by_the_next(
    at_booking_004: str, pg_server: Server
) -> None:
    old = f"{SCRATCH_PREFIX}1_{int(time.time()) - LEFTOVER_AGE_S - 60}"
    young = f"{SCRATCH_PREFIX}2_{int(time.time())}"
    admin = pg_server.base_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{old}"')
        conn.execute(f'CREATE DATABASE "{young}"')
    try:
        result = invoke("apply", "booking_005", "--rehearse", "--database-url", at_booking_004)
        assert result.exit_code == 0, result.output
        assert f"dropped {old}" in result.stdout
        left = _scratch_databases(admin)
        assert old not in left
        assert young in left  # maybe another rehearsal's, still running: kept
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{old}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{young}"')


def test_a_failing_rehearsal_fails_on_the_copy_and_drops_it(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """booking_010 validates allocations_booking_restaurant_fkey: an allocation of another
    restaurant's booking fails it. The small table's rows are copied, so the rehearsal
    fails where the real apply would (an empty copy would have said ok)."""
    url = empty_db_url
    run(Target(url, "tests"), "upgrade", "booking_009", RunOptions(actor="tests"))
    with psycopg.connect(url) as conn:
        a, b = (
            scalar(
                conn,
                "INSERT INTO public.restaurants (name, slug) VALUES (%s, %s) RETURNING id",
                (name, f"{name}-{uuid.uuid4().hex[:8]}"),
            )
            for name in ("a", "b")
        )
        booking = scalar(
            conn,
            "INSERT INTO public.bookings (restaurant_id, party_size, booking_date, start_at, "
            "end_at) VALUES (%s, 2, '2026-01-01', '2026-01-01 19:00Z', '2026-01-01 21:00Z') "
            "RETURNING id",
            (a,),
        )
        conn.execute(
            "INSERT INTO public.allocations (restaurant_id, booking_id, resource_type, "
            "resource_id, \"window\") VALUES (%s, %s, 'table', gen_random_uuid(), "
            "tstzrange('2026-01-01 19:00Z', '2026-01-01 21:00Z'))",
            (b, booking),
        )
    result = invoke("apply", "booking_010", "--rehearse", "--database-url", url)
    assert result.exit_code == 1, result.output
    _says_the_validation_failed(result)
    assert not _scratch_databases(url)
    with psycopg.connect(url) as conn:
        assert "booking_010" not in current_heads(conn)
    # A table too big to copy is copied empty, and the report says which: the rehearsal
    # cannot see its rows, and does not pretend to.
    monkeypatch.setattr("toolkit.engine.rehearsal.COPY_ROWS_BELOW_PAGES", -1)
    result = invoke("apply", "booking_010", "--rehearse", "--json", "--database-url", url)
    assert result.exit_code == 0, result.output
    rehearsal = as_json(result)["rehearsal"]
    assert "public.allocations" in rehearsal["copied_without_rows"]
    assert "public.alembic_version" not in rehearsal["copied_without_rows"]
    assert not _scratch_databases(url)


def _says_the_validation_failed(result: Result) -> None:
    assert "booking_010" in result.stderr
    assert "allocations_booking_restaurant_fkey" in result.stderr
    assert "scratch copy, which was dropped" in result.stderr


def test_rehearse_options_that_contradict_are_refused(empty_db_url: str) -> None:
    result = invoke(
        "apply", "--rehearse-in-place", "--scratch-url", with_database(empty_db_url, "x"),
        "--database-url", empty_db_url,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "contradict" in result.stderr
    result = invoke("apply", "--sql", "--rehearse-in-place")
    assert result.exit_code == 2
    result = invoke("apply", "--scratch-url", empty_db_url, "--database-url", empty_db_url)
    assert result.exit_code == 2 and "--rehearse" in result.stderr
    with psycopg.connect(empty_db_url) as conn:  # nothing was applied
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)


def test_nothing_pending_builds_no_copy(db_url: str) -> None:
    result = invoke("apply", "--rehearse", "--json", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert as_json(result)["planned"] == []
    assert not _scratch_databases(db_url)


def test_ctrl_c_during_the_copy_drops_the_scratch_database(at_booking_004: str) -> None:
    """Interrupted while pg_dump waits for a table another session holds exclusively: the
    scratch database it had created is dropped on the way out."""
    url = at_booking_004
    with _holding(url, "LOCK TABLE public.allocations IN ACCESS EXCLUSIVE MODE"):
        runner = spawn("apply", "--rehearse", "--database-url", url, "--lock-timeout", "1min")
        try:
            deadline = time.monotonic() + 30
            while not _copy_waiting(url):
                assert runner.poll() is None, runner.communicate()
                assert time.monotonic() < deadline, "the copy never started"
                time.sleep(0.1)
            assert _scratch_databases(url)
            os.kill(runner.pid, signal.SIGINT)
            runner.wait(timeout=30)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert runner.returncode != 0
    assert not _scratch_databases(url)


def _copy_waiting(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'venuedb rehearse (copy)' AND wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
    return bool(row and row[0])
