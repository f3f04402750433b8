"""Health checks: each made to fire by writing the state it detects, then quiet again;
errors and timeouts isolated; the prometheus output parses; headers validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import scalar
from tests.seating import RESTAURANT, add_floor, assign_table
from toolkit.errors import BadInput
from toolkit.integrity import health_checks as health
from toolkit.server.connection import Target

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py

ALL = health.load_checks()


def _run(url: str, name: str, days: int | None = None) -> health.CheckResult:
    """One check over its own window (its header's), or over `days` days."""
    (check,) = health.select(ALL, [name], None)
    (result,) = health.run_checks(Target(url, "tests"), [check], days=days)
    return result


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def test_every_check_file_is_well_formed_and_named_after_its_file() -> None:
    assert len(ALL) >= 21
    for check in ALL:
        assert check.name == check.path.stem and re.fullmatch(r"[a-z0-9_]+", check.name)
        assert check.description and check.runbook


def test_a_fresh_database_has_nothing_critical_and_says_what_it_could_not_measure(
    db_url: str,
) -> None:
    result = invoke("check", "--database-url", db_url, "--json")
    document = as_json(result)
    # The false green of issue 17: rates over zero events used to be ok, exit 0.
    assert result.exit_code == 5, document
    assert document["status"] == "no_data"
    by_name = {c["name"]: c for c in document["checks"]}
    assert {c["status"] for c in document["checks"]} == {"ok", "no_data"}
    rate = by_name["confirmation_rate"]  # no booking in the window: a rate over nothing
    assert (rate["status"], rate["value"], rate["no_data"]) == ("no_data", None, True)
    adoption = by_name["simplified_mode_adoption"]  # declares that no data is fine
    assert (adoption["status"], adoption["value"]) == ("ok", None)
    assert "fine for this check" in adoption["note"]
    assert by_name["orphaned_confirmed_bookings"]["value"] == 0  # rows: none is a measurement
    counts = document["counts"]
    assert counts["no_data"] == sum(c["status"] == "no_data" for c in document["checks"]) > 0
    assert counts["critical"] == counts["error"] == counts["warning"] == 0
    assert document["summary"] == (
        f"{counts['ok']} ok ({counts['no_data_declared_fine']} without data, declared fine), "
        f"0 warning, 0 critical, 0 errors, {counts['no_data']} no data"
    )


def _bookings(url: str, count: int, status: str = "pending", state: str | None = None) -> list:
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [
            scalar(
                conn,
                "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, "
                "status) VALUES (%s, 2, current_date, now() + make_interval("
                "hours => %s), now() + make_interval(hours => %s + 2), 'pending') RETURNING id",
                (RESTAURANT, i * 3, i * 3),
            )
            for i in range(count)
        ]
        # A booking enters the state machine at created and moves on by its transitions.
        if state is not None:
            conn.execute(
                "UPDATE bookings SET assignment_state = %s WHERE id = ANY(%s)", (state, ids)
            )
        return ids


def _event(
    url: str,
    event_type: str,
    count: int = 1,
    source: str = "assignment.coordinator",
    context: str = "{}",
) -> None:
    _sql(
        url,
        "INSERT INTO observability_events (source, event_type, context) "
        "SELECT %s, %s, %s::jsonb FROM generate_series(1, %s)",
        (source, event_type, context, count),
    )


def test_orphaned_confirmed_bookings_fires_and_clears(db_url: str) -> None:
    (table, *_) = add_floor(db_url, 4)
    (booking,) = _bookings(db_url, 1)
    # The rule makes an orphan impossible; replica mode skips triggers to write one anyway.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (booking,))
    fired = _run(db_url, "orphaned_confirmed_bookings")
    assert (fired.status, fired.value) == ("critical", 1.0)
    assert fired.rows[0]["id"] == str(booking)
    _seat(db_url, booking, [table])
    assert _run(db_url, "orphaned_confirmed_bookings").status == "ok"


def _assign(url: str, booking: str, tables: list[str]) -> None:
    for table in tables:
        _sql(
            url,
            "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES (%s, %s)",
            (booking, table),
        )


def _seat(url: str, booking: str, tables: list[str]) -> None:
    """Assign the tables with their allocations and confirm, in one transaction."""
    with psycopg.connect(url) as conn:
        for table in tables:
            assign_table(conn, booking, table)
        conn.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (booking,))


def test_combination_usage_rate_in_both_directions(db_url: str) -> None:
    tables = add_floor(db_url, 4)
    bookings = _bookings(db_url, 20)
    for i, booking in enumerate(bookings):
        _assign(db_url, booking, [tables[i % 4]])
    low = _run(db_url, "combination_usage_rate")
    assert (low.status, low.value) == ("critical", 0.0)  # below 2%
    _sql(db_url, "DELETE FROM booking_table_assignments WHERE booking_id = %s", (bookings[0],))
    _assign(db_url, bookings[0], tables[:2])
    good = _run(db_url, "combination_usage_rate")
    assert (good.status, good.value) == ("ok", 5.0)
    for booking in bookings[1:8]:
        _assign(
            db_url,
            booking,
            [t for t in tables if t not in [tables[bookings.index(booking) % 4]]][:1],
        )
    high = _run(db_url, "combination_usage_rate")
    assert high.status == "critical" and high.value is not None and high.value > 30


@pytest.mark.parametrize(
    ("name", "setup", "status"),
    [
        (
            "assignment_success_rate",
            [
                ("auto_assign.summary", 3, "auto_assign", '{"status": "no_tables"}'),
                ("auto_assign.summary", 1, "auto_assign", '{"status": "confirmed"}'),
            ],
            "critical",
        ),
        (
            "assignment_success_rate",
            [
                ("coordinator.confirmed", 9, "assignment.coordinator", "{}"),
                ("coordinator.manual_review", 1, "assignment.coordinator", "{}"),
            ],
            "ok",
        ),
        (
            "zone_lock_conflicts_per_day",
            [("zone_lock_conflict", 6, "auto_assign", "{}")],
            "warning",
        ),
        (
            "assignment_latency",
            [("auto_assign.summary", 2, "auto_assign", '{"latency_ms": 20000}')],
            "critical",
        ),
        (
            "assignment_latency",
            [("auto_assign.summary", 2, "auto_assign", '{"latency_ms": 12000}')],
            "warning",
        ),
        (
            "coordinator_error_rate",
            [
                ("coordinator.error", 1, "assignment.coordinator", "{}"),
                ("coordinator.confirmed", 9, "assignment.coordinator", "{}"),
            ],
            "critical",
        ),
        (
            "coordinator_error_rate",
            [("coordinator.confirmed", 20, "assignment.coordinator", "{}")],
            "ok",
        ),
        (
            "lock_contention",
            [("coordinator.lock_contention", 11, "assignment.coordinator", "{}")],
            "warning",
        ),
    ],
)
def test_event_based_checks(db_url: str, name: str, setup: list, status: str) -> None:
    counts = ("zone_lock_conflicts_per_day", "lock_contention")  # count(*): never empty
    assert _run(db_url, name).status == ("ok" if name in counts else "no_data")
    for event_type, count, source, context in setup:
        _event(db_url, event_type, count, source, context)
    assert _run(db_url, name).status == status


def test_event_checks_respect_the_window(db_url: str) -> None:
    _event(db_url, "zone_lock_conflict", 12, "auto_assign")
    _sql(db_url, "UPDATE observability_events SET created_at = now() - interval '3 days'")
    assert _run(db_url, "zone_lock_conflicts_per_day").status == "ok"
    assert _run(db_url, "zone_lock_conflicts_per_day", days=4).value == 3.0


def test_average_tables_per_booking(db_url: str) -> None:
    tables = add_floor(db_url, 4)
    (booking,) = _bookings(db_url, 1)
    _assign(db_url, booking, tables)
    assert _run(db_url, "average_tables_per_booking").status == "warning"


def test_allocation_overlaps_fires_when_the_constraint_is_gone(db_url: str) -> None:
    (table, *_) = add_floor(db_url, 4)
    _sql(db_url, "ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap")
    for hours in (1, 2):
        _sql(
            db_url,
            "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
            "\"window\") VALUES (%s, 'table', %s, tstzrange(now() + make_interval("
            "hours => %s), now() + make_interval(hours => %s + 2)))",
            (RESTAURANT, table, hours, hours),
        )
    result = _run(db_url, "allocation_overlaps")
    assert (result.status, result.value) == ("critical", 1.0)


def test_confirmation_results_retention(db_url: str) -> None:
    add_floor(db_url, 4)
    (booking,) = _bookings(db_url, 1)
    _sql(
        db_url,
        "INSERT INTO booking_confirmation_results (booking_id, confirmed, checked_at) "
        "VALUES (%s, true, now() - interval '31 days')",
        (booking,),
    )
    assert _run(db_url, "confirmation_results_retention").status == "warning"
    _sql(db_url, "CALL prune_booking_confirmation_results()")
    assert _run(db_url, "confirmation_results_retention").status == "ok"


def test_confirmation_and_manual_review_rates(db_url: str) -> None:
    tables = add_floor(db_url, 4)
    bookings = _bookings(db_url, 10)
    assert _run(db_url, "confirmation_rate").status == "critical"  # 0% confirmed
    for booking, table in zip(bookings[:4], tables, strict=True):
        _seat(db_url, booking, [table])
    assert _run(db_url, "confirmation_rate").value == 40.0
    _bookings(db_url, 5, state="manual_review")
    result = _run(db_url, "manual_review_rate")
    assert result.status == "critical" and result.value == pytest.approx(33.33)


def test_shadow_mode_event_volume_is_a_ratio(db_url: str) -> None:
    silent = _run(db_url, "shadow_mode_event_volume")  # seed 001 troubleshoots exactly this
    assert (silent.status, silent.value) == ("no_data", None)
    add_floor(db_url, 4)
    (booking,) = _bookings(db_url, 1)
    _sql(
        db_url,
        "INSERT INTO observability_events (source, event_type, booking_id) SELECT "
        "'assignment.state_machine', 'booking.assignment_state_transition', %s "
        "FROM generate_series(1, 4)",
        (booking,),
    )
    assert _run(db_url, "shadow_mode_event_volume").value == 4.0


def test_recent_error_audit_logs(db_url: str) -> None:
    _sql(
        db_url,
        "INSERT INTO audit_logs (event, level) SELECT 'sale.create', 'error' "
        "FROM generate_series(1, 11)",
    )
    assert _run(db_url, "recent_error_audit_logs").status == "critical"
    _sql(db_url, "UPDATE audit_logs SET created_at = now() - interval '6 minutes'")
    assert _run(db_url, "recent_error_audit_logs").status == "ok"


def test_backfill_failures(db_url: str) -> None:
    _sql(
        db_url,
        "INSERT INTO venuedb.backfill_progress (name, state, last_error) "
        "VALUES ('x', 'failed', 'boom')",
    )
    result = _run(db_url, "backfill_failures")
    assert result.status == "critical" and result.rows[0]["name"] == "x"


def test_not_applicable_checks_say_so(empty_db_url: str) -> None:
    from tests.conftest import migrate_all  # noqa: F401  (documentation: empty has nothing)

    result = _run(empty_db_url, "server_id_coverage_24h")
    assert result.status == "ok" and result.value is None
    assert "not applicable" in (result.note or "")
    assert not result.applicable


def test_a_run_that_checked_nothing_applicable_is_not_green(empty_db_url: str) -> None:
    """Asked by name, a check whose objects do not exist checked nothing: exit 5, not 0.
    So does a run where no selected check applies (a database with nothing migrated)."""
    named = invoke("check", "server_id_coverage_24h", "--database-url", empty_db_url, "--json")
    document = as_json(named)
    assert named.exit_code == 5 and document["status"] == "no_data"
    assert document["counts"]["not_applicable"] == 1
    assert "1 not applicable here" in document["summary"]
    every = invoke("check", "--domain", "bar", "--database-url", empty_db_url)
    assert every.exit_code == 5, every.output


def test_a_broken_or_slow_check_is_an_error_and_the_others_still_run(
    db_url: str, tmp_path: Path
) -> None:
    header = (
        "-- name: {0}\n-- domain: core\n-- severity: critical\n-- critical: > 0\n"
        "-- unit: n\n-- returns: value\n-- description: d\n-- runbook: r\n"
    )
    (tmp_path / "broken.sql").write_text(header.format("broken") + "SELECT nonsense FROM nowhere")
    (tmp_path / "slow.sql").write_text(header.format("slow") + "SELECT pg_sleep(2)::text::int")
    (tmp_path / "fine.sql").write_text(header.format("fine") + "SELECT 0")
    results = health.run_checks(
        Target(db_url, "tests"), health.load_checks(tmp_path), timeout_ms=200
    )
    by_name = {r.check.name: r for r in results}
    assert by_name["broken"].status == "error" and "nowhere" in (by_name["broken"].error or "")
    assert by_name["slow"].status == "error"
    assert "statement timeout" in (by_name["slow"].error or "")
    assert by_name["fine"].status == "ok" and by_name["fine"].value == 0
    assert health.overall(results) == "error"


def test_malformed_headers_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("-- name: bad\n-- domain: core\n-- warning: more than 5\nSELECT 1")
    with pytest.raises(BadInput, match=r"bad.sql:3: malformed threshold"):
        health.parse(bad)
    other = tmp_path / "other.sql"
    other.write_text("-- name: different\nSELECT 1")
    with pytest.raises(BadInput, match=r"other\.sql:1"):
        health.parse(other)


def test_prometheus_output_is_the_exporters_convention(db_url: str) -> None:
    """The textfile form carries the exporter's metrics: a state set per check, and no
    value sample for a check that measured nothing (never a 0 or a NaN)."""
    from prometheus_client.parser import text_string_to_metric_families

    result = invoke("check", "--format", "prometheus", "--database-url", db_url)
    assert result.exit_code == 5  # some rates have no data on a fresh database
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    states: dict[str, dict[str, float]] = {}
    for s in families["venuedb_check_status"].samples:
        states.setdefault(s.labels["check"], {})[s.labels["state"]] = s.value
    assert set(states) == {c.name for c in ALL}
    assert all(sorted(v.values()) == [0, 0, 0, 0, 1] for v in states.values())
    assert states["confirmation_rate"]["no_data"] == 1
    assert states["simplified_mode_adoption"]["ok"] == 1
    valued = {s.labels["check"] for s in families["venuedb_check_value"].samples}
    assert "confirmation_rate" not in valued
    assert all(s.value == s.value for s in families["venuedb_check_value"].samples)  # no NaN
    assert families["venuedb_up"].samples[0].value == 1


def test_list_explain_and_unknown_names() -> None:
    listed = as_json(invoke("check", "--list", "--json"))
    assert {c["name"] for c in listed["checks"]} == {c.name for c in ALL}
    explained = as_json(invoke("check", "--explain", "orphaned_confirmed_bookings", "--json"))
    assert "booking_table_assignments" in explained["sql"]
    # No database is needed to refuse a name: nothing is run, nothing is reached.
    unknown = invoke("check", "no_such_check", "--database-url", "postgresql://u@h/d")
    assert unknown.exit_code == 2
    assert "unknown check(s) no_such_check" in unknown.stderr
    assert "orphaned_confirmed_bookings" in unknown.stderr  # the valid names are listed
    typo = invoke("check", "--explain", "confirmation_rat", "--json")
    assert typo.exit_code == 2 and "did you mean confirmation_rate" in as_json(typo)["error"]


def test_an_unknown_domain_is_bad_input_not_zero_checks_ok() -> None:
    # The false green of issue 17: `--domain <typo>` ran 0 checks and said ok, exit 0.
    for domain in ("nosuch", "Booking", "bokking"):
        result = invoke("check", "--domain", domain, "--database-url", "postgresql://u@h/d")
        assert result.exit_code == 2, result.output
        assert f"unknown domain {domain!r}" in result.stderr
        assert "the domains are: bar, booking, core" in result.stderr
    assert "did you mean booking" in invoke("check", "--domain", "bokking").stderr
    # Valid name, valid domain, but together they select nothing: still not a green.
    both = invoke(
        "check",
        "orphaned_confirmed_bookings",
        "--domain",
        "bar",
        "--json",
        "--database-url",
        "postgresql://u@h/d",
    )
    assert both.exit_code == 2 and "nothing would be checked" in as_json(both)["error"]


def test_select_never_returns_zero_checks(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="nothing would be checked"):
        health.select([], [], None)
    (check,) = health.select(ALL, ["backfill_failures"], "core")
    assert check.name == "backfill_failures"


HEADER = (
    "-- name: {0}\n-- domain: core\n-- severity: critical\n-- critical: > 5\n"
    "-- unit: n\n-- returns: {1}\n{2}-- description: d\n-- runbook: r\n"
)


def _check_file(
    directory: Path, name: str, sql: str, returns: str = "value", extra: str = ""
) -> None:
    (directory / f"{name}.sql").write_text(HEADER.format(name, returns, extra) + sql)


def test_no_rows_or_null_is_no_data_unless_declared_fine(db_url: str, tmp_path: Path) -> None:
    _check_file(tmp_path, "no_row", "SELECT 1 WHERE false")
    _check_file(tmp_path, "null_rate", "SELECT 100.0 * 0 / nullif(0, 0)")  # a rate over nothing
    _check_file(
        tmp_path, "quiet_is_fine", "SELECT NULL::int", extra="-- no_data: ok, silence is health\n"
    )
    _check_file(tmp_path, "no_problem_rows", "SELECT 1 WHERE false", returns="rows")
    _check_file(tmp_path, "measured", "SELECT 3")
    by_name = {
        r.check.name: r
        for r in health.run_checks(Target(db_url, "tests"), health.load_checks(tmp_path))
    }
    for name in ("no_row", "null_rate"):
        r = by_name[name]
        assert (r.status, r.value, r.empty) == ("no_data", None, True)
        assert r.note and r.note.startswith("no data")
    fine = by_name["quiet_is_fine"]
    assert (fine.status, fine.value, fine.empty) == ("ok", None, True)
    assert fine.note == "no data; fine for this check: silence is health"
    assert (by_name["no_problem_rows"].status, by_name["no_problem_rows"].value) == ("ok", 0)
    assert (by_name["measured"].status, by_name["measured"].value) == ("ok", 3)
    results = list(by_name.values())
    assert health.overall(results) == "no_data" and health.exit_code("no_data") == 5
    assert health.summary(results) == (
        "3 ok (1 without data, declared fine), 0 warning, 0 critical, 0 errors, 2 no data"
    )
    # A critical result outranks no data: exit 1, not 5.
    _check_file(tmp_path, "breached", "SELECT 9")
    worse = health.run_checks(Target(db_url, "tests"), health.load_checks(tmp_path))
    assert health.overall(worse) == "critical" and health.exit_code("critical") == 1


def test_check_command_exits_5_on_no_data_and_counts_it(db_url: str) -> None:
    silent = invoke("check", "confirmation_rate", "--database-url", db_url)
    assert silent.exit_code == 5, silent.output
    assert "NO DATA" in silent.stdout
    assert "0 ok, 0 warning, 0 critical, 0 errors, 1 no data" in silent.stdout
    fine = invoke("check", "simplified_mode_adoption", "--database-url", db_url, "--json")
    assert fine.exit_code == 0 and as_json(fine)["status"] == "ok"
    both = as_json(
        invoke(
            "check",
            "confirmation_rate",
            "simplified_mode_adoption",
            "orphaned_confirmed_bookings",
            "--database-url",
            db_url,
            "--json",
        )
    )
    assert both["status"] == "no_data"
    assert both["summary"] == (
        "2 ok (1 without data, declared fine), 0 warning, 0 critical, 0 errors, 1 no data"
    )
    add_floor(db_url, 4)
    _bookings(db_url, 3)  # three pending bookings: 0 % confirmed, critical, exit 1
    measured = invoke("check", "confirmation_rate", "--database-url", db_url, "--json")
    assert measured.exit_code == 1 and as_json(measured)["checks"][0]["value"] == 0.0


def test_a_malformed_no_data_declaration_is_refused(tmp_path: Path) -> None:
    _check_file(tmp_path, "vague", "SELECT 1", extra="-- no_data: fine\n")
    with pytest.raises(BadInput, match=r"vague.sql:7: no_data must be `ok, <why"):
        health.parse(tmp_path / "vague.sql")
    _check_file(tmp_path, "unexplained", "SELECT 1", extra="-- no_data: ok\n")
    with pytest.raises(BadInput, match="no_data must be"):
        health.parse(tmp_path / "unexplained.sql")


def test_declared_no_data_checks_are_the_ones_whose_silence_is_healthy() -> None:
    declared = {c.name for c in ALL if c.no_data_ok}
    assert declared == {
        "average_tables_per_booking",
        "fallback_mapping_rate",
        "lock_contention",
        "simplified_mode_adoption",
        "zone_lock_conflicts_per_day",
    }


# -- the bar checks (release mode-switching) ---------------------------------------------

USER = "33333333-3333-4333-8333-333333333333"
BAR = "44444444-4444-4444-8444-444444444444"


def _bar(url: str, sales: int, with_server: int) -> None:
    _sql(url, "INSERT INTO auth.users (id, email) VALUES (%s, 'server@example.com')", (USER,))
    _sql(
        url,
        "INSERT INTO bars (id, name, settings) VALUES (%s, 'B', "
        '\'{"operatingMode": "simplified"}\')',
        (BAR,),
    )
    _sql(
        url,
        "INSERT INTO sales (bar_id, total, server_id) SELECT %s, 1, "
        "CASE WHEN g <= %s THEN %s::uuid END FROM generate_series(1, %s) g",
        (BAR, with_server, USER, sales),
    )


def test_server_id_coverage_in_both_directions(db_url: str) -> None:
    _bar(db_url, 100, 99)
    assert (
        _run(db_url, "server_id_coverage_24h").status,
        _run(db_url, "server_id_coverage_24h").value,
    ) == ("ok", 99.0)
    _sql(
        db_url,
        "UPDATE sales SET server_id = NULL WHERE ctid IN "
        "(SELECT ctid FROM sales WHERE server_id IS NOT NULL LIMIT 3)",
    )
    assert _run(db_url, "server_id_coverage_24h").status == "warning"  # 96%
    _sql(
        db_url,
        "UPDATE sales SET server_id = NULL WHERE ctid IN "
        "(SELECT ctid FROM sales WHERE server_id IS NOT NULL LIMIT 10)",
    )
    assert _run(db_url, "server_id_coverage_24h").status == "critical"  # 86%


def test_orphaned_server_ids(db_url: str) -> None:
    _bar(db_url, 5, 5)
    assert _run(db_url, "orphaned_server_ids").status == "ok"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # ON DELETE SET NULL makes an orphan impossible; replica mode skips the FK triggers.
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM auth.users WHERE id = %s", (USER,))
    assert (
        _run(db_url, "orphaned_server_ids").status,
        _run(db_url, "orphaned_server_ids").value,
    ) == ("critical", 5.0)


def test_fallback_mapping_rate(db_url: str) -> None:
    empty = _run(db_url, "fallback_mapping_rate")  # nothing backfilled: nothing fell back
    assert (empty.status, empty.value, empty.empty) == ("ok", None, True)
    _sql(
        db_url,
        "INSERT INTO migration_server_id_log (table_name, row_id, fallback_used, "
        "fallback_reason) SELECT 'sales', gen_random_uuid(), g <= 2, "
        "CASE WHEN g <= 2 THEN 'no_mapping_used_creator' END "
        "FROM generate_series(1, 10) g",
    )
    assert _run(db_url, "fallback_mapping_rate").status == "warning"  # 20%


def test_rls_switched_off_on_a_protected_table(db_url: str) -> None:
    assert _run(db_url, "rls_enabled_on_protected_tables").status == "ok"
    _sql(db_url, "ALTER TABLE sales DISABLE ROW LEVEL SECURITY")
    result = _run(db_url, "rls_enabled_on_protected_tables")
    assert result.status == "critical" and result.rows == [{"tablename": "sales"}]


def test_operating_mode_index_usage(db_url: str) -> None:
    assert _run(db_url, "operating_mode_index_usage").value == 1.0
    _sql(db_url, "DROP INDEX idx_bars_operating_mode")
    assert _run(db_url, "operating_mode_index_usage").status == "critical"


def test_simplified_mode_adoption_is_a_plain_metric(db_url: str) -> None:
    _sql(
        db_url,
        "INSERT INTO bars (name, settings) VALUES ('a', '{\"operatingMode\": "
        "\"simplified\"}'), ('b', '{}'), ('c', '{}'), ('d', '{}')",
    )
    result = _run(db_url, "simplified_mode_adoption")
    assert (result.status, result.value) == ("ok", 25.0)


def test_requires_names_a_table_or_a_column_and_each_is_looked_up(
    db_url: str, tmp_path: Path
) -> None:
    """`requires:` items are read from the catalogs in one query for all the checks: a
    missing table or column makes only its own check not applicable."""
    for name, requires in (
        ("table_there", "public.bookings"),
        ("column_there", "public.bookings.end_at"),
        ("table_gone", "public.bookings, public.no_such_table"),
        ("column_gone", "public.bookings.no_such_column"),
        ("schema_gone", "nowhere.bookings"),
    ):
        _check_file(tmp_path, name, "SELECT 0", extra=f"-- requires: {requires}\n")
    by_name = {
        r.check.name: r
        for r in health.run_checks(Target(db_url, "tests"), health.load_checks(tmp_path))
    }
    assert {n for n, r in by_name.items() if r.applicable} == {"table_there", "column_there"}
    assert by_name["table_gone"].note == "not applicable: public.no_such_table missing"
    assert by_name["column_gone"].note == "not applicable: public.bookings.no_such_column missing"
    bad = tmp_path / "bad.sql"
    _check_file(tmp_path, "bad", "SELECT 0", extra="-- requires: bookings\n")
    with pytest.raises(BadInput, match=r"bad\.sql:1: requires 'bookings'"):
        health.parse(bad)
