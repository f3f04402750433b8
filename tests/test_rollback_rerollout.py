"""Issue 18 point 5: a release rolled back and rolled out again backfills again.

The progress of a backfill describes the data the release's apply created; a rollback
drops that data (here the server_id columns), so after the release is applied again the
old "finished" must neither stop the rollout nor show in `backfill status`.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import Result

from tests.clihelpers import as_json, invoke, rollout
from tests.conftest import DATA, load_sql
from tests.queries import rows_at, scalar

TABLES = {"sales": 60, "consignments": 8, "returns": 5}  # rows of tests/data/rows/bar_001.sql
NAMES = ("sales_server_id", "consignments_server_id", "returns_server_id")


def _rollback(url: str, release: str, tmp_path: Path) -> Result:
    # The rollback drops server_id columns holding data: consent, and a backup first.
    return invoke(
        "rollback",
        release,
        "--allow-data-loss",
        "--backup-dir",
        str(tmp_path / "backups"),
        "--yes",
        "--database-url",
        url,
        "--json",
    )


def _filled(url: str) -> dict[str, int]:
    """Rows whose server_id is set, per table (-1: the column does not exist)."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            has_column = scalar(
                conn,
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
                "'public' AND table_name = %s AND column_name = 'server_id')",
                (table,),
            )
            out[table] = (
                scalar(conn, f"SELECT count(server_id) FROM public.{table}") if has_column else -1
            )
    return out


def _status(url: str) -> dict[str, dict]:
    result = invoke("backfill", "status", "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    return {e["name"]: e for e in as_json(result)["backfills"]}


@pytest.fixture
def bar_with_rows(empty_db_url: str, tmp_path: Path) -> str:
    """core and bar-baseline rolled out, with bar_001's rows; mode-switching not yet."""
    for release in ("core", "bar-baseline"):
        result = rollout(empty_db_url, release, tmp_path)
        assert result.exit_code == 0, result.output
    for rows in ("core_001", "bar_001"):
        load_sql(empty_db_url, DATA / "rows" / f"{rows}.sql")
    return empty_db_url


@pytest.fixture
def backfilled(bar_with_rows: str, tmp_path: Path) -> str:
    """bar_with_rows, then mode-switching rolled out: its backfills run and finished."""
    assert rollout(bar_with_rows, "mode-switching", tmp_path).exit_code == 0
    return bar_with_rows


def _backfill_records(url: str, command: str) -> list[tuple[str, str, str]]:
    return rows_at(
        url,
        "SELECT target, result, output FROM venuedb.deployments WHERE command = %s ORDER BY id",
        (command,),
    )


def test_rollout_after_rollback_backfills_again(bar_with_rows: str, tmp_path: Path) -> None:
    url = bar_with_rows

    first = rollout(url, "mode-switching", tmp_path)
    assert first.exit_code == 0, first.output
    assert _filled(url) == TABLES
    status = _status(url)
    assert {status[n]["state"] for n in NAMES} == {"finished"}
    assert status["sales_server_id"]["rows_done"] == 60

    back = _rollback(url, "mode-switching", tmp_path)
    assert back.exit_code == 0, back.output
    assert _filled(url) == dict.fromkeys(TABLES, -1)  # the columns, and what filled them, gone
    # The truth after the rollback: nothing of that run is in the data any more.
    status = _status(url)
    for name in NAMES:
        assert status[name]["state"] == "not started", status[name]
        assert "mode-switching" in status[name]["note"]
        assert status[name]["earlier_run"]["state"] == "finished"
        assert "rows_done" not in status[name]

    again = rollout(url, "mode-switching", tmp_path)
    assert again.exit_code == 0, again.output
    assert as_json(again)["outcome"] == "SUCCESS"
    assert "earlier progress reset: release mode-switching was applied again" in (
        Path(as_json(again)["record"]).read_text()
    )
    assert _filled(url) == TABLES  # 60 + 8 + 5 rows filled again, not "already finished"
    status = _status(url)
    assert {status[n]["state"] for n in NAMES} == {"finished"}
    assert status["sales_server_id"]["rows_done"] == 60
    assert status["consignments_server_id"]["rows_done"] == 8
    assert status["returns_server_id"]["rows_done"] == 5
    # The earlier run is archived in the records, not silently forgotten.
    resets = _backfill_records(url, "backfill-reset")
    assert sorted(r[0] for r in resets) == sorted(NAMES)
    assert all(r[1] == "succeeded" and "finished" in r[2] for r in resets)


def test_backfill_run_after_rollback_and_apply_runs_again(backfilled: str, tmp_path: Path) -> None:
    """The same without rollout: rollback, `apply`, `backfill run` (the plain path)."""
    url = backfilled
    assert _rollback(url, "mode-switching", tmp_path).exit_code == 0

    # Rolled back: the backfill cannot run (its table column and function are gone), exit 2.
    gone = invoke("backfill", "run", "sales_server_id", "--database-url", url, "--json")
    assert gone.exit_code == 2, gone.output

    applied = invoke("apply", "mode-switching", "--database-url", url, "--json")
    assert applied.exit_code == 0, applied.output
    assert _filled(url) == dict.fromkeys(TABLES, 0)
    # Applied again, not yet backfilled: status says so, not "finished".
    status = _status(url)
    assert status["sales_server_id"]["state"] == "not started"
    assert "applied again" in status["sales_server_id"]["note"]

    dry = invoke("backfill", "run", "sales_server_id", "--dry-run", "--database-url", url, "--json")
    assert dry.exit_code == 0, dry.output
    assert as_json(dry)["total"] == 60

    result = invoke("backfill", "run", "sales_server_id", "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert document["state"] == "finished" and document["rows"] == 60
    assert "applied again" in document["reset"]
    assert _filled(url) == {"sales": 60, "consignments": 0, "returns": 0}

    # Finished in this apply: a second run is refused as before (exit 2), nothing reset.
    twice = invoke("backfill", "run", "sales_server_id", "--database-url", url, "--json")
    assert twice.exit_code == 2, twice.output
    assert "already finished" in as_json(twice)["error"]
    assert len(_backfill_records(url, "backfill-reset")) == 1


def test_plain_alembic_downgrade_and_upgrade_reset_the_progress(backfilled: str) -> None:
    """No venuedb in the rollback nor the re-apply: the checksums env.py keeps date it."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from toolkit.engine import revisions as revs
    from toolkit.server.urls import sqlalchemy_url

    url = backfilled
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        config = revs.alembic_config(engine)
        command.downgrade(config, revs.downgrade_target("mode-switching")[0])
        assert _status(url)["returns_server_id"]["state"] == "not started"
        command.upgrade(config, revs.upgrade_target("mode-switching")[0])
    finally:
        engine.dispose()
    status = _status(url)["returns_server_id"]
    assert status["state"] == "not started" and "applied again" in status["note"]

    result = invoke("backfill", "run", "returns_server_id", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "archived and reset" in result.output and "finished" in result.output
    assert _filled(url)["returns"] == 5
    assert _status(url)["returns_server_id"]["rows_done"] == 5


def test_rollout_of_a_release_applied_by_apply_runs_its_backfills(
    bar_with_rows: str, tmp_path: Path
) -> None:
    """A release put back by `apply` (say after a level-3 rollback and a cascade) has its
    revisions but not its data: `rollout` then runs what is not finished, and a rerun
    skips what is."""
    url = bar_with_rows
    applied = invoke("apply", "mode-switching", "--database-url", url, "--json")
    assert applied.exit_code == 0, applied.output
    assert _filled(url) == dict.fromkeys(TABLES, 0)
    first = rollout(url, "mode-switching", tmp_path)
    assert first.exit_code == 0, first.output
    assert {s["name"] for s in as_json(first)["steps"]} >= {f"backfill {n}" for n in NAMES}
    assert _filled(url) == TABLES
    again = rollout(url, "mode-switching", tmp_path)
    assert again.exit_code == 0, again.output
    assert not [s for s in as_json(again)["steps"] if s["name"].startswith("backfill")]
