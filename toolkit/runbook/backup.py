"""Backups with pg_dump (custom format) and restores with pg_restore, both verified.

The embedded server's own client tools are used: pg_dump 18 dumps any server from 9.2
on, so the same binary serves a PostgreSQL 15 production. The password goes through
PGPASSWORD, never on a command line where `ps` would show it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from toolkit import progress
from toolkit.errors import BadInput, OperationFailed
from toolkit.server import connection as db
from toolkit.server.embedded import binary
from toolkit.server.urls import database_name, mask_text


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
        raise OperationFailed(f"{Path(args[0]).name} failed:\n  {_error_text(result)}")
    return result


def _run_reporting(
    args: list[str], env: dict[str, str], what: str, tables: int | None, per_table: re.Pattern[str]
) -> None:
    """_run, showing progress in tables: with --verbose the tool says when it starts on
    each table's data (`per_table` matches that line), the only steady unit it reports.
    The other lines --verbose adds are left out of the error text, which stays what a
    plain run would say."""
    if progress.current().mode == "none":
        _run(args, env)
        return
    said: list[str] = []
    verbose = [args[0], "--verbose", *args[1:]]
    with (
        progress.tracking(what, tables, "tables") as reporter,
        subprocess.Popen(
            verbose, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        ) as tool,
    ):
        assert tool.stderr is not None
        for line in tool.stderr:
            if per_table.match(line):
                reporter.advance()
            if not _verbose_chatter(line):
                said.append(line)
    if tool.returncode != 0:
        failed = subprocess.CompletedProcess(args, tool.returncode, "", "".join(said))
        raise OperationFailed(f"{Path(args[0]).name} failed:\n  {_error_text(failed)}")


_DUMPING_TABLE = re.compile(r"pg_dump: dumping contents of table ")
_RESTORING_TABLE = re.compile(r"pg_restore: processing data for table ")
# What a client tool says without --verbose too: leveled messages, and the context of an
# error ("while PROCESSING TOC:", "from TOC entry ...").
_SAID_ANYWAY = ("error:", "warning:", "detail:", "hint:", "while ", "from TOC entry")


def _verbose_chatter(line: str) -> bool:
    for prefix in ("pg_dump: ", "pg_restore: "):
        if line.startswith(prefix):
            return not line[len(prefix) :].startswith(_SAID_ANYWAY)
    return False


def _error_text(result: subprocess.CompletedProcess[str]) -> str:
    """The lines of a client tool's stderr that say what went wrong, password masked.

    A failed statement ends with "Command was: <the whole SQL>", whose last line is
    often just ");": keep the tool's own lines (which object, which error) and only
    the first line of the command, so the message names the real cause.
    """
    lines = (result.stderr or result.stdout).strip().splitlines()
    kept = [
        line[:_MAX_LINE]
        for line in lines
        if line.startswith(_TOOL_PREFIXES) and not line.endswith("while PROCESSING TOC:")
    ]
    return mask_text("\n  ".join(kept[-_MAX_LINES:] or lines[-1:]) or "failed")


_TOOL_PREFIXES = ("pg_dump:", "pg_restore:", "psql:", "Command was:")
_MAX_LINE = 300
_MAX_LINES = 6


def list_contents(path: Path) -> int:
    """Objects in a dump's table of contents (pg_restore --list); proves it is readable."""
    result = _run([str(binary("pg_restore")), "--list", str(path)], dict(os.environ))
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith(";"))


def backup(target: db.Target, out_dir: Path) -> BackupResult:
    path = _new_backup_path(target, out_dir)
    # pg_dump writes to a hidden name beside the final one and the file is renamed only
    # once its table of contents reads back: a failed or interrupted dump never leaves a
    # file that looks like a backup.
    partial = path.with_name(f".{path.name}.partial")
    url, env = _split_password(target.url)
    started = time.monotonic()
    try:
        _create_private(partial)
        _run_reporting(
            [
                str(binary("pg_dump")),
                "--format=custom",
                "--no-owner",
                f"--file={partial}",
                f"--dbname={url}",
            ],
            env,
            f"backup of {database_name(target.url)}",
            _tables_with_data(target),
            _DUMPING_TABLE,
        )
        objects = list_contents(partial)
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OperationFailed(
                f"cannot write the backup in {out_dir}: {exc.strerror or exc}; no file was left"
            ) from None
        if isinstance(exc, OperationFailed):
            raise OperationFailed(f"backup failed; no file was left in {out_dir}.\n{exc}") from None
        raise
    return BackupResult(path, path.stat().st_size, objects, time.monotonic() - started)


def _tables_with_data(target: db.Target) -> int | None:
    """The tables whose rows pg_dump will dump (a progress total; None when not shown)."""
    if progress.current().mode == "none":
        return None
    try:
        with db.connect(target, purpose="backup size") as conn:
            return int(db.scalar(conn, _TABLES_WITH_DATA))
    except BadInput:  # unreachable: pg_dump says so in its own words, as without progress
        return None


_TABLES_WITH_DATA = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')"
)


def _new_backup_path(target: db.Target, out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(
            f"cannot create the backup directory {out_dir}: {exc.strerror or exc}"
        ) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{database_name(target.url)}-{stamp}.dump"
    serial = 1
    while path.exists():  # two backups in one second keep both
        serial += 1
        path = out_dir / f"{database_name(target.url)}-{stamp}-{serial}.dump"
    return path


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only, whatever the umask: a dump holds every
    row. pg_dump then truncates and fills it, keeping the mode (fopen "wb" on a file that
    exists does not change it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only have removed bits from 0600; set it exactly
    finally:
        os.close(fd)


def _data_entries(path: Path) -> int | None:
    """The tables a dump holds rows of: its TABLE DATA entries (a progress total; None when
    not shown)."""
    if progress.current().mode == "none":
        return None
    listing = _run([str(binary("pg_restore")), "--list", str(path)], dict(os.environ)).stdout
    return sum(1 for line in listing.splitlines() if " TABLE DATA " in line)


def is_empty(target: db.Target) -> bool:
    with db.connect(target, purpose="restore check") as conn:
        tables = db.scalar(
            conn,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema', 'pg_toast')",
        )
    return tables == 0


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
    # One transaction for the whole restore: a truncated dump or a conflicting object
    # rolls everything back and the target holds exactly what it held before, so a rerun
    # with a good file works. Chosen over restoring into a scratch database and renaming
    # it: that needs CREATEDB, no other session on the target, and would drop the target's
    # own grants and settings. The price: no --jobs, and the tables stay locked until the
    # end (the target is empty or being replaced, so nobody should be using it).
    args = [str(binary("pg_restore")), "--no-owner", "--single-transaction", "--exit-on-error"]
    if force:
        args += ["--clean", "--if-exists"]
    try:
        if _server_version(target) >= 170000:
            _run_reporting(
                [*args, f"--dbname={url}", str(path)],
                env,
                f"restore of {path.name}",
                _data_entries(path),
                _RESTORING_TABLE,
            )
        else:
            _restore_to_older_server(args, path, url, env)
    except OperationFailed as exc:
        raise OperationFailed(
            f"restore failed and was rolled back (it ran in one transaction): "
            f"{target.masked} holds what it held before.\n{exc}\n"
            "next: fix the cause (a complete backup file, or drop the conflicting object "
            "from the target) and rerun `venuedb restore`"
        ) from None
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
        return int(db.scalar(conn, "SHOW server_version_num"))


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
        raise OperationFailed(f"psql failed:\n  {_error_text(result)}")


def restore_verified(
    path: Path, target: db.Target, *, force: bool = False, progress: Any = print
) -> tuple[dict[str, Any], Any]:
    """restore(), then verify the restored database, then record both (a deployment record
    in it, and its Markdown twin): the restore and what verify said of it."""
    from toolkit.integrity.verify import verify

    result = restore(path, target, force=force)
    report = verify(target, progress=progress)
    record_restore(target, path, result, report.status)
    return result, report


def record_restore(target: db.Target, file: Path, result: dict[str, Any], verdict: str) -> None:
    """The restore as a deployment record in the restored database and as Markdown."""
    from toolkit.deployments.operation import RecordStep, record_operation

    finished = datetime.now(UTC)
    started = finished - timedelta(seconds=float(result["seconds"]))
    record_operation(
        target,
        command="restore",
        what=str(file),
        title="restore Deployment Record",
        status="SUCCESS" if verdict == "clean" else f"RESTORED, VERIFY {verdict.upper()}",
        step=RecordStep(f"restore {file.name}", started, finished, "ok"),
        lines=[f"restored {result['objects']} objects from {file}", f"verify: {verdict}"],
    )
