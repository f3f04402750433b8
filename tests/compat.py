"""The PostgreSQL 15 compatibility run: `make test-compat`, which `make test` runs after the
suite. The tests marked `compat` (the migrations up, down and up; the rules tried by the
attackers and by SQL; verify; the health checks; backup and restore; plpgsql_check through
`venuedb lint --database-url`) run against PostgreSQL 15, the version Supabase runs, when
this machine has one. When it has none, one line says the run was skipped and the exit
status is 0: a fresh machine needs no PostgreSQL at all.

Where PostgreSQL 15 comes from, the first found:
- VENUEDB_TEST_DATABASE_URL: a server already running (a superuser URL); one server, so the
  run is serial (tests/conftest.py refuses -n with it);
- VENUEDB_TEST_PG_BIN: the bin directory of an installation, of any version (you asked for
  it); each of the two workers starts its own server from it;
- the usual bin directories of a PostgreSQL 15 package (Debian and Ubuntu, RHEL's PGDG,
  Homebrew), then `pg_config --bindir` when pg_config reports 15.

`python -m tests.compat [pytest arguments...]`: extra arguments go to pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from toolkit.server.embedded import postgres_version

ROOT = Path(__file__).resolve().parent.parent
MAJOR = 15
CANDIDATES = (
    Path(f"/usr/lib/postgresql/{MAJOR}/bin"),
    Path(f"/usr/pgsql-{MAJOR}/bin"),
    Path(f"/opt/homebrew/opt/postgresql@{MAJOR}/bin"),
    Path(f"/usr/local/opt/postgresql@{MAJOR}/bin"),
)
# What tests/conftest.py's EmbeddedServer runs from a bin directory.
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
NOT_FOUND = (
    f"skipped: no PostgreSQL {MAJOR} found (looked in {', '.join(map(str, CANDIDATES))} and "
    f"`pg_config --bindir`); set VENUEDB_TEST_PG_BIN to its bin directory or "
    "VENUEDB_TEST_DATABASE_URL to a running server to run it"
)


def binaries_version(bin_dir: Path) -> str | None:
    """The version of the server in bin_dir ("15.18"), None when it holds none that runs."""
    if not all((bin_dir / name).is_file() for name in SERVER_PROGRAMS):
        return None
    try:
        return postgres_version(bin_dir)
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def _major(version: str | None) -> int | None:
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def find_binaries(candidates: tuple[Path, ...] = CANDIDATES) -> tuple[Path, str] | None:
    """The first bin directory of a PostgreSQL 15 installation on this machine, and its version."""
    pg_config = _pg_config_bindir()
    for bin_dir in (*candidates, *([pg_config] if pg_config else [])):
        version = binaries_version(bin_dir)
        if _major(version) == MAJOR:
            return bin_dir, str(version)
    return None


def plan(environ: dict[str, str]) -> tuple[list[str], dict[str, str], str] | str:
    """(pytest arguments, environment, what runs where) for the compatibility run, or the
    line that says why it is skipped."""
    env = dict(environ)
    url = env.get("VENUEDB_TEST_DATABASE_URL")
    if url:
        env.pop("VENUEDB_TEST_PG_BIN", None)
        return ["-m", "compat"], env, "the server at VENUEDB_TEST_DATABASE_URL, serially"
    requested = env.get("VENUEDB_TEST_PG_BIN")
    if requested:
        version = binaries_version(Path(requested))
        if version is None:
            return (
                f"VENUEDB_TEST_PG_BIN={requested} holds no PostgreSQL server "
                f"({', '.join(SERVER_PROGRAMS)}): nothing was run"
            )
        found = Path(requested), version
    else:
        located = find_binaries()
        if located is None:
            return NOT_FOUND
        found = located
    env["VENUEDB_TEST_PG_BIN"] = str(found[0])
    return ["-m", "compat", "-n", "2"], env, f"PostgreSQL {found[1]} from {found[0]}, 2 workers"


def main(argv: list[str]) -> int:
    planned = plan(dict(os.environ))
    if isinstance(planned, str):
        print(f"PostgreSQL {MAJOR} compatibility run: {planned}", flush=True)
        # Asked for explicitly and not usable: a failure, not a skip.
        return 2 if os.environ.get("VENUEDB_TEST_PG_BIN") else 0
    args, env, where = planned
    print(f"PostgreSQL {MAJOR} compatibility run: tests marked compat on {where}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pytest", *args, *argv], env=env, cwd=ROOT)
    outcome = "passed" if result.returncode == 0 else f"FAILED (pytest exit {result.returncode})"
    print(f"PostgreSQL {MAJOR} compatibility run: {outcome} on {where}", flush=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
