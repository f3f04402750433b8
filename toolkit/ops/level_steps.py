"""Building blocks for the level-2 steps in migrations/levels/: what a surgical rollback
must capture before it drops something (a trigger's exact definition and state, a
function's grants) so that `venuedb rollout RELEASE` restores exactly that.

Run inside the Alembic operations context the level runner opens (toolkit/runbook/level_run.py),
like a revision: on the migration session, under its lock_timeout.
"""

from __future__ import annotations

from typing import Any

from alembic import op

# ALTER TABLE ... <state> TRIGGER for pg_trigger.tgenabled ('O', the default, needs none).
_TRIGGER_STATES = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}


def _driver() -> Any:
    return op.get_bind().connection.driver_connection


def rows(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return list(_driver().execute(sql, params).fetchall())


def notice(message: str) -> None:
    """Say it as a NOTICE, the way revisions talk to the toolkit's output."""
    text = message.replace("'", "''")
    _driver().execute(f"DO $n$ BEGIN RAISE NOTICE '{text}'; END $n$")


def capture_triggers(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """(table, trigger) pairs in schema public, as they are now (missing ones skipped)."""
    captured = []
    for table, name in pairs:
        found = rows(
            "SELECT pg_get_triggerdef(oid), tgenabled::text FROM pg_trigger "
            "WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (f"public.{table}", name),
        )
        if found:
            captured.append(
                {"table": table, "name": name, "definition": found[0][0], "enabled": found[0][1]}
            )
    return captured


def restore_triggers(captured: list[dict[str, str]], expected: list[tuple[str, str]]) -> None:
    """Recreate each captured trigger (unless it exists) with its enabled state. The
    definitions come back from venuedb.release_levels and are executed as the deploying
    role: only a single CREATE TRIGGER of an `expected` (table, trigger) pair is run."""
    for trigger in captured:
        _refuse_unexpected(trigger, expected)
        exists = rows(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (f"public.{trigger['table']}", trigger["name"]),
        )
        if not exists:
            _driver().execute(trigger["definition"])
        state = _TRIGGER_STATES.get(trigger["enabled"])
        if state:
            _driver().execute(
                f'ALTER TABLE public.{trigger["table"]} {state} TRIGGER "{trigger["name"]}"'
            )


def _refuse_unexpected(trigger: dict[str, str], expected: list[tuple[str, str]]) -> None:
    import re

    from toolkit.errors import OperationFailed

    table, name = trigger.get("table", ""), trigger.get("name", "")
    shape = rf"CREATE (CONSTRAINT )?TRIGGER {re.escape(name)} [^;]* ON public\.{re.escape(table)} "
    if (
        (table, name) not in expected
        or not re.fullmatch(shape + r"[^;]*", trigger.get("definition", ""))
        or trigger.get("enabled") not in ("O", *_TRIGGER_STATES)
    ):
        raise OperationFailed(
            f"the recorded definition of trigger {name!r} on {table!r} is not a single CREATE "
            "TRIGGER of a trigger this level removed: venuedb.release_levels was altered. "
            "Nothing of it was run"
        )


def function_acl(signature: str) -> list[str] | None:
    """The function's ACL items (None: the default, EXECUTE for PUBLIC and the owner)."""
    found = rows("SELECT proacl::text[] FROM pg_proc WHERE oid = to_regprocedure(%s)", (signature,))
    return None if not found or found[0][0] is None else list(found[0][0])


def restore_function_acl(signature: str, acl: list[str] | None) -> None:
    """Give the (re)created function exactly the captured grants: revoke what the fresh
    function has (PUBLIC's default EXECUTE included), grant what was there."""
    if acl is None:
        return
    current = function_acl(signature)
    if current is None:
        _driver().execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    # aclexplode refuses an empty (zero-dimensional) array.
    for (grantee,) in (
        []
        if not current
        else rows(
            "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END "
            "FROM aclexplode(%s::aclitem[]) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE a.grantee <> (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure(%s))",
            (current or [], signature),
        )
    ):
        _driver().execute(f"REVOKE ALL ON FUNCTION {signature} FROM {grantee}")
    for grantee, privilege, grantable in (
        []
        if not acl
        else rows(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
            "a.privilege_type, a.is_grantable FROM aclexplode(%s::aclitem[]) a "
            "LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE a.grantee <> (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure(%s))",
            (acl, signature),
        )
    ):
        option = " WITH GRANT OPTION" if grantable else ""
        _driver().execute(f"GRANT {privilege} ON FUNCTION {signature} TO {grantee}{option}")


def function_version(name: str) -> str | None:
    """The version a function's comment records (venuedb:version=N), None when absent."""
    found = rows(
        "SELECT coalesce(obj_description(p.oid, 'pg_proc'), '') FROM pg_proc p "
        "WHERE p.proname = %s AND p.pronamespace = 'public'::regnamespace",
        (name,),
    )
    if not found:
        return None
    return str(found[0][0]).removeprefix("venuedb:version=")


def branch_head(branch_prefix: str) -> str | None:
    """The applied revision of a branch (revision ids start with the branch name)."""
    found = rows(
        "SELECT version_num FROM alembic_version WHERE version_num LIKE %s",
        (f"{branch_prefix}_%",),
    )
    return found[0][0] if found else None


def revision_module(revision: str) -> Any:
    """The module of a revision file (a level replays its ExclusionSwap, e.g. booking_005's),
    loaded by Alembic like the runner loads it."""
    from toolkit.engine.revisions import script_directory

    return script_directory().get_revision(revision).module
