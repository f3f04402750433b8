"""`venuedb flags`: resolution order, validation with a clear error, the planner options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelpers import as_json, invoke
from toolkit.errors import BadInput
from toolkit.flags import planner_options, resolve


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
    assert document["status"] == "error"
    assert any("FEATURE_ALLOCATOR_K_MAX" in e for e in document["errors"])
    human = invoke("flags")
    assert human.exit_code == 2 and "getAllocatorKMax()" not in human.stdout
    assert "FEATURE_ALLOCATOR_K_MAX='0'" in human.stdout
