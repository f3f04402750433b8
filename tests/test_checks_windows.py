"""Check windows (issue 19, point 2): each check looks back over its own window, set per
check inside its savepoint; `--window` overrides them all, `--days N` is `--window Nd`;
bad durations are refused before anything runs. And confirmation_rate is seed 001's
formula, with the project's formula beside it under its own name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import one, scalar
from tests.seating import RESTAURANT, add_floor, assign_table
from toolkit.errors import BadInput
from toolkit.integrity import health_checks as health
from toolkit.server.connection import Target

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


def _book(url: str, count: int) -> list[str]:
    """Bookings as the application makes them: inserted pending, created now."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            str(
                scalar(
                    conn,
                    "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, "
                    "end_at) VALUES (%s, 2, current_date, now() + make_interval(hours => %s), "
                    "now() + make_interval(hours => %s + 2)) RETURNING id",
                    (RESTAURANT, 24 + i * 3, 24 + i * 3),
                )
            )
            for i in range(count)
        ]


def _seat(url: str, booking: str, table: str) -> None:
    """Assign the table with its allocation and confirm, in one transaction."""
    with psycopg.connect(url) as conn:
        assign_table(conn, booking, table)
        conn.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (booking,))


def _status(url: str, bookings: list[str], status: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE bookings SET status = %s WHERE id = ANY(%s::uuid[])", (status, bookings)
        )


def _check(url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("check", *args, "--database-url", url, "--json")
    return result.exit_code, as_json(result)


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["checks"]}


# -- confirmation_rate: the seed's formula, and the project's beside it -----------------------


def test_the_two_confirmation_rates_read_the_same_bookings_differently(db_url: str) -> None:
    """Ten bookings made now: 5 confirmed, 1 checked in, 1 completed, 2 cancelled, 1 still
    pending. Seed 001 counts only 'confirmed' over all ten: 50 %, critical (< 90 %). The
    project's formula counts the seated ones over the eight not cancelled: 87.5 %."""
    tables = add_floor(db_url, 7)
    bookings = _book(db_url, 10)
    for booking, table in zip(bookings[:7], tables, strict=True):
        _seat(db_url, booking, table)
    _status(db_url, bookings[5:7], "checked_in")  # the guests arrived
    _status(db_url, bookings[6:7], "completed")  # and one party has left
    _status(db_url, bookings[7:9], "cancelled")
    code, document = _check(db_url, "confirmation_rate", "confirmation_rate_excluding_cancelled")
    checks = _by_name(document)
    seed = checks["confirmation_rate"]
    assert (seed["status"], seed["value"], seed["window"]) == ("critical", 50.0, "5m")
    assert seed["thresholds"] == {"warning": "< 95", "critical": "< 90"}
    assert seed["for"] == "10m"
    project = checks["confirmation_rate_excluding_cancelled"]
    assert (project["status"], project["value"], project["window"]) == ("ok", 87.5, "1d")
    assert project["thresholds"] == {"warning": None, "critical": None}  # information only
    assert (code, document["status"]) == (1, "critical")


def test_seed_formula_is_ok_when_the_new_bookings_are_confirmed(db_url: str) -> None:
    tables = add_floor(db_url, 10)
    bookings = _book(db_url, 10)
    for booking, table in zip(bookings, tables, strict=True):
        _seat(db_url, booking, table)
    code, document = _check(db_url, "confirmation_rate")
    assert (code, _by_name(document)["confirmation_rate"]["value"]) == (0, 100.0)
    _status(db_url, bookings[:1], "cancelled")  # one in ten cancels: 90 %, a warning
    code, document = _check(db_url, "confirmation_rate")
    rate = _by_name(document)["confirmation_rate"]
    assert (code, rate["status"], rate["value"]) == (0, "warning", 90.0)


# -- windows ------------------------------------------------------------------------------


def _age(url: str, table: str, minutes: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {table} SET created_at = now() - make_interval(mins => %s)", (minutes,)
        )


def test_a_booking_20_minutes_old_is_outside_10m_and_inside_1h(db_url: str) -> None:
    add_floor(db_url, 1)
    _book(db_url, 1)  # pending: 0 % confirmed
    _age(db_url, "bookings", 20)
    code, document = _check(db_url, "confirmation_rate", "--window", "10m")
    rate = _by_name(document)["confirmation_rate"]
    assert (code, rate["status"], rate["value"], rate["window"]) == (5, "no_data", None, "10m")
    assert document["window_override"] == "10m"
    code, document = _check(db_url, "confirmation_rate", "--window", "1h")
    rate = _by_name(document)["confirmation_rate"]
    assert (code, rate["status"], rate["value"], rate["window"]) == (1, "critical", 0.0, "1h")
    assert rate["window_seconds"] == 3600
    # Its own window, 5 minutes: nothing; --days 1 is --window 1d: the booking.
    code, document = _check(db_url, "confirmation_rate")
    assert (code, _by_name(document)["confirmation_rate"]["window"]) == (5, "5m")
    assert document["window_override"] is None
    code, document = _check(db_url, "confirmation_rate", "--days", "1")
    rate = _by_name(document)["confirmation_rate"]
    assert (code, rate["window"], rate["value"]) == (1, "1d", 0.0)


def test_an_event_20_minutes_old_is_outside_10m_and_inside_1h(db_url: str) -> None:
    add_floor(db_url, 1)
    (booking,) = _book(db_url, 1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO observability_events (source, event_type, booking_id) SELECT "
            "'assignment.state_machine', 'booking.assignment_state_transition', %s "
            "FROM generate_series(1, 3)",
            (booking,),
        )
    _age(db_url, "observability_events", 20)
    name = "shadow_mode_event_volume"
    code, document = _check(db_url, name, "--window", "10m")
    volume = _by_name(document)[name]
    assert (code, volume["status"], volume["value"]) == (5, "no_data", None)
    code, document = _check(db_url, name, "--window", "1h")
    volume = _by_name(document)[name]
    assert (code, volume["status"], volume["value"], volume["window"]) == (0, "ok", 3.0, "1h")
    code, document = _check(db_url, name)  # its own window is seed 001's hour
    assert _by_name(document)[name]["window"] == "1h" and code == 0


def test_each_check_runs_with_its_own_window_in_one_run(db_url: str) -> None:
    """One transaction, two checks, two windows: the 5-minute one sees nothing of a booking
    20 minutes old, the 1-day one sees it."""
    add_floor(db_url, 1)
    _book(db_url, 1)
    _age(db_url, "bookings", 20)
    code, document = _check(db_url, "confirmation_rate", "confirmation_rate_excluding_cancelled")
    checks = _by_name(document)
    assert (checks["confirmation_rate"]["status"], checks["confirmation_rate"]["window"]) == (
        "no_data",
        "5m",
    )
    project = checks["confirmation_rate_excluding_cancelled"]
    assert (project["value"], project["window"]) == (0.0, "1d")
    assert code == 5


def test_checks_without_a_window_say_so_and_ignore_window(db_url: str) -> None:
    code, document = _check(db_url, "orphaned_confirmed_bookings", "--window", "10m")
    orphans = _by_name(document)["orphaned_confirmed_bookings"]
    assert (code, orphans["status"], orphans["window"], orphans["value"]) == (0, "ok", None, 0)


def test_table_output_shows_each_window(db_url: str) -> None:
    result = invoke(
        "check", "confirmation_rate", "orphaned_confirmed_bookings", "--database-url", db_url
    )
    assert "each over its own window" in result.stdout
    assert "5m" in result.stdout and "all rows" in result.stdout
    override = invoke("check", "confirmation_rate", "--window", "2h", "--database-url", db_url)
    assert "window 2h for every check" in override.stdout and "2h" in override.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--window", "0m"],
        ["--window", "10"],
        ["--window", "10x"],
        ["--window=-5m"],
        ["--window", "1.5h"],
        ["--window", "ten minutes"],
        ["--window", "36501d"],
        ["--window", "10m", "--days", "1"],
        ["--days", "0"],
        ["--days=-1"],
    ],
)
def test_a_bad_window_is_bad_input_and_nothing_runs(args: list[str]) -> None:
    """Refused before any connection: the URL below would fail to connect, and the error
    is about the window, not the database."""
    result = invoke("check", *args, "--database-url", UNREACHABLE, "--json")
    document = as_json(result)
    assert (result.exit_code, document["status"]) == (2, "bad_input"), result.output
    assert "--window" in document["error"] or "--days" in document["error"]
    assert "connect" not in document["error"]


def test_list_shows_windows_and_for() -> None:
    listed = {c["name"]: c for c in as_json(invoke("check", "--list", "--json"))["checks"]}
    assert (listed["confirmation_rate"]["window"], listed["confirmation_rate"]["for"]) == (
        "5m",
        "10m",
    )
    assert listed["manual_review_rate"]["window"] == "1d"
    assert listed["orphaned_confirmed_bookings"]["window"] is None
    explained = as_json(invoke("check", "--explain", "confirmation_rate", "--json"))
    assert (explained["window"], explained["for"]) == ("5m", "10m")
    assert "--window" in invoke("check", "--help").stdout


# -- the headers and the runner ---------------------------------------------------------------

HEADER = (
    "-- name: {0}\n-- domain: core\n-- severity: warning\n-- unit: n\n-- returns: value\n"
    "{1}-- description: d\n-- runbook: r\n"
)


def _file(directory: Path, name: str, sql: str, extra: str = "") -> Path:
    path = directory / f"{name}.sql"
    path.write_text(HEADER.format(name, extra) + sql)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("-- window: 10x\n", r"w\.sql:6: window: '10x' is not a duration"),
        ("-- window: 0m\n", r"w\.sql:6: window: '0m' must be positive"),
        ("-- window: 10\n", r"w\.sql:6: window: '10' is not a duration"),
        ("-- for: soon\n", r"w\.sql:6: for: 'soon' is not a duration"),
        ("-- for: -1m\n", r"w\.sql:6: for: '-1m' is not a duration"),
    ],
)
def test_a_bad_duration_header_names_the_file_and_line(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = _file(tmp_path, "w", "SELECT current_setting('venuedb.lookback')::interval", extra)
    with pytest.raises(BadInput, match=message):
        health.parse(path)


def test_a_window_header_on_a_query_that_reads_none_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "w", "SELECT 1", "-- window: 10m\n")
    with pytest.raises(BadInput, match=r"w\.sql:1: window: 10m but the query never reads"):
        health.parse(path)
    fine = health.parse(_file(tmp_path, "f", "SELECT 1", "-- for: 0s\n"))
    assert (fine.for_.text, fine.effective_window()) == ("0s", None)


def _measured(result: health.CheckResult) -> tuple[float | None, str]:
    """A check's value and the window it looked back over (it must have one)."""
    assert result.window is not None, result.check.name
    return result.value, result.window.text


def test_both_settings_are_set_per_check_for_files_not_yet_converted(
    db_url: str, tmp_path: Path
) -> None:
    """venuedb.lookback for converted files, venuedb.days (the window rounded up to whole
    days, at least 1) for files that still read it: both set inside each check's
    savepoint, and the window shown is the one the query really used."""
    _file(
        tmp_path,
        "a_window",
        "SELECT extract(epoch FROM current_setting('venuedb.lookback')::interval)",
        "-- window: 5m\n",
    )
    _file(tmp_path, "b_days", "SELECT current_setting('venuedb.days')::int")
    _file(
        tmp_path,
        "c_window_default",
        "SELECT extract(epoch FROM current_setting('venuedb.lookback')::interval)",
    )
    checks = health.load_checks(tmp_path)
    target = Target(db_url, "tests")
    own = {r.check.name: r for r in health.run_checks(target, checks)}
    assert _measured(own["a_window"]) == (300.0, "5m")
    assert _measured(own["b_days"]) == (1.0, "1d")
    assert _measured(own["c_window_default"]) == (86400, "1d")
    wide = health.parse_duration("36h", what="test")
    over = {r.check.name: r for r in health.run_checks(target, checks, window=wide)}
    assert _measured(over["a_window"]) == (129600.0, "36h")
    assert _measured(over["b_days"]) == (2.0, "2d")  # rounded up
    short = health.parse_duration("10m", what="test")
    over = {r.check.name: r for r in health.run_checks(target, checks, window=short)}
    assert _measured(over["b_days"]) == (1.0, "1d")  # at least 1
    alias = {r.check.name: r for r in health.run_checks(target, checks, days=3)}
    assert alias["a_window"].value == 3 * 86400.0
    with pytest.raises(BadInput, match="not both"):
        health.run_checks(target, checks, window=short, days=3)


# -- confirmation_conflicts: the overlap errors seed 003 alerts on ---------------------------


def test_a_confirmation_refused_for_a_taken_table_is_counted(db_url: str) -> None:
    """Two bookings at the same time want one table: the first is seated, the second's
    hold is confirmed through confirm_hold_assignment_tx as the application does, and
    refused. The database records the refusal; the check counts it in its hour."""
    (table,) = add_floor(db_url, 1)
    first, second = _book(db_url, 2)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE bookings SET start_at = b.start_at, end_at = b.end_at FROM bookings b "
            "WHERE b.id = %s AND bookings.id = %s",
            (first, second),
        )
    _seat(db_url, first, table)
    code, document = _check(db_url, "confirmation_conflicts")
    quiet = _by_name(document)["confirmation_conflicts"]
    assert (code, quiet["status"], quiet["value"], quiet["window"]) == (0, "ok", 0, "1h")
    with psycopg.connect(db_url, autocommit=True) as conn:
        hold = scalar(
            conn,
            "INSERT INTO table_holds (restaurant_id, booking_id, start_at, end_at, expires_at) "
            "SELECT restaurant_id, id, start_at, end_at, now() + interval '10 minutes' "
            "FROM bookings WHERE id = %s RETURNING id",
            (second,),
        )
        conn.execute(
            "INSERT INTO table_hold_members (hold_id, table_id) VALUES (%s, %s)", (hold, table)
        )
        (confirmed,) = one(
            conn, "SELECT confirmed FROM confirm_hold_assignment_tx(%s, %s)", (hold, second)
        )
    assert confirmed is False
    code, document = _check(db_url, "confirmation_conflicts")
    fired = _by_name(document)["confirmation_conflicts"]
    assert (code, fired["status"], fired["value"]) == (0, "warning", 1)
    with psycopg.connect(db_url, autocommit=True) as conn:  # an hour later: out of its window
        conn.execute(
            "UPDATE booking_confirmation_results SET checked_at = now() - interval '61 minutes'"
        )
    code, document = _check(db_url, "confirmation_conflicts")
    assert _by_name(document)["confirmation_conflicts"]["value"] == 0
