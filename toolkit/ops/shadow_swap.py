"""Replace a table's exclusion constraint without blocking writes: the shadow-table swap.

PostgreSQL cannot add an exclusion constraint NOT VALID, cannot build it CONCURRENTLY
and cannot attach it to a prebuilt index, so a plain ADD CONSTRAINT holds an ACCESS
EXCLUSIVE lock while it builds the GiST index (seconds on a million rows). Instead:

1. a shadow table is created like the live one but carrying the new constraint, and a
   trigger on the live table mirrors every insert, update and delete into it (the live
   table keeps enforcing the old constraint throughout);
2. existing rows are copied in short keyset batches, one transaction each, without row
   locks (locking every live row FOR KEY SHARE tripled the WAL the copy wrote: each lock
   is a WAL record and dirties its page again). A row deleted between a batch's snapshot
   and its insert can be copied after the trigger mirrored its delete: a ghost. So, once
   the copy is done, the swap waits for every transaction that was writing meanwhile to
   finish, then deletes each shadow row whose key the live table no longer has (rows
   locked first, absence re-read after the lock, so that a key inserted again meanwhile
   is kept); an update is never lost, the trigger's upsert and the copy's ON CONFLICT
   DO NOTHING meet on the shadow's primary key;
3. under a brief ACCESS EXCLUSIVE lock (lock_timeout, retried with backoff) the live
   table is dropped and the shadow renamed into its place with the original index and
   constraint names; under the same lock the new table gets what the live one had beyond
   them (read there, so nothing added meanwhile is lost): grants, publication
   memberships, user triggers (and their enabled state), row-level security and every
   policy, statistics objects, storage parameters, replica identity, owner and comment.
   The shadow carries no user trigger while it mirrors: the rows it receives already
   passed the live table's triggers, and a deferred constraint trigger must not fire twice.

Every step is idempotent: running the revision again after a crash or a lock timeout
resumes (the copy skips rows already there) and finishes. Small tables take the plain
path (DROP + ADD CONSTRAINT in the revision's transaction); the output says which.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from alembic import context, op

from toolkit import backoff
from toolkit.ops import cluster_throttle
from toolkit.ops.cluster_throttle import Throttle
from toolkit.ops.online import in_rehearsal, outside_transaction
from toolkit.progress import tracking

SHADOW_SUFFIX = "__venuedb_shadow"
# The shadow table's comment, then when it was created: `status` and `verify` say since
# when a swap a run left behind has been in progress (toolkit/engine/interrupted_swaps.py).
STARTED = "venuedb shadow swap started "
OLD_SUFFIX = "__venuedb_old"


@dataclass(frozen=True)
class ExclusionSwap:
    table: str  # in schema public
    drop_constraint: str
    add_constraint: str
    add_definition: str  # e.g. 'EXCLUDE USING gist (...) WHERE (NOT shadow) DEFERRABLE ...'
    equal_columns: tuple[str, ...]  # the WITH = columns, for the pre-flight violation count
    overlap_column: str  # the WITH && column
    predicate: str = "true"  # row filter of the constraint, written against alias {a}
    key: str = "id"
    # A write to a row that a copy batch is inserting into the shadow waits for that batch
    # (the sync trigger's ON CONFLICT waits on the uncommitted row), and every writer's
    # commit waits for the WAL flush of the batch committed before it: the copy writes
    # about 1.2 GB of WAL for 1,000,000 allocations. bench.rollback_level2 (1,000,000
    # allocations, 100 writes/s): 1,000-row batches without rests, commits up to 885 ms
    # (on WALWrite); 1,000 with rests, up to 241 ms; 250 with rests, up to 71 ms. The
    # swap's lock itself is held 11-18 ms.
    batch_size: int = 250
    # After each copy batch, rest this many times as long as the batch took (0: no rests).
    pause_ratio: float = 1.0
    # Keys one ghost-removal batch reads from the shadow and looks up in the live table.
    ghost_batch: int = 5_000
    # How long the swap waits, after the copy, for transactions that were writing during it.
    wait_seconds: float = 300.0
    # Rows a pre-flight chunk reads (sorted in memory: ~2 MB at 20,000 allocations).
    preflight_chunk: int = 20_000
    plain_below_rows: int = 50_000
    swap_attempts: int = 10
    notes: list[str] = field(default_factory=list)

    @property
    def shadow(self) -> str:
        return self.table + SHADOW_SUFFIX

    @property
    def chunk_column(self) -> str:
        """The pre-flight reads whole groups in chunks by this equal column (the last, the
        most selective one: give it a btree index; allocations.resource_id has one)."""
        return self.equal_columns[-1]

    @property
    def sync_function(self) -> str:
        return f"venuedb_sync_{self.table}{SHADOW_SUFFIX}"


def tuned(swap: ExclusionSwap) -> ExclusionSwap:
    """Operators (and tests) tune the swap from the environment: VENUEDB_SHADOW_SWAP_MIN_ROWS
    (below it, the plain path), VENUEDB_SHADOW_SWAP_BATCH, VENUEDB_SHADOW_SWAP_ATTEMPTS,
    VENUEDB_SHADOW_SWAP_PREFLIGHT_CHUNK, VENUEDB_SHADOW_SWAP_PAUSE_RATIO (0: no rests),
    VENUEDB_SHADOW_SWAP_WAIT_SECONDS."""
    from dataclasses import replace

    return replace(
        swap,
        plain_below_rows=int(os.environ.get("VENUEDB_SHADOW_SWAP_MIN_ROWS", swap.plain_below_rows)),
        batch_size=int(os.environ.get("VENUEDB_SHADOW_SWAP_BATCH", swap.batch_size)),
        swap_attempts=int(os.environ.get("VENUEDB_SHADOW_SWAP_ATTEMPTS", swap.swap_attempts)),
        pause_ratio=float(os.environ.get("VENUEDB_SHADOW_SWAP_PAUSE_RATIO", swap.pause_ratio)),
        wait_seconds=float(os.environ.get("VENUEDB_SHADOW_SWAP_WAIT_SECONDS", swap.wait_seconds)),
        preflight_chunk=int(
            os.environ.get("VENUEDB_SHADOW_SWAP_PREFLIGHT_CHUNK", swap.preflight_chunk)
        ),
    )


def _bind() -> Any:
    return op.get_bind()


def _driver() -> Any:
    return _bind().connection.driver_connection


def _rows(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return list(_bind().exec_driver_sql(sql, params or {}).fetchall())


def _notice(message: str) -> None:
    """Say it the way a revision says things: as a NOTICE the toolkit shows."""
    text = message.replace("'", "''").replace("%", "%%")
    _driver().execute(f"DO $n$ BEGIN RAISE NOTICE '{text}'; END $n$")


def _has_constraint(table: str, name: str) -> bool:
    return bool(
        _rows(
            "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) AND conname = %(c)s",
            {"t": f"public.{table}", "c": name},
        )
    )


def _exists(relation: str) -> bool:
    return _rows("SELECT to_regclass(%(r)s)", {"r": f"public.{relation}"})[0][0] is not None


def preflight(swap: ExclusionSwap, limit: int = 20) -> None:
    """Refuse with a list when existing rows would violate the new constraint."""
    rows = find_violations(_driver(), swap, limit, _notice)
    if not rows:
        _notice(f"pre-flight: 0 constraint violations found for {swap.add_constraint}")
        return
    listing = "; ".join(
        f"{r[0]} and {r[1]} ({', '.join(map(str, r[2:-2]))}: {r[-2]} overlaps {r[-1]})"
        for r in rows
    )
    more = f" (first {limit})" if len(rows) == limit else ""
    raise RuntimeError(
        f"pre-flight: rows of {swap.table} would violate {swap.add_constraint}{more}: "
        f"{listing}. Nothing was changed; resolve these rows, then run the command again."
    )


def overlap_candidates_sql(swap: ExclusionSwap, where: str) -> str:
    """The rows (as `cand`) that may overlap another row of their group, and the pairs.

    A self-join on the equal columns compares every two rows of a group (a table's
    allocations: hundreds), and no index serves the rollback's groups: the GiST index of
    allocations_no_overlap leads with restaurant_id, which the downgrade does not compare.
    Instead each group is sorted by lower bound once: a row can overlap an earlier row only
    if the greatest upper bound before it reaches its lower bound, and a later row only if
    the next lower bound is below its upper bound. Those tests admit every row that is in an
    overlapping pair (equal bounds count only when both may be inclusive, which ties sorted
    inclusive-first make visible; unbounded ends always count), so joining just the
    candidates with the exact && finds exactly the old join's pairs. Clean data (touching
    [) windows included) leaves no candidates."""
    k, w = swap.key, f'"{swap.overlap_column}"'
    group = ", ".join(f"a.{c}" for c in swap.equal_columns)
    return f"""
WITH sorted AS (
    SELECT a.{k} AS key, {group}, a.{w} AS w,
           count(*) OVER earlier > 0 AS has_prev,
           bool_or(upper_inf(a.{w})) OVER earlier AS prev_upper_inf,
           bool_or(upper_inc(a.{w})) OVER earlier AS prev_upper_inc,
           max(upper(a.{w})) OVER earlier AS prev_upper,
           lead(a.{k}) OVER g IS NOT NULL AS has_next,
           lead(lower_inf(a.{w})) OVER g AS next_lower_inf,
           lead(lower_inc(a.{w})) OVER g AS next_lower_inc,
           lead(lower(a.{w})) OVER g AS next_lower
    FROM public.{swap.table} AS a
    WHERE ({swap.predicate.format(a="a")}) AND NOT isempty(a.{w}) AND {where}
    WINDOW g AS (PARTITION BY {group}
                 ORDER BY lower(a.{w}) NULLS FIRST, lower_inc(a.{w}) DESC, a.{k}),
           earlier AS (g ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), cand AS (
    SELECT * FROM sorted AS s
    WHERE (s.has_prev AND (s.prev_upper_inf OR lower_inf(s.w) OR s.prev_upper > lower(s.w)
                           OR (s.prev_upper = lower(s.w) AND s.prev_upper_inc
                               AND lower_inc(s.w))))
       OR (s.has_next AND (s.next_lower_inf OR upper_inf(s.w) OR s.next_lower < upper(s.w)
                           OR (s.next_lower = upper(s.w) AND s.next_lower_inc
                               AND upper_inc(s.w))))
)
"""


def find_violations(
    conn: Any, swap: ExclusionSwap, limit: int, say: Any = print
) -> list[tuple[Any, ...]]:
    """Up to `limit` pairs of rows that overlap within a group: both keys, the equal
    columns, both ranges (as text), as the plain self-join would list them.

    Runs in chunks of whole groups, keyset over swap.chunk_column (an equal column, so a
    group never spans two chunks; its btree index finds a chunk), saying how far it got:
    on a million rows this takes seconds, and a silent pre-flight looks like a hang."""
    c, table = swap.chunk_column, f"public.{swap.table} AS a"
    total = _scalar(conn, f"SELECT count(*) FROM {table} WHERE a.{c} IS NOT NULL", {})
    found: list[tuple[Any, ...]] = []
    params: dict[str, Any] = {"low": None, "high": None}
    checked = 0
    say(
        f"pre-flight: checking {total} rows of {swap.table} for {swap.add_constraint} "
        f"violations, {swap.preflight_chunk} rows a chunk"
    )
    started = said = time.monotonic()
    shown = tracking(f"pre-flight {swap.add_constraint} on {swap.table}", total, "rows")
    with shown as reporter:
        while len(found) < limit:
            after = f"a.{c} > %(low)s" if params["low"] is not None else f"a.{c} IS NOT NULL"
            bound = conn.execute(
                f"SELECT a.{c} FROM {table} WHERE {after} "
                f"ORDER BY a.{c} OFFSET {swap.preflight_chunk - 1} LIMIT 1",
                params,
            ).fetchone()
            params["high"] = bound[0] if bound else None
            where = after + (f" AND a.{c} <= %(high)s" if bound else "")
            found += conn.execute(pairs_sql(swap, where, limit - len(found)), params).fetchall()
            chunk = _scalar(conn, f"SELECT count(*) FROM {table} WHERE {where}", params)
            checked += chunk
            reporter.advance(chunk)
            if bound is None or time.monotonic() - said >= 1.0:
                rate = checked / max(time.monotonic() - started, 1e-6)
                say(
                    f"pre-flight: {checked} of {max(total, checked)} rows checked ({rate:,.0f} rows/s)"
                )
                said = time.monotonic()
            if bound is None:
                break
            params["low"] = bound[0]
    return found[:limit]


def pairs_sql(swap: ExclusionSwap, where: str, limit: int) -> str:
    """The overlapping pairs among the rows `where` selects (alias a), as find_violations
    lists them."""
    eq = ", ".join(f"x.{col}::text" for col in swap.equal_columns)
    same_group = " AND ".join(f"x.{col} = y.{col}" for col in swap.equal_columns)
    return (
        overlap_candidates_sql(swap, where)
        + f"SELECT x.key::text, y.key::text, {eq}, x.w::text, y.w::text "
        f"FROM cand AS x JOIN cand AS y ON {same_group} AND x.w && y.w AND x.key < y.key "
        f"LIMIT {limit}"
    )


def _scalar(conn: Any, sql: str, params: dict[str, Any]) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _row_count_up_to(table: str, limit: int) -> int:
    return int(_rows(f"SELECT count(*) FROM (SELECT 1 FROM public.{table} LIMIT {limit}) s")[0][0])


def replace_exclusion_constraint(swap: ExclusionSwap) -> None:
    """Run inside a revision's upgrade() or downgrade()."""
    swap = tuned(swap)
    if context.is_offline_mode():
        op.execute(
            f"-- venuedb: online this runs as a shadow-table swap when {swap.table} has "
            f">= {swap.plain_below_rows} rows; the plain form follows\n"
            "-- lint: allow ban-drop-constraint, constraint-missing-not-valid: an exclusion "
            "constraint has no NOT VALID form; online, toolkit/ops/shadow_swap.py replaces it "
            "without blocking writes\n"
            f"ALTER TABLE public.{swap.table} DROP CONSTRAINT {swap.drop_constraint};\n"
            "-- lint: allow constraint-missing-not-valid: see above; the swap builds it on a "
            "shadow table\n"
            f"ALTER TABLE public.{swap.table} ADD CONSTRAINT {swap.add_constraint} "
            f"{swap.add_definition}"
        )
        return
    if _has_constraint(swap.table, swap.add_constraint) and not _has_constraint(
        swap.table, swap.drop_constraint
    ):
        _notice(f"{swap.add_constraint} is already in place on {swap.table}")
        return
    preflight(swap)
    resuming = _exists(swap.shadow)
    rows = _row_count_up_to(swap.table, swap.plain_below_rows)
    if in_rehearsal() or (rows < swap.plain_below_rows and not resuming):
        reason = "rehearsal" if in_rehearsal() else f"{rows} rows < {swap.plain_below_rows}"
        _notice(f"path: plain ALTER TABLE on {swap.table} ({reason})")
        op.execute(
            f"ALTER TABLE public.{swap.table} DROP CONSTRAINT {swap.drop_constraint};\n"
            f"ALTER TABLE public.{swap.table} ADD CONSTRAINT {swap.add_constraint} "
            f"{swap.add_definition}"
        )
        return
    _notice(
        f"path: shadow table {swap.shadow} ({'resuming' if resuming else 'starting'}; "
        f">= {swap.plain_below_rows} rows), batches of {swap.batch_size}"
    )
    _refuse_unsupported(swap)
    _create_shadow(swap)
    with outside_transaction():
        copied = _copy_rows(swap)
        _wait_for_writers_during_the_copy(swap)
        ghosts = _remove_ghosts(swap)
        _notice(f"removed {ghosts} ghost rows (deleted while the copy read them)")
        _bind().exec_driver_sql(f"ANALYZE public.{swap.shadow}")
        _notice(f"copied {copied} rows into {swap.shadow}; swapping under a brief lock")
        _swap(swap)
    _notice(f"{swap.table} now carries {swap.add_constraint} (shadow-table swap)")


def _refuse_unsupported(swap: ExclusionSwap) -> None:
    """The swap carries indexes, constraints, grants, publications, triggers, row-level
    security and policies, statistics objects, storage parameters, replica identity, the
    owner and the table comment (_carried). It refuses whatever else the dropped table
    would take with it, or would make the DROP fail after the whole copy."""
    problems = []
    table = {"t": f"public.{swap.table}"}
    incoming = _rows(
        "SELECT conname, conrelid::regclass::text FROM pg_constraint "
        "WHERE confrelid = to_regclass(%(t)s) AND contype = 'f'",
        table,
    )
    problems += [f"foreign key {n} on {t} references it" for n, t in incoming]
    kind = _rows(
        "SELECT relkind, relispartition OR EXISTS (SELECT 1 FROM pg_inherits "
        "WHERE inhrelid = c.oid OR inhparent = c.oid), row_security_active(c.oid), "
        "pg_has_role(current_user, relowner, 'USAGE'), relowner::regrole::text "
        "FROM pg_class c WHERE c.oid = to_regclass(%(t)s)",
        table,
    )
    if kind and not kind[0][3]:
        # Only its owner (or a member, or a superuser) may drop it, at the very end.
        problems.append(f"it is owned by {kind[0][4]}, which the migrating role cannot act as")
    if kind and (kind[0][0] != "r" or kind[0][1]):
        problems.append("it is not a plain table (partitioned, a partition or inherited)")
    if kind and kind[0][2]:
        # The copy would read only the rows the policies show this role: a silent loss.
        problems.append(
            "row-level security applies to the migrating role (FORCE ROW LEVEL SECURITY "
            "on a table it owns, without BYPASSRLS), so the copy would see only the rows "
            "its policies allow; run as a superuser or a role with BYPASSRLS"
        )
    serials = _rows(
        "SELECT attname FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped "
        "AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')",
        table,
    )
    problems += [f"sequence-backed column {s[0]}" for s in serials]
    rules = _rows("SELECT rulename FROM pg_rewrite WHERE ev_class = to_regclass(%(t)s)", table)
    problems += [f"rule {r[0]}" for r in rules]
    problems += [f"{d[0]} depends on it" for d in _rows(_DEPENDENTS, table)]
    if problems:
        raise RuntimeError(
            f"the shadow-table swap of {swap.table} cannot carry: {', '.join(problems)}. "
            "Nothing was changed; extend toolkit/ops/shadow_swap.py or use a maintenance window."
        )


# The table's own parts, each (catalog, its column naming the table): DROP TABLE drops
# them with it and the swap carries them, so none is a dependent. Its indexes are own
# parts too; being pg_class rows, _DEPENDENTS finds them through pg_index.
_OWN_PARTS = (
    ("pg_constraint", "conrelid"),
    ("pg_trigger", "tgrelid"),
    ("pg_policy", "polrelid"),
    ("pg_attrdef", "adrelid"),
    ("pg_statistic_ext", "stxrelid"),
    ("pg_publication_rel", "prrelid"),
    ("pg_rewrite", "ev_class"),
)
# Objects outside the table that depend on it or on its row type (views, policies of
# other tables reading it, functions taking or returning its rows, columns of its type):
# DROP TABLE would refuse them (or CASCADE would drop them).
_DEPENDENTS = (
    """
SELECT DISTINCT coalesce(
    (SELECT 'view ' || r.ev_class::regclass::text FROM pg_rewrite r
     WHERE d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid AND r.rulename = '_RETURN'),
    pg_describe_object(d.classid, d.objid, d.objsubid))
FROM pg_depend d, pg_class t
WHERE t.oid = to_regclass(%(t)s) AND d.deptype = 'n'
  AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid)
       OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = t.reltype))
  AND NOT (d.classid = 'pg_class'::regclass AND d.objid = t.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE d.classid = 'pg_class'::regclass
                  AND i.indexrelid = d.objid AND i.indrelid = t.oid)"""
    + "".join(
        f"""
  AND NOT EXISTS (SELECT 1 FROM {catalog} part WHERE d.classid = '{catalog}'::regclass
                  AND part.oid = d.objid AND part.{column} = t.oid)"""
        for catalog, column in _OWN_PARTS
    )
    + """
ORDER BY 1
"""
)


def _columns(table: str) -> list[str]:
    return [
        r[0]
        for r in _rows(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%(t)s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            {"t": f"public.{table}"},
        )
    ]


def _create_shadow(swap: ExclusionSwap) -> None:
    """Shadow table + sync trigger, in the revision's transaction (brief locks only)."""
    temp_constraint = swap.add_constraint + SHADOW_SUFFIX
    columns = _columns(swap.table)
    if not _exists(swap.shadow):
        op.execute(
            f"CREATE TABLE public.{swap.shadow} (LIKE public.{swap.table} INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING INDEXES "
            "INCLUDING STORAGE INCLUDING COMMENTS)"
        )
        # LIKE copied the old exclusion constraint; the shadow carries the new one instead.
        for (name,) in _rows(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) "
            "AND contype = 'x'",
            {"t": f"public.{swap.shadow}"},
        ):
            op.execute(f"ALTER TABLE public.{swap.shadow} DROP CONSTRAINT {name}")
        op.execute(
            f"DO $c$ BEGIN EXECUTE format('COMMENT ON TABLE public.{swap.shadow} IS %L', "
            f"'{STARTED}' || date_trunc('second', now())::text); END $c$"
        )
        op.execute(
            f"ALTER TABLE public.{swap.shadow} ADD CONSTRAINT {temp_constraint} "
            f"{swap.add_definition}"
        )
        for name, definition in _rows(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(%(t)s) AND contype = 'f'",
            {"t": f"public.{swap.table}"},
        ):
            op.execute(f"ALTER TABLE public.{swap.shadow} ADD CONSTRAINT {name} {definition}")
    quoted = [f'"{c}"' for c in columns]
    keys = _conflict_columns(swap)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in quoted if c not in keys)
    moved = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in keys)
    old_row = " AND ".join(f"{c} = OLD.{c}" for c in keys)
    # The live table still enforces the old constraint (deferred); the shadow's copy of
    # the new one is deferred too while mirroring, so a transaction that is valid on the
    # live table at commit never fails on the shadow midway.
    # SECURITY DEFINER: the application's roles write to the live table but have no
    # privilege on the shadow (it gets the grants at the swap), so the mirror writes as
    # the shadow's owner; it only copies NEW/OLD into a qualified table (no caller can
    # call a trigger function directly), with a search_path no one else controls.
    from toolkit.ops.sql_files import execute_sql

    execute_sql(f"""
CREATE OR REPLACE FUNCTION public.{swap.sync_function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $sync$
BEGIN
    SET CONSTRAINTS public.{temp_constraint} DEFERRED;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'DELETE' OR {moved} THEN
            DELETE FROM public.{swap.shadow} WHERE {old_row};
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.{swap.shadow} ({", ".join(quoted)})
        VALUES ({", ".join(f"NEW.{c}" for c in quoted)})
        ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {updates};
    END IF;
    RETURN NULL;
END;
$sync$;
DO $t$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.{swap.table}'::regclass
                   AND tgname = '{swap.table}{SHADOW_SUFFIX}_sync') THEN
        CREATE TRIGGER {swap.table}{SHADOW_SUFFIX}_sync
            AFTER INSERT OR UPDATE OR DELETE ON public.{swap.table}
            FOR EACH ROW EXECUTE FUNCTION public.{swap.sync_function}();
    END IF;
END
$t$;
""")


def _conflict_columns(swap: ExclusionSwap) -> list[str]:
    """The live table's primary key columns, quoted: where the mirror's upsert and the
    copy meet in the shadow (an ON CONFLICT target must match a unique index exactly, and
    a key may hold more than swap.key: booking_020 made allocations' (id, restaurant_id));
    swap.key alone when the table has no primary key."""
    found = _rows(
        "SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), "
        "pg_attribute a WHERE i.indrelid = to_regclass(%(t)s) AND i.indisprimary "
        "AND a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n",
        {"t": f"public.{swap.table}"},
    )
    return [f'"{r[0]}"' for r in found] or [f'"{swap.key}"']


def _copy_rows(swap: ExclusionSwap) -> int:
    """Keyset batches, one short transaction each; ON CONFLICT skips rows already mirrored."""
    driver = _driver()
    conflict = ", ".join(_conflict_columns(swap))
    last: Any = None
    copied = 0
    batches = 0
    started = time.monotonic()
    total = _scalar(driver, f"SELECT count(*) FROM public.{swap.table}", {})
    throttle = Throttle(f"public.{swap.table}", cluster_throttle.configured(), _notice)
    with tracking(f"shadow copy of {swap.table}", total, "rows") as reporter:
        while True:
            throttle.wait_until_healthy(driver)
            where = f"WHERE {swap.key} > %(last)s" if last is not None else ""
            batch_started = time.monotonic()
            row = driver.execute(
                f"""
                WITH src AS (
                    SELECT * FROM public.{swap.table} {where}
                    ORDER BY {swap.key} LIMIT {swap.batch_size}
                ), ins AS (
                    INSERT INTO public.{swap.shadow} SELECT * FROM src
                    ON CONFLICT ({conflict}) DO NOTHING
                )
                SELECT (SELECT {swap.key} FROM src ORDER BY {swap.key} DESC LIMIT 1),
                       (SELECT count(*) FROM src)
                """,
                {"last": last},
            ).fetchone()
            if row is None or row[1] == 0:
                break
            last, count = row[0], int(row[1])
            copied += count
            reporter.advance(count)
            batches += 1
            if batches % 50 == 0:
                rate = copied / max(time.monotonic() - started, 1e-6)
                _notice(f"copied {copied} rows of {swap.table} ({rate:,.0f} rows/s)")
            if count < swap.batch_size:
                break
            time.sleep((time.monotonic() - batch_started) * swap.pause_ratio)
    _say_throttled(swap, throttle)
    return copied


def _say_throttled(swap: ExclusionSwap, throttle: Throttle) -> None:
    summary = throttle.summary()
    if summary["pauses"] or summary["standbys_lost"]:
        _notice(
            f"the copy of {swap.table} waited {summary['waited_seconds']:.1f} s for the cluster "
            f"({summary['pauses']} pauses, max replica lag {summary['max_replica_lag_seconds']}s)"
            + (
                f"; standbys lost on the way: {', '.join(summary['standbys_lost'])}"
                if summary["standbys_lost"]
                else ""
            )
        )


def _wait_for_writers_during_the_copy(swap: ExclusionSwap) -> None:
    """Wait until every transaction that held a transaction id when the copy ended has
    ended: a delete that made a ghost is then committed (or rolled back) and visible."""
    driver = _driver()
    horizon = driver.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0]
    started = time.monotonic()
    said = started
    while True:
        done, pids = driver.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= %(h)s::xid8, "
            "(SELECT string_agg(pid::text, ', ' ORDER BY pid) FROM pg_stat_activity "
            " WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid())",
            {"h": horizon},
        ).fetchone()
        if done:
            return
        waited = time.monotonic() - started
        if waited >= swap.wait_seconds:
            raise RuntimeError(
                f"transactions that were writing while the copy into {swap.shadow} ran are "
                f"still open after {waited:.0f} s (sessions holding a transaction id: "
                f"{pids or 'a prepared transaction'}); nothing was swapped and the shadow "
                "keeps mirroring: end them, then run again and the swap resumes"
            )
        if time.monotonic() - said >= 10:
            _notice(f"waiting for transactions open since the copy ended (pids {pids})")
            said = time.monotonic()
        time.sleep(0.05)


def _remove_ghosts(swap: ExclusionSwap) -> int:
    """Delete the shadow rows whose key the live table no longer has, in keyset batches
    (each read under one snapshot: a live row and its mirror commit together)."""
    driver = _driver()
    last: Any = None
    removed = 0
    key = swap.key
    throttle = Throttle(f"public.{swap.shadow}", cluster_throttle.configured(), _notice)
    while True:
        throttle.wait_until_healthy(driver)
        where = f"WHERE {key} > %(last)s" if last is not None else ""
        batch_started = time.monotonic()
        last_key, count, ghosts = driver.execute(
            f"""
            WITH batch AS (
                SELECT {key} FROM public.{swap.shadow} {where}
                ORDER BY {key} LIMIT {swap.ghost_batch}
            )
            SELECT (SELECT {key} FROM batch ORDER BY {key} DESC LIMIT 1),
                   (SELECT count(*) FROM batch),
                   ARRAY(SELECT b.{key} FROM batch b WHERE NOT EXISTS (
                       SELECT 1 FROM public.{swap.table} l WHERE l.{key} = b.{key}))
            """,
            {"last": last},
        ).fetchone()
        if ghosts:
            with driver.transaction():
                # Locked first: a writer inserting one of these keys again waits for this
                # transaction, or this waits for it; the DELETE's new snapshot then sees
                # every key committed before the locks were granted.
                driver.execute(
                    f"SELECT 1 FROM public.{swap.shadow} WHERE {key} = ANY(%(g)s) FOR UPDATE",
                    {"g": ghosts},
                )
                removed += driver.execute(
                    f"DELETE FROM public.{swap.shadow} s WHERE s.{key} = ANY(%(g)s) AND NOT "
                    f"EXISTS (SELECT 1 FROM public.{swap.table} l WHERE l.{key} = s.{key})",
                    {"g": ghosts},
                ).rowcount
        if not count or count < swap.ghost_batch:
            return removed
        last = last_key
        time.sleep((time.monotonic() - batch_started) * swap.pause_ratio)


def _index_renames(swap: ExclusionSwap) -> list[str]:
    """ALTER statements giving the shadow's indexes and constraints the live table's names."""

    def normalised(table: str) -> dict[str, str]:
        rows = _rows(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), "
            "coalesce((SELECT conname FROM pg_constraint WHERE conindid = i.indexrelid "
            "AND conrelid = i.indrelid), '') "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%(t)s)",
            {"t": f"public.{table}"},
        )
        out = {}
        for name, definition, constraint in rows:
            shape = definition.split(" ON ", 1)[1].replace(f"public.{table} ", "public.T ", 1)
            out[shape] = f"{name}|{constraint}"
        return out

    live, shadow = normalised(swap.table), normalised(swap.shadow)
    statements = []
    for shape, entry in shadow.items():
        shadow_index, shadow_constraint = entry.split("|")
        if shadow_constraint == swap.add_constraint + SHADOW_SUFFIX:
            statements.append(
                f"ALTER TABLE public.{swap.table} RENAME CONSTRAINT {shadow_constraint} "
                f"TO {swap.add_constraint}"
            )
            continue
        if shape not in live:
            continue
        live_index, live_constraint = live[shape].split("|")
        if shadow_constraint and live_constraint:
            statements.append(
                f"ALTER TABLE public.{swap.table} RENAME CONSTRAINT {shadow_constraint} "
                f"TO {live_constraint}"
            )
        elif shadow_index != live_index:
            statements.append(f"ALTER INDEX public.{shadow_index} RENAME TO {live_index}")
    # Constraints without an index (CHECK, and NOT NULL on PostgreSQL 18) that LIKE named
    # after the shadow table get the live table's prefix back.
    for (name,) in _rows(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) "
        "AND conindid = 0 AND conname LIKE %(p)s",
        {"t": f"public.{swap.shadow}", "p": f"{swap.shadow}%"},
    ):
        statements.append(
            f"ALTER TABLE public.{swap.table} RENAME CONSTRAINT {name} "
            f"TO {swap.table}{name[len(swap.shadow) :]}"
        )
    return statements


# What the new table must carry over from the live one, as statements run under the swap's
# lock after the rename, each query reading the live table (%(t)s, still under its name)
# in that same lock transaction. Reading there rather than before the lock costs a few
# catalog lookups (well under a millisecond) and loses nothing: CREATE TRIGGER, CREATE
# POLICY and ALTER TABLE wait for the ACCESS EXCLUSIVE lock, and a GRANT or COMMENT
# committed before it is seen (each statement takes a new snapshot). Definitions are
# deparsed and executed in one transaction of one session, so an unqualified function or
# table name in them resolves under the same search_path to the same object.
_CARRIED = (
    # Table and column privileges, as granted (the owner's own ones included).
    """
    SELECT format('GRANT %%s%%s ON public.%%I TO %%s%%s', a.privilege_type,
                  CASE WHEN x.attname IS NULL THEN '' ELSE format(' (%%I)', x.attname) END,
                  c.relname,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_class c
    CROSS JOIN LATERAL (
        SELECT NULL::name AS attname, c.relacl AS acl
        UNION ALL
        SELECT attname, attacl FROM pg_attribute
        WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attacl IS NOT NULL
    ) x
    CROSS JOIN LATERAL aclexplode(x.acl) a
    LEFT JOIN pg_roles r ON r.oid = a.grantee
    WHERE c.oid = to_regclass(%(t)s)
    ORDER BY x.attname NULLS FIRST, a.grantee, a.privilege_type
    """,
    # Publication memberships, with their column lists and row filters.
    """
    SELECT format('ALTER PUBLICATION %%I ADD TABLE public.%%I%%s%%s', p.pubname, c.relname,
                  (SELECT ' (' || string_agg(quote_ident(attname), ', ' ORDER BY attnum) || ')'
                   FROM pg_attribute WHERE attrelid = c.oid
                   AND attnum = ANY (pr.prattrs::int2[])),
                  ' WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')')
    FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
    JOIN pg_class c ON c.oid = pr.prrelid
    WHERE pr.prrelid = to_regclass(%(t)s) ORDER BY p.pubname
    """,
    # The table's comment (the shadow's says when the swap started), replica identity and
    # storage parameters: CREATE TABLE ... LIKE copies none of them.
    """
    SELECT format('COMMENT ON TABLE public.%%I IS %%L', relname, obj_description(oid, 'pg_class'))
    FROM pg_class WHERE oid = to_regclass(%(t)s)
    UNION ALL
    SELECT format('ALTER TABLE public.%%I REPLICA IDENTITY %%s', c.relname,
                  CASE c.relreplident WHEN 'n' THEN 'NOTHING' WHEN 'f' THEN 'FULL'
                  ELSE 'USING INDEX ' || quote_ident(i.relname) END)
    FROM pg_class c LEFT JOIN pg_index x ON x.indrelid = c.oid AND x.indisreplident
    LEFT JOIN pg_class i ON i.oid = x.indexrelid
    WHERE c.oid = to_regclass(%(t)s) AND c.relreplident <> 'd'
    UNION ALL
    SELECT format('ALTER TABLE public.%%I SET (%%s)', relname,
                  (SELECT string_agg(format('%%s = %%L', split_part(o, '=', 1),
                                            substr(o, strpos(o, '=') + 1)), ', ')
                   FROM unnest(reloptions) o))
    FROM pg_class WHERE oid = to_regclass(%(t)s) AND reloptions IS NOT NULL
    """,
    # Extended statistics objects (the next ANALYZE fills them).
    """
    SELECT s FROM pg_statistic_ext x
    CROSS JOIN LATERAL (VALUES (1, pg_get_statisticsobjdef(x.oid)),
        (2, format('COMMENT ON STATISTICS %%s.%%I IS %%L', x.stxnamespace::regnamespace,
                   x.stxname, obj_description(x.oid, 'pg_statistic_ext')))) v(n, s)
    WHERE x.stxrelid = to_regclass(%(t)s) AND s IS NOT NULL
      AND (n = 1 OR obj_description(x.oid, 'pg_statistic_ext') IS NOT NULL)
    ORDER BY x.stxname, n
    """,
    # User triggers, as defined (CREATE [CONSTRAINT] TRIGGER ... ON public.T ...), then
    # their enabled state and comments (a constraint trigger's constraint has its own).
    """
    SELECT s FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
    CROSS JOIN LATERAL (VALUES
        (1, pg_get_triggerdef(g.oid)),
        (2, CASE g.tgenabled
            WHEN 'D' THEN format('ALTER TABLE public.%%I DISABLE TRIGGER %%I', c.relname, g.tgname)
            WHEN 'R' THEN format('ALTER TABLE public.%%I ENABLE REPLICA TRIGGER %%I',
                                 c.relname, g.tgname)
            WHEN 'A' THEN format('ALTER TABLE public.%%I ENABLE ALWAYS TRIGGER %%I',
                                 c.relname, g.tgname)
            END),
        (3, 'COMMENT ON TRIGGER ' || quote_ident(g.tgname) || ' ON public.'
            || quote_ident(c.relname) || ' IS '
            || quote_literal(obj_description(g.oid, 'pg_trigger'))),
        (4, 'COMMENT ON CONSTRAINT ' || quote_ident(g.tgname) || ' ON public.'
            || quote_ident(c.relname) || ' IS '
            || quote_literal(obj_description(g.tgconstraint, 'pg_constraint')))
    ) v(n, s)
    WHERE g.tgrelid = to_regclass(%(t)s) AND NOT g.tgisinternal AND g.tgname <> %(sync)s
      AND s IS NOT NULL
    ORDER BY g.tgname, n
    """,
    # Row-level security, then every policy with its comment: all under the one lock, so
    # the table is never open without them.
    """
    SELECT format('ALTER TABLE public.%%I ENABLE ROW LEVEL SECURITY', relname)
    FROM pg_class WHERE oid = to_regclass(%(t)s) AND relrowsecurity
    UNION ALL
    SELECT format('ALTER TABLE public.%%I FORCE ROW LEVEL SECURITY', relname)
    FROM pg_class WHERE oid = to_regclass(%(t)s) AND relforcerowsecurity
    """,
    """
    SELECT s FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
    CROSS JOIN LATERAL (VALUES
        (1, format('CREATE POLICY %%I ON public.%%I AS %%s FOR %%s TO %%s%%s%%s',
            p.polname, c.relname,
            CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
            CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
            (SELECT string_agg(CASE WHEN u.role = 0 THEN 'PUBLIC'
                               ELSE quote_ident(r.rolname) END, ', ' ORDER BY u.n)
             FROM unnest(p.polroles) WITH ORDINALITY u(role, n)
             LEFT JOIN pg_roles r ON r.oid = u.role),
            ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
            ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')),
        (2, 'COMMENT ON POLICY ' || quote_ident(p.polname) || ' ON public.'
            || quote_ident(c.relname) || ' IS '
            || quote_literal(obj_description(p.oid, 'pg_policy')))
    ) v(n, s)
    WHERE p.polrelid = to_regclass(%(t)s) AND s IS NOT NULL
    ORDER BY p.polname, n
    """,
    # Last: the owner (a superuser's swap leaves the shadow its own; privileges granted
    # above by the shadow's owner move to the table's owner with it).
    """
    SELECT format('ALTER TABLE public.%%I OWNER TO %%s', relname, relowner::regrole)
    FROM pg_class WHERE oid = to_regclass(%(t)s) AND relowner <> (
        SELECT relowner FROM pg_class WHERE oid = to_regclass(%(shadow)s))
    """,
)


def _carried(driver: Any, swap: ExclusionSwap) -> list[str]:
    """The statements that give the new table what the live one has beyond its columns,
    indexes and constraints (those the shadow got from LIKE and _index_renames)."""
    params = {
        "t": f"public.{swap.table}",
        "shadow": f"public.{swap.shadow}",
        "sync": f"{swap.table}{SHADOW_SUFFIX}_sync",
    }
    return [row[0] for query in _CARRIED for row in driver.execute(query, params).fetchall()]


def _swap(swap: ExclusionSwap) -> None:
    """Drop the live table and rename the shadow into its place, under one brief lock."""
    import psycopg.errors

    renames = _index_renames(swap)
    driver = _driver()
    for attempt in range(1, swap.swap_attempts + 1):
        try:
            with driver.transaction():
                started = time.monotonic()
                driver.execute(
                    f"LOCK TABLE public.{swap.table}, public.{swap.shadow} IN ACCESS EXCLUSIVE MODE"
                )
                carried = _carried(driver, swap)  # under the lock: nothing added meanwhile
                driver.execute(
                    f"DROP TRIGGER {swap.table}{SHADOW_SUFFIX}_sync ON public.{swap.table}"
                )
                driver.execute(
                    f"ALTER TABLE public.{swap.table} RENAME TO {swap.table}{OLD_SUFFIX}"
                )
                driver.execute(f"ALTER TABLE public.{swap.shadow} RENAME TO {swap.table}")
                driver.execute(f"DROP TABLE public.{swap.table}{OLD_SUFFIX}")
                for statement in renames:
                    driver.execute(statement)
                for statement in carried:
                    driver.execute(statement)
                driver.execute(f"DROP FUNCTION public.{swap.sync_function}()")
                held_ms = (time.monotonic() - started) * 1000
            _notice(f"swap held the lock for {held_ms:.0f} ms (attempt {attempt})")
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == swap.swap_attempts:
                raise
            delay = backoff.delay(0.2, attempt - 1, cap=5.0)
            _notice(f"swap lock not granted (attempt {attempt}); retrying in {delay:.1f}s")
            time.sleep(delay)
