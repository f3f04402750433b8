"""Running the CLI in-process (typer's CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
