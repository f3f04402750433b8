"""backup / restore: a verified dump, restored into an empty database only, verified after."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import DATA, Server, load_sql, row_counts
from tests.queries import scalar
from toolkit.runbook.backup import list_contents

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


def test_backup_then_restore_gives_identical_rows_and_a_clean_verify(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    load_sql(db_url, DATA / "rows" / "core_001.sql")
    made = invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json")
    assert made.exit_code == 0, made.output
    dump = as_json(made)
    assert dump["objects"] > 100 and dump["size_bytes"] > 0
    assert Path(dump["path"]).name.startswith(db_url.rsplit("/", 1)[1] + "-")
    restored = invoke("restore", dump["path"], "--target-url", empty_db_url, "--json")
    assert restored.exit_code == 0, restored.output
    assert as_json(restored)["verify"]["clean"] is True
    assert row_counts(empty_db_url) == row_counts(db_url)


def test_restore_refuses_a_non_empty_database(db_url: str, tmp_path: Path) -> None:
    dump = as_json(invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json"))
    refused = invoke("restore", dump["path"], "--target-url", db_url)
    assert refused.exit_code == 2 and "not empty" in refused.stderr


def test_restore_of_a_file_that_is_not_a_dump(empty_db_url: str, tmp_path: Path) -> None:
    bogus = tmp_path / "nope.dump"
    bogus.write_text("not a dump")
    result = invoke("restore", str(bogus), "--target-url", empty_db_url)
    assert result.exit_code == 2 and "not a readable" in result.stderr


def _tables(url: str) -> int:
    """User tables in a database: what a half-done restore would leave behind."""
    with psycopg.connect(url) as conn:
        return scalar(
            conn,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema', 'pg_toast')",
        )


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'"
        )
        return {r[0] for r in rows}


def _good_dump(db_url: str, out: Path) -> Path:
    load_sql(db_url, DATA / "rows" / "core_001.sql")
    made = invoke("backup", "--out", str(out), "--database-url", db_url, "--json")
    assert made.exit_code == 0, made.output
    return Path(as_json(made)["path"])


def test_a_truncated_dump_is_rolled_back_whole_and_a_rerun_with_a_good_one_works(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Enough row data that cutting the file in half cuts rows, not the table of contents.
        conn.execute(
            "INSERT INTO public.observability_events (source, event_type, context) "
            "SELECT md5(i::text), 'filler', jsonb_build_object('n', md5((-i)::text)) "
            "FROM generate_series(1, 20000) AS i"
        )
    good = _good_dump(db_url, tmp_path / "good")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: len(data) // 2])
    # The fault must reach pg_restore's data phase: the table of contents still reads.
    assert list_contents(truncated) > 100
    before = _schemas(empty_db_url)

    failed = invoke("restore", str(truncated), "--target-url", empty_db_url)

    assert failed.exit_code == 1, failed.output
    assert "pg_restore: error:" in failed.stderr
    assert "rolled back" in failed.stderr and "rerun `venuedb restore`" in failed.stderr
    assert "Traceback" not in failed.output
    assert _tables(empty_db_url) == 0 and _schemas(empty_db_url) == before

    rerun = invoke("restore", str(good), "--target-url", empty_db_url)
    assert rerun.exit_code == 0, rerun.output
    assert row_counts(empty_db_url) == row_counts(db_url)


def test_a_conflicting_object_in_the_target_fails_with_the_real_error_and_changes_nothing(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    good = _good_dump(db_url, tmp_path)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        # Not a table, so the "not empty" guard lets it through to pg_restore.
        conn.execute("CREATE SCHEMA auth")
    before = _schemas(empty_db_url)

    failed = invoke("restore", str(good), "--target-url", empty_db_url)

    assert failed.exit_code == 1, failed.output
    assert 'schema "auth" already exists' in failed.stderr
    with psycopg.connect(empty_db_url) as conn:
        server = conn.info.server_version
    if server >= 170000:  # pg_restore names the statement; below 17 psql runs the script
        assert "Command was: CREATE SCHEMA auth;" in failed.stderr
    assert _tables(empty_db_url) == 0 and _schemas(empty_db_url) == before

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA auth")
    rerun = invoke("restore", str(good), "--target-url", empty_db_url)
    assert rerun.exit_code == 0, rerun.output
    assert row_counts(empty_db_url) == row_counts(db_url)


def test_a_backup_is_written_mode_0600_whatever_the_umask(db_url: str, tmp_path: Path) -> None:
    previous = os.umask(0)  # the most permissive umask: 0666 files if nobody sets the mode
    try:
        made = invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json")
    finally:
        os.umask(previous)
    assert made.exit_code == 0, made.output
    path = Path(as_json(made)["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file beside it


def test_a_backup_of_a_database_that_does_not_exist_leaves_no_file(
    pg_server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "backups"
    failed = invoke("backup", "--out", str(out), "--database-url", pg_server.url("no_such_db"))
    assert failed.exit_code == 1, failed.output
    assert 'database "no_such_db" does not exist' in failed.stderr
    assert "no file was left" in failed.stderr and "Traceback" not in failed.output
    assert list(out.iterdir()) == []


def test_a_backup_into_an_unwritable_path_fails_cleanly(db_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    failed = invoke("backup", "--out", str(blocker / "sub"), "--database-url", db_url)
    assert failed.exit_code == 1, failed.output
    assert "cannot create the backup directory" in failed.stderr
    assert "Traceback" not in failed.output
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_pg_dump_killed_midway_leaves_no_file(db_url: str, tmp_path: Path) -> None:
    holder = psycopg.connect(db_url)
    pool = ThreadPoolExecutor(1)
    try:
        # pg_dump blocks on its ACCESS SHARE lock of this table, mid-dump, file opened.
        holder.execute("LOCK TABLE public.bookings IN ACCESS EXCLUSIVE MODE")
        running = pool.submit(invoke, "backup", "--out", str(tmp_path), "--database-url", db_url)
        pid = _wait_for_blocked_pg_dump(db_url)
        partial_while_running = [p.name for p in tmp_path.iterdir()]
        with psycopg.connect(db_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        failed = running.result(timeout=60)
    finally:
        holder.close()  # releases the lock first, so a failing test cannot hang on the thread
        pool.shutdown()
    assert len(partial_while_running) == 1 and partial_while_running[0].endswith(".partial")
    assert failed.exit_code == 1, failed.output
    assert "pg_dump: error:" in failed.stderr and "no file was left" in failed.stderr
    assert list(tmp_path.iterdir()) == []


def _wait_for_blocked_pg_dump(url: str) -> int:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                "AND wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("pg_dump never blocked on the held lock")
