"""Bad option values are refused before anything runs (issue 16, point 5): exit 2, one line
naming the option, the value and what is allowed; no connection, nothing recorded."""

from __future__ import annotations

import argparse

import psycopg
import pytest

from tests.clihelpers import invoke
from tests.queries import scalar
from toolkit.engine import revisions as revs
from toolkit.errors import BadInput

# Nothing listens on port 1: a command that tried to connect would say "cannot reach".
UNREACHABLE = "postgresql://u:pw@127.0.0.1:1/db"
HUGE = str(10**30)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["apply", "--lock-timeout", "0"], "--lock-timeout", "'0'"),
        (["apply", "--lock-timeout", "0ms"], "--lock-timeout", "'0ms'"),
        (["apply", "--lock-timeout", "2m"], "--lock-timeout", "'2m'"),
        (["apply", "--lock-timeout", HUGE], "--lock-timeout", HUGE),
        (["apply", "--lock-wait", "2h"], "--lock-wait", "'2h'"),
        (["apply", "--lock-wait", HUGE + "ms"], "--lock-wait", HUGE),
        (["apply", "--statement-timeout", "25h"], "--statement-timeout", "'25h'"),
        (["apply", "--statement-timeout", "-1"], "--statement-timeout", "'-1'"),
        (["rollback", "base", "--yes", "--lock-timeout", "0"], "--lock-timeout", "'0'"),
        (["rollback", "base", "--yes", "--lock-wait", HUGE], "--lock-wait", HUGE),
    ],
)
def test_bad_duration_exits_2_naming_option_value_and_range_without_connecting(
    args: list[str], option: str, value: str
) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.stderr)
    assert option in line and value in line and "allowed:" in line
    assert "cannot reach" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "--retries", "21"],
        ["apply", "--retries", HUGE],
        ["apply", "--retries", "-1"],
        ["rollback", "base", "--yes", "--retries", HUGE],
        ["backfill", "run", "sales_server_id", "--batch-size", HUGE],
        ["backfill", "run", "sales_server_id", "--batch-size", "0"],
        ["backfill", "run", "sales_server_id", "--max-rows", HUGE],
    ],
)
def test_bad_count_exits_2_naming_the_option(args: list[str]) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2, result.output
    option = next(a for a in args if a.startswith("--") and a != "--yes")
    (line,) = _error_lines(result.stderr)
    assert option in line and args[-1][:20] in line and "allowed:" in line
    assert "cannot reach" not in result.output


@pytest.mark.parametrize("command", [["apply", ""], ["apply", "  "], ["rollback", "", "--yes"]])
def test_empty_target_exits_2_and_changes_nothing(empty_db_url: str, command: list[str]) -> None:
    # Before the fix, `apply ''` meant "every head": an unset shell variable applied everything.
    result = invoke(*command, "--database-url", empty_db_url)
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result.stderr)) == 1
    assert "TARGET" in result.stderr
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "SELECT to_regclass('public.alembic_version'), to_regnamespace('venuedb')"
        ).fetchone()
    assert row == (None, None)  # nothing migrated, no deployment recorded


def test_lock_timeout_zero_on_a_real_database_records_no_deployment(empty_db_url: str) -> None:
    result = invoke("apply", "--lock-timeout", "0", "--database-url", empty_db_url)
    assert result.exit_code == 2, result.output
    assert "1ms .. 1min" in result.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('venuedb')").fetchone() == (None,)


def test_help_documents_the_lock_timeout_bounds() -> None:
    text = " ".join(invoke("apply", "--help").stdout.split())
    assert "1ms .. 1min" in text


# -- alembic -x values: parsed, bounded, never pasted into SQL ---------------------------------

INJECTION = "1s'; CREATE TABLE public.pwned (i int); SET lock_timeout = '1s"


def _alembic_upgrade(x: list[str], *, sql: bool = False) -> None:
    from alembic import command

    config = revs.alembic_config()
    config.cmd_opts = argparse.Namespace(x=x)
    command.upgrade(config, "heads", sql=sql)


@pytest.mark.parametrize("value", [INJECTION, "0", HUGE, "1s; DROP SCHEMA public"])
def test_alembic_x_lock_timeout_is_validated_before_connecting(
    empty_db_url: str, value: str
) -> None:
    with pytest.raises(BadInput, match="-x lock_timeout"):
        _alembic_upgrade([f"url={empty_db_url}", f"lock_timeout={value}"])
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "SELECT to_regclass('public.pwned'), to_regclass('public.alembic_version')"
        ).fetchone()
    assert row == (None, None)


def test_alembic_x_values_in_offline_sql_are_refused_or_normalised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(BadInput, match="-x lock_timeout"):
        _alembic_upgrade([f"lock_timeout={INJECTION}"], sql=True)
    with pytest.raises(BadInput, match="-x statement_timeout"):
        _alembic_upgrade([f"statement_timeout={INJECTION}"], sql=True)
    capsys.readouterr()
    _alembic_upgrade(["lock_timeout=250ms", "statement_timeout=2m"], sql=True)
    out = capsys.readouterr().out
    assert "SET lock_timeout = '250ms';" in out
    assert "SET statement_timeout = '120000ms';" in out
    assert "pwned" not in out


def test_alembic_standalone_sets_the_validated_lock_timeout(empty_db_url: str) -> None:
    _alembic_upgrade([f"url={empty_db_url}", "lock_timeout=250ms", "lock_wait=5s"])
    with psycopg.connect(empty_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM alembic_version") > 0
