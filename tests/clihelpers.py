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
