"""Running the CLI in-process (typer's CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from toolkit.cli import app

VENUEDB = Path(sys.executable).parent / "venuedb"


def invoke(*args: str, input: str | None = None) -> Result:
    env = {"DATABASE_URL": "", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)


def as_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [str(VENUEDB), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
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
