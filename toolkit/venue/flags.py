"""The seeds' feature flags: declared once, resolved from the environment or .env, validated.

A flag's value comes from the process environment, else ./.env, else its default; an
invalid value (FEATURE_ALLOCATOR_K_MAX=0, =abc) is an error naming the flag, the value
and what is allowed, never a silent default. A flag whose owner is "database"
(ENABLE_SWITCHING_MODE since the bar-integrity release) is decided by the database's
public.feature_flags, not by this value: toolkit.venue.flag_store reads and writes it.

A flag with `per_restaurant` (the code path that reads it per restaurant) can also be
rolled out restaurant by restaurant (`venuedb flags rollout`, toolkit.venue.flag_rollout).
Its value here stays the kill switch: false turns the feature off for every restaurant,
whatever the rollout says; true lets the rollout decide, or every restaurant when the flag
has no rollout row. A flag without `per_restaurant` refuses a rollout: nothing would read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.server.connection import read_dotenv

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # bool | int | choice
    default: Any
    description: str
    seed: str
    accessor: str  # the seed's name for the value in code, e.g. getAllocatorKMax()
    planner_option: str | None = None  # key in the options of plan_booking_tables()
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    owner: str = "environment"  # environment | database (public.feature_flags decides)
    release: str | None = None  # the release that created the database's row (owner database)
    per_restaurant: str | None = None  # what reads it per restaurant; None: no rollout

    def parse(self, raw: str) -> Any:
        text = raw.strip()
        if self.kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected true or false")
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise ValueError(
                    f"expected a whole number from {self.minimum} to {self.maximum}"
                ) from None
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise ValueError(f"must be from {self.minimum} to {self.maximum}")
            return value
        if text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}")
        return text


FLAGS: tuple[Flag, ...] = (
    Flag(
        "FEATURE_COMBINATION_PLANNER",
        "bool",
        True,
        "Plan multi-table combinations at all.",
        "000",
        "isCombinationPlannerEnabled()",
        "combination_planner",
        per_restaurant="`venuedb assign` passes combination_planner=false to the planner for "
        "the bookings of restaurants outside the rollout",
    ),
    Flag(
        "FEATURE_ALLOCATOR_MERGES_ENABLED",
        "bool",
        True,
        "Let the allocator merge movable tables.",
        "000",
        "isAllocatorMergesEnabled()",
        "merges_enabled",
    ),
    Flag(
        "FEATURE_ALLOCATOR_K_MAX",
        "int",
        3,
        "Most tables in one combination.",
        "000",
        "getAllocatorKMax()",
        "k_max",
        minimum=1,
        maximum=6,
    ),
    Flag(
        "FEATURE_SELECTOR_MAX_COMBINATION_EVALUATIONS",
        "int",
        1000,
        "Most candidate combinations examined per booking.",
        "000",
        "getSelectorMaxCombinationEvaluations()",
        "max_combination_evaluations",
        minimum=1,
        maximum=100_000,
    ),
    Flag(
        "FEATURE_ALLOCATOR_REQUIRE_ADJACENCY",
        "bool",
        False,
        "Only combine tables recorded as adjacent (needs table_adjacencies data).",
        "000",
        "isAllocatorAdjacencyRequired()",
        "require_adjacency",
    ),
    Flag(
        "FEATURE_ALLOCATOR_ADJACENCY_MODE",
        "choice",
        "connected",
        "connected: the set is connected; neighbors: every table touches the first.",
        "003",
        "getAllocatorAdjacencyMode()",
        "adjacency_mode",
        choices=("connected", "neighbors"),
    ),
    Flag(
        "FEATURE_ASSIGNMENT_PIPELINE_V3",
        "bool",
        False,
        "Route bookings through the V3 coordinator (state machine) instead of the legacy loop.",
        "001/004",
        "isAssignmentPipelineV3Enabled()",
        per_restaurant="`venuedb assign` routes each booking by its restaurant",
    ),
    Flag(
        "FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW",
        "bool",
        False,
        "Also run the coordinator without persisting, logging what it would have done.",
        "001/004",
        "isAssignmentPipelineV3Shadow()",
    ),
    Flag(
        "FEATURE_ASSIGNMENT_PIPELINE_V3_MAX_PARALLEL",
        "int",
        3,
        "Most coordinator workers at once (`venuedb assign --parallel`).",
        "001/004",
        "getAssignmentPipelineV3MaxParallel()",
        minimum=1,
        maximum=10,
    ),
    Flag(
        "ENABLE_SWITCHING_MODE",
        "bool",
        False,
        "Resolve server_id when sales are created (simplified/full operating modes).",
        "002",
        "ENABLE_SWITCHING_MODE",
        owner="database",
        release="bar-integrity",
    ),
    Flag(
        "SHOW_SWITCHING_MODE_UI",
        "bool",
        False,
        "Show the mode-switching UI (must stay off while ENABLE_SWITCHING_MODE is off).",
        "002",
        "SHOW_SWITCHING_MODE_UI",
    ),
)


@dataclass(frozen=True)
class Resolved:
    flag: Flag
    value: Any
    source: str  # environment | .env | default
    raw: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.flag.name,
            "value": self.value,
            "source": self.source,
            "raw": self.raw,
            "default": self.flag.default,
            "error": self.error,
            "accessor": self.flag.accessor,
            "description": self.flag.description,
            "owner": self.flag.owner,
        }


def resolve(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> list[Resolved]:
    environ = os.environ if environ is None else environ
    file_values = read_dotenv(dotenv or Path.cwd() / ".env")
    out = []
    for flag in FLAGS:
        if flag.name in environ:
            raw, source = environ[flag.name], "environment"
        elif flag.name in file_values:
            raw, source = file_values[flag.name], ".env"
        else:
            out.append(Resolved(flag, flag.default, "default", None))
            continue
        try:
            out.append(Resolved(flag, flag.parse(raw), source, raw))
        except ValueError as exc:
            out.append(Resolved(flag, None, source, raw, f"{flag.name}={raw!r}: {exc}"))
    return out


def errors(resolved: list[Resolved]) -> list[str]:
    return [r.error for r in resolved if r.error]


def warnings(resolved: list[Resolved], overrides: Mapping[str, Any] | None = None) -> list[str]:
    """Combinations that are valid but almost certainly a mistake. `overrides`: the values
    that decide instead of the resolved ones (the database's, for flags it owns)."""
    value = {r.flag.name: r.value for r in resolved if not r.error}
    value.update(overrides or {})
    out = []
    if value.get("FEATURE_ASSIGNMENT_PIPELINE_V3") and value.get(
        "FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW"
    ):
        out.append(
            "FEATURE_ASSIGNMENT_PIPELINE_V3 and FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW are "
            "both true: V3 is live, so the shadow run is skipped (seed 001: pick one)"
        )
    if value.get("SHOW_SWITCHING_MODE_UI") and not value.get("ENABLE_SWITCHING_MODE"):
        out.append(
            "SHOW_SWITCHING_MODE_UI is on while ENABLE_SWITCHING_MODE is off: the UI "
            "would offer a mode that is not enforced"
        )
    return out


def rollout_flags() -> tuple[Flag, ...]:
    """The flags a per-restaurant rollout is honoured for."""
    return tuple(f for f in FLAGS if f.per_restaurant)


def flag_named(name: str) -> Flag | None:
    return next((f for f in FLAGS if f.name == name), None)


def value_of(resolved: list[Resolved], name: str) -> Any:
    for r in resolved:
        if r.flag.name == name:
            if r.error:
                raise BadInput(f"invalid feature flag: {r.error}")
            return r.value
    raise KeyError(name)


def planner_options(resolved: list[Resolved] | None = None) -> dict[str, Any]:
    """The options object for plan_booking_tables() / auto_assign_booking(); BadInput if invalid."""
    resolved = resolve() if resolved is None else resolved
    problems = errors(resolved)
    if problems:
        raise BadInput("invalid feature flags: " + "; ".join(problems))
    return {r.flag.planner_option: r.value for r in resolved if r.flag.planner_option}
