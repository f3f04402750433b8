"""The command line: --help that teaches, bad input exits 2 with one clear line, nothing changed."""

from __future__ import annotations

import psycopg
import pytest

from tests.clihelpers import as_json, invoke

COMMANDS = [
    [],
    ["db"],
    ["db", "start"],
    ["db", "stop"],
    ["db", "status"],
    ["db", "url"],
    ["status"],
    ["apply"],
    ["rollback"],
    ["history"],
    ["demo"],
    ["flags"],
    ["flags", "rollout"],
    ["assign"],
    ["backfill"],
    ["backfill", "list"],
    ["backfill", "run"],
    ["backfill", "status"],
    ["backfill", "pause"],
    ["backfill", "resume"],
    ["fleet"],
    ["fleet", "apply"],
    ["fleet", "verify"],
    ["fleet", "check"],
    ["fleet", "status"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "venuedb")
def test_every_command_explains_itself(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: venuedb" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_apply_help_explains_lock_timeout_and_rehearse() -> None:
    text = invoke("apply", "--help").stdout
    for option in (
        "--lock-wait",
        "--lock-timeout",
        "--statement-timeout",
        "--retries",
        "--rehearse",
        "--rehearse-in-place",
        "--scratch-url",
        "--sql",
        "--json",
        "--database-url",
    ):
        assert option in text
    # Say plainly what rehearsing in place does to the target's writers.
    assert "blocking forms" in text and "stall" in text


def _unchanged(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT to_regclass('public.alembic_version'), to_regnamespace('venuedb')"
        ).fetchone()
    return row == (None, None)


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "no-such-release"],
        ["apply", "deadbeef"],
        ["apply", "booking@nothing"],
        ["rollback", "no-such", "--yes"],
        ["apply", "--lock-timeout", "soon"],
        ["apply", "base"],
    ],
)
def test_bad_target_exits_2_and_changes_nothing(empty_db_url: str, args: list[str]) -> None:
    result = invoke(*args, "--database-url", empty_db_url)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "Traceback" not in result.output
    assert _unchanged(empty_db_url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@127.0.0.1:notaport/db",
        "mysql://u:hunter2@localhost/db",
        "postgresql://u:hunter2@127.0.0.1:1/db",
    ],
)
def test_bad_or_unreachable_url_exits_2_without_leaking_the_password(url: str) -> None:
    for command in (["status"], ["apply"], ["rollback", "base", "--yes"], ["history"]):
        result = invoke(*command, "--database-url", url)
        assert result.exit_code == 2, result.output
        assert "hunter2" not in result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1


def test_json_errors_are_one_document_with_status() -> None:
    result = invoke("status", "--json", "--database-url", "postgresql://u:pw@127.0.0.1:1/db")
    assert result.exit_code == 2
    document = as_json(result)
    assert document["status"] == "bad_input" and document["exit_code"] == 2


def test_sql_prints_the_migration_sql_without_a_database() -> None:
    result = invoke("apply", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" in result.stdout
    assert "allocations_resource_window_excl" in result.stdout
    assert "confirm_hold_assignment_tx" in result.stdout
    assert "BEGIN;" in result.stdout and "COMMIT;" in result.stdout


def test_history_offline_lists_every_release() -> None:
    result = invoke("history", "--offline", "--json")
    assert result.exit_code == 0
    releases = {entry["release"] for entry in as_json(result)["revisions"]}
    assert {"core", "booking-baseline", "bar-baseline"} <= releases


def test_demo_runs_on_a_given_database(empty_db_url: str) -> None:
    result = invoke("demo", "--database-url", empty_db_url, "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert all(r["state"] == "applied" for r in document["releases"])
    assert document["sample"]["bookings"] > 1000
    assert document["assignment"]["assigned"] > 0.9 * document["assignment"]["considered"]
    from toolkit.server.urls import mask_url

    assert document["database"] == mask_url(empty_db_url)


def test_db_commands_on_a_project_without_a_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("VENUEDB_HOME", str(tmp_path))
    status = invoke("db", "status", "--json")
    assert status.exit_code == 1
    assert as_json(status)["server"]["state"] == "not_initialised"
    url = invoke("db", "url")
    assert url.exit_code == 2 and "venuedb db start" in url.stderr
    assert invoke("db", "stop").exit_code == 0
