"""Level 1 of a rollback: the release's features off, flag by flag.

A flag the database owns (public.feature_flags) is switched off there, and takes effect
at once. A flag read from the environment cannot be changed from here: the application
reads it from its own environment (and `.env`), so it is checked as this process
resolves it, and until it reads false the level is not complete (the command says what
to set and does not exit 0). Running the command from the application's environment
(or with the same `.env`) is what makes the check meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.server import connection as db
from toolkit.venue import flag_store
from toolkit.venue.flags import flag_named, resolve


@dataclass(frozen=True)
class FlagStep:
    flag: str
    owner: str  # database | environment
    before: str
    action: str
    done: bool  # off once the plan's database switches are made

    def to_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "owner": self.owner,
            "before": self.before,
            "action": self.action,
            "done": self.done,
        }


def plan(target: db.Target, names: tuple[str, ...]) -> list[FlagStep]:
    resolved = {r.flag.name: r for r in resolve()}
    stored = flag_store.load(target)
    steps = []
    for name in names:
        flag = flag_named(name)
        assert flag is not None  # rollback_levels.toml is validated on load
        row = (stored or {}).get(name) if flag.owner == "database" else None
        if row is not None:
            steps.append(
                FlagStep(
                    name,
                    "database",
                    row.state,
                    "switch it off in the database (every bar)"
                    if row.on_anywhere
                    else "none: already off in the database",
                    True,
                )
            )
            continue
        r = resolved[name]
        before = f"invalid ({r.error})" if r.error else f"{str(r.value).lower()} ({r.source})"
        off = not r.error and not r.value
        steps.append(
            FlagStep(
                name,
                "environment",
                before,
                "none: already false where this runs"
                if off
                else f"set {name}=false in the application's environment and restart it",
                off,
            )
        )
    return steps


def switch_off(target: db.Target, steps: list[FlagStep], actor: str) -> list[str]:
    """Make the plan's database switches; what was done, one line each."""
    said = []
    for step in steps:
        if step.owner == "database" and step.before != "off":
            flag_store.set_flag(target, step.flag, on=False, bars=[], actor=actor)
            said.append(f"{step.flag} switched off in the database (was {step.before})")
    return said


def pending(steps: list[FlagStep]) -> list[FlagStep]:
    return [s for s in steps if not s.done]


def pending_message(steps: list[FlagStep]) -> str:
    names = [s.flag for s in pending(steps)]
    return (
        f"still true where this runs: {', '.join(names)}. The database cannot change the "
        "application's environment: set "
        + " ".join(f"{n}=false" for n in names)
        + " there (and in .env), restart the application, then run the same command again "
        "to confirm"
    )
