"""Issue 18, point 3: a rollback undoes only what it names, and never drops data unasked.

`rollback RELEASE` is an Alembic downgrade to before that release, which also undoes every
later release on its branch. It refuses that cascade unless --cascade, refuses to drop
rows or values unless --allow-data-loss, and then takes a verified backup first.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.clihelpers import as_json, invoke, rollback_with_data_loss
from tests.conftest import DATA, load_sql
from tests.queries import rows_at, scalar
from toolkit.engine import revisions as revs
from toolkit.runbook.backup import list_contents

# The releases after table-combinations on its branch, as a rollback of it names them.
LATER = [
    "booking-distribution-keys",
    "assignment-times",
    "booking-observability",
    "booking-integrity",
    "allocation-lookups",
    "assignment-pipeline-v3",
    "capacity-overlap",
]


def _heads(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return revs.heads_by_branch(tuple(r[0] for r in rows))


def _with_bookings(url: str) -> None:
    for name in ("core_001", "booking_001"):
        load_sql(url, DATA / "rows" / f"{name}.sql")


def _rollback_records(url: str) -> list[tuple[str, str]]:
    return rows_at(
        url,
        "SELECT result, coalesce(output, '') FROM venuedb.deployments "
        "WHERE command = 'rollback' ORDER BY id",
    )


def test_rollback_of_an_early_release_refuses_to_undo_later_ones(db_url: str) -> None:
    before = _heads(db_url)
    result = invoke("rollback", "table-combinations", "--yes", "--database-url", db_url)
    assert result.exit_code == 2, result.output
    assert "booking_002" in result.stdout  # the plan is printed first
    for release in LATER:
        assert release in result.stderr
    assert "--cascade" in result.stderr
    # What of theirs it would drop (table_adjacencies is table-combinations' own).
    assert "booking_confirmation_results" in result.stderr
    assert "bookings.assignment_state" in result.stderr
    assert _heads(db_url) == before
    assert _rollback_records(db_url) == []


def test_the_refusal_in_json_names_the_dependents_and_what_they_drop(db_url: str) -> None:
    result = invoke("rollback", "table-combinations", "--yes", "--database-url", db_url, "--json")
    assert result.exit_code == 2
    doc = as_json(result)
    assert doc["status"] == "bad_input"
    assert [d["release"] for d in doc["dependent_releases"]] == LATER
    assert doc["backup"] is None
    assert [s["revision"] for s in doc["planned"]][-1] == "booking_002"
    by_release = {d["release"]: d for d in doc["dependent_releases"]}
    assert by_release["capacity-overlap"]["revisions"] == [
        "booking_007",
        "booking_006",
        "booking_005",
    ]
    dropped = {t["table"]: t["release"] for t in doc["data_at_risk"]["tables"]}
    assert dropped["table_adjacencies"] == "table-combinations"


def test_a_revision_target_reaching_into_several_releases_needs_cascade(db_url: str) -> None:
    before = _heads(db_url)
    result = invoke("rollback", "booking_006", "--yes", "--database-url", db_url, "--json")
    assert result.exit_code == 2
    assert [d["release"] for d in as_json(result)["dependent_releases"]] == LATER[:6]
    assert _heads(db_url) == before


def test_cascade_on_a_database_with_data_still_needs_allow_data_loss(
    db_url: str, tmp_path: Path
) -> None:
    _with_bookings(db_url)
    before = _heads(db_url)
    result = invoke(
        "rollback",
        "table-combinations",
        "--cascade",
        "--yes",
        "--backup-dir",
        str(tmp_path / "backups"),
        "--database-url",
        db_url,
    )
    assert result.exit_code == 2, result.output
    assert "--allow-data-loss" in result.stderr
    assert "bookings.assignment_state" in result.stderr
    assert _heads(db_url) == before
    assert not (tmp_path / "backups").exists()
    assert _rollback_records(db_url) == []


def test_with_both_flags_a_verified_backup_comes_first(db_url: str, tmp_path: Path) -> None:
    _with_bookings(db_url)
    before = _heads(db_url)
    result = rollback_with_data_loss(db_url, "table-combinations", tmp_path / "backups", "--json")
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    backup = Path(doc["backup"])
    assert backup.parent == tmp_path / "backups"
    assert backup.stat().st_size > 0 and list_contents(backup) > 0
    assert backup.name in result.stderr  # said in the output too
    after = _heads(db_url)
    assert after["booking"] == "booking_001"
    assert (after["core"], after["bar"]) == (before["core"], before["bar"])
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.table_adjacencies')").fetchone() == (None,)
        assert scalar(conn, "SELECT count(*) FROM bookings") > 0
    [(outcome, output)] = _rollback_records(db_url)
    assert outcome == "succeeded" and str(backup) in output
    assert str(backup) in Path(doc["record"]).read_text()


def test_rolling_back_the_latest_release_without_data_needs_neither_flag(db_url: str) -> None:
    before = _heads(db_url)
    result = invoke(
        "rollback", "booking-distribution-keys", "--yes", "--database-url", db_url, "--json"
    )
    assert result.exit_code == 0, result.output
    doc = as_json(result)
    assert doc["dependent_releases"] == [] and doc["backup"] is None
    assert _heads(db_url)["booking"] == "booking_017"
    assert _heads(db_url)["bar"] == before["bar"]


def test_dropping_empty_tables_is_not_data_loss(db_url: str) -> None:
    # Every later release is rolled back first, one by one: each needs no flag on an
    # empty database, although table-combinations drops tables and columns.
    for release in [*LATER, "table-combinations"]:
        result = invoke("rollback", release, "--yes", "--database-url", db_url, "--json")
        assert result.exit_code == 0, (release, result.output)
    assert _heads(db_url)["booking"] == "booking_001"


def test_a_failed_backup_rolls_nothing_back(db_url: str, tmp_path: Path) -> None:
    _with_bookings(db_url)
    before = _heads(db_url)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the backup directory would be\n")
    result = rollback_with_data_loss(db_url, "table-combinations", blocker / "backups")
    assert result.exit_code == 1, result.output
    assert "backup" in result.stderr
    assert _heads(db_url) == before
    assert _rollback_records(db_url) == []


def test_reference_rows_the_migrations_wrote_are_not_data_but_a_changed_one_is(
    db_url: str,
) -> None:
    # bar_012 writes feature_flags' one row; dropping it as written loses nothing.
    plain = invoke(
        "rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url, "--json"
    )
    assert plain.exit_code == 0, plain.output
    [flags] = [t for t in as_json(plain)["data_at_risk"]["tables"] if t["table"] == "feature_flags"]
    assert (flags["rows"], flags["from_migrations"]) == (1, 1)
    assert invoke("apply", "--database-url", db_url).exit_code == 0
    # Switched on by an operator: that setting is data, and the rollback refuses to drop it.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE feature_flags SET enabled = true")
    before = _heads(db_url)
    refused = invoke("rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url)
    assert refused.exit_code == 2, refused.output
    assert "feature_flags (1 rows)" in refused.stderr and "--allow-data-loss" in refused.stderr
    assert _heads(db_url) == before


def test_plan_without_a_level_shows_the_downgrade_and_changes_nothing(db_url: str) -> None:
    _with_bookings(db_url)
    before = _heads(db_url)
    result = invoke("rollback", "table-combinations", "--plan", "--database-url", db_url, "--json")
    # Without --cascade and --allow-data-loss the run would refuse: the plan is not ok.
    assert result.exit_code == 1, result.output
    doc = as_json(result)
    assert doc["status"] == "would_refuse" and doc["plan"] is True
    assert [d["release"] for d in doc["dependent_releases"]] == LATER
    # What a run would refuse without its consent, said up front.
    assert len(doc["would_refuse"]) == 2
    assert "--cascade" in doc["would_refuse"][0]
    assert "--allow-data-loss" in doc["would_refuse"][1]
    assert _heads(db_url) == before
    assert _rollback_records(db_url) == []
