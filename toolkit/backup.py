"""Backups with pg_dump (custom format) and restores with pg_restore, both verified.

The embedded server's own client tools are used: pg_dump 18 dumps any server from 9.2
on, so the same binary serves a PostgreSQL 15 production. The password goes through
PGPASSWORD, never on a command line where `ps` would show it.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from toolkit import connection as db
from toolkit.embedded import binary
from toolkit.errors import BadInput, OperationFailed
from toolkit.urls import database_name, mask_text


@dataclass
class BackupResult:
    path: Path
    size_bytes: int
    objects: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "objects": self.objects,
            "seconds": round(self.seconds, 3),
        }


def _split_password(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries it instead."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.hostname or ""
        netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    return url, env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        message = mask_text(
            (result.stderr or result.stdout).strip().splitlines()[-1]
            if (result.stderr or result.stdout).strip()
            else "failed"
        )
        raise OperationFailed(f"{Path(args[0]).name} failed: {message}")
    return result


def list_contents(path: Path) -> int:
    """Objects in a dump's table of contents (pg_restore --list); proves it is readable."""
    result = _run([str(binary("pg_restore")), "--list", str(path)], dict(os.environ))
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))


def backup(target: db.Target, out_dir: Path) -> BackupResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{database_name(target.url)}-{stamp}.dump"
    serial = 1
    while path.exists():  # two backups in one second keep both
        serial += 1
        path = out_dir / f"{database_name(target.url)}-{stamp}-{serial}.dump"
    url, env = _split_password(target.url)
    started = time.monotonic()
    _run(
        [
            str(binary("pg_dump")),
            "--format=custom",
            "--no-owner",
            f"--file={path}",
            f"--dbname={url}",
        ],
        env,
    )
    objects = list_contents(path)
    return BackupResult(path, path.stat().st_size, objects, time.monotonic() - started)


def is_empty(target: db.Target) -> bool:
    with db.connect(target, purpose="restore check") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema', 'pg_toast')"
        ).fetchone()
    return row[0] == 0


def restore(path: Path, target: db.Target, *, force: bool = False) -> dict[str, Any]:
    if not path.is_file():
        raise BadInput(f"no backup file at {path}")
    try:
        objects = list_contents(path)
    except OperationFailed as exc:
        raise BadInput(f"{path} is not a readable pg_dump custom-format file: {exc}") from None
    if not is_empty(target) and not force:
        raise BadInput(
            f"{target.masked} is not empty; restore only into an empty database, "
            "or pass --force to replace what is there"
        )
    _ensure_roles(target)
    url, env = _split_password(target.url)
    started = time.monotonic()
    args = [str(binary("pg_restore")), "--no-owner", "--exit-on-error"]
    if force:
        args += ["--clean", "--if-exists"]
    if _server_version(target) >= 170000:
        _run([*args, f"--dbname={url}", str(path)], env)
    else:
        _restore_to_older_server(args, path, url, env)
    return {"path": str(path), "objects": objects, "seconds": round(time.monotonic() - started, 3)}


def _ensure_roles(target: db.Target) -> None:
    """The dump grants to Supabase's roles; a fresh server gets them first (cluster-wide)."""
    with db.connect(target, purpose="restore roles") as conn:
        conn.execute("""
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END
$roles$""")


def _server_version(target: db.Target) -> int:
    with db.connect(target, purpose="restore version") as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0])


def _restore_to_older_server(args: list[str], path: Path, url: str, env: dict[str, str]) -> None:
    """pg_restore 18 always emits SET transaction_timeout, which PostgreSQL < 17 rejects:
    render the script, drop that one setting, and run it with psql, stopping at any error."""
    script = _run([*args, "--file=-", str(path)], env).stdout
    kept = "\n".join(
        line for line in script.splitlines() if not line.startswith("SET transaction_timeout")
    )
    result = subprocess.run(
        [str(binary("psql")), "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={url}"],
        input=kept,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise OperationFailed(f"restore failed: {mask_text(lines[-1] if lines else 'psql error')}")
