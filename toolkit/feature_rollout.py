"""Per-restaurant gradual rollout of a flag (seed 000 "Option A", seed 001 5b), stored in
the database: a percentage with deterministic bucketing plus an explicit restaurant list.

The bucket of a restaurant is abs(hashtextextended(flag || ':' || id, 0)) % 100, computed
by the database function feature_enabled_for(); a restaurant is in when its bucket is
below the percentage or it is listed. The same restaurant always lands on the same side
for a given percentage, and raising the percentage only ever adds restaurants.
"""

from __future__ import annotations

from typing import Any

from toolkit import connection as db
from toolkit.errors import BadInput

ROLLOUT_FLAGS = ("FEATURE_ASSIGNMENT_PIPELINE_V3", "FEATURE_COMBINATION_PLANNER")


def _require_table(conn: Any) -> None:
    if conn.execute("SELECT to_regclass('public.feature_rollouts')").fetchone()[0] is None:
        raise BadInput(
            "per-restaurant rollout needs the assignment-pipeline-v3 release: "
            "`venuedb apply assignment-pipeline-v3`"
        )


def _check_flag(flag: str) -> None:
    if flag not in ROLLOUT_FLAGS:
        raise BadInput(
            f"{flag} has no per-restaurant rollout (these do: {', '.join(ROLLOUT_FLAGS)})"
        )


def show(target: db.Target) -> list[dict[str, Any]]:
    with db.connect(target, purpose="rollout") as conn:
        _require_table(conn)
        rows = conn.execute(
            "SELECT r.flag, r.percentage, r.restaurant_ids::text[], r.updated_at, r.updated_by, "
            "(SELECT count(*) FROM restaurants x WHERE feature_enabled_for(r.flag, x.id)), "
            "(SELECT count(*) FROM restaurants) FROM feature_rollouts r ORDER BY r.flag"
        ).fetchall()
    return [
        {
            "flag": r[0],
            "percentage": r[1],
            "restaurants": list(r[2]),
            "updated_at": r[3].isoformat() if r[3] else None,
            "updated_by": r[4],
            "enabled_restaurants": r[5],
            "total_restaurants": r[6],
        }
        for r in rows
    ]


def set_rollout(
    target: db.Target,
    flag: str,
    *,
    percentage: int | None,
    add: list[str],
    remove: list[str],
    actor: str,
) -> dict[str, Any]:
    _check_flag(flag)
    if percentage is not None and not 0 <= percentage <= 100:
        raise BadInput(f"--percent must be from 0 to 100, got {percentage}")
    with db.connect(target, autocommit=False, purpose="rollout") as conn:
        _require_table(conn)
        ids = {name: _restaurant_id(conn, name) for name in [*add, *remove]}
        conn.execute(
            "INSERT INTO feature_rollouts (flag) VALUES (%s) ON CONFLICT DO NOTHING", (flag,)
        )
        conn.execute(
            "UPDATE feature_rollouts SET percentage = coalesce(%s, percentage), "
            "restaurant_ids = ARRAY(SELECT DISTINCT x FROM unnest(restaurant_ids || %s::uuid[]) x "
            "WHERE x <> ALL(%s::uuid[]) ORDER BY x), updated_at = now(), updated_by = %s "
            "WHERE flag = %s",
            (percentage, [ids[a] for a in add], [ids[r] for r in remove], actor, flag),
        )
        conn.commit()
    return next(r for r in show(target) if r["flag"] == flag)


def _restaurant_id(conn: Any, name: str) -> str:
    row = conn.execute(
        "SELECT id::text FROM restaurants WHERE id::text = %s OR slug = %s", (name, name)
    ).fetchone()
    if row is None:
        raise BadInput(f"no restaurant with id or slug {name!r}")
    return str(row[0])
