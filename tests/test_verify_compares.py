"""Issue 17, point 3: verify never says clean about what it did not compare.

Away from the heads the reference is a scratch database migrated to exactly the live
revisions; when none can be had (no CREATEDB, a revision this checkout does not know, a
database never migrated) the verdict is `not_compared`, exit 5, and no "clean" anywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from typer.testing import Result

from tests.clihelpers import as_json, invoke
from tests.conftest import Server


def _verify(url: str, *args: str) -> tuple[Result, dict]:
    text = invoke("verify", "--database-url", url, *args)
    result = invoke("verify", "--database-url", url, "--json", *args)
    assert result.exit_code == text.exit_code
    return text, as_json(result)


def _sql(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _never_clean(result: Result) -> None:
    assert "clean" not in result.stdout.lower() and "clean" not in result.stderr.lower()


def test_a_rewound_alembic_version_still_compares_and_finds_the_dropped_policy(
    db_url: str,
) -> None:
    _sql(
        db_url,
        "UPDATE alembic_version SET version_num = 'booking_009' "
        "WHERE version_num = 'booking_020'; DROP POLICY sales_insert_own ON public.sales",
    )
    text, report = _verify(db_url)
    assert text.exit_code == 3 and report["status"] in ("drift", "tampered"), report["status"]
    assert report["drift_reference"] == (
        "a scratch database migrated to bar_019, booking_009, core_001"
    )
    found = {(d["kind"], d["name"], d["status"]) for d in report["drift"]}
    assert ("policy", "public.sales.sales_insert_own", "missing") in found
    # What booking_010..017 added is there although alembic_version says it is not.
    assert ("trigger", "public.bookings.bookings_restaurant_id_immutable", "unexpected") in found
    _never_clean(text)


def test_a_database_never_migrated_is_not_compared(empty_db_url: str) -> None:
    text, report = _verify(empty_db_url)
    assert (text.exit_code, report["status"], report["drift_status"]) == (
        5,
        "not_compared",
        "not_compared",
    )
    assert report["postconditions"] == [] and report["clean"] is False
    assert "no revision is applied" in report["not_compared"][0]
    assert "NOT COMPARED" in text.stdout
    _never_clean(text)


def test_a_schema_without_alembic_version_is_drift(db_url: str) -> None:
    _sql(db_url, "DROP TABLE alembic_version")
    text, report = _verify(db_url)
    assert text.exit_code == 3 and report["status"] in ("drift", "tampered")
    assert any(
        (d["kind"], d["name"], d["status"]) == ("revision", "public.alembic_version", "missing")
        for d in report["drift"]
    )
    _never_clean(text)


def test_a_revision_this_checkout_does_not_know_is_not_compared(db_url: str) -> None:
    _sql(
        db_url,
        "UPDATE alembic_version SET version_num = 'booking_999' WHERE version_num = 'booking_020'",
    )
    text, report = _verify(db_url)
    assert text.exit_code in (3, 5) and report["drift_status"] == "not_compared"
    assert any("booking_999" in r for r in report["not_compared"])
    _never_clean(text)


def test_a_release_that_is_not_applied_is_not_verified_clean(db_url: str) -> None:
    down = invoke("rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url)
    assert down.exit_code == 0, down.output
    text, report = _verify(db_url, "--release", "bar-integrity")
    assert (text.exit_code, report["status"]) == (5, "not_compared")
    _never_clean(text)


@pytest.fixture
def login_role(pg_server: Server, db_url: str) -> Iterator[Callable[[str], str]]:
    """A factory: a login role with the given attributes (never CREATEDB), and the URL of
    db_url for it."""
    admin = pg_server.url("postgres")
    made: list[str] = []

    def make(attributes: str) -> str:
        role, password = f"verifier_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        _sql(admin, f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}' {attributes}")
        made.append(role)
        parts = urlsplit(db_url)
        return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for role in made:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(f"DROP ROLE {role}")


def test_no_createdb_means_not_compared_and_scratch_url_compares(
    db_url: str, login_role: Callable[[str], str], pg_server: Server
) -> None:
    down = invoke("rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url)
    assert down.exit_code == 0, down.output
    # A member of the deployer: sees what it owns (information_schema), may not create.
    verifier = login_role(f"IN ROLE {pg_server.user}")

    text, report = _verify(verifier)

    assert (text.exit_code, report["status"], report["drift_status"]) == (
        5,
        "not_compared",
        "not_compared",
    )
    assert "cannot create a scratch database" in report["not_compared"][0]
    assert "--scratch-url" in report["not_compared"][0]
    assert all(p["ok"] for p in report["postconditions"]) and report["drift"] == []
    _never_clean(text)

    text, report = _verify(verifier, "--scratch-url", pg_server.url("postgres"))
    assert (text.exit_code, report["status"], report["not_compared"]) == (0, "clean", [])
    assert report["drift_reference"].startswith("a scratch database migrated to")
    assert "building the expected schema" in text.stderr


def test_rule_rows_the_verifier_may_not_read_are_not_compared(
    login_role: Callable[[str], str],
) -> None:
    verifier = login_role("IN ROLE pg_read_all_data")  # row level security filters its reads
    text, report = _verify(verifier)
    # (Not the owner, it also misses what information_schema hides from it: exit 3 then.)
    assert text.exit_code in (3, 5) and report["drift_status"] == "not_compared"
    assert not any(d["kind"] == "rule_data" for d in report["drift"])
    assert any("public.assignment_state_transitions" in r for r in report["not_compared"])
    _never_clean(text)


def _dump(url: str, out: Path) -> str:
    made = invoke("backup", "--out", str(out), "--database-url", url, "--json")
    assert made.exit_code == 0, made.output
    return as_json(made)["path"]


@pytest.mark.parametrize(
    ("sql", "code", "verdict"),
    [
        ("DROP POLICY sales_insert_own ON public.sales", 3, "drift"),
        (
            "UPDATE alembic_version SET version_num = 'booking_999' "
            "WHERE version_num = 'booking_020'",
            5,
            "not_compared",
        ),
    ],
    ids=["dropped policy", "unknown revision"],
)
def test_restore_reports_the_real_verdict(
    db_url: str, empty_db_url: str, tmp_path: Path, sql: str, code: int, verdict: str
) -> None:
    _sql(db_url, sql)
    dump = _dump(db_url, tmp_path)
    restored = invoke("restore", dump, "--target-url", empty_db_url)
    assert restored.exit_code in (code, 3), restored.output
    assert "verify: clean" not in restored.stdout
    assert f"verify: {verdict.upper()}" in restored.stdout or "verify: TAMPERED" in (
        restored.stdout
    )


def test_restore_json_carries_verify_status(db_url: str, empty_db_url: str, tmp_path: Path) -> None:
    _sql(db_url, "DROP POLICY sales_insert_own ON public.sales")
    dump = _dump(db_url, tmp_path)
    restored = invoke("restore", dump, "--target-url", empty_db_url, "--json")
    document = as_json(restored)
    assert restored.exit_code == 3
    assert document["status"] == document["verify_status"] == "drift"
    assert document["verify"]["clean"] is False
