"""Issue 17, point 4: hand-made changes that weaken the rules without touching a
definition are drift, named; a grant revoked back to the default is not.

Roles are cluster-wide: a change to one is undone after the test (`undo`).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import Server

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py

FLAG = "public.feature_enabled_for(p_flag text, p_restaurant_id uuid)"
BAR_ROLE = "public.bar_role(p_bar_id uuid)"
TRANSITIONS = "public.assignment_state_transitions"

# (what, sql, undo on the server, drift that must be reported: {(kind, name, status)}).
# Only the kinds named in the expected set may be reported.
WEAKENINGS = [
    (
        "role BYPASSRLS",
        "ALTER ROLE authenticated BYPASSRLS",
        "ALTER ROLE authenticated NOBYPASSRLS",
        {("role", "authenticated", "changed")},
    ),
    (
        "role search_path",
        "ALTER ROLE anon SET search_path = evil, public",
        "ALTER ROLE anon RESET search_path",
        {("role", "anon", "changed")},
    ),
    (
        "role setting in this database",
        "DO $$ BEGIN EXECUTE format('ALTER ROLE authenticated IN DATABASE %I "
        "SET row_security = off', current_database()); END $$",
        None,  # dropped with the database
        {("role", "authenticated", "changed")},
    ),
    (
        "role membership",
        "GRANT service_role TO anon",
        "REVOKE service_role FROM anon",
        {("role", "anon", "changed")},
    ),
    (
        "every trigger disabled, system FK triggers too",
        "ALTER TABLE public.bookings DISABLE TRIGGER ALL",
        None,
        {
            ("trigger_mode", "public.bookings.booking_assignment_state_machine", "changed"),
            (
                "trigger_mode",
                "public.bookings.bookings_restaurant_id_fkey/RI_FKey_check_ins/insert",
                "changed",
            ),
        },
    ),
    (
        "trigger fires on replicas only",
        "ALTER TABLE public.sales ENABLE REPLICA TRIGGER sales_server_id_member_check",
        None,
        {("trigger_mode", "public.sales.sales_server_id_member_check", "changed")},
    ),
    (
        "trigger fires always",
        "ALTER TABLE public.bookings ENABLE ALWAYS TRIGGER booking_assignment_validation",
        None,
        {("trigger_mode", "public.bookings.booking_assignment_validation", "changed")},
    ),
    (
        "EXECUTE to PUBLIC",
        "GRANT EXECUTE ON FUNCTION public.feature_enabled_for(text, uuid) TO PUBLIC",
        None,
        {("function_grant", FLAG, "changed")},
    ),
    (
        "EXECUTE to anon",
        "GRANT EXECUTE ON FUNCTION public.feature_enabled_for(text, uuid) TO anon",
        None,
        {("function_grant", FLAG, "changed")},
    ),
    (
        "SECURITY DEFINER",
        "ALTER FUNCTION public.feature_enabled_for(text, uuid) SECURITY DEFINER",
        None,
        {("function", FLAG, "changed"), ("security_definer", FLAG, "unexpected")},
    ),
    (
        "LEAKPROOF",
        "ALTER FUNCTION public.feature_enabled_for(text, uuid) LEAKPROOF",
        None,
        {("function", FLAG, "changed")},
    ),
    (
        "strictness",
        "ALTER FUNCTION public.feature_enabled_for(text, uuid) RETURNS NULL ON NULL INPUT",
        None,
        {("function", FLAG, "changed")},
    ),
    (
        "search_path of a SECURITY DEFINER function",
        "ALTER FUNCTION public.bar_role(uuid) RESET search_path",
        None,
        {("function", BAR_ROLE, "changed"), ("security_definer", BAR_ROLE, "changed")},
    ),
    (
        "owner",
        "ALTER FUNCTION public.bar_role(uuid) OWNER TO anon",
        None,
        {
            ("function", BAR_ROLE, "changed"),
            ("security_definer", BAR_ROLE, "changed"),
        },
    ),
    (
        "SECURITY DEFINER function in a new schema",
        "CREATE SCHEMA sneaky; CREATE FUNCTION sneaky.run(q text) RETURNS void "
        "LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE q; END $$",
        None,
        {
            ("schema", "sneaky", "unexpected"),
            ("function", "sneaky.run(q text)", "unexpected"),
            ("function_grant", "sneaky.run(q text)", "unexpected"),
            ("security_definer", "sneaky.run(q text)", "unexpected"),
        },
    ),
    (
        "rule",
        "CREATE RULE swallow AS ON INSERT TO public.observability_events DO INSTEAD NOTHING",
        None,
        {("rule", "public.observability_events.swallow", "unexpected")},
    ),
    (
        "CREATE on schema public",
        "GRANT CREATE ON SCHEMA public TO anon",
        None,
        {("schema", "public", "changed")},
    ),
    (
        "column grant",
        "GRANT SELECT (email) ON auth.users TO anon",
        None,
        {("column_grant", "auth.users.email", "unexpected")},
    ),
    (
        "default privileges",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon",
        None,
        {("default_acl", "(deployer) in public on r", "unexpected")},
    ),
    (
        "state machine transition edited",
        f"UPDATE {TRANSITIONS} SET to_state = 'confirmed' "
        f"WHERE (from_state, to_state) = (SELECT from_state, to_state FROM {TRANSITIONS} "
        "ORDER BY 1, 2 LIMIT 1)",
        None,
        {("rule_data", TRANSITIONS, "changed")},
    ),
    (
        "state machine transition added",
        f"INSERT INTO {TRANSITIONS} VALUES ('cancelled', 'confirmed', 'resurrect')",
        None,
        {("rule_data", TRANSITIONS, "changed")},
    ),
]


@pytest.mark.parametrize(
    ("what", "sql", "undo", "expected"), WEAKENINGS, ids=[w[0] for w in WEAKENINGS]
)
def test_each_weakening_is_drift_by_name(
    db_url: str, pg_server: Server, what: str, sql: str, undo: str | None, expected: set
) -> None:
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql)
        result = invoke("verify", "--database-url", db_url, "--json")
    finally:
        if undo:
            with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
                conn.execute(undo)
    report = as_json(result)
    assert (result.exit_code, report["status"]) == (3, "drift"), report["not_compared"]
    found = {(d["kind"], d["name"], d["status"]) for d in report["drift"]}
    assert expected <= found
    assert {d["kind"] for d in report["drift"]} <= {kind for kind, _, _ in expected}, found


def test_grants_revoked_back_to_the_default_are_clean(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        # auth.users and auth.uid() had no ACL at all (the default); bookings had one.
        for grant, revoke in [
            ("GRANT SELECT ON auth.users TO anon", "REVOKE SELECT ON auth.users FROM anon"),
            (
                "GRANT SELECT ON public.bookings TO anon",
                "REVOKE SELECT ON public.bookings FROM anon",
            ),
            (
                "GRANT SELECT (email) ON auth.users TO anon",
                "REVOKE SELECT (email) ON auth.users FROM anon",
            ),
            (
                "GRANT EXECUTE ON FUNCTION public.feature_enabled_for(text, uuid) TO anon",
                "REVOKE EXECUTE ON FUNCTION public.feature_enabled_for(text, uuid) FROM anon",
            ),
            (
                "REVOKE EXECUTE ON FUNCTION auth.uid() FROM PUBLIC",
                "GRANT EXECUTE ON FUNCTION auth.uid() TO PUBLIC",
            ),
            ("GRANT CREATE ON SCHEMA auth TO anon", "REVOKE CREATE ON SCHEMA auth FROM anon"),
            (
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anon",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM anon",
            ),
        ]:
            conn.execute(grant)
            conn.execute(revoke)
    result = invoke("verify", "--database-url", db_url, "--json")
    report = as_json(result)
    assert (result.exit_code, report["status"], report["drift"]) == (0, "clean", [])
