"""`venuedb verify`: postconditions, drift from the committed snapshot, tamper detection.
Each kind of drift is injected by hand through SQL and reported (and only that)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.checkout import copy_checkout
from tests.clihelpers import invoke, verify, verify_after
from tests.conftest import Server, catalog_diff
from toolkit.engine.releases import load_releases
from toolkit.integrity import catalog as snapshot

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


def test_a_migrated_database_is_clean(db_url: str) -> None:
    code, report = verify(db_url)
    assert (code, report["status"], report["clean"]) == (0, "clean", True), report
    assert (report["drift_status"], report["not_compared"]) == ("compared", [])
    assert report["drift_reference"].startswith("schema_snapshot.json")
    assert report["drift"] == [] and report["tamper"] == []
    assert len(report["postconditions"]) >= 20 and all(p["ok"] for p in report["postconditions"])
    assert report["notes"] == []


def test_the_committed_snapshot_is_current(pg_server: Server) -> None:
    objects, heads = snapshot.build(pg_server.url("postgres"))
    committed = snapshot.load()
    drift = snapshot.diff(committed["objects"], objects)
    assert drift == [], "run `venuedb snapshot`:\n" + catalog_diff(committed["objects"], objects)
    assert sorted(committed["heads"]) == sorted(heads)
    assert committed["function_files"] == snapshot.function_file_hashes()


INJECTIONS = [
    (
        "hot-fixed function body",
        "CREATE OR REPLACE FUNCTION public.feature_enabled_for(p_flag text, p_restaurant_id uuid) "
        "RETURNS boolean LANGUAGE sql STABLE SET search_path = public AS $$ SELECT true $$",
        {("function", "public.feature_enabled_for(p_flag text, p_restaurant_id uuid)", "changed")},
    ),
    (
        "dropped index",
        "DROP INDEX idx_booking_confirmation_results_checked_at",
        {("index", "public.idx_booking_confirmation_results_checked_at", "missing")},
    ),
    (
        "changed constraint",
        "ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap; "
        "ALTER TABLE allocations ADD CONSTRAINT allocations_no_overlap EXCLUDE USING gist "
        '(restaurant_id WITH =, resource_type WITH =, resource_id WITH =, "window" WITH &&) '
        "WHERE (NOT shadow) DEFERRABLE INITIALLY DEFERRED",
        {("constraint", "public.allocations.allocations_no_overlap", "changed")},
    ),
    (
        "extra trigger",
        "CREATE FUNCTION public.sneaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; "
        "END $$; CREATE TRIGGER sneaky BEFORE UPDATE ON bookings FOR EACH ROW EXECUTE FUNCTION "
        "sneaky()",
        {
            ("trigger", "public.bookings.sneaky", "unexpected"),
            ("trigger_mode", "public.bookings.sneaky", "unexpected"),
            ("function", "public.sneaky()", "unexpected"),
            ("function_grant", "public.sneaky()", "unexpected"),
        },
    ),
    (
        "grant widened",
        "GRANT SELECT ON booking_confirmation_results TO anon",
        {("grant", "public.booking_confirmation_results", "changed")},
    ),
    (
        "rls switched off",
        "ALTER TABLE booking_confirmation_results DISABLE ROW LEVEL SECURITY",
        {("table", "public.booking_confirmation_results", "changed")},
    ),
    (
        "column default changed",
        "ALTER TABLE bookings ALTER COLUMN status SET DEFAULT 'confirmed'",
        {("column", "public.bookings.status", "changed")},
    ),
]


@pytest.mark.parametrize(("what", "sql", "expected"), INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_each_kind_of_drift_is_reported_by_name(
    db_url: str, what: str, sql: str, expected: set
) -> None:
    report = verify_after(db_url, sql)
    assert report["status"] == "drift"
    assert {(d["kind"], d["name"], d["status"]) for d in report["drift"]} == expected
    for drift in report["drift"]:
        if drift["status"] == "changed":
            assert drift["expected"] and drift["actual"] and drift["expected"] != drift["actual"]


def test_failed_postconditions_name_the_object(db_url: str) -> None:
    report = verify_after(
        db_url,
        "DROP TRIGGER booking_assignment_validation ON bookings",
        "--release",
        "table-combinations",
    )
    failed = [p for p in report["postconditions"] if not p["ok"]]
    assert [(p["kind"], p["object"], p["actual"]) for p in failed] == [
        ("trigger", "bookings.booking_assignment_validation", "absent")
    ]
    assert {p["release"] for p in report["postconditions"]} == {"table-combinations"}


def test_a_revision_file_changed_after_it_was_applied(db_url: str) -> None:
    report = verify_after(
        db_url,
        "UPDATE venuedb.revision_checksums SET sha256 = repeat('0', 64) "
        "WHERE revision = 'booking_005'",
    )
    assert [(t["kind"], t["name"]) for t in report["tamper"]] == [
        ("revision_file_changed", "booking_005")
    ]


def test_a_revision_applied_out_of_order(db_url: str) -> None:
    report = verify_after(
        db_url,
        "UPDATE venuedb.revision_checksums SET applied_at = now() + interval '1 day' "
        "WHERE revision = 'booking_002'",
    )
    assert [(t["kind"], t["name"]) for t in report["tamper"]] == [
        ("applied_out_of_order", "booking_003")
    ]


def test_an_edited_released_function_file(
    db_url: str, tmp_path: Path, in_project: Callable[[Path], None]
) -> None:
    project = copy_checkout(tmp_path)
    edited = project / "sql" / "functions" / "confirm_hold_assignment_tx" / "v11.sql"
    edited.write_text(edited.read_text() + "\n-- a quiet fix\n")
    in_project(project)
    code, report = verify(db_url)
    assert code == 3
    kinds = {(t["kind"], t["name"]) for t in report["tamper"]}
    assert ("function_file_edited", "functions/confirm_hold_assignment_tx/v11.sql") in kinds


def test_unknown_release_is_bad_input(db_url: str) -> None:
    result = invoke("verify", "--release", "nope", "--database-url", db_url)
    assert result.exit_code == 2


@pytest.mark.parametrize("release", [r.name for r in load_releases() if r.name not in ("core",)])
def test_verify_after_each_release_rollback_and_reapply(db_url: str, release: str) -> None:
    down = invoke("rollback", release, "--cascade", "--yes", "--database-url", db_url)
    assert down.exit_code == 0, down.output
    code, report = verify(db_url)
    # Not at the heads: the reference is a scratch database at the live revisions.
    assert (code, report["status"], report["drift"]) == (0, "clean", []), report["drift"]
    assert report["drift_reference"].startswith("a scratch database migrated to")
    up = invoke("apply", "--database-url", db_url)
    assert up.exit_code == 0, up.output
    code, report = verify(db_url)
    assert (code, report["notes"]) == (0, [])
