"""`venuedb flags`: resolution order, validation with a clear error, the planner options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import row_at
from toolkit.errors import BadInput
from toolkit.venue.flags import planner_options, resolve


def _by_name(resolved: list) -> dict:
    return {r.flag.name: r for r in resolved}


def test_defaults_match_the_seed(tmp_path: Path) -> None:
    flags = _by_name(resolve({}, tmp_path / ".env"))
    assert flags["FEATURE_ALLOCATOR_K_MAX"].value == 3
    assert flags["FEATURE_SELECTOR_MAX_COMBINATION_EVALUATIONS"].value == 1000
    assert flags["FEATURE_ALLOCATOR_REQUIRE_ADJACENCY"].value is False
    assert all(r.source == "default" for r in flags.values())


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("FEATURE_ALLOCATOR_K_MAX=2\nFEATURE_COMBINATION_PLANNER=false\n")
    flags = _by_name(resolve({"FEATURE_ALLOCATOR_K_MAX": "4"}, dotenv))
    assert (flags["FEATURE_ALLOCATOR_K_MAX"].value, flags["FEATURE_ALLOCATOR_K_MAX"].source) == (
        4,
        "environment",
    )
    assert flags["FEATURE_COMBINATION_PLANNER"].value is False
    assert flags["FEATURE_COMBINATION_PLANNER"].source == ".env"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("FEATURE_ALLOCATOR_K_MAX", "0"),
        ("FEATURE_ALLOCATOR_K_MAX", "abc"),
        ("FEATURE_ALLOCATOR_K_MAX", "99"),
        ("FEATURE_COMBINATION_PLANNER", "maybe"),
        ("FEATURE_ALLOCATOR_ADJACENCY_MODE", "everywhere"),
        ("FEATURE_SELECTOR_MAX_COMBINATION_EVALUATIONS", "-5"),
    ],
)
def test_invalid_values_are_errors_naming_the_flag(tmp_path: Path, name: str, raw: str) -> None:
    flags = _by_name(resolve({name: raw}, tmp_path / ".env"))
    assert flags[name].error and name in flags[name].error and raw in flags[name].error
    with pytest.raises(BadInput, match=name):
        planner_options(list(flags.values()))


def test_planner_options_carry_every_planner_flag(tmp_path: Path) -> None:
    options = planner_options(
        resolve({"FEATURE_ALLOCATOR_ADJACENCY_MODE": "neighbors"}, tmp_path / ".env")
    )
    assert options == {
        "combination_planner": True,
        "merges_enabled": True,
        "k_max": 3,
        "max_combination_evaluations": 1000,
        "require_adjacency": False,
        "adjacency_mode": "neighbors",
    }


def test_cli_exit_2_on_an_invalid_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATURE_ALLOCATOR_K_MAX", "0")
    result = invoke("flags", "--json")
    assert result.exit_code == 2
    document = as_json(result)
    assert document["status"] == "bad_input"
    assert any("FEATURE_ALLOCATOR_K_MAX" in e for e in document["errors"])
    human = invoke("flags")
    assert human.exit_code == 2 and "getAllocatorKMax()" not in human.stdout
    assert "FEATURE_ALLOCATOR_K_MAX='0'" in human.stdout


# ---------------------------------------------------------------------------------------
# ENABLE_SWITCHING_MODE is owned by the database (public.feature_flags, bar-integrity).

BAR = "10000000-0000-4000-8000-0000000000c1"


def _row(url: str) -> tuple:
    return row_at(
        url,
        "SELECT enabled, bar_ids::text[], updated_by FROM feature_flags "
        "WHERE name = 'ENABLE_SWITCHING_MODE'",
    )


def test_set_switching_mode_globally_and_per_bar(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    monkeypatch.setenv("VENUEDB_ACTOR", "on-call")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO bars (id, name) VALUES (%s, 'Flag Bar')", (BAR,))
        assert conn.execute("SELECT switching_mode_enabled(%s)", (BAR,)).fetchone() == (False,)
    assert _row(db_url)[:2] == (False, [])

    result = invoke(
        "flags", "set", "ENABLE_SWITCHING_MODE", "on", "--bar", BAR, "--database-url", db_url,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert as_json(result)["flag"]["bar_ids"] == [BAR]
    assert as_json(result)["flag"]["state"] == "on for 1 bar(s)"
    assert _row(db_url) == (False, [BAR], "on-call")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT switching_mode_enabled(%s)", (BAR,)).fetchone() == (True,)
        assert conn.execute("SELECT switching_mode_enabled(gen_random_uuid())").fetchone() == (
            False,
        )

    assert (
        invoke("flags", "set", "ENABLE_SWITCHING_MODE", "ON", "--database-url", db_url).exit_code
        == 0
    )
    assert _row(db_url)[:2] == (True, [BAR])
    # off without --bar: off everywhere (seed 002 Option A), the bar list included.
    off = invoke("flags", "set", "ENABLE_SWITCHING_MODE", "off", "--database-url", db_url)
    assert off.exit_code == 0, off.output
    assert "ENABLE_SWITCHING_MODE: off" in off.stdout
    assert _row(db_url)[:2] == (False, [])
    # off --bar takes one bar off the list.
    invoke("flags", "set", "ENABLE_SWITCHING_MODE", "on", "--bar", BAR, "--database-url", db_url)
    invoke("flags", "set", "ENABLE_SWITCHING_MODE", "off", "--bar", BAR, "--database-url", db_url)
    assert _row(db_url)[:2] == (False, [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("FEATURE_ALLOCATOR_K_MAX", "on"), "not stored in the database"),
        (("NO_SUCH_FLAG", "on"), "unknown flag"),
        (("ENABLE_SWITCHING_MODE", "maybe"), "on or off"),
        (("ENABLE_SWITCHING_MODE", "on", "--bar", "not-a-uuid"), "not a bar id"),
        (("ENABLE_SWITCHING_MODE", "on", "--bar", BAR), "no bar with id"),
    ],
)
def test_set_refuses_bad_input_with_exit_2(db_url: str, args: tuple, message: str) -> None:
    result = invoke("flags", "set", *args, "--database-url", db_url, "--json")
    assert result.exit_code == 2, result.output
    assert message in as_json(result)["error"]
    assert _row(db_url)[:2] == (False, [])


def test_set_before_the_release_names_it(db_url: str) -> None:
    result = invoke("rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    refused = invoke("flags", "set", "ENABLE_SWITCHING_MODE", "on", "--database-url", db_url)
    assert refused.exit_code == 2
    assert "bar-integrity" in refused.stderr and "feature_flags" in refused.stderr
    listing = invoke("flags", "--database-url", db_url, "--json")
    assert listing.exit_code == 0
    document = as_json(listing)
    assert document["database"]["reachable"] is False
    assert "bar-integrity" in document["database"]["note"]


def test_listing_shows_the_database_value_and_warns_on_disagreement(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("flags", "--database-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    switching = next(f for f in document["flags"] if f["name"] == "ENABLE_SWITCHING_MODE")
    assert switching["owner"] == "database"
    assert switching["database_value"]["state"] == "off"
    assert document["database"]["reachable"] is True and document["warnings"] == []

    monkeypatch.setenv("ENABLE_SWITCHING_MODE", "true")
    human = invoke("flags", "--database-url", db_url)
    assert human.exit_code == 0, human.output
    assert "owned by the database" in human.stdout
    assert "disagrees with the database" in human.stdout + human.stderr
    document = as_json(invoke("flags", "--database-url", db_url, "--json"))
    assert any("ENABLE_SWITCHING_MODE=true" in w for w in document["warnings"])

    # The UI flag is compared with what the database decides, not with the environment.
    monkeypatch.setenv("SHOW_SWITCHING_MODE_UI", "true")
    document = as_json(invoke("flags", "--database-url", db_url, "--json"))
    assert any("SHOW_SWITCHING_MODE_UI is on" in w for w in document["warnings"])
    invoke("flags", "set", "ENABLE_SWITCHING_MODE", "on", "--database-url", db_url)
    document = as_json(invoke("flags", "--database-url", db_url, "--json"))
    assert document["warnings"] == []


def test_listing_without_a_database_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("flags", "--database-url", "postgresql://nobody@127.0.0.1:1/none", "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert document["database"]["reachable"] is False
    switching = next(f for f in document["flags"] if f["name"] == "ENABLE_SWITCHING_MODE")
    assert switching["database_value"] is None and switching["value"] is False


def test_the_flags_a_rollout_is_read_for_are_declared_and_are_switches() -> None:
    """A per-restaurant rollout is accepted only for a flag declared as read per restaurant
    (toolkit.venue.flags `per_restaurant`); its own value must be an on/off kill switch."""
    from toolkit.venue.flags import rollout_flags

    assert {f.name for f in rollout_flags()} == {
        "FEATURE_ASSIGNMENT_PIPELINE_V3",
        "FEATURE_COMBINATION_PLANNER",
    }
    assert all(f.kind == "bool" and f.owner == "environment" for f in rollout_flags())
