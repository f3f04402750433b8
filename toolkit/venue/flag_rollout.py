"""Per-restaurant gradual rollout of a flag (seed 000 "Option A", seed 001 5b), stored in
the database: a percentage with deterministic bucketing plus an explicit restaurant list.

The bucket of a restaurant is abs(hashtextextended(flag || ':' || id, 0)) % 100, computed
by the database function feature_enabled_for(); a restaurant is selected when its bucket
is below the percentage or it is listed. The same restaurant always lands on the same side
for a given percentage, and raising the percentage only ever adds restaurants.

The flag's own value (environment, .env, default) is the kill switch and wins on every
path: `enabled_restaurants` is the one place that decides. False: no restaurant, whatever
the rollout says (level 1 of a rollback must really stop the feature). True: the
restaurants the rollout selects, or every restaurant when the flag has no rollout row.
Only flags declared with `per_restaurant` (toolkit.venue.flags) accept a rollout: a rollout of
a flag that nothing reads per restaurant would be accepted and silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from toolkit.errors import BadInput
from toolkit.server import connection as db
from toolkit.venue.flags import Flag, flag_named, rollout_flags

TABLE = "public.feature_rollouts"


def _supported() -> str:
    return "; ".join(f"{f.name} ({f.per_restaurant})" for f in rollout_flags())


def rollout_flag(name: str) -> Flag:
    """The flag `name` if a per-restaurant rollout of it is honoured, else BadInput."""
    flag = flag_named(name)
    if flag is None:
        raise BadInput(
            f"unknown flag {name!r}; a per-restaurant rollout is read for: {_supported()}"
        )
    if not flag.per_restaurant:
        raise BadInput(
            f"{name} has no per-restaurant rollout: no code path reads it per restaurant, so a "
            f"rollout would be accepted and ignored. Set it for every restaurant in the "
            f"environment or .env. A per-restaurant rollout is read for: {_supported()}"
        )
    return flag


def _require_table(conn: Any) -> None:
    if not db.table_exists(conn, TABLE):
        raise BadInput(
            "per-restaurant rollout needs the assignment-pipeline-v3 release: "
            "`venuedb apply assignment-pipeline-v3`"
        )


def enabled_restaurants(conn: Any, flag: str, restaurants: Iterable[str], switch: bool) -> set[str]:
    """Of `restaurants`, those for which `flag` is on. `switch` is the flag's own value: the
    kill switch, checked first so that no rollout row can override it."""
    wanted = {str(r) for r in restaurants}
    if not switch or not wanted:
        return set()
    if not db.table_exists(conn, TABLE):
        return wanted
    if conn.execute(f"SELECT 1 FROM {TABLE} WHERE flag = %s", (flag,)).fetchone() is None:
        return wanted
    rows = conn.execute(
        "SELECT r FROM unnest(%s::uuid[]) r WHERE feature_enabled_for(%s, r)",
        (sorted(wanted), flag),
    ).fetchall()
    return {str(r[0]) for r in rows}


def read(conn: Any, switches: Mapping[str, bool]) -> list[dict[str, Any]] | None:
    """Every rollout row with what it does given the flags' own values (`switches`, by name);
    None when the table does not exist yet."""
    if not db.table_exists(conn, TABLE):
        return None
    rows = conn.execute(
        "SELECT r.flag, r.percentage, r.restaurant_ids::text[], r.updated_at, r.updated_by, "
        "(SELECT count(*) FROM restaurants x WHERE feature_enabled_for(r.flag, x.id)), "
        f"(SELECT count(*) FROM restaurants) FROM {TABLE} r ORDER BY r.flag"
    ).fetchall()
    count = conn.execute("SELECT count(*) FROM restaurants").fetchone()[0]
    # A rollout flag without a row is on for every restaurant when its switch is: listed too,
    # so that the listing always says where the kill switch stands.
    rows += [
        (f.name, None, [], None, None, count, count)
        for f in rollout_flags()
        if f.name not in {r[0] for r in rows}
    ]
    out = []
    for flag, percentage, listed, updated_at, updated_by, selected, total in sorted(rows):
        known = flag_named(flag)
        supported = bool(known and known.per_restaurant)
        switch = bool(switches.get(flag, False)) if supported else None
        if not supported:
            state, enabled = "ignored", None
        elif not switch:
            state, enabled = "off", 0
        elif percentage is None:
            state, enabled = "on", total
        else:
            state, enabled = "rolling out", selected
        out.append(
            {
                "flag": flag,
                "percentage": percentage,
                "restaurants": list(listed),
                "updated_at": updated_at.isoformat() if updated_at else None,
                "updated_by": updated_by,
                "supported": supported,
                "switch": switch,
                "state": state,
                "selected_restaurants": selected,
                "enabled_restaurants": enabled,
                "total_restaurants": total,
            }
        )
    return out


def show(target: db.Target, switches: Mapping[str, bool]) -> list[dict[str, Any]]:
    with db.connect(target, purpose="rollout") as conn:
        _require_table(conn)
        entries = read(conn, switches)
    assert entries is not None
    return entries


def cautions(entries: list[dict[str, Any]] | None) -> list[str]:
    """What an operator reading the rollout would otherwise get wrong."""
    out = []
    for e in entries or []:
        if e["state"] == "ignored":
            out.append(
                f"the rollout row of {e['flag']} ({e['percentage']} %, "
                f"{len(e['restaurants'])} listed) is ignored: no code path reads that flag per "
                f"restaurant (a per-restaurant rollout is read for: {_supported()})"
            )
        elif e["state"] == "off" and e["percentage"] is not None and e["selected_restaurants"]:
            out.append(
                f"{e['flag']} is false here, so it is off for every restaurant: its rollout "
                f"({e['percentage']} %, {len(e['restaurants'])} listed, "
                f"{e['selected_restaurants']} selected) takes effect only with {e['flag']}=true"
            )
    return out


def set_rollout(
    target: db.Target,
    flag: str,
    *,
    percentage: int | None,
    add: list[str],
    remove: list[str],
    actor: str,
) -> None:
    rollout_flag(flag)
    if percentage is not None and not 0 <= percentage <= 100:
        raise BadInput(f"--percent must be from 0 to 100, got {percentage}")
    with db.connect(target, autocommit=False, purpose="rollout") as conn:
        _require_table(conn)
        ids = {name: _restaurant_id(conn, name) for name in [*add, *remove]}
        conn.execute(f"INSERT INTO {TABLE} (flag) VALUES (%s) ON CONFLICT DO NOTHING", (flag,))
        conn.execute(
            f"UPDATE {TABLE} SET percentage = coalesce(%s, percentage), "
            "restaurant_ids = ARRAY(SELECT DISTINCT x FROM unnest(restaurant_ids || %s::uuid[]) x "
            "WHERE x <> ALL(%s::uuid[]) ORDER BY x), updated_at = now(), updated_by = %s "
            "WHERE flag = %s",
            (percentage, [ids[a] for a in add], [ids[r] for r in remove], actor, flag),
        )
        conn.commit()


def _restaurant_id(conn: Any, name: str) -> str:
    row = conn.execute(
        "SELECT id::text FROM restaurants WHERE id::text = %s OR slug = %s", (name, name)
    ).fetchone()
    if row is None:
        raise BadInput(f"no restaurant with id or slug {name!r}")
    return str(row[0])


def cautions_for(target: db.Target | None, switches: Mapping[str, bool]) -> list[str]:
    """cautions() for the database `target` names; none when there is no database or it
    cannot be read (`venuedb flags` then shows the flags as the environment has them)."""
    import psycopg

    if target is None:
        return []
    try:
        with db.connect(target, purpose="flags") as conn:
            return cautions(read(conn, switches))
    except psycopg.Error:
        return []
