"""Kill switches are total (issue 18, point 4): a flag set false stops its feature for every
restaurant whatever the per-restaurant rollout says; a rollout of a flag that no code path
reads per restaurant is refused; seed 000's gradual rollout walks end to end."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import scalar
from tests.test_baseline_rules import _booking, _restaurant_with_tables

V3 = "FEATURE_ASSIGNMENT_PIPELINE_V3"


def _one_restaurant(db_url: str) -> tuple[str, str]:
    """(slug, booking) of a fresh restaurant with one pending booking."""
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 2)
        booking = _booking(conn, restaurant, party=2)
        slug = scalar(conn, "SELECT slug FROM restaurants WHERE id = %s", (restaurant,))
    return slug, str(booking)


def _went_v3(db_url: str, booking: str) -> bool:
    with psycopg.connect(db_url) as conn:
        return (
            scalar(
                conn,
                "SELECT count(*) FROM observability_events WHERE booking_id = %s "
                "AND source = 'assignment.coordinator' AND event_type = 'coordinator.start'",
                (booking,),
            )
            > 0
        )


def test_feature_enabled_for_answers_from_the_rollout_row(db_url: str) -> None:
    """The per-restaurant answer the flags' code paths ask the database for: no rollout
    row, 0 % and an unlisted restaurant say no; a listed restaurant and 100 % say yes."""
    with psycopg.connect(db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn, 1)

        def enabled() -> bool:
            return bool(scalar(conn, "SELECT feature_enabled_for(%s, %s)", (V3, restaurant)))

        assert not enabled()
        conn.execute("INSERT INTO feature_rollouts (flag, percentage) VALUES (%s, 0)", (V3,))
        assert not enabled()
        conn.execute("UPDATE feature_rollouts SET restaurant_ids = ARRAY[%s::uuid]", (restaurant,))
        assert enabled()
        conn.execute("UPDATE feature_rollouts SET restaurant_ids = '{}', percentage = 100")
        assert enabled()


def test_a_listed_restaurant_takes_no_v3_when_the_flag_is_false(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug, booking = _one_restaurant(db_url)
    added = invoke("flags", "rollout", V3, "--add", slug, "--database-url", db_url)
    assert added.exit_code == 0, added.output
    monkeypatch.setenv(V3, "false")
    result = invoke("assign", "--database-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    assert as_json(result)["paths"] == {"legacy": 1}
    assert not _went_v3(db_url, booking)


def test_the_kill_switch_wins_over_any_percentage_and_says_so(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug, booking = _one_restaurant(db_url)
    invoke("flags", "rollout", V3, "--percent", "100", "--add", slug, "--database-url", db_url)
    monkeypatch.setenv(V3, "false")
    shown = invoke("flags", "rollout", "--database-url", db_url, "--json")
    assert shown.exit_code == 0, shown.output
    (entry,) = [e for e in as_json(shown)["rollouts"] if e["flag"] == V3]
    assert entry["state"] == "off" and entry["enabled_restaurants"] == 0
    assert entry["selected_restaurants"] == entry["total_restaurants"] >= 1
    assert any("off for every restaurant" in w for w in as_json(shown)["warnings"])
    text = invoke("flags", "rollout", "--database-url", db_url)
    assert "false (off everywhere)" in text.output and f"0 of {entry['total_restaurants']}" in (
        text.output
    )
    listing = invoke("flags", "--database-url", db_url, "--json")
    assert any(V3 in w and "off for every restaurant" in w for w in as_json(listing)["warnings"])
    result = invoke("assign", "--database-url", db_url, "--json")
    assert as_json(result)["paths"] == {"legacy": 1} and not _went_v3(db_url, booking)
    # The same rollout with the flag true: V3.
    monkeypatch.setenv(V3, "true")
    _, second = _one_restaurant(db_url)
    assert as_json(invoke("assign", "--database-url", db_url, "--json"))["paths"] == {"v3": 1}
    assert _went_v3(db_url, second)


@pytest.mark.parametrize("flag", ["FEATURE_ALLOCATOR_K_MAX", "SHOW_SWITCHING_MODE_UI"])
def test_a_rollout_of_a_flag_nothing_reads_per_restaurant_is_refused(
    db_url: str, flag: str
) -> None:
    slug, _ = _one_restaurant(db_url)
    result = invoke("flags", "rollout", flag, "--add", slug, "--database-url", db_url)
    assert result.exit_code == 2, result.output
    assert "no code path reads it per restaurant" in result.stderr
    assert V3 in result.stderr and "FEATURE_COMBINATION_PLANNER" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    unknown = invoke("flags", "rollout", "FEATURE_NOPE", "--percent", "5", "--database-url", db_url)
    assert unknown.exit_code == 2 and V3 in unknown.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM feature_rollouts").fetchone() == (0,)


def test_an_existing_rollout_row_of_such_a_flag_is_shown_as_ignored(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO feature_rollouts (flag, percentage) VALUES ('FEATURE_ALLOCATOR_K_MAX', 40)"
        )
    listing = invoke("flags", "--database-url", db_url, "--json")
    assert listing.exit_code == 0, listing.output
    (warning,) = [w for w in as_json(listing)["warnings"] if "FEATURE_ALLOCATOR_K_MAX" in w]
    assert "is ignored" in warning
    text = invoke("flags", "--database-url", db_url)
    assert "warning:" in text.output and "is ignored" in text.output
    shown = invoke("flags", "rollout", "--database-url", db_url, "--json")
    (entry,) = [e for e in as_json(shown)["rollouts"] if e["flag"] == "FEATURE_ALLOCATOR_K_MAX"]
    assert entry["state"] == "ignored" and entry["enabled_restaurants"] is None


# -- seed 000's gradual rollout, walked with the runbooks' own commands ----------------------

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
WALKS = {
    "FEATURE_COMBINATION_PLANNER": "table-combinations.md",
    V3: "assignment-pipeline-v3.md",
}


def _gradual_commands(runbook: str) -> list[list[str]]:
    """The `$ ...` lines of the console block of the runbook's "Gradual rollout" section."""
    text = (RUNBOOKS / runbook).read_text(encoding="utf-8")
    section = text.split("\n## Gradual rollout", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.S)
    return [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]


def _restaurants(db_url: str, count: int) -> list[tuple[str, str]]:
    """(id, slug) of `count` restaurants with two movable 4-tops each: a party of 6 needs
    a combination."""
    with psycopg.connect(db_url) as conn:
        out = []
        for _ in range(count):
            restaurant, _ = _restaurant_with_tables(conn, 2)
            slug = scalar(conn, "SELECT slug FROM restaurants WHERE id = %s", (restaurant,))
            out.append((str(restaurant), slug))
    return out


def _round(db_url: str, restaurants: list[tuple[str, str]], day: int) -> dict[str, str]:
    """One new booking of 6 per restaurant on its own day: restaurant -> booking."""
    start = f"2030-03-{day:02d} 19:00+00"
    with psycopg.connect(db_url) as conn:
        return {r: str(_booking(conn, r, start=start, party=6)) for r, _ in restaurants}


def _took_feature(db_url: str, flag: str, bookings: dict[str, str]) -> set[str]:
    """The restaurants whose booking went the feature's way: through the V3 coordinator,
    or seated on a combination of tables."""
    with psycopg.connect(db_url) as conn:
        if flag == V3:
            sql = (
                "SELECT count(*) FROM observability_events WHERE booking_id = %s AND "
                "event_type = 'coordinator.start' AND context ->> 'mode' = 'v3'"
            )
        else:
            sql = "SELECT count(*) - 1 FROM booking_table_assignments WHERE booking_id = %s"
        return {r for r, b in bookings.items() if scalar(conn, sql, (b,)) > 0}


def _bucket(db_url: str, flag: str, restaurants: list[tuple[str, str]]) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return {
            r: scalar(conn, "SELECT abs(hashtextextended(%s || ':' || %s, 0)) %% 100", (flag, r))
            for r, _ in restaurants
        }


@pytest.mark.parametrize("flag", sorted(WALKS))
def test_gradual_rollout_walks_one_restaurant_10_50_all_then_the_flag_stops_every_one(
    db_url: str, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    commands = _gradual_commands(WALKS[flag])
    percents = [c[c.index("--percent") + 1] for c in commands if "--percent" in c]
    assert percents == ["0", "10", "50", "100"], commands
    restaurants = _restaurants(db_url, 20)
    everyone = {r for r, _ in restaurants}
    first_id, first_slug = restaurants[0]
    bucket = _bucket(db_url, flag, restaurants)
    switch = {V3: False, "FEATURE_COMBINATION_PLANNER": True}[flag]  # the defaults
    percent, listed, seen = 0, set(), []
    for day, command in enumerate(commands, start=1):
        if command[0] == "export":
            name, value = command[1].split("=", 1)
            monkeypatch.setenv(name, value)
            switch = value == "true" if name == flag else switch
        else:
            assert command[0] == "venuedb", command
            args = [first_slug if a == "<restaurant>" else a for a in command[1:]]
            result = invoke(*args, "--database-url", db_url)
            assert result.exit_code == 0, result.output
            percent = int(args[args.index("--percent") + 1])
            listed |= {first_id} if "--add" in args else set()
        bookings = _round(db_url, restaurants, day)
        assigned = invoke("assign", "--date", f"2030-03-{day:02d}", "--database-url", db_url)
        assert assigned.exit_code in (0, 1), assigned.output
        expected = {r for r in everyone if switch and (r in listed or bucket[r] < percent)}
        assert _took_feature(db_url, flag, bookings) == expected, (command, percent)
        seen.append(expected)
    if flag == V3:  # the flag goes true after the first restaurant is listed
        assert seen[0] == set() and seen[1] == {first_id}
    else:
        assert seen[0] == {first_id}
    assert seen == sorted(seen, key=len) and seen[-1] == everyone  # only ever adds; all
    # The kill switch: the flag false stops every one of them at once.
    monkeypatch.setenv(flag, "false")
    bookings = _round(db_url, restaurants, 28)
    invoke("assign", "--date", "2030-03-28", "--database-url", db_url)
    assert _took_feature(db_url, flag, bookings) == set()
