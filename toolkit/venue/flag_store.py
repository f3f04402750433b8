"""The feature flags the database owns (public.feature_flags, release bar-integrity).

ENABLE_SWITCHING_MODE decides whether create_sale_by_server_name() resolves server_id,
so the database decides it from its own row, not the caller: on globally (enabled), or
for the bars listed in bar_ids (switching_mode_enabled(bar) in SQL). This module reads
and writes that row for `venuedb flags` and `venuedb flags set`; the environment value
of such a flag is only compared with it.

`set_flag(..., on=True)` turns the flag on for every bar; with bars, it adds them to the
list. `on=False` without bars turns it off everywhere (globally and for every listed bar:
seed 002's "Option A" rollback); with bars, it takes them off the list.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.errors import BadInput
from toolkit.server import connection as db
from toolkit.server.urls import masked_first_line
from toolkit.venue.flags import FLAGS, Flag, Resolved, flag_named

TABLE = "public.feature_flags"


@dataclass(frozen=True)
class StoredFlag:
    name: str
    enabled: bool
    bar_ids: tuple[str, ...]
    updated_at: str | None
    updated_by: str | None

    @property
    def on_anywhere(self) -> bool:
        return self.enabled or bool(self.bar_ids)

    @property
    def state(self) -> str:
        if self.enabled:
            return "on"
        if self.bar_ids:
            return f"on for {len(self.bar_ids)} bar(s)"
        return "off"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "bar_ids": list(self.bar_ids),
            "state": self.state,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


def database_flags() -> tuple[Flag, ...]:
    return tuple(f for f in FLAGS if f.owner == "database")


def database_flag(name: str) -> Flag:
    """The database-owned flag `name`, or BadInput (unknown, or owned by the environment)."""
    flag = flag_named(name)
    owned = ", ".join(f.name for f in database_flags())
    if flag is None:
        raise BadInput(f"unknown flag {name!r}; the database owns: {owned}")
    if flag.owner != "database":
        raise BadInput(
            f"{name} is not stored in the database: set it in the environment or .env "
            f"(the database owns: {owned})"
        )
    return flag


def _missing_table(flag: Flag) -> BadInput:
    release = flag.release or "bar-integrity"
    return BadInput(
        f"{TABLE} does not exist yet: {flag.name} is stored there from the release "
        f"{release} on; apply it first (`venuedb rollout {release}`)"
    )


def read(conn: Any) -> dict[str, StoredFlag] | None:
    """Every row of feature_flags by name; None when the table does not exist yet."""
    if not db.table_exists(conn, TABLE):
        return None
    rows = conn.execute(
        f"SELECT name, enabled, bar_ids::text[], updated_at, updated_by FROM {TABLE} ORDER BY name"
    ).fetchall()
    return {
        r[0]: StoredFlag(r[0], bool(r[1]), tuple(r[2]), r[3].isoformat() if r[3] else None, r[4])
        for r in rows
    }


def load(target: db.Target) -> dict[str, StoredFlag] | None:
    with db.connect(target, purpose="flags") as conn:
        return read(conn)


def _bar_ids(conn: Any, bars: list[str]) -> list[str]:
    ids = []
    for bar in bars:
        try:
            value = str(uuid.UUID(bar.strip()))
        except ValueError:
            raise BadInput(f"--bar {bar!r} is not a bar id (a UUID)") from None
        if conn.execute("SELECT 1 FROM public.bars WHERE id = %s", (value,)).fetchone() is None:
            raise BadInput(f"no bar with id {value}")
        ids.append(value)
    return ids


def set_flag(
    target: db.Target, name: str, *, on: bool, bars: list[str], actor: str
) -> tuple[StoredFlag, list[str]]:
    """Write the flag's row; (the row as stored, notes for the operator)."""
    flag = database_flag(name)
    notes = []
    with db.connect(target, autocommit=False, purpose="flags") as conn:
        if not db.table_exists(conn, TABLE):
            raise _missing_table(flag)
        ids = _bar_ids(conn, bars)
        conn.execute(
            f"INSERT INTO {TABLE} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (flag.name,)
        )
        if not ids:
            conn.execute(
                f"UPDATE {TABLE} SET enabled = %s, "
                "bar_ids = CASE WHEN %s THEN bar_ids ELSE '{}'::uuid[] END, "
                "updated_at = now(), updated_by = %s WHERE name = %s",
                (on, on, actor, flag.name),
            )
        else:
            conn.execute(
                f"UPDATE {TABLE} SET bar_ids = ARRAY(SELECT DISTINCT x FROM unnest("
                "CASE WHEN %s THEN bar_ids || %s::uuid[] ELSE bar_ids END) AS x "
                "WHERE %s OR x <> ALL(%s::uuid[]) ORDER BY x), "
                "updated_at = now(), updated_by = %s WHERE name = %s",
                (on, ids, on, ids, actor, flag.name),
            )
        stored = read(conn)
        conn.commit()
    assert stored is not None
    row = stored[flag.name]
    if not on and ids and row.enabled:
        notes.append(
            f"{flag.name} is still on for every bar (enabled globally): "
            f"`venuedb flags set {flag.name} off` turns it off everywhere"
        )
    return row, notes


def decided_values(stored: Mapping[str, StoredFlag] | None) -> dict[str, bool]:
    """The values the database decides, for the flags it owns and has a row for."""
    if stored is None:
        return {}
    return {f.name: stored[f.name].on_anywhere for f in database_flags() if f.name in stored}


def disagreements(resolved: list[Resolved], stored: Mapping[str, StoredFlag] | None) -> list[str]:
    """A database-owned flag set explicitly in the environment (or .env) to something else
    than the database says: the environment value decides nothing."""
    if stored is None:
        return []
    out = []
    for r in resolved:
        if r.flag.owner != "database" or r.source == "default" or r.error:
            continue
        row = stored.get(r.flag.name)
        database_value = row.on_anywhere if row else False
        if bool(r.value) != database_value:
            state = row.state if row else "off (no row)"
            out.append(
                f"{r.flag.name}={r.raw} in the {r.source} disagrees with the database, which "
                f"owns this flag: it is {state} there. The database decides; change it with "
                f"`venuedb flags set {r.flag.name} on|off`"
            )
    return out


def database_view(
    database_url: str | None,
) -> tuple[db.Target | None, dict[str, StoredFlag] | None, str | None]:
    """For the listing: (target, rows, note). Best effort: no database, an unreachable one or
    one without feature_flags yields no rows and a note saying so, never an error."""
    import psycopg

    try:
        target = db.resolve(database_url)
        stored = load(target)
    except BadInput as exc:
        return None, None, f"no database value for the flags it owns: {exc}"
    except psycopg.Error as exc:
        first = masked_first_line(exc)
        return None, None, f"no database value for the flags it owns: {first}"
    if stored is None:
        releases = sorted({f.release or "bar-integrity" for f in database_flags()})
        return (
            target,
            None,
            f"{TABLE} does not exist yet (release {', '.join(releases)}): "
            "the flags it will own are shown from the environment",
        )
    return target, stored, None
