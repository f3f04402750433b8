"""Every `bash` block of runbooks/ runs against a scratch database: deploy and verify
blocks in release order, then the roll-back blocks in reverse order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

from toolkit.embedded import bin_dir

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
ORDER = [
    "baselines.md",
    "table-combinations.md",
    "capacity-overlap.md",
    "assignment-pipeline-v3.md",
    "mode-switching.md",
    "allocation-lookups.md",
    "bar-owner-lookups.md",
    "booking-integrity.md",
    "bar-integrity.md",
]


def blocks(path: Path) -> tuple[list[str], list[str]]:
    """(deploy and verify blocks, roll-back blocks) of one runbook."""
    forward, back = [], []
    section = ""
    for part in re.split(r"^(## .*)$", path.read_text(encoding="utf-8"), flags=re.M):
        if part.startswith("## "):
            section = part
            continue
        for block in re.findall(r"```bash\n(.*?)```", part, re.S):
            (back if section.startswith("## Roll back") else forward).append(block)
    return forward, back


def run_block(block: str, url: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PATH": f"{Path(sys.executable).parent}:{bin_dir()}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{block}\n---\n{result.stdout}\n{result.stderr}"


def test_every_runbook_is_listed_and_has_commands() -> None:
    present = sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    assert sorted(ORDER) == present
    for name in ORDER:
        forward, back = blocks(RUNBOOKS / name)
        assert forward and back, name


def test_runbook_commands_run(empty_db_url: str, tmp_path: Path) -> None:
    from tests.conftest import DATA, load_sql

    rollbacks = []
    for name in ORDER:
        forward, back = blocks(RUNBOOKS / name)
        for block in forward:
            run_block(block, empty_db_url, tmp_path)
        if name == "baselines.md":
            for rows in ("core_001", "booking_001", "bar_001"):
                load_sql(empty_db_url, DATA / "rows" / f"{rows}.sql")
        rollbacks.append(back)
    for back in reversed(rollbacks):
        for block in back:
            run_block(block, empty_db_url, tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (0,)
