"""`venuedb --help` and each command's --help as a person runs them: a new process each
time, wall clock from exec to exit, output read to the end.

    .venv/bin/python -m bench.cli_help [--repeat 20]

The first run of each is discarded (it pays for reading the files into the page cache
after a fresh install); the median and the worst of the rest are reported.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Goal, report

TARGET_MS = 300.0
COMMANDS = (
    (),
    ("apply",),
    ("rollback",),
    ("verify",),
    ("check",),
    ("backfill", "run"),
    ("rollout",),
)


def venuedb_executable() -> str:
    """The console script installed beside this interpreter (the one `make` installs)."""
    beside = Path(sys.executable).parent / "venuedb"
    found = str(beside) if beside.exists() else shutil.which("venuedb")
    if not found:
        raise SystemExit("venuedb is not installed: run `make demo` or `pip install -e .`")
    return found


def time_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    elapsed = (time.perf_counter() - t0) * 1000
    if done.returncode != 0 or b"Usage:" not in done.stdout:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    exe = venuedb_executable()
    rows: list[dict[str, Any]] = []
    for sub in COMMANDS:
        argv = [exe, *sub, "--help"]
        time_once(argv)  # warm the page cache
        runs = [time_once(argv) for _ in range(args.repeat)]
        median = statistics.median(runs)
        rows.append(
            {
                "command": " ".join(["venuedb", *sub, "--help"]),
                "median_ms": round(median, 1),
                "max_ms": round(max(runs), 1),
                "target_ms": TARGET_MS,
                "met": median < TARGET_MS,
            }
        )
    goals = [
        Goal(row["command"], f"< {TARGET_MS:g} ms", f"{row['median_ms']} ms median", row["met"])
        for row in rows
    ]
    report("cli_help", rows, {"repeat": args.repeat}, goals)


if __name__ == "__main__":
    main()
