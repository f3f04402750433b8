"""Read-only commands on a hot standby (and on a read-only session of a primary) work and
write nothing; the commands that must write refuse before doing anything (exit 2), naming
the standby's primary (issue 22)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import Server
from tests.queries import scalar
from tests.replication import Replicated
from toolkit.server.urls import with_database

pytestmark = pytest.mark.xdist_group("replicas")

# A record `running` whose backend is gone: `status` and `records` mark such a record
# interrupted (an UPDATE) wherever they may write. On a read-only session they must not.
_DEAD_RUN = """
INSERT INTO venuedb.deployments
    (command, target, actor, os_user, hostname, toolkit_version, backend_pid)
VALUES ('apply', 'heads', 'tests', 'tests', 'tests', 'tests', 2147483000)
RETURNING id
"""


def _add_dead_run(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(scalar(conn, _DEAD_RUN))


def _written_state(url: str) -> dict[str, Any]:
    """What a command that wrote would have changed on the primary: the cluster's databases
    (a scratch database for verify's reference), the toolkit's records and progress, the
    schemas, and the revision table."""
    with psycopg.connect(url) as conn:
        return {
            "databases": sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database")),
            "deployments": conn.execute(
                "SELECT id, command, result, error, finished_at FROM venuedb.deployments "
                "ORDER BY id"
            ).fetchall(),
            "backfills": conn.execute(
                "SELECT name, state, pause_requested FROM venuedb.backfill_progress ORDER BY 1"
            ).fetchall(),
            "schemas": sorted(r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")),
            "revisions": sorted(r[0] for r in conn.execute("SELECT * FROM alembic_version")),
            "flags": conn.execute("SELECT * FROM public.feature_flags ORDER BY 1").fetchall(),
        }


def _on_the_standby(
    replicated: Replicated, query: str, params: tuple[Any, ...], dbname: str = "postgres"
) -> None:
    """Wait until the standby's own sessions see what `query` finds (a row): caught_up's
    replay position alone has been seen to come a moment before a new session sees it."""
    replicated.caught_up()
    deadline = time.monotonic() + 30
    while True:
        with replicated.standby_conn(dbname) as conn:
            if conn.execute(query, params).fetchone():
                return
        assert time.monotonic() < deadline, f"the standby never saw {query} {params}"
        time.sleep(0.1)


def _primary_address(replicated: Replicated) -> str:
    return f"127.0.0.1:{replicated.primary.status().port}"


def test_read_only_commands_on_a_standby_work_and_write_nothing(
    replicated: Replicated, replicated_migrated_db: str, tmp_path: Path
) -> None:
    primary = replicated.primary_url(replicated_migrated_db)
    standby = replicated.standby_url(replicated_migrated_db)
    dead = _add_dead_run(primary)
    _on_the_standby(
        replicated,
        "SELECT 1 FROM venuedb.deployments WHERE id = %s",
        (dead,),
        replicated_migrated_db,
    )
    before = _written_state(primary)

    code, report = _json_of("verify", standby)
    assert code == 0 and report["status"] == "clean", report
    assert report["drift_status"] == "compared" and not report["not_compared"]
    assert "schema_snapshot.json" in report["drift_reference"]
    assert any("verified on a hot standby" in note for note in report["notes"]), report["notes"]

    code, checked = _json_of("check", standby)
    code_on_primary, on_primary = _json_of("check", primary)
    assert checked["counts"]["error"] == 0, [c for c in checked["checks"] if c["error"]]
    assert (code, checked["status"]) == (code_on_primary, on_primary["status"])
    assert {c["name"]: c["status"] for c in checked["checks"]} == {
        c["name"]: c["status"] for c in on_primary["checks"]
    }

    code, status = _json_of("status", standby)
    assert code == 0 and status["status"] == "ok", status
    assert status["read_only"] == {
        "in_recovery": True,
        "primary": _primary_address(replicated),
        "what": "a hot standby (read-only, in recovery)",
    }
    assert status["last_deployment"]["id"] == dead
    assert status["last_deployment"]["result"] == "running"  # read as it is, not reaped
    assert "not checked for a run that died" in status["read_only_note"]
    text = invoke("status", "--database-url", standby)
    assert text.exit_code == 0 and "note: read on a hot standby" in text.stdout

    code, listed = _json_of("records", standby)
    assert code == 0 and listed["status"] == "ok", listed
    newest = listed["records"][0]
    assert (newest["id"], newest["result"]) == (dead, "running")
    assert listed["read_only"]["in_recovery"] is True
    code, shown = _json_of("records", standby, "show", str(dead))
    assert code == 0 and shown["record"]["result"] == "running", shown

    for also in (
        ["history"],
        ["backfill", "status"],
        ["exporter", "--once"],
        ["backup", "--out", str(tmp_path / "backups")],
    ):
        result = invoke(*also, "--database-url", standby)
        assert result.exit_code in (0, 5), (also, result.output)  # exporter: 5, checks no data
        assert "read-only transaction" not in result.output, (also, result.output)

    assert _written_state(primary) == before
    # The record was one a writable session marks: on the primary, status reaps it.
    assert invoke("status", "--database-url", primary).exit_code == 0
    with psycopg.connect(primary) as conn:
        result = scalar(conn, "SELECT result FROM venuedb.deployments WHERE id = %s", (dead,))
    assert result == "interrupted"


def _json_of(command: str, url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke(command, *args, "--database-url", url, "--json")
    return result.exit_code, as_json(result)


def test_records_and_status_on_a_standby_of_a_database_without_the_toolkits_schema(
    replicated: Replicated, replicated_db: str
) -> None:
    standby = replicated.standby_url(replicated_db)
    listed = invoke("records", "--database-url", standby)
    assert listed.exit_code == 0, listed.output
    assert "no deployment records in this database" in listed.stdout
    code, status = _json_of("status", standby)
    assert code == 0 and status["last_deployment"] is None, status
    with psycopg.connect(replicated.primary_url(replicated_db)) as conn:
        assert scalar(conn, "SELECT to_regnamespace('venuedb')") is None


def test_verify_on_a_standby_below_the_heads_needs_a_scratch_url_and_never_says_clean(
    replicated: Replicated, replicated_migrated_db: str, pg_server: Server
) -> None:
    primary = replicated.primary_url(replicated_migrated_db)
    standby = replicated.standby_url(replicated_migrated_db)
    down = invoke("rollback", "bar-distribution-keys", "--yes", "--database-url", primary)
    assert down.exit_code == 0, down.output
    _on_the_standby(
        replicated,
        "SELECT 1 WHERE NOT EXISTS (SELECT FROM alembic_version WHERE version_num = %s)",
        ("bar_019",),
        replicated_migrated_db,
    )
    before = _written_state(primary)

    code, report = _json_of("verify", standby)
    assert code == 5 and report["status"] == "not_compared", report
    (reason,) = report["not_compared"]
    assert "is a hot standby (read-only, in recovery)" in reason
    assert "--scratch-url" in reason
    assert _written_state(primary) == before  # no scratch database on the primary either

    # Another server builds the reference: compared, and clean only then.
    elsewhere = with_database(pg_server.base_url, "postgres")
    code, report = _json_of("verify", standby, "--scratch-url", elsewhere)
    assert code == 0 and report["status"] == "clean", report
    assert report["drift_reference"].startswith("a scratch database migrated to")
    assert _written_state(primary) == before


def _writing_commands(tmp_path: Path) -> list[list[str]]:
    dump = tmp_path / "venuedb.dump"
    dump.write_bytes(b"not read: the target is refused first")
    return [
        ["apply"],
        ["apply", "--plan"],
        ["rollback", "assignment-times", "--yes"],
        ["rollback", "assignment-pipeline-v3", "--level", "1", "--yes"],
        ["rollout", "assignment-times", "--yes"],
        ["stamp", "core"],
        ["backfill", "run", "sales_server_id"],
        ["backfill", "resume", "sales_server_id"],
        ["backfill", "pause", "sales_server_id"],
        ["restore", str(dump), "--force"],
        ["flags", "set", "ENABLE_SWITCHING_MODE", "on"],
        ["flags", "rollout", "FEATURE_ASSIGNMENT_PIPELINE_V3", "--percent", "10"],
        ["accept-checksum", "booking_001", "--reason", "INC-1"],
        ["assign"],
        ["demo"],
    ]


def test_writing_commands_refuse_on_a_standby_naming_its_primary(
    replicated: Replicated, replicated_migrated_db: str, tmp_path: Path
) -> None:
    primary = replicated.primary_url(replicated_migrated_db)
    standby = replicated.standby_url(replicated_migrated_db)
    password = replicated.primary.password()
    before = _written_state(primary)
    wrong = []
    for command in _writing_commands(tmp_path):
        result = invoke(*command, "--database-url", standby)
        name = " ".join(command)
        expected = (
            f"is a hot standby (read-only, in recovery): {_command_name(command)} must run "
            f"on its primary, {_primary_address(replicated)}; nothing was changed"
        )
        if result.exit_code != 2 or expected not in result.output or password in result.output:
            wrong.append(f"{name}: exit {result.exit_code}: {result.output[-600:]}")
    assert not wrong, "\n".join(wrong)
    assert _written_state(primary) == before


def _command_name(command: list[str]) -> str:
    if command[0] in ("backfill", "flags"):
        return " ".join(command[:2])
    return command[0]


def test_a_writing_command_refuses_in_json_too(
    replicated: Replicated, replicated_migrated_db: str
) -> None:
    code, refused = _json_of("apply", replicated.standby_url(replicated_migrated_db))
    assert (code, refused["status"], refused["exit_code"]) == (2, "bad_input", 2), refused
    assert _primary_address(replicated) in refused["error"]


def test_a_standby_role_that_may_not_see_the_primary_still_refuses(
    replicated: Replicated, replicated_migrated_db: str
) -> None:
    """primary_conninfo and the WAL receiver's sender are for privileged roles: the
    refusal still says standby, without naming a primary it cannot see."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(replicated.primary_url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
    try:
        url = _as_role(replicated.standby_url(replicated_migrated_db), role, "reader")
        _on_the_standby(replicated, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        result = invoke("apply", "--database-url", url)
        assert result.exit_code == 2, result.output
        assert "is a hot standby (read-only, in recovery): apply must run on its primary" in (
            result.output
        )
        assert "not named here" in result.output
        assert _primary_address(replicated) not in result.output
    finally:
        with psycopg.connect(replicated.primary_url(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def _as_role(url: str, role: str, password: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture
def read_only_url(db_url: str) -> Iterator[str]:
    """db_url as a role whose sessions are read-only (default_transaction_read_only = on),
    as a read-only role of a hosted database is."""
    role = f"readonly_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'readonly'")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    yield _as_role(db_url, role, "readonly")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(f"DROP ROLE {role}")


def test_read_only_commands_on_a_read_only_session_of_a_primary(
    db_url: str, read_only_url: str
) -> None:
    dead = _add_dead_run(db_url)
    before = _written_state(db_url)
    code, report = _json_of("verify", read_only_url)
    assert code == 0 and report["status"] == "clean", report
    code, status = _json_of("status", read_only_url)
    assert code == 0 and status["read_only"]["in_recovery"] is False, status
    assert status["last_deployment"]["result"] == "running"
    code, listed = _json_of("records", read_only_url)
    assert code == 0 and listed["records"][0]["id"] == dead, listed
    code, checked = _json_of("check", read_only_url)
    assert checked["counts"]["error"] == 0 and code in (0, 5), checked
    assert _written_state(db_url) == before
    refused = invoke("apply", "--database-url", read_only_url)
    assert refused.exit_code == 2, refused.output
    assert (
        "is read-only for this session (default_transaction_read_only = on): apply must run "
        "with a role or connection whose transactions may write" in refused.output
    )
