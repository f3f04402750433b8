"""Rules no single domain owns, tried from SQL against the migrated schema, for every
object at once. What each rule must be comes from the committed snapshot
(migrations/schema_snapshot.json), never from the live catalog: a rule dropped or
weakened in the database under test is still the rule these tests try to break.

They are what kills the generic weakenings of schema mutation testing (mutation/): a
constraint dropped, made NOT VALID over a bad row, deferred to COMMIT or narrowed; a
function an API role could replace or hijack; a table an API role could empty."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests import rows
from tests.queries import scalar
from toolkit.integrity import catalog

SNAPSHOT = catalog.load()["objects"]
API_ROLES = ("anon", "authenticated")


def _constraints(kind: str) -> Iterator[tuple[str, str, str]]:
    """(table, name, definition) of the snapshot's constraints of one kind."""
    for key, definition in sorted(SNAPSHOT["constraint"].items()):
        schema, table, name = key.split(".", 2)
        if definition.startswith(kind):
            yield f"{schema}.{table}", name, definition


def _checks_of(table: str, but: str = "") -> dict[str, str]:
    return {
        name: rows.check_expression(d)
        for t, name, d in _constraints("CHECK ")
        if t == table and name != but
    }


def _columns(definition: str, prefix: str) -> list[str]:
    match = re.match(rf"{prefix} \(([^)]*)\)", definition)
    assert match, definition
    return [c.strip().strip('"') for c in match.group(1).split(",")]


def _refused(conn: psycopg.Connection, table: str, row: dict, error: type[psycopg.Error]) -> str:
    """Insert `row` in a savepoint: what the database said (its constraint's name, or
    why that is not the expected refusal at the statement)."""
    try:
        with conn.transaction():
            rows.insert(conn, table, row)
    except error as exc:
        return exc.diag.constraint_name or "(no constraint named)"
    except psycopg.Error as exc:
        return f"refused otherwise: {type(exc).__name__}: {exc}".splitlines()[0]
    return "accepted at the statement"


def test_every_constraint_was_validated_over_every_row(db_url: str) -> None:
    """A NOT VALID constraint checks new rows only: rows written before (or with triggers
    off) may break it. Every constraint of ours is validated once its backfill is done."""
    with psycopg.connect(db_url) as conn:
        unvalidated = scalar(
            conn,
            "SELECT string_agg(conrelid::regclass || '.' || conname, ', ') FROM pg_constraint "
            "WHERE NOT convalidated AND connamespace IN ('public'::regnamespace, 'auth'::regnamespace)",
        )
    assert unvalidated is None


def test_every_check_refuses_each_row_that_breaks_it_at_the_statement(db_url: str) -> None:
    """Every row a CHECK exists to refuse (boundaries included: 0 for `> 0`, a window
    that ends as it starts) is refused by that CHECK, when written."""
    wrong = []
    with psycopg.connect(db_url) as conn:
        conn.execute("SET session_replication_role = replica")  # no trigger speaks first
        for table, name, definition in _constraints("CHECK "):
            found = rows.search(
                conn,
                table,
                _checks_of(table, but=name),
                rows.check_expression(definition),
                limit=50,
            )
            assert found, f"no candidate row breaks {name}"
            for row in rows.fetch(conn, *found):
                said = _refused(conn, table, row, errors.CheckViolation)
                if said != name:
                    wrong.append(f"{name}: {row}: {said}")
    assert not wrong, "\n".join(wrong)


def test_every_foreign_key_refuses_an_orphan_at_the_statement(db_url: str) -> None:
    """A row whose key no parent has is refused by its foreign key when written (not at
    COMMIT: a function that catches the error must see it). Every other trigger of the
    table is off, so that only the key under test speaks."""
    wrong = []
    with psycopg.connect(db_url) as conn:
        for table, name, definition in _constraints("FOREIGN KEY "):
            with conn.transaction(force_rollback=True):
                others = conn.execute(
                    "SELECT t.tgname FROM pg_trigger t LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint "
                    "WHERE t.tgrelid = %s::regclass AND c.conname IS DISTINCT FROM %s",
                    (table, name),
                ).fetchall()
                for (trigger,) in others:
                    conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {rows.ident(trigger)}")
                found = rows.search(
                    conn, table, _checks_of(table), fresh=_columns(definition, "FOREIGN KEY")
                )
                assert found, f"no row can be made for {name}"
                said = _refused(
                    conn, table, rows.fetch(conn, *found)[0], errors.ForeignKeyViolation
                )
                if said != name:
                    wrong.append(f"{name}: {said}")
    assert not wrong, "\n".join(wrong)


def test_every_key_refuses_a_duplicate_at_the_statement(db_url: str) -> None:
    """Two rows alike in a primary key's or a UNIQUE constraint's columns (and different
    in every other key) are refused by that constraint when the second is written."""
    keys = [*_constraints("PRIMARY KEY "), *_constraints("UNIQUE ")]
    wrong = []
    with psycopg.connect(db_url) as conn:
        conn.execute("SET session_replication_role = replica")  # foreign keys and triggers off
        for table, name, definition in keys:
            columns = _columns(
                definition, "PRIMARY KEY" if definition.startswith("PRIMARY") else "UNIQUE"
            )
            with conn.transaction(force_rollback=True):
                found = rows.search(conn, table, _checks_of(table), fill=columns)
                assert found, f"no row can be made for {name}"
                first = rows.fetch(conn, *found)[0]
                rows.insert(conn, table, first)
                others = [
                    _columns(d, d.split(" (")[0]) for t, o, d in keys if t == table and o != name
                ]
                changed = _one_column_of_each(conn, table, others, columns)
                second = {
                    column: _other(value) if column.strip('"') in changed else value
                    for column, value in first.items()
                }
                said = _refused(conn, table, second, errors.UniqueViolation)
                if said != name:
                    wrong.append(f"{name}: {said}")
    assert not wrong, "\n".join(wrong)


def _one_column_of_each(
    conn: psycopg.Connection, table: str, others: list[list[str]], key: list[str]
) -> set[str]:
    """A column to change in each of the table's other keys (not one of `key`'s): a uuid
    if it has one, else a text; for a key on a generated column, a text column it
    may be generated from."""
    described = {c.name: c for c in rows.columns(conn, table)}
    changed: set[str] = set()
    for other in others:
        free = [described[c] for c in other if c not in key]
        pick = [c for c in free if not c.generated and c.type == "uuid"] or [
            c for c in free if not c.generated and c.type == "text"
        ]
        if not pick and any(c.generated for c in free):
            pick = [c for c in described.values() if c.type == "text" and not c.generated]
        if pick:
            changed.add(pick[0].name)
    return changed


def _other(value: str | None) -> str | None:
    """A value unlike `value`, of a uuid or a text column."""
    if value is None:
        return None
    if re.fullmatch(r"[0-9a-f-]{36}", value):
        return "00000000-0000-4000-8000-0000000000ff"
    return value + "-2"


@pytest.mark.parametrize("role", API_ROLES)
def test_no_api_role_can_alter_any_function_of_ours(db_url: str, role: str) -> None:
    """Whoever owns a function can replace its body or make it SECURITY DEFINER: no
    function of ours may be owned by a role the API hands out."""
    altered = []
    with psycopg.connect(db_url) as conn:
        for signature in sorted(SNAPSHOT["function"]):
            with conn.transaction(force_rollback=True):
                conn.execute(f"SET LOCAL ROLE {role}")
                try:
                    conn.execute(f"ALTER ROUTINE {_quoted(signature)} SECURITY DEFINER")
                    altered.append(signature)
                except (errors.InsufficientPrivilege, errors.UndefinedFunction):
                    pass
    assert not altered, f"{role} may alter: {altered}"


def _quoted(signature: str) -> str:
    """`public.f(p_a uuid, OUT x text)` -> a signature ALTER ROUTINE takes."""
    name, _, args = signature.partition("(")
    kept = [a for a in args.rstrip(")").split(", ") if a and not a.startswith("OUT ")]
    return f"{name}({', '.join(kept)})"


@pytest.mark.parametrize("role", API_ROLES)
def test_no_api_role_can_truncate_any_table(db_url: str, role: str) -> None:
    """TRUNCATE passes row level security by: no API role may hold it on any table.
    Without CASCADE, so that only this table's privilege is checked: a table others
    reference then refuses for its foreign keys, after the privilege let it through."""
    emptied = []
    with psycopg.connect(db_url) as conn:
        for table, definition in sorted(SNAPSHOT["table"].items()):
            if "kind=r" not in definition:
                continue
            with conn.transaction(force_rollback=True):
                conn.execute(f"SET LOCAL ROLE {role}")
                try:
                    conn.execute(f"TRUNCATE {table}")
                    emptied.append(table)
                except errors.InsufficientPrivilege:
                    pass
                except errors.FeatureNotSupported:  # referenced: the privilege was there
                    emptied.append(table)
    assert not emptied, f"{role} may truncate: {emptied}"


@pytest.mark.parametrize("role", API_ROLES)
def test_no_api_role_can_create_objects_a_function_could_resolve(db_url: str, role: str) -> None:
    """What keeps a function with no pinned search_path safe from its caller: the only
    schema an API role may create in is its own pg_temp, and PostgreSQL never looks
    there for functions or operators (every table our functions read is written with its
    schema). No schema, and no new one, for an API role's objects."""
    made = []
    with psycopg.connect(db_url) as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_'"
            ).fetchall()
        ]
        for schema in [*schemas, None]:
            with conn.transaction(force_rollback=True):
                conn.execute(f"SET LOCAL ROLE {role}")
                statement = (
                    f"CREATE FUNCTION {rows.ident(schema)}.venuedb_probe() RETURNS int "
                    "LANGUAGE sql AS 'SELECT 1'"
                    if schema is not None
                    else "CREATE SCHEMA venuedb_probe"
                )
                try:
                    conn.execute(statement)
                    made.append(schema or "a new schema")
                except errors.InsufficientPrivilege:
                    pass
    assert not made, f"{role} may create functions in: {made}"


SAME_RESTAURANT_HINT = "Only a table of the same restaurant can be allocated, assigned or held."


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES ({booking}, {b1})",
        "INSERT INTO table_hold_members (hold_id, table_id) VALUES ({hold}, {b1})",
    ],
    ids=["assignment", "hold member"],
)
def test_another_restaurants_table_is_refused_saying_why(db_url: str, write: str) -> None:
    """The composite foreign keys would refuse it too, with a bare key violation: the
    trigger refuses first and tells the caller what to do instead."""
    ids = {
        k: f"'00000000-0000-4000-8000-0000000000{n:02d}'"
        for n, k in enumerate(("ra", "rb", "za", "zb", "a1", "b1", "booking", "hold"), 1)
    }
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO restaurants (id, name, slug) VALUES ({ra}, 'A', 'a'), ({rb}, 'B', 'b');
            INSERT INTO zones (id, restaurant_id, name) VALUES ({za}, {ra}, 'Main'), ({zb}, {rb}, 'Main');
            INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity)
            VALUES ({a1}, {ra}, {za}, 'A1', 4), ({b1}, {rb}, {zb}, 'B1', 4);
            INSERT INTO bookings (id, restaurant_id, party_size, booking_date, start_at, end_at, status)
            VALUES ({booking}, {ra}, 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00',
                    'pending');
            INSERT INTO table_holds (id, restaurant_id, booking_id, zone_id, start_at, end_at, expires_at)
            VALUES ({hold}, {ra}, {booking}, {za}, '2031-01-01 19:00+00', '2031-01-01 21:00+00',
                    now() + interval '1 day');
            """.format(**ids)
        )
        with pytest.raises(errors.ForeignKeyViolation) as refused:
            conn.execute(write.format(**ids))
    assert refused.value.diag.message_hint == SAME_RESTAURANT_HINT
