"""The backfill engine: exactly once across kills, never blocking writers beyond one batch,
pause/resume, adaptive batches, failures that keep progress."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke, records_while, spawn, until_no_venuedb_session
from tests.queries import dict_of, one, row_at

ROWS = 2000

SETUP = f"""
CREATE TABLE bf_items (id bigint PRIMARY KEY, value int NOT NULL, doubled int,
                       touched int NOT NULL DEFAULT 0);
INSERT INTO bf_items (id, value) SELECT g, g FROM generate_series(1, {ROWS}) g;
-- Deliberately not idempotent: touched counts how often a row was processed.
CREATE FUNCTION bf_double(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF p_to - coalesce(p_from, 0) > 150 THEN
        PERFORM pg_sleep(current_setting('bf.slow', true)::float8);
    END IF;
    UPDATE bf_items SET doubled = value * 2, touched = touched + 1
    WHERE id > coalesce(p_from, -1) AND id <= p_to AND id <> current_setting('bf.fail', true)::int;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF EXISTS (SELECT 1 FROM bf_items WHERE id > coalesce(p_from, -1) AND id <= p_to
               AND id = current_setting('bf.fail', true)::int) THEN
        RAISE EXCEPTION 'row % cannot be doubled', current_setting('bf.fail', true);
    END IF;
    RETURN n;
END $$;
"""

REGISTRY = """
[[backfill]]
name = "bf"
table = "bf_items"
key = "id"
function = "bf_double"
todo = "doubled IS NULL"
description = "double every value"
"""


def declare_backfill(
    db_url: str, registry: str, setup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill registry of this test's own (VENUEDB_BACKFILLS_FILE) and the table and
    function it names, created in db_url."""
    path = tmp_path / "backfills.toml"
    path.write_text(registry)
    monkeypatch.setenv("VENUEDB_BACKFILLS_FILE", str(path))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(setup)


@pytest.fixture
def bf_db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    declare_backfill(db_url, REGISTRY, SETUP, tmp_path, monkeypatch)
    with psycopg.connect(db_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f"ALTER DATABASE {dbname} SET bf.slow = '0'")
        conn.execute(f"ALTER DATABASE {dbname} SET bf.fail = '-1'")
    return db_url


def _touched(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        return dict_of(conn, "SELECT touched, count(*) FROM bf_items GROUP BY 1")


def _progress(url: str) -> dict[str, Any]:
    result = invoke("backfill", "status", "bf", "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    return as_json(result)["backfills"][0]


def test_run_processes_every_row_once_and_records_progress(bf_db: str) -> None:
    result = invoke(
        "backfill", "run", "bf", "--batch-size", "300", "--database-url", bf_db, "--json"
    )
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert (report["state"], report["rows"], report["changed"]) == ("finished", ROWS, ROWS)
    assert report["batches"] == 7
    assert _touched(bf_db) == {1: ROWS}
    progress = _progress(bf_db)
    assert (progress["state"], progress["rows_done"], progress["last_key"]) == (
        "finished",
        ROWS,
        str(ROWS),
    )
    again = invoke("backfill", "run", "bf", "--database-url", bf_db)
    assert again.exit_code == 2 and "--restart" in again.stderr


def test_dry_run_counts_and_changes_nothing(bf_db: str) -> None:
    result = invoke("backfill", "run", "bf", "--dry-run", "--database-url", bf_db, "--json")
    assert result.exit_code == 0
    assert as_json(result)["total"] == ROWS
    assert _touched(bf_db) == {0: ROWS}


def _wait_for(
    url: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = _progress(url)
        if predicate(progress):
            return progress
        time.sleep(0.05)
    raise AssertionError(f"timed out; last progress {progress}")


def test_a_killed_runner_resumes_and_processes_every_row_exactly_once(bf_db: str) -> None:
    runner = spawn(
        "backfill", "run", "bf", "--batch-size", "50", "--sleep", "30ms", "--database-url", bf_db
    )
    _wait_for(bf_db, lambda p: (p.get("batches") or 0) >= 5)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    killed_at = _progress(bf_db)
    # `backfill status` marks the run interrupted once the server has dropped its session.
    assert killed_at["state"] in ("running", "interrupted") and 0 < killed_at["rows_done"] < ROWS
    assert sum(_touched(bf_db).get(1, 0) for _ in [0]) == killed_at["rows_done"]
    until_no_venuedb_session(bf_db)  # the dead client's session, and its lock, are gone
    result = invoke("backfill", "run", "bf", "--batch-size", "500", "--database-url", bf_db)
    assert result.exit_code == 0, result.output
    assert _touched(bf_db) == {1: ROWS}
    assert _progress(bf_db)["rows_done"] == ROWS


def test_a_second_runner_exits_4(bf_db: str) -> None:
    runner = spawn(
        "backfill", "run", "bf", "--batch-size", "20", "--sleep", "50ms", "--database-url", bf_db
    )
    try:
        _wait_for(bf_db, lambda p: (p.get("batches") or 0) >= 1)
        second = invoke("backfill", "run", "bf", "--database-url", bf_db)
        assert second.exit_code == 4, second.output
        assert "runner of backfill bf" in second.stderr
    finally:
        runner.kill()
        runner.wait(timeout=10)


def test_pause_stops_after_the_batch_and_resume_continues(bf_db: str) -> None:
    runner = spawn(
        "backfill", "run", "bf", "--batch-size", "20", "--sleep", "30ms", "--database-url", bf_db
    )
    _wait_for(bf_db, lambda p: (p.get("batches") or 0) >= 2)
    assert invoke("backfill", "pause", "bf", "--database-url", bf_db).exit_code == 0
    assert runner.wait(timeout=20) == 0
    paused = _progress(bf_db)
    assert paused["state"] == "paused" and paused["rows_done"] < ROWS
    refused = invoke("backfill", "run", "bf", "--database-url", bf_db)
    assert refused.exit_code == 2 and "backfill resume bf" in refused.stderr
    resumed = invoke("backfill", "resume", "bf", "--batch-size", "500", "--database-url", bf_db)
    assert resumed.exit_code == 0, resumed.output
    assert _touched(bf_db) == {1: ROWS}


def test_max_rows_stops_and_the_next_run_continues(bf_db: str) -> None:
    first = invoke(
        "backfill",
        "run",
        "bf",
        "--batch-size",
        "100",
        "--max-rows",
        "250",
        "--database-url",
        bf_db,
        "--json",
    )
    assert first.exit_code == 0
    assert (as_json(first)["rows"], as_json(first)["state"]) == (250, "paused")
    second = invoke("backfill", "run", "bf", "--batch-size", "1000", "--database-url", bf_db)
    assert second.exit_code == 0, second.output
    assert _touched(bf_db) == {1: ROWS}


def test_adaptive_batches_shrink_when_a_batch_is_slow(bf_db: str) -> None:
    with psycopg.connect(bf_db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET bf.slow = '0.3'")
    result = invoke(
        "backfill",
        "run",
        "bf",
        "--batch-size",
        "400",
        "--adaptive",
        "--target-batch",
        "200ms",
        "--database-url",
        bf_db,
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = as_json(result)
    # 400 took 300 ms > 200 ms: halved until fast, then grown back, settling around 150
    assert report["batch_size_max"] == 400 and report["batch_size_min"] <= 150
    assert _touched(bf_db) == {1: ROWS}


def test_a_failing_batch_keeps_earlier_batches_and_reports_the_range(bf_db: str) -> None:
    with psycopg.connect(bf_db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET bf.fail = '777'")
    result = invoke("backfill", "run", "bf", "--batch-size", "100", "--database-url", bf_db)
    assert result.exit_code == 1
    assert "row 777 cannot be doubled" in result.stderr
    assert "after key 700" in result.stderr
    progress = _progress(bf_db)
    assert (progress["state"], progress["rows_done"], progress["last_key"]) == (
        "failed",
        700,
        "700",
    )
    assert progress["errors"] == 1 and "777" in progress["last_error"]
    with psycopg.connect(bf_db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET bf.fail = '-1'")
    assert invoke("backfill", "run", "bf", "--database-url", bf_db).exit_code == 0
    assert _touched(bf_db) == {1: ROWS}


def test_writers_are_not_blocked_beyond_a_batch_and_lose_no_update(bf_db: str) -> None:
    stop = threading.Event()
    waits: list[float] = []
    increments: dict[int, int] = {}

    def writer() -> None:
        with psycopg.connect(bf_db, autocommit=True) as conn:
            row = 1
            while not stop.is_set():
                t0 = time.perf_counter()
                conn.execute("UPDATE bf_items SET value = value + 1 WHERE id = %s", (row,))
                waits.append(time.perf_counter() - t0)
                increments[row] = increments.get(row, 0) + 1
                row = (row + 36) % ROWS + 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = invoke("backfill", "run", "bf", "--batch-size", "100", "--database-url", bf_db)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert waits and max(waits) < 2.0  # bounded by one batch, far below a table lock
    with psycopg.connect(bf_db) as conn:
        values = dict_of(conn, "SELECT id, value FROM bf_items")
    assert all(values[row] == row + n for row, n in increments.items())
    assert _touched(bf_db) == {1: ROWS}


def test_unknown_backfill_is_bad_input(bf_db: str) -> None:
    result = invoke("backfill", "run", "nope", "--database-url", bf_db)
    assert result.exit_code == 2 and "unknown backfill 'nope'" in result.stderr
    assert invoke("backfill", "list", "--json").exit_code == 0


def _raw_progress(url: str) -> tuple:
    """Read without venuedb, which would mark the row while reading it."""
    return row_at(
        url,
        "SELECT state, interrupted_at, batches FROM venuedb.backfill_progress WHERE name = 'bf'",
    )


def test_a_live_runner_is_never_marked_and_a_killed_one_is_marked_interrupted(bf_db: str) -> None:
    runner = spawn(
        "backfill", "run", "bf", "--batch-size", "50", "--sleep", "100ms", "--database-url", bf_db
    )
    try:
        _wait_for(bf_db, lambda p: (p.get("batches") or 0) >= 2)
        for command in (("records",), ("status",), ("backfill", "status")):
            assert invoke(*command, "--database-url", bf_db).exit_code == 0
            assert _raw_progress(bf_db)[:2] == ("running", None), command
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
    records_while(bf_db, lambda: _raw_progress(bf_db)[0] == "running")
    state, found_at, batches = _raw_progress(bf_db)
    assert state == "interrupted" and found_at is not None and batches >= 2
    resumed = invoke("backfill", "run", "bf", "--batch-size", "500", "--database-url", bf_db)
    assert resumed.exit_code == 0, resumed.output
    assert _touched(bf_db) == {1: ROWS}
    assert _raw_progress(bf_db)[:2] == ("finished", None)


def test_the_backfill_record_lasts_as_long_as_the_run(bf_db: str) -> None:
    # 4 full batches of 500, each followed by a 300 ms pause: at least 1.2 s of real work.
    result = invoke(
        "backfill", "run", "bf", "--batch-size", "500", "--sleep", "300ms", "--database-url", bf_db
    )
    assert result.exit_code == 0, result.output
    with psycopg.connect(bf_db) as conn:
        (duration_ms,) = one(
            conn, "SELECT duration_ms FROM venuedb.deployments WHERE command = 'backfill'"
        )
    assert 1200 <= duration_ms < 10_000
    (markdown,) = Path(os.environ["VENUEDB_RECORDS_DIR"]).glob("*-backfill-*.md")
    row = next(line for line in markdown.read_text().splitlines() if line.startswith("| backfill"))
    assert 1.2 <= float(row.split("|")[4]) < 10


@pytest.mark.parametrize(
    "bad",
    [
        ["--batch-size", str(10**30)],
        ["--batch-size", "0"],
        ["--max-rows", str(10**30)],
        ["--sleep", "2h"],
        ["--lock-timeout", "0"],
        ["--statement-timeout", str(10**30)],
        ["--target-batch", "0"],
        ["--max-duration", "0"],
    ],
)
def test_restart_with_a_bad_option_keeps_the_progress(bf_db: str, bad: list[str]) -> None:
    first = invoke("backfill", "run", "bf", "--batch-size", "300", "--database-url", bf_db)
    assert first.exit_code == 0, first.output
    before = _progress(bf_db)
    result = invoke("backfill", "run", "bf", "--restart", *bad, "--database-url", bf_db)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and bad[0] in errors[0] and "allowed:" in errors[0]
    after = _progress(bf_db)
    assert (after["state"], after["rows_done"], after["last_key"]) == (
        before["state"],
        before["rows_done"],
        before["last_key"],
    )
    with psycopg.connect(bf_db) as conn:
        failed = conn.execute(
            "SELECT count(*) FROM venuedb.deployments WHERE command = 'backfill' "
            "AND result = 'failed'"
        ).fetchone()
    assert failed == (0,)
