"""Running the CLI in-process (typer's CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner, Result

from toolkit.cli import app

VENUEDB = Path(sys.executable).parent / "venuedb"


def invoke(*args: str, input: str | None = None) -> Result:
    env = {"DATABASE_URL": "", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)


def as_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def verify(url: str, *args: str) -> tuple[int, dict[str, Any]]:
    """`venuedb verify ARGS --json`: its exit code and its report."""
    result = invoke("verify", "--database-url", url, "--json", *args)
    return result.exit_code, as_json(result)


def verify_after(url: str, by_hand: str, *args: str) -> dict[str, Any]:
    """`by_hand` run on the database (autocommit, as the test's superuser), then `venuedb
    verify ARGS`, which must not call it clean (exit 3): its report."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(by_hand)
    code, report = verify(url, *args)
    assert code == 3, report
    return report


def _interruptible() -> None:
    # A shell without job control starts background jobs (`make test &`, nohup, some CI
    # runners) with SIGINT ignored, and a child inherits that: the Ctrl-C a test sends
    # would never arrive. An operator's terminal delivers it, so the child gets it too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(*args: str) -> subprocess.Popen[str]:
    """`venuedb ARGS` as its own process, as an operator starts it (Ctrl-C delivered)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [str(VENUEDB), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interruptible,
    )


def rollout(url: str, release: str, tmp_path: Path, *extra: str) -> Result:
    """`venuedb rollout RELEASE --yes --json`, its backups and records under tmp_path."""
    return invoke(
        "rollout",
        release,
        "--yes",
        "--database-url",
        url,
        "--backup-dir",
        str(tmp_path / "backups"),
        "--records-dir",
        str(tmp_path / "records"),
        "--json",
        *extra,
    )


def rollback_cascade(url: str, release: str) -> Result:
    """`venuedb rollback RELEASE --cascade --yes --json`: the release and every later one on
    its branch undone, on a database with no data to lose (no backup asked for)."""
    return invoke("rollback", release, "--cascade", "--yes", "--database-url", url, "--json")


def rollback_with_data_loss(url: str, target: str, backup_dir: Path, *extra: str) -> Result:
    """`venuedb rollback TARGET` consenting to undo later releases and to drop data (a
    verified backup goes to backup_dir first)."""
    return invoke(
        "rollback",
        target,
        "--cascade",
        "--allow-data-loss",
        "--backup-dir",
        str(backup_dir),
        "--yes",
        "--database-url",
        url,
        *extra,
    )


def records_while(url: str, still_running: Callable[[], bool], timeout: float = 20) -> None:
    """Run `venuedb records` (which marks what a killed process left running as interrupted,
    once the server has seen its session go) while `still_running()`, `timeout` s at most."""
    deadline = time.monotonic() + timeout
    while still_running() and time.monotonic() < deadline:
        assert invoke("records", "--database-url", url).exit_code == 0
        time.sleep(0.1)


def until_no_venuedb_session(url: str, timeout: float = 30) -> None:
    """Return once no session of venuedb (application_name 'venuedb ...') is left in the
    database of `url`. A killed client's backend, and the advisory locks it holds, go only
    when the server notices the closed socket (after the statement it was running)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while True:
            left = watcher.execute(
                "SELECT pid, application_name, state FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'venuedb%%' "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
            if not left:
                return
            assert time.monotonic() < deadline, f"venuedb sessions still there: {left}"
            time.sleep(0.05)
