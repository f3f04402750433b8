"""Release booking-observability (issue 19, seeds 000, 001, 004): the booking paths write
the events the seeds' checks read, whoever calls them. Each situation is produced from
SQL as the application produces it (auto_assign_booking() called directly as the API's
role, two sessions after the same zone, a state-machine walk) and the check's status and
value asserted."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.clihelpers import as_json, invoke
from tests.conftest import row_counts
from tests.queries import dict_of, row_at, rows_at, scalar
from tests.seating import assign_table
from tests.test_baseline_rules import _booking, _restaurant_with_tables
from toolkit.engine.migrate import RunOptions, run
from toolkit.integrity import health_checks as health
from toolkit.server.connection import Target
from toolkit.venue.assignment_coordinator import Coordinator
from toolkit.venue.flags import planner_options, resolve
from toolkit.venue.sample_data import load_booking_sample

SEEDS = Path(__file__).resolve().parent / "data" / "seeds"
CHECKS = {c.name: c for c in health.load_checks()}
ZONE_KEY = "hashtextextended('venuedb.zone:' || %s::text, 0)"


def _check(url: str, name: str) -> health.CheckResult:
    """The check over its own window (its `window:` header), as `venuedb check` runs it."""
    (result,) = health.run_checks(Target(url, "tests"), [CHECKS[name]])
    return result


def _options() -> dict:
    return planner_options(resolve({}, Path("/nonexistent/.env")))


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as connection:
        yield connection


def _app(url: str) -> psycopg.Connection:
    """A connection as the booking API: the service role, its own transactions."""
    connection = psycopg.connect(url)
    connection.execute("SET ROLE service_role")
    connection.commit()
    return connection


def _zone(conn: psycopg.Connection, restaurant: str) -> str:
    return str(
        scalar(
            conn,
            "SELECT zone_id FROM table_inventory WHERE restaurant_id = %s LIMIT 1",
            (restaurant,),
        )
    )


def _events(url: str, event_type: str) -> list[tuple]:
    return rows_at(
        url,
        "SELECT source, booking_id::text, context FROM observability_events "
        "WHERE event_type = %s ORDER BY id",
        (event_type,),
    )


# -- an empty window -----------------------------------------------------------------------


def test_an_empty_window_is_no_data_except_where_silence_is_the_healthy_answer(
    db_url: str,
) -> None:
    for name in ("assignment_success_rate", "assignment_latency", "coordinator_error_rate"):
        result = _check(db_url, name)
        assert (result.status, result.value, result.empty) == ("no_data", None, True), name
    assert _check(db_url, "success_error_ratio").status == "no_data"
    # Nothing ran, so nothing contended: ok, with a note saying why, and no value.
    for name in ("zone_lock_conflicts_per_day", "lock_contention"):
        result = _check(db_url, name)
        assert (result.status, result.value) == ("ok", None), name
        assert result.note and "fine for this check" in result.note


# -- point 1: auto_assign_booking() called directly ------------------------------------------


def test_direct_calls_are_counted_by_the_success_rate_and_latency(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        seated = [_booking(conn, restaurant, f"2030-01-0{d} 19:00+00", party=2) for d in (1, 2, 3)]
        unseatable = _booking(conn, restaurant, party=50)
        conn.commit()
    with _app(db_url) as app:
        results = []
        for booking in [*seated, unseatable]:
            results.append(scalar(app, "SELECT auto_assign_booking(%s)", (booking,)))
            app.commit()
        # Called again, a seated booking is skipped: not an assignment attempt.
        again = scalar(app, "SELECT auto_assign_booking(%s)", (seated[0],))
        app.commit()
        # A caller that rolls back leaves nothing: the attempt never happened.
        app.execute("SELECT auto_assign_booking(%s)", (unseatable,))
        app.rollback()
    assert [r["status"] for r in results] == ["confirmed"] * 3 + ["no_tables"]
    assert (again["status"], again["reason"]) == ("skipped", "not_pending")
    summaries = _events(db_url, "auto_assign.summary")
    assert [c["status"] for _, _, c in summaries] == [
        "confirmed",
        "confirmed",
        "confirmed",
        "no_tables",
        "skipped",
    ]
    assert all(s == "auto_assign" and c["function_version"] == 2 for s, _, c in summaries)
    assert [c["latency_ms"] for _, _, c in summaries] == [
        r["latency_ms"] for r in [*results, again]
    ]
    rate = _check(db_url, "assignment_success_rate")
    assert (rate.status, rate.value) == ("critical", 75.0)  # 3 of 4: seed 000 alerts < 80 %
    latency = _check(db_url, "assignment_latency")
    assert latency.status == "ok" and latency.value is not None
    expected = sum(r["latency_ms"] for r in results) / len(results) / 1000
    assert latency.value == pytest.approx(expected)


def test_zone_lock_contention_between_two_direct_calls_is_recorded_and_committed(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 4)
        bookings = [_booking(conn, restaurant, party=2) for _ in range(4)]
        zone = _zone(conn, restaurant)
        conn.commit()
    assert _check(db_url, "zone_lock_conflicts_per_day").value is None
    short = Jsonb({"zone_lock_wait_ms": 50})
    with _app(db_url) as first, _app(db_url) as second:
        for pair in (bookings[:2], bookings[2:]):
            # The first seats its booking and holds the zone's lock until it commits.
            held = scalar(first, "SELECT auto_assign_booking(%s)", (pair[0],))
            assert held["status"] == "confirmed"
            waited = scalar(second, "SELECT auto_assign_booking(%s, %s)", (pair[1], short))
            second.commit()
            first.commit()
            assert (waited["status"], waited["reason"]) == ("conflict", "zone_locked")
            assert waited["zone_lock_conflicts"] == 3  # one per attempt
            if pair == bookings[:2]:
                once = _check(db_url, "zone_lock_conflicts_per_day")
                assert (once.status, once.value) == ("ok", 3.0)
    conflicts = _events(db_url, "zone_lock_conflict")
    assert len(conflicts) == 6
    assert {(s, b, c["zone_id"], c["outcome"]) for s, b, c in conflicts} == {
        ("auto_assign", str(bookings[1]), zone, "timed_out"),
        ("auto_assign", str(bookings[3]), zone, "timed_out"),
    }
    result = _check(db_url, "zone_lock_conflicts_per_day")
    assert (result.status, result.value) == ("warning", 6.0)  # seed 000: alert > 5 a day
    # The contended bookings wait for the next run; the summary says why.
    statuses = [
        (c["status"], c.get("reason")) for _, _, c in _events(db_url, "auto_assign.summary")
    ]
    assert statuses.count(("conflict", "zone_locked")) == 2


def test_a_zone_lock_granted_after_a_wait_is_a_conflict_that_still_seats(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        first_booking, second_booking = (_booking(conn, restaurant, party=2) for _ in range(2))
        conn.commit()
    with _app(db_url) as first, _app(db_url) as second:
        first.execute("SELECT auto_assign_booking(%s)", (first_booking,))
        result: dict = {}

        def wait() -> None:
            result.update(scalar(second, "SELECT auto_assign_booking(%s)", (second_booking,)))
            second.commit()

        waiter = threading.Thread(target=wait)
        waiter.start()
        _until_waiting_on_an_advisory_lock(db_url)
        first.commit()
        waiter.join(timeout=30)
    assert result["status"] == "confirmed" and result["zone_lock_conflicts"] == 1
    ((_, _, conflict),) = _events(db_url, "zone_lock_conflict")
    assert conflict["outcome"] == "acquired"


def _until_waiting_on_an_advisory_lock(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as watcher:
        for _ in range(600):
            if scalar(
                watcher,
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            ):
                return
            time.sleep(0.05)
    raise AssertionError("nobody waited for the zone's lock")


def test_a_deadlock_while_waiting_for_the_zone_is_recorded_not_raised(db_url: str) -> None:
    """v1 waited for the zone without bound: the deadlock error rolled back the caller's
    transaction, and the zone_lock_conflict event with it. v2 catches it in a
    subtransaction and commits the conflict with the outcome."""
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        booking = _booking(conn, restaurant, party=2)
        zone = _zone(conn, restaurant)
        conn.commit()
    with psycopg.connect(db_url) as holder, _app(db_url) as app:
        # The application's session is the one whose deadlock check finds the cycle.
        holder.execute("SET deadlock_timeout = '60s'")
        holder.execute(f"SELECT pg_advisory_xact_lock({ZONE_KEY})", (zone,))
        result: dict = {}

        def assign() -> None:
            options = Jsonb({"max_attempts": 1, "zone_lock_wait_ms": 60000})
            result.update(scalar(app, "SELECT auto_assign_booking(%s, %s)", (booking, options)))
            app.commit()

        caller = threading.Thread(target=assign)
        caller.start()
        _until_waiting_on_an_advisory_lock(db_url)
        # The holder now wants the booking the application has locked: a cycle.
        holder.execute("SELECT 1 FROM bookings WHERE id = %s FOR UPDATE", (booking,))
        caller.join(timeout=60)
        holder.rollback()
    assert (result["status"], result["reason"]) == ("conflict", "zone_locked")
    ((source, _, conflict),) = _events(db_url, "zone_lock_conflict")
    assert (source, conflict["outcome"], conflict["zone_id"]) == ("auto_assign", "deadlock", zone)
    assert [c["status"] for _, _, c in _events(db_url, "auto_assign.summary")] == ["conflict"]
    assert _check(db_url, "zone_lock_conflicts_per_day").value == 1.0


def test_a_bad_zone_lock_wait_is_refused_and_writes_nothing(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 1)
        booking = _booking(conn, restaurant, party=2)
        conn.commit()
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="zone_lock_wait_ms"):
            conn.execute(
                "SELECT auto_assign_booking(%s, %s)", (booking, Jsonb({"zone_lock_wait_ms": -1}))
            )
    assert _events(db_url, "auto_assign.summary") == []


# -- point 1: the V3 coordinator -------------------------------------------------------------


def test_the_coordinator_records_a_busy_zone_in_its_own_transaction(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, psycopg.connect(db_url, autocommit=True) as other:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        booking = _booking(conn, restaurant, party=2)
        zone = _zone(conn, restaurant)
        conn.commit()
        other.execute(f"SELECT pg_advisory_lock({ZONE_KEY})", (zone,))
        delays: list[float] = []
        outcome = Coordinator(conn, _options(), zone_lock_retries=2, sleep=delays.append).process(
            booking
        )
        assert (outcome.status, outcome.reason, outcome.zone_lock_conflicts) == (
            "noop",
            "zone_locked",
            3,
        )
        # Each miss rolled its attempt back: the booking waits, untouched, for the next run.
        assert conn.execute(
            "SELECT status, assignment_state FROM bookings WHERE id = %s", (booking,)
        ).fetchone() == ("pending", "created")
        kinds = [
            (e, c.get("reason"))
            for e, c in conn.execute(
                "SELECT event_type, context FROM observability_events "
                "WHERE source = 'assignment.coordinator' AND booking_id = %s ORDER BY id",
                (booking,),
            ).fetchall()
        ]
        assert kinds == [
            ("coordinator.start", None),
            ("zone_lock_conflict", "zone_locked"),
            ("coordinator.retry", "zone_locked"),
            ("zone_lock_conflict", "zone_locked"),
            ("coordinator.retry", "zone_locked"),
            ("zone_lock_conflict", "zone_locked"),
        ]
        assert len(delays) == 2
        result = _check(db_url, "zone_lock_conflicts_per_day")
        assert (result.status, result.value) == ("ok", 3.0)

        # The zone frees during the back-off: one conflict, then the booking is seated.
        other.execute(f"SELECT pg_advisory_lock({ZONE_KEY})", (zone,))

        def free_the_zone(_: float) -> None:  # the back-off's sleep
            other.execute("SELECT pg_advisory_unlock_all()")

        released = Coordinator(conn, _options(), sleep=free_the_zone).process(booking)
        assert (released.status, released.zone_lock_conflicts) == ("confirmed", 1)
    result = _check(db_url, "zone_lock_conflicts_per_day")
    assert (result.status, result.value) == ("ok", 4.0)


STEAL_ONCE = """
CREATE FUNCTION test_steal_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The first hold loses its race: a rival allocation appears on the held table.
    IF NOT EXISTS (SELECT 1 FROM allocations WHERE booking_id IS NULL) THEN
        INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window")
        SELECT h.restaurant_id, 'table', NEW.table_id, tstzrange(h.start_at, h.end_at)
        FROM table_holds h WHERE h.id = NEW.hold_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_steal_once AFTER INSERT ON table_hold_members
FOR EACH ROW EXECUTE FUNCTION test_steal_once();
"""


def test_the_coordinators_latency_runs_from_its_first_attempt(conn: psycopg.Connection) -> None:
    restaurant, _ = _restaurant_with_tables(conn, 2)
    booking = _booking(conn, restaurant, party=2)
    conn.execute(STEAL_ONCE)
    conn.commit()
    outcome = Coordinator(conn, _options(), base_delay_ms=200).process(booking)
    assert outcome.status == "confirmed" and outcome.retries == 1
    events = dict_of(
        conn,
        "SELECT event_type, context FROM observability_events "
        "WHERE source = 'assignment.coordinator' AND booking_id = %s",
        (booking,),
    )
    confirmed, retry = events["coordinator.confirmed"], events["coordinator.retry"]
    assert confirmed["attempt"] == 2
    # The back-off before the second attempt is part of the booking's latency.
    assert confirmed["latency_ms"] >= retry["delay_ms"]


def test_the_coordinators_outcomes_feed_the_success_rate_and_latency(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        seated = _booking(conn, restaurant, party=2)
        unseatable = _booking(conn, restaurant, party=50)
        conn.commit()
        coordinator = Coordinator(conn, _options())
        assert coordinator.process(seated).status == "confirmed"
        assert coordinator.process(unseatable).status == "manual_review"
    rate = _check(db_url, "assignment_success_rate")
    assert (rate.status, rate.value) == ("critical", 50.0)
    latency = _check(db_url, "assignment_latency")
    assert latency.status == "ok" and latency.value is not None  # both outcomes timed


def test_a_missed_booking_lock_is_counted_by_lock_contention(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, psycopg.connect(db_url, autocommit=True) as other:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        contended, free = (_booking(conn, restaurant, party=2) for _ in range(2))
        conn.commit()
        assert Coordinator(conn, _options()).process(free).status == "confirmed"
        quiet = _check(db_url, "lock_contention")
        assert (quiet.status, quiet.value) == ("ok", 0.0)  # it ran: 0 is a measurement
        other.execute(
            "SELECT pg_advisory_lock(hashtextextended('venuedb.booking:' || %s, 0))",
            (contended,),
        )
        for _ in range(11):
            assert Coordinator(conn, _options()).process(contended).reason == "lock_contention"
    result = _check(db_url, "lock_contention")
    assert (result.status, result.value) == ("warning", 11.0)


def test_coordinator_errors_fire_panel_3_within_its_five_minute_window(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        booking = _booking(conn, restaurant, party=2)
        conn.commit()
        # A planner option it cannot read: an unexpected exception, recorded.
        assert Coordinator(conn, {"k_max": "lots"}).process(booking).status == "error"
    result = _check(db_url, "coordinator_error_rate")
    # coordinator.start and coordinator.error: the attempt's transitions were rolled back.
    assert (result.status, result.value) == ("critical", 50.0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE observability_events SET created_at = now() - interval '6 minutes'")
    assert _check(db_url, "coordinator_error_rate").status == "no_data"


# -- point 2: seed 004's success/error ratio, the seed's SQL unchanged -------------------------


def _seed_ratio_sql() -> str:
    text = (SEEDS / "004_6c0e435a77247233.txt").read_text(encoding="utf-8")
    (query,) = [q for q in re.findall(r"```sql\n(.*?)```", text, re.S) if "Success/error" in q]
    return query


def _walk(app: psycopg.Connection, booking: str, steps: list[tuple[str, str]]) -> None:
    """Move a booking through the state machine as the application does: the reason in
    venuedb.assignment_reason, then the UPDATE, one transaction."""
    for state, reason in steps:
        app.execute("SELECT set_config('venuedb.assignment_reason', %s, true)", (reason,))
        app.execute("UPDATE bookings SET assignment_state = %s WHERE id = %s", (state, booking))


def test_seed_004s_own_query_counts_only_the_failures(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, tables = _restaurant_with_tables(conn, 2)
        confirmed = _booking(conn, restaurant, "2030-01-01 19:00+00", party=2)
        escalated = _booking(conn, restaurant, "2030-01-02 19:00+00", party=2)
        conn.commit()
    forward = [
        ("capacity_verified", "capacity_ok"),
        ("tables_planned", "planned"),
        ("tables_held", "hold_placed"),
    ]
    with _app(db_url) as app:
        _walk(app, confirmed, forward)
        assign_table(app, confirmed, tables[0])
        app.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (confirmed,))
        _walk(app, confirmed, [("confirmed", "confirmed")])
        app.commit()
        _walk(
            app,
            escalated,
            [
                *forward,
                ("capacity_verified", "conflict"),  # the hold lost its race
                ("manual_review", "retries_exhausted"),
            ],
        )
        app.commit()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(_seed_ratio_sql()).fetchall()
        assert rows == [("booking.assignment_state_transition", 9, 7, 2)]
        # Seed 001's "High manual review rate" still finds the reason of the escalation.
        manual = conn.execute(
            "SELECT context->>'reason' AS reason, COUNT(*) AS count FROM observability_events "
            "WHERE source = 'assignment.state_machine' AND context->>'to' = 'manual_review' "
            "AND created_at > NOW() - INTERVAL '24 hours' GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        assert manual == [("retries_exhausted", 1)]
    ratio = _check(db_url, "success_error_ratio")
    assert ratio.status == "warning" and ratio.value == pytest.approx(700 / 9)


def test_a_clean_coordinator_run_passes_the_graduation_gate(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 4)
        bookings = [_booking(conn, restaurant, f"2030-01-0{d} 19:00+00", party=2) for d in (1, 2)]
        conn.commit()
        coordinator = Coordinator(conn, _options())
        assert {coordinator.process(b).status for b in bookings} == {"confirmed"}
        totals = {r[0]: r[1:] for r in conn.execute(_seed_ratio_sql()).fetchall()}
    # Every event of a clean run is a success: start, four transitions, confirmed.
    assert totals == {
        "booking.assignment_state_transition": (8, 8, 0),
        "coordinator.confirmed": (2, 2, 0),
        "coordinator.start": (2, 2, 0),
    }
    ratio = _check(db_url, "success_error_ratio")
    assert (ratio.status, ratio.value) == ("ok", 100.0)


# -- the revisions, down and up on a database with data ---------------------------------------


def _versions(url: str) -> tuple[str, str]:
    return row_at(
        url,
        "SELECT obj_description('public.auto_assign_booking(uuid, jsonb)'::regprocedure, "
        "'pg_proc'), obj_description("
        "'public.enforce_assignment_state_transition()'::regprocedure, 'pg_proc')",
    )


def _summaries(url: str) -> int:
    with psycopg.connect(url) as conn:
        return scalar(
            conn,
            "SELECT count(*) FROM observability_events WHERE event_type = 'auto_assign.summary'",
        )


def test_the_release_goes_down_and_up_with_data_and_assign_counts_each_booking_once(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:
        load_booking_sample(conn, restaurants=2, days=2, seed=5)
        conn.commit()
    target, options = Target(db_url, "tests"), RunOptions(actor="tests")
    assert _versions(db_url) == ("venuedb:version=2", "venuedb:version=3")
    counts = row_counts(db_url)
    run(target, "downgrade", "booking_013", options)
    assert _versions(db_url) == ("venuedb:version=1", "venuedb:version=2")
    assert row_counts(db_url) == counts
    # v1 writes no summary: `venuedb assign` writes it, once per booking.
    before = invoke("assign", "--limit", "3", "--database-url", db_url, "--json")
    assert as_json(before)["considered"] == 3 and _summaries(db_url) == 3
    run(target, "upgrade", "booking_016", options)
    assert _versions(db_url) == ("venuedb:version=2", "venuedb:version=3")
    after = invoke("assign", "--limit", "3", "--database-url", db_url, "--json")
    assert as_json(after)["considered"] == 3 and _summaries(db_url) == 6  # the function's
    run(target, "downgrade", "booking_013", options)
    run(target, "upgrade", "heads", options)
    assert _versions(db_url) == ("venuedb:version=2", "venuedb:version=3")
    report = as_json(
        invoke("verify", "--release", "booking-observability", "--database-url", db_url, "--json")
    )
    assert all(p["ok"] for p in report["postconditions"]), report["postconditions"]


def test_time_bucket_bins_as_timescaledb_does(db_url: str) -> None:
    """Seed 001's panels call time_bucket(): where TimescaleDB is absent, ours bins the same,
    weeks included (they start on Monday, TimescaleDB's origin 2000-01-03)."""
    with psycopg.connect(db_url) as conn:
        for width, at, bucket in (
            ("15 minutes", "2026-03-04 10:07:30+00", "2026-03-04 10:00+00"),
            ("1 hour", "2026-03-04 10:59:59+00", "2026-03-04 10:00+00"),
            ("7 days", "2026-03-04 12:00+00", "2026-03-02 00:00+00"),  # a Wednesday: Monday's
        ):
            assert scalar(
                conn,
                "SELECT time_bucket(%s::interval, %s::timestamptz) = %s::timestamptz",
                (width, at, bucket),
            ), (width, at)
