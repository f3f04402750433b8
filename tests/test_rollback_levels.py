"""Issue 18, points 1 and 2: on-call's ladder, release by release, on data.

Each release declares its rollback levels as its seed wrote them. `--plan` changes
nothing; level 1 turns the flags off (and does not say done while one is still on where
it runs); level 2 removes one piece with forward steps, loses no row, leaves every later
release applied, is known to `verify`, and is restored by `rollout`; level 3 is level 1
and the guarded schema downgrade.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import Result

from tests.clihelpers import as_json, invoke, rollout, until_no_venuedb_session, verify_after
from tests.conftest import DATA, catalog_diff, load_sql, row_counts
from tests.queries import dict_of, rows_at, scalar
from tests.swapwait import swap_held_at_its_lock
from tests.test_rollback_guard import LATER as LATER_THAN_TABLE_COMBINATIONS
from toolkit.errors import BadInput
from toolkit.integrity import catalog as snapshot
from toolkit.runbook import levels

ROW_FILES = ("core_001", "booking_001", "bar_001")
COMBINATION_FLAGS = {
    "FEATURE_COMBINATION_PLANNER": "false",
    "FEATURE_ALLOCATOR_MERGES_ENABLED": "false",
}
OLD_DEF = (
    'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&) '
    "WHERE ((NOT shadow)) DEFERRABLE INITIALLY DEFERRED"
)


def _with_rows(url: str) -> str:
    for name in ROW_FILES:
        load_sql(url, DATA / "rows" / f"{name}.sql")
    # A week of bookings made over the week, not in one instant (tests/test_runbooks.py):
    # a rollout's confirmation-rate check reads the last day.
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE bookings SET created_at = created_at - interval '3 days'")
    return url


@pytest.fixture
def data_url(db_url: str) -> str:
    """The heads, holding the test rows (restaurants, tables, bookings, bars, sales)."""
    return _with_rows(db_url)


def _state(url: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, ...]], list[str]]:
    with psycopg.connect(url) as conn:
        heads = sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
        flags: list[tuple[str, ...]] = []
        if scalar(conn, "SELECT to_regclass('public.feature_flags')"):
            flags = conn.execute(
                "SELECT name, enabled::text, bar_ids::text FROM feature_flags ORDER BY 1"
            ).fetchall()
        return snapshot.take(conn), flags, heads


def _what_changed(
    before: tuple[dict[str, dict[str, str]], list[tuple[str, ...]], list[str]],
    after: tuple[dict[str, dict[str, str]], list[tuple[str, ...]], list[str]],
) -> str:
    """Which objects, flags or heads differ between two _state()s, for a failure message."""
    parts = [catalog_diff(before[0], after[0])] if before[0] != after[0] else []
    if before[1] != after[1]:
        parts.append(f"feature_flags rows: {before[1]} -> {after[1]}")
    if before[2] != after[2]:
        parts.append(f"alembic_version: {before[2]} -> {after[2]}")
    return "\n".join(parts)


def _level_rows(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url) as conn:
        if scalar(conn, "SELECT to_regclass('venuedb.release_levels')") is None:
            return []
        return conn.execute("SELECT release, level, state FROM venuedb.release_levels").fetchall()


def _level(url: str, release: str, number: int, *extra: str) -> Result:
    return invoke(
        "rollback", release, "--level", str(number), *extra, "--database-url", url, "--json"
    )


def _verify(url: str) -> dict:
    result = invoke("verify", "--database-url", url, "--json")
    doc = as_json(result)
    assert result.exit_code == {"clean": 0}.get(doc["verdict"], result.exit_code)
    return doc


# ---- the declarations ---------------------------------------------------------------


def test_every_seed_release_declares_its_ladder() -> None:
    declared = {(lv.release, lv.level): lv for lv in levels.load_levels()}
    assert set(declared) == {
        ("table-combinations", 1),
        ("table-combinations", 2),
        ("table-combinations", 3),
        ("capacity-overlap", 2),
        ("capacity-overlap", 3),
        ("assignment-pipeline-v3", 1),
        ("assignment-pipeline-v3", 3),
        ("mode-switching", 1),
        ("mode-switching", 3),
    }
    for (release, number), level in declared.items():
        assert level.duration and level.changes and level.seed, (release, number)
        # The seeds: levels 1 and 2 lose nothing, the full revert drops what it added.
        assert level.data_loss is (number == 3), (release, number)
    assert declared[("table-combinations", 1)].flags == (
        "FEATURE_COMBINATION_PLANNER",
        "FEATURE_ALLOCATOR_MERGES_ENABLED",
    )
    assert "ENABLE_SWITCHING_MODE" in declared[("mode-switching", 1)].flags


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ('release = "nope"\nlevel = 2\nsteps = "table_combinations_2"', "unknown release"),
        ('release = "table-combinations"\nlevel = 1\nflags = ["NOPE"]', "unknown flag NOPE"),
        ('release = "table-combinations"\nlevel = 1', "names the flags"),
        ('release = "table-combinations"\nlevel = 2\nsteps = "missing"', "needs its steps"),
        ('release = "table-combinations"\nlevel = 7', "1, 2 or 3"),
    ],
)
def test_a_wrong_declaration_is_refused_by_name(tmp_path: Path, entry: str, complaint: str) -> None:
    path = tmp_path / "levels.toml"
    common = 'seed = "x"\nchanges = "x"\nduration = "x"\ndata_loss = false\n'
    path.write_text(f"[[level]]\n{entry}\n{common}", encoding="utf-8")
    with pytest.raises(BadInput, match=complaint):
        levels.load_levels(path)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("booking-integrity", "--level", "2"), "declares no rollback levels"),
        (("capacity-overlap", "--level", "1"), "declares level 2 (surgical), 3 (downgrade)"),
        (("booking_003", "--level", "2"), "needs a release name"),
        (("table-combinations", "--level", "4"), "1, 2 or 3"),
    ],
)
def test_an_undeclared_level_is_refused_with_nothing_changed(
    db_url: str, args: tuple[str, ...], says: str
) -> None:
    before = _state(db_url)
    result = invoke("rollback", *args, "--yes", "--database-url", db_url, "--json")
    assert result.exit_code == 2, result.output
    doc = as_json(result)
    assert doc["status"] == "bad_input"
    assert says in doc["error"]
    after = _state(db_url)
    assert after == before, _what_changed(before, after)


# ---- --plan --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "number"),
    sorted((lv.release, lv.level) for lv in levels.load_levels()),
)
def test_the_plan_counts_on_the_database_and_changes_nothing(
    data_url: str, release: str, number: int
) -> None:
    before, counts = _state(data_url), row_counts(data_url)
    result = _level(data_url, release, number, "--plan")
    doc = as_json(result)
    # A plan exits 0 only when the run, as given, would go ahead.
    assert (result.exit_code, doc["status"]) == (
        (1, "would_refuse") if doc.get("would_refuse") else (0, "ok")
    ), result.output
    assert doc["plan"] is True
    assert doc["level"]["release"] == release and doc["level"]["level"] == number
    if number == 1:
        assert [f["flag"] for f in doc["flags"]] == list(doc["level"]["flags"])
    if number == 2:
        assert doc["steps"]
        assert doc["data_at_risk"]["rows_lost"] == 0
        for table in doc["data_at_risk"]["tables"]:
            assert table["rows"] == counts[f"public.{table['table']}"]
        assert doc["dependent_releases"] == []
    if number == 3:
        # The downgrade's plan: its revisions, the rows it drops, the later releases.
        assert doc["planned"]
        assert doc["data_at_risk"]["tables"] or doc["data_at_risk"]["columns"]
        assert "would_refuse" in doc
        assert "restore" in doc["restore_if_corrupted"]
    after = _state(data_url)
    assert after == before, _what_changed(before, after)
    assert row_counts(data_url) == counts
    assert _level_rows(data_url) == []


def test_the_full_revert_plan_names_the_releases_it_would_undo(data_url: str) -> None:
    doc = as_json(_level(data_url, "table-combinations", 3, "--plan"))
    assert [d["release"] for d in doc["dependent_releases"]] == LATER_THAN_TABLE_COMBINATIONS
    assert any("--cascade" in line for line in doc["would_refuse"])
    rows = {t["table"]: t["rows"] for t in doc["data_at_risk"]["tables"]}
    assert rows["table_adjacencies"] == row_counts(data_url)["public.table_adjacencies"]


# ---- level 2 -------------------------------------------------------------------------


def _triggers(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid::regclass::text IN ('bookings', 'booking_table_assignments')"
            ).fetchall()
        }


def _orphan_confirmation(url: str) -> None:
    """A confirmed booking without tables: what table-combinations' rule forbids."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO bookings (restaurant_id, customer_name, party_size, booking_date, "
            "start_at, end_at, status) SELECT restaurant_id, 'Orphan', 2, booking_date, start_at, "
            "end_at, 'confirmed' FROM bookings LIMIT 1"
        )


def test_level_2_of_table_combinations_loses_nothing_and_is_restored(
    data_url: str, tmp_path: Path
) -> None:
    counts = row_counts(data_url)
    before = _state(data_url)
    with pytest.raises(psycopg.errors.CheckViolation):
        _orphan_confirmation(data_url)  # the rule holds before
    result = _level(data_url, "table-combinations", 2, "--yes")
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert doc["result"]["done"] is True
    assert doc["later_releases_kept"] == [
        "capacity-overlap",
        "assignment-pipeline-v3",
        "allocation-lookups",
        "booking-integrity",
        "booking-observability",
        "assignment-times",
        "booking-distribution-keys",
    ]
    assert row_counts(data_url) == counts
    assert "booking_assignment_validation" not in _triggers(data_url)
    assert "booking_assignment_removal_validation" not in _triggers(data_url)
    assert _state(data_url)[2] == before[2]  # alembic_version did not move
    assert _level_rows(data_url) == [("table-combinations", 2, "applied")]
    status = as_json(invoke("status", "--database-url", data_url, "--json"))
    by_release = {r["release"]: r for r in status["releases"]}
    assert by_release["table-combinations"]["level"]["level"] == 2
    assert by_release["capacity-overlap"]["level"] is None
    # Known to verify: the level's own postconditions, the heads plus its steps.
    report = _verify(data_url)
    assert report["verdict"] == "clean", report
    assert [lv["release"] for lv in report["levels"]] == ["table-combinations"]
    assert "table-combinations level 2" in report["drift_reference"]
    checked = {(p["kind"], p["object"]): p for p in report["postconditions"]}
    assert checked[("trigger", "bookings.booking_assignment_validation")]["expected"] == "absent"
    # The level really removed the rule, from SQL.
    _orphan_confirmation(data_url)
    # A second run changes nothing.
    again = as_json(_level(data_url, "table-combinations", 2, "--yes"))
    assert again["result"]["done"] is False
    # The re-rollout restores exactly what was there, and its checks find the orphan the
    # level let in: FAILED, naming it, with the rule back in place.
    restored = rollout(data_url, "table-combinations", tmp_path)
    assert restored.exit_code == 1, restored.output
    doc = as_json(restored)
    assert any(s["name"] == "restore table-combinations level 2" for s in doc["steps"])
    assert [c["name"] for c in doc["failed_checks"]] == ["orphaned_confirmed_bookings"]
    with psycopg.connect(data_url) as conn:  # the test's orphan goes (it was never real)
        conn.execute("DELETE FROM bookings WHERE customer_name = 'Orphan'")
    rerolled = rollout(data_url, "table-combinations", tmp_path)
    assert rerolled.exit_code == 0, rerolled.output
    assert _level_rows(data_url) == []
    after = _state(data_url)
    assert after[0] == before[0], catalog_diff(before[0], after[0])
    report = _verify(data_url)
    assert report["verdict"] == "clean" and report["levels"] == []
    assert "schema_snapshot.json" in report["drift_reference"]
    with pytest.raises(psycopg.errors.CheckViolation):
        _orphan_confirmation(data_url)


def _verify_after_level_2_and(url: str, by_hand: str) -> dict[str, Any]:
    """Level 2 of table-combinations applied, then `by_hand` run: `verify` does not call it
    clean (exit 3); its report."""
    assert _level(url, "table-combinations", 2, "--yes").exit_code == 0
    return verify_after(url, by_hand)


def test_verify_still_finds_drift_beyond_the_level(data_url: str) -> None:
    doc = _verify_after_level_2_and(
        data_url, "DROP TRIGGER allocations_table_restaurant_check ON allocations"
    )
    assert doc["verdict"] == "drift"
    assert any("allocations_table_restaurant_check" in d["name"] for d in doc["drift"])


def test_tampering_with_what_the_level_removed_is_drift(data_url: str) -> None:
    """Someone re-creates half of the removed rule by hand: neither the heads nor the level."""
    doc = _verify_after_level_2_and(
        data_url,
        "CREATE FUNCTION public.validate_booking_has_assignments() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    )
    assert doc["verdict"] in {"drift", "postconditions_failed"}


def _constraints(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict_of(
            conn,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'allocations'::regclass AND contype = 'x'",
        )


def _function_version(url: str, name: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p WHERE proname = %s", (name,)
        ).fetchone()
    return None if row is None else str(row[0]).removeprefix("venuedb:version=")


def test_level_2_of_capacity_overlap_at_the_heads_keeps_v13(data_url: str, tmp_path: Path) -> None:
    counts = row_counts(data_url)
    before = _state(data_url)
    result = _level(data_url, "capacity-overlap", 2, "--yes")
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert doc["result"]["details"]["function_kept"] == "13"
    assert _constraints(data_url) == {"allocations_resource_window_excl": OLD_DEF}
    assert _function_version(data_url, "confirm_hold_assignment_tx") == "13"
    assert row_counts(data_url) == counts
    report = _verify(data_url)
    assert report["verdict"] == "clean", report
    restored = rollout(data_url, "capacity-overlap", tmp_path)
    assert restored.exit_code == 0, restored.output
    after = _state(data_url)
    assert after[0] == before[0], catalog_diff(before[0], after[0])
    assert row_counts(data_url) == counts
    assert _verify(data_url)["verdict"] == "clean"


def test_level_2_of_capacity_overlap_at_its_own_head_restores_v11(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Nothing later needs v12: the seed's function goes back too, and comes back after."""
    for target in ("core_001", "booking_007", "bar_001"):
        assert invoke("apply", target, "--database-url", empty_db_url).exit_code == 0
    _with_rows(empty_db_url)
    counts = row_counts(empty_db_url)
    result = _level(empty_db_url, "capacity-overlap", 2, "--yes")
    assert result.exit_code == 0, result.output
    assert as_json(result)["result"]["details"]["function_restored"] == "11"
    assert _function_version(empty_db_url, "confirm_hold_assignment_tx") == "11"
    assert _function_version(empty_db_url, "confirm_hold_conflicts") is None
    assert _constraints(empty_db_url) == {"allocations_resource_window_excl": OLD_DEF}
    # Away from the heads, verify builds its reference: booking_007 plus the level.
    report = _verify(empty_db_url)
    assert report["verdict"] == "clean", report
    assert row_counts(empty_db_url) == counts
    restored = rollout(empty_db_url, "capacity-overlap", tmp_path)
    assert restored.exit_code == 0, restored.output
    assert _function_version(empty_db_url, "confirm_hold_assignment_tx") == "12"
    assert _function_version(empty_db_url, "confirm_hold_conflicts") == "1"
    assert _verify(empty_db_url)["verdict"] == "clean"


def test_a_downgrade_of_a_release_at_level_2_restores_it_first(
    empty_db_url: str, tmp_path: Path
) -> None:
    for target in ("core_001", "booking_007"):
        assert invoke("apply", target, "--database-url", empty_db_url).exit_code == 0
    assert _level(empty_db_url, "capacity-overlap", 2, "--yes").exit_code == 0
    result = invoke(
        "rollback",
        "capacity-overlap",
        "--yes",
        "--allow-data-loss",
        "--backup-dir",
        str(tmp_path / "backups"),
        "--database-url",
        empty_db_url,
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert [s["release"] for s in doc["levels_restored_first"]] == ["capacity-overlap"]
    assert doc["to"]["booking"] == "booking_004"
    assert _level_rows(empty_db_url) == []
    assert _function_version(empty_db_url, "confirm_hold_assignment_tx") == "11"
    assert _verify(empty_db_url)["verdict"] == "clean"


def test_level_2_needs_the_release_applied(empty_db_url: str) -> None:
    for target in ("core_001", "booking_004"):
        assert invoke("apply", target, "--database-url", empty_db_url).exit_code == 0
    result = _level(empty_db_url, "capacity-overlap", 2, "--yes")
    assert result.exit_code == 2
    assert "not applied" in as_json(result)["error"]


# ---- level 1 -------------------------------------------------------------------------


def _records(url: str) -> list[tuple[str, str, str]]:
    return rows_at(url, "SELECT command, target, result FROM venuedb.deployments ORDER BY id")


def test_level_1_is_not_done_while_a_flag_is_still_on_where_it_runs(
    data_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURE_COMBINATION_PLANNER", "true")
    result = _level(data_url, "table-combinations", 1, "--yes")
    assert result.exit_code == 1, result.output
    doc = as_json(result)
    assert doc["status"] == "incomplete"
    assert "FEATURE_COMBINATION_PLANNER=false" in doc["error"]
    assert "FEATURE_ALLOCATOR_MERGES_ENABLED=false" in doc["error"]
    assert _records(data_url)[-1] == ("rollback", "table-combinations level 1", "failed")
    for name, value in COMBINATION_FLAGS.items():
        monkeypatch.setenv(name, value)
    result = _level(data_url, "table-combinations", 1, "--yes")
    assert result.exit_code == 0, result.output
    assert all(f["done"] for f in as_json(result)["flags"])
    assert _records(data_url)[-1] == ("rollback", "table-combinations level 1", "succeeded")


def test_level_1_switches_the_flag_the_database_owns(data_url: str) -> None:
    assert (
        invoke("flags", "set", "ENABLE_SWITCHING_MODE", "on", "--database-url", data_url).exit_code
        == 0
    )
    with psycopg.connect(data_url) as conn:
        assert scalar(conn, "SELECT switching_mode_enabled(id) FROM bars LIMIT 1")
    counts = row_counts(data_url)
    result = _level(data_url, "mode-switching", 1, "--yes")
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert doc["done"] == ["ENABLE_SWITCHING_MODE switched off in the database (was on)"]
    with psycopg.connect(data_url) as conn:
        assert not scalar(conn, "SELECT bool_or(switching_mode_enabled(id)) FROM bars")
    # The columns and their data stay (seed 002, Option A).
    assert row_counts(data_url) == counts


# ---- level 3 -------------------------------------------------------------------------


def test_level_3_starts_with_level_1(data_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_COMBINATION_PLANNER", "true")
    before = _state(data_url)
    result = _level(data_url, "table-combinations", 3, "--yes", "--cascade", "--allow-data-loss")
    assert result.exit_code == 2
    assert "starts with its level 1" in as_json(result)["error"]
    after = _state(data_url)
    assert after == before, _what_changed(before, after)
    plan = as_json(_level(data_url, "table-combinations", 3, "--plan"))
    assert plan["flags_pending"] == [
        "FEATURE_COMBINATION_PLANNER",
        "FEATURE_ALLOCATOR_MERGES_ENABLED",
    ]


def test_level_3_is_the_guarded_downgrade(
    data_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOW_SWITCHING_MODE_UI", "false")
    backfilled = invoke("backfill", "run", "sales_server_id", "--database-url", data_url)
    assert backfilled.exit_code == 0, backfilled.output
    with psycopg.connect(data_url) as conn:
        filled = scalar(conn, "SELECT count(server_id) FROM sales")
    assert filled > 0
    before = _state(data_url)
    refused = _level(data_url, "mode-switching", 3, "--yes")
    assert refused.exit_code == 2
    assert "--cascade" in as_json(refused)["error"]
    after = _state(data_url)
    assert after == before, _what_changed(before, after)
    result = _level(
        data_url,
        "mode-switching",
        3,
        "--yes",
        "--cascade",
        "--allow-data-loss",
        "--backup-dir",
        str(tmp_path / "backups"),
    )
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert doc["to"]["bar"] == "bar_001"
    columns = {(c["table"], c["column"]): c["values"] for c in doc["data_at_risk"]["columns"]}
    assert columns[("sales", "server_id")] == filled
    assert Path(doc["backup"]).is_file()  # taken before the server_id values were dropped
    assert [d["release"] for d in doc["dependent_releases"]] == [
        "bar-distribution-keys",
        "bar-observability",
        "bar-integrity",
        "bar-owner-lookups",
    ]


def test_level_2_of_capacity_overlap_runs_online_by_the_shadow_swap(
    data_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap path (forced on small data): the triggers and row-level security of
    allocations at the heads come across, and every row is kept, both ways."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "7")
    counts = row_counts(data_url)
    before = _state(data_url)
    result = _level(data_url, "capacity-overlap", 2, "--yes")
    assert result.exit_code == 0, result.output
    notices = as_json(result)["result"]["notices"]
    assert any("shadow-table swap" in n for n in notices), notices
    assert _constraints(data_url) == {"allocations_resource_window_excl": OLD_DEF}
    assert row_counts(data_url) == counts
    assert _verify(data_url)["verdict"] == "clean"
    restored = rollout(data_url, "capacity-overlap", tmp_path)
    assert restored.exit_code == 0, restored.output
    after = _state(data_url)
    assert after[0] == before[0], catalog_diff(before[0], after[0])
    assert row_counts(data_url) == counts


# ---- faults --------------------------------------------------------------------------

RESTAURANTS = ("10000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000002")


def test_level_2_refuses_rows_the_older_rule_forbids(data_url: str) -> None:
    """Two restaurants' allocations of one resource overlap: legal under
    allocations_no_overlap, not under the seed's older rule. Nothing changes."""
    with psycopg.connect(data_url) as conn:
        for restaurant in RESTAURANTS:
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'merge_group', '20000000-0000-4000-8000-0000000000aa', "
                "'[2031-03-01 19:00+00,2031-03-01 21:00+00)')",
                (restaurant,),
            )
    before = _state(data_url)
    result = _level(data_url, "capacity-overlap", 2, "--yes")
    assert result.exit_code == 1, result.output
    doc = as_json(result)
    assert doc["status"] == "failed"
    assert "20000000-0000-4000-8000-0000000000aa" in doc["error"]
    after = _state(data_url)
    assert after == before, _what_changed(before, after)
    assert _level_rows(data_url) == []
    assert _records(data_url)[-1] == ("rollback", "capacity-overlap level 2", "failed")


def _verify_in_progress(url: str) -> dict[str, Any]:
    """A level left half done is not clean: `verify` says it is in progress (exit 3)."""
    half = invoke("verify", "--database-url", url, "--json")
    assert half.exit_code == 3
    doc = as_json(half)
    assert doc["verdict"] == "in_progress"
    return doc


def _resumed_and_finished(url: str, counts: dict[str, int]) -> None:
    """The next run of capacity-overlap's level 2 resumes the half-done swap and finishes it:
    the older rule back, every row kept, verify clean."""
    again = _level(url, "capacity-overlap", 2, "--yes")
    assert again.exit_code == 0, again.output
    assert any("resuming" in n for n in as_json(again)["result"]["notices"])
    assert _constraints(url) == {"allocations_resource_window_excl": OLD_DEF}
    assert row_counts(url) == counts
    assert _verify(url)["verdict"] == "clean"


def test_level_2_that_cannot_get_its_lock_resumes_on_the_next_run(
    data_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "2")
    counts = row_counts(data_url)
    reader = psycopg.connect(data_url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # ACCESS SHARE until rollback
    try:
        result = _level(
            data_url, "capacity-overlap", 2, "--yes", "--lock-timeout", "100ms", "--retries", "0"
        )
        assert result.exit_code == 4, result.output
        assert "resumes" in as_json(result)["error"]
        assert "changed part way" in as_json(result)["error"]
    finally:
        reader.rollback()
        reader.close()
    assert _level_rows(data_url) == [("capacity-overlap", 2, "applying")]
    assert "allocations_no_overlap" in _constraints(data_url)
    # Half done is not clean: verify says so (exit 3), naming the swap.
    _verify_in_progress(data_url)
    _resumed_and_finished(data_url, counts)


# ---- every declared level, the whole cycle -------------------------------------------

ALL_FLAGS_OFF = {
    **COMBINATION_FLAGS,
    "FEATURE_ASSIGNMENT_PIPELINE_V3": "false",
    "FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW": "false",
    "ENABLE_SWITCHING_MODE": "false",
    "SHOW_SWITCHING_MODE_UI": "false",
}


@pytest.mark.parametrize(
    ("release", "number"),
    sorted((lv.release, lv.level) for lv in levels.load_levels()),
)
def test_each_level_plan_run_verify_and_rerollout_on_data(
    data_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: str, number: int
) -> None:
    for name, value in ALL_FLAGS_OFF.items():
        monkeypatch.setenv(name, value)
    for backfill in ("sales_server_id", "consignments_server_id", "returns_server_id"):
        backfilled = invoke("backfill", "run", backfill, "--database-url", data_url)
        assert backfilled.exit_code == 0, backfilled.output
    before = row_counts(data_url)
    schema = _state(data_url)[0]
    plan = as_json(_level(data_url, release, number, "--plan"))
    assert row_counts(data_url) == before
    consent = (
        ("--cascade", "--allow-data-loss", "--backup-dir", str(tmp_path / "b"))
        if number == 3
        else ()
    )
    result = _level(data_url, release, number, "--yes", *consent)
    assert result.exit_code == 0, result.output
    after = row_counts(data_url)
    if number < 3:
        assert after == before  # the seeds: no data loss
    else:
        # Exactly the rows the plan counted, in the tables it named; no other row.
        dropped = {f"public.{t['table']}": t["rows"] for t in plan["data_at_risk"]["tables"]}
        assert set(before) - set(after) == set(dropped)
        assert {t: before[t] for t in dropped} == dropped
        assert {t: n for t, n in before.items() if t in after} == after
    assert _verify(data_url)["verdict"] == "clean"
    # The way back: the release's rollout (after a full revert, then the later releases).
    back = rollout(data_url, release, tmp_path)
    assert back.exit_code == 0, back.output
    if number == 3:
        applied = invoke("apply", "--database-url", data_url)
        assert applied.exit_code == 0, applied.output
    assert _verify(data_url)["verdict"] == "clean"
    rebuilt = _state(data_url)[0]
    assert rebuilt == schema, catalog_diff(schema, rebuilt)
    if number < 3:
        assert row_counts(data_url) == before


def test_a_level_applied_by_another_version_of_its_steps_is_tampered(data_url: str) -> None:
    """The live state was made by a steps file that is not the one in this checkout (an
    edited file, or a database levelled by another checkout): restore and reference
    would run other steps, so verify does not say clean."""
    doc = _verify_after_level_2_and(
        data_url,
        "UPDATE venuedb.release_levels SET details = details || "
        '\'{"steps_sha256": "0000"}\'::jsonb',
    )
    assert doc["verdict"] == "tampered"
    assert [t["name"] for t in doc["tamper"]] == ["migrations/levels/table_combinations_2.py"]


def test_a_level_run_killed_mid_swap_is_reported_and_finished_by_the_next_run(
    data_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while the copy is done and the swap waits for its lock: the record says the
    level was being applied (verify and status: in progress, exit 3 and 1), never applied
    nor nothing; the next run resumes the swap and finishes the level."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    counts = row_counts(data_url)
    level_2 = ("rollback", "capacity-overlap", "--level", "2", "--yes", "--lock-timeout", "200ms")
    with swap_held_at_its_lock(data_url, monkeypatch, *level_2, "--database-url", data_url) as (
        run,
        _,
    ):
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=30)
        until_no_venuedb_session(data_url)  # the killed run's sessions go
    assert _level_rows(data_url) == [("capacity-overlap", 2, "applying")]
    doc = _verify_in_progress(data_url)
    assert any("did not finish" in item["what"] for item in doc["in_progress"])
    status = invoke("status", "--database-url", data_url, "--json")
    assert status.exit_code == 1
    assert as_json(status)["status"] == "in_progress"
    _resumed_and_finished(data_url, counts)
    assert _level_rows(data_url) == [("capacity-overlap", 2, "applied")]


def test_a_level_table_from_an_earlier_build_gains_its_state(db_url: str) -> None:
    """release_levels as the first builds of this release made it, without `state`."""
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS venuedb")
        conn.execute("DROP TABLE IF EXISTS venuedb.release_levels")
        conn.execute(
            "CREATE TABLE venuedb.release_levels (release text PRIMARY KEY, level integer NOT "
            "NULL, details jsonb NOT NULL DEFAULT '{}', applied_at timestamptz NOT NULL "
            "DEFAULT clock_timestamp(), deployment_id bigint, actor text NOT NULL)"
        )
    result = _level(db_url, "table-combinations", 2, "--yes")
    assert result.exit_code == 0, result.output
    assert _level_rows(db_url) == [("table-combinations", 2, "applied")]


def test_a_restore_runs_no_sql_smuggled_into_the_level_record(
    data_url: str, tmp_path: Path
) -> None:
    """The restore executes the trigger definitions it recorded, as the deploying role: an
    altered record must not turn into arbitrary SQL."""
    assert _level(data_url, "table-combinations", 2, "--yes").exit_code == 0
    with psycopg.connect(data_url) as conn:
        conn.execute(
            "UPDATE venuedb.release_levels SET details = jsonb_set(details, "
            "'{triggers,0,definition}', to_jsonb((details #>> '{triggers,0,definition}') "
            "|| '; DROP TABLE public.table_adjacencies'))"
        )
    result = rollout(data_url, "table-combinations", tmp_path)
    assert result.exit_code == 1
    assert "was altered" in as_json(result)["error"]
    assert "public.table_adjacencies" in row_counts(data_url)
    assert "booking_assignment_validation" not in _triggers(data_url)


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_the_api_roles_cannot_touch_the_level_records(data_url: str, role: str) -> None:
    """What a restore replays lives where no API role can reach: not read, not written."""
    assert _level(data_url, "table-combinations", 2, "--yes").exit_code == 0
    for statement in (
        "SELECT * FROM venuedb.release_levels",
        "UPDATE venuedb.release_levels SET details = '{}'",
        "DELETE FROM venuedb.release_levels",
    ):
        with psycopg.connect(data_url) as conn:
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert _level_rows(data_url) == [("table-combinations", 2, "applied")]
