"""The seeds' feature flags: declared once, resolved from the environment or .env, validated.

A flag's value comes from the process environment, else ./.env, else its default; an
invalid value (FEATURE_ALLOCATOR_K_MAX=0, =abc) is an error naming the flag, the value
and what is allowed, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.connection import read_dotenv
from toolkit.errors import BadInput

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


def planner_options(resolved: list[Resolved] | None = None) -> dict[str, Any]:
    """The options object for plan_booking_tables() / auto_assign_booking(); BadInput if invalid."""
    resolved = resolve() if resolved is None else resolved
    problems = errors(resolved)
    if problems:
        raise BadInput("invalid feature flags: " + "; ".join(problems))
    return {r.flag.planner_option: r.value for r in resolved if r.flag.planner_option}
