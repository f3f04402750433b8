"""What `venuedb fleet` runs on each database: the same toolkit functions (read-only
commands, in this process, one thread per database) or the same command (apply, in a
process of its own) as the single-database command, with that command's JSON document
as the database's result.

The read-only jobs share one process so the expected side (revision graph, release list,
snapshot, checks) is read once and the databases are compared in threads: psycopg
releases the GIL while it waits on the server. An apply runs Alembic, whose `op` and
context proxies are module-global: two in one process at once would interleave, so each
apply is a `venuedb apply` process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.fleet.inventory import FleetDatabase
from toolkit.fleet.runner import Job, JobResult
from toolkit.server.connection import Target
from toolkit.server.urls import mask_text

if TYPE_CHECKING:
    from toolkit.integrity.health_checks import Duration, HealthCheck
    from toolkit.integrity.verify import Report

# A note one database's command printed while it ran (e.g. verify building a scratch
# reference), with that database's name.
Note = Callable[[str, str], None]


def _target(database: FleetDatabase) -> Target:
    return Target(database.url, f"fleet inventory ({database.source})")


def _warm_revision_graph() -> None:
    """Load the revision scripts and walk the graph once, before any thread does: Alembic
    builds its revision map lazily, and the threads then only read it."""
    from toolkit.engine import revisions as revs

    revs.all_steps()


# -- verify ------------------------------------------------------------------------------


def verify_job(release: str | None, note: Note) -> Job:
    """`venuedb verify [--release R]` per database. An unknown release is BadInput here,
    before any database is touched."""
    from toolkit.engine.releases import find_release, unknown_release
    from toolkit.integrity.verify import verify

    if release is not None and find_release(release) is None:
        raise unknown_release(release)
    _warm_revision_graph()

    def job(database: FleetDatabase) -> JobResult:
        report = verify(
            _target(database), release, progress=lambda message: note(database.name, message)
        )
        return JobResult(
            report.exit_code,
            report.status,
            _verify_detail(report),
            {"status": report.status, **report.to_dict()},
        )

    return job


def _verify_detail(report: Report) -> str:
    failed = [p for p in report.postconditions if not p["ok"]]
    parts = [f"{len(report.tamper)} tampered"] if report.tamper else []
    parts += [f"{len(report.in_progress)} in progress"] if report.in_progress else []
    if report.drift:
        first = report.drift[0]
        parts.append(
            f"{len(report.drift)} drift ({first['kind']} {first['name']} {first['status']}"
            + (", ..." if len(report.drift) > 1 else "")
            + ")"
        )
    parts += [f"{len(failed)} postconditions failed"] if failed else []
    parts += [f"not compared: {report.not_compared[0]}"] if report.not_compared else []
    return f"{report.status}" + (f": {'; '.join(parts)}" if parts else "")


# -- check -------------------------------------------------------------------------------


def check_job(
    checks: list[HealthCheck], window: Duration | None, timeout_ms: int, named: bool
) -> Job:
    """`venuedb check [NAMES]` per database, the checks chosen (and refused) once."""
    from toolkit.integrity import health_checks as health

    def job(database: FleetDatabase) -> JobResult:
        results = health.run_checks(_target(database), checks, window=window, timeout_ms=timeout_ms)
        status = health.overall(results, named=named)
        return JobResult(
            health.exit_code(status),
            status,
            f"{status}: {health.summary(results)}",
            {"status": status, **health.report(results, window)},
        )

    return job


# -- status ------------------------------------------------------------------------------


def status_job() -> Job:
    """`venuedb status` per database."""
    from toolkit.engine.status import status

    _warm_revision_graph()

    def job(database: FleetDatabase) -> JobResult:
        info = status(_target(database))
        word = "in_progress" if info["in_progress"] else "ok"
        return JobResult(
            1 if info["in_progress"] else 0, word, _status_detail(info), {"status": word, **info}
        )

    return job


def _status_detail(info: dict[str, Any]) -> str:
    at = ", ".join(f"{b} {r or '(base)'}" for b, r in info["branches"].items())
    pending = len(info["pending"])
    detail = f"{at}; " + (f"{pending} pending" if pending else "no pending revisions")
    if info["in_progress"]:
        detail += f"; {len(info['in_progress'])} operation(s) left half done"
    return detail


# -- apply -------------------------------------------------------------------------------


def apply_job(arguments: list[str]) -> Job:
    """`venuedb apply ARGUMENTS --json` per database, each a process of its own: the
    deploy lock, lint gate, checksums and deployment record exactly as a single apply.
    The URL goes to it in DATABASE_URL, not on its command line (visible in `ps`)."""
    argv = [
        sys.executable,
        "-m",
        "toolkit.cli",
        "apply",
        *arguments,
        "--json",
        "--progress",
        "none",
    ]

    def job(database: FleetDatabase) -> JobResult:
        done = subprocess.run(
            argv,
            env=_child_environment(database.url),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        document = _json_document(done.stdout)
        word = str(document.get("status", "failed")) if document else "failed"
        return JobResult(done.returncode, word, _apply_detail(document, done.stderr), document)

    return job


def _child_environment(url: str) -> dict[str, str]:
    """This process's environment, the database in DATABASE_URL, and this process's
    toolkit first on the path, so the child runs the very code the fleet runs."""
    import toolkit

    root = str(Path(toolkit.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONPATH": root + (os.pathsep + path if path else ""),
    }


def _json_document(stdout: str) -> dict[str, Any] | None:
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _apply_detail(document: dict[str, Any] | None, stderr: str) -> str:
    if document is None:  # it printed no document: its last words say why
        lines = [line for line in stderr.splitlines() if line.strip()]
        return mask_text(lines[-1].strip() if lines else "apply printed nothing")
    if "error" in document:
        return mask_text(str(document["error"]).splitlines()[0])
    done = document.get("done") or []
    if not document.get("planned"):
        return "nothing to apply: at the target already"
    return (
        f"applied {len(done)} revision(s) in {document.get('duration_ms')} ms "
        f"(deployment #{document.get('deployment_id')})"
    )
