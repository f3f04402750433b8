"""Checksums in the database: recorded at apply on every path, accepted by hand, checked.

- Every applied revision gets one row in venuedb.revision_checksums: the revision file's
  sha256 (as before), and one checksum over the revision file and every SQL file it
  installs (the manifest's list for a released revision, plus what the run installed),
  with each file's sha256. Written by migrations/env.py inside the revision's own
  transaction, whoever runs Alembic: `venuedb apply`, plain `alembic upgrade`, an Engine
  or Connection passed in.
- apply, rollback and plain `alembic upgrade` refuse to run while a released file differs
  from migrations/released.json, unless `venuedb accept-checksum REVISION --reason TEXT`
  accepted exactly that checksum for this database.
- `venuedb verify` compares the records with the files, the files with the manifest, and
  the records with themselves (the bookkeeping): see `tamper`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from toolkit.deployments import store as records
from toolkit.engine import frozen
from toolkit.engine import revisions as revs
from toolkit.errors import BadInput
from toolkit.server.connection import table_exists

# Only these commands move alembic_version and finish their record with the heads they left
# (a rehearsal's record is left out: it changed nothing); stamp writes it without running
# a revision, for a database whose schema was built another way.
MIGRATING_COMMANDS = ("apply", "rollback", "alembic", "stamp")


# -- acceptances ------------------------------------------------------------------------------


def accepted(conn: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(revision, checksum) -> the newest acceptance of it in this database."""
    if not table_exists(conn, "venuedb.accepted_checksums"):
        return {}
    rows = conn.execute(
        "SELECT revision, checksum, actor, reason, accepted_at FROM venuedb.accepted_checksums "
        "ORDER BY id"
    ).fetchall()
    return {
        (r[0], r[1]): {"actor": r[2], "reason": r[3], "accepted_at": r[4].isoformat()} for r in rows
    }


def describe_acceptance(revision: str, item: dict[str, Any]) -> str:
    return (
        f"{revision}: its changed files are accepted for this database by {item['actor']} at "
        f"{item['accepted_at']}: {item['reason']}"
    )


def refuse_changed_files(conn: Any) -> list[str]:
    """Raise Tampered when a released file differs from the manifest without an acceptance
    of exactly its checksum in this database; return notes about the accepted ones.

    conn is a psycopg connection; the acceptances are only read, so nothing is changed.
    """
    found = frozen.changes()
    if not found:
        return []
    ok = accepted(conn)
    refused = [c for c in found if (c.revision, c.actual) not in ok]
    if refused:
        raise frozen.Tampered(refusal_message(refused))
    return [describe_acceptance(c.revision, ok[(c.revision, c.actual)]) for c in found]


def refuse_changed_files_of(target: Any) -> list[str]:
    """refuse_changed_files for a toolkit Target; connects only when a file differs."""
    from toolkit.server import connection as db

    if not frozen.changes():
        return []
    with db.connect(target, purpose="released files check") as conn:
        return refuse_changed_files(conn)


def refusal_message(refused: list[frozen.RevisionChange]) -> str:
    parts = []
    for change in refused:
        files = ", ".join(
            f"{f.path} ({f.role}) expected sha256 {f.expected}, actual "
            + (f"sha256 {f.actual}" if f.actual else "missing")
            for f in change.files
        )
        parts.append(f"{change.revision} (checksum now {change.actual}): {files}")
    commands = " and ".join(
        f"`venuedb accept-checksum {c.revision} --reason TEXT`" for c in refused
    )
    return (
        "released files differ from migrations/released.json; nothing was changed. "
        + "; ".join(parts)
        + ". Released history is frozen: restore the files from git (`git checkout -- PATH`) "
        "and put the fix in a new revision or a new version file, or accept exactly these "
        f"files for this database only: {commands}"
    )


@dataclass
class Acceptance:
    revision: str
    checksum: str
    released_checksum: str | None
    recorded_checksum: str | None
    files: list[dict[str, Any]]
    reason: str
    actor: str
    id: int = 0
    accepted_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _recorded_row(conn: Any, revision: str) -> tuple[str | None, list[dict[str, Any]] | None]:
    if not table_exists(conn, "venuedb.revision_checksums"):
        return None, None
    row = conn.execute(
        "SELECT checksum, files FROM venuedb.revision_checksums WHERE revision = %s", (revision,)
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def accept(conn: Any, revision: str, reason: str, actor: str) -> Acceptance:
    """Record that this database may run REVISION with its files exactly as they are now."""
    from toolkit.engine.migrate import current_heads

    reason = reason.strip()
    if not reason:
        raise BadInput("--reason is empty: say why these files are accepted (it is recorded)")
    steps = {s.revision: s for s in revs.all_steps()}
    if revision not in steps:
        raise BadInput(f"unknown revision {revision!r} (known: {', '.join(steps)})")
    entry = frozen.load_manifest().get(revision)
    recorded, recorded_files = _recorded_row(conn, revision)
    if entry is not None:
        paths = [path for path, _ in frozen.entry_files(entry)]
    elif recorded_files:
        paths = [f["path"] for f in recorded_files]
    else:
        raise BadInput(
            f"{revision} is neither released (migrations/released.json) nor recorded as "
            "applied in this database: there is no checksum to accept"
        )
    shas = [(p, frozen.file_sha(p)) for p in paths]
    files = [{"path": p, "sha256": sha} for p, sha in shas]
    now = frozen.checksum(shas)
    applied = revision in revs.applied_revisions(current_heads(conn))
    differs = (
        (entry is not None and now != entry["checksum"])
        or (recorded is not None and recorded != now)
        or (applied and recorded is None)
    )
    if not differs:
        raise BadInput(
            f"nothing to accept: {revision}'s files match the manifest"
            + (" and what was recorded when it was applied" if applied else "")
        )
    acceptance = Acceptance(
        revision, now, entry["checksum"] if entry else None, recorded, files, reason, actor
    )
    records.ensure_schema(conn)
    row = conn.execute(
        """
        INSERT INTO venuedb.accepted_checksums
            (revision, checksum, released_checksum, recorded_checksum, files, reason, actor,
             os_user, hostname)
        VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)
        RETURNING id, accepted_at
        """,
        (
            revision,
            now,
            acceptance.released_checksum,
            recorded,
            _json(files),
            reason,
            actor,
            records._os_user(),
            socket.gethostname(),
        ),
    ).fetchone()
    acceptance.id, acceptance.accepted_at = int(row[0]), row[1].isoformat()
    records.record_once(
        conn,
        command="accept-checksum",
        target=revision,
        actor=actor,
        result="succeeded",
        output=[f"accepted checksum {now} of {revision}: {reason}"],
    )
    return acceptance


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


# -- recording at apply -----------------------------------------------------------------------


class Recorder:
    """An Alembic on_version_apply callback: one checksum row per applied revision, removed
    when it is rolled back. `installed` is the list toolkit.ops.sql_files.collecting() fills."""

    def __init__(self, installed: list[str], deployment_id: int | None) -> None:
        self.installed = installed
        self.deployment_id = deployment_id
        self.manifest = frozen.load_manifest()
        self.tables_checked = False

    def __call__(self, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        installed = list(dict.fromkeys(self.installed))
        self.installed.clear()
        if step.is_stamp:
            return  # a stamp applies nothing: no checksum of what was not run
        connection = ctx.connection
        if not self.tables_checked:
            records.ensure_checksum_tables(connection)
            self.tables_checked = True
        script_rev = step.up_revision
        if not step.is_upgrade:
            records.forget_checksum(connection, script_rev.revision)
            return
        record_applied(connection, script_rev, installed, self.deployment_id, self.manifest)


def record_applied(
    connection: Any,
    script_rev: Any,
    installed: list[str],
    deployment_id: int | None,
    manifest: dict[str, dict[str, Any]],
) -> None:
    revision_path = frozen.relative(script_rev.path)
    entry = manifest.get(script_rev.revision)
    paths = [path for path, _ in frozen.entry_files(entry)] if entry else [revision_path]
    paths += [p for p in (frozen.sql_relative(s) for s in installed) if p not in paths]
    shas = [(p, frozen.file_sha(p)) for p in paths]
    files = [{"path": p, "sha256": sha} for p, sha in shas]
    revision_sha = frozen.file_sha(revision_path)
    records.record_checksum(
        connection,
        revision=script_rev.revision,
        branch=revs.branch_of(script_rev.revision),
        path=script_rev.path,
        sha256=revision_sha or "missing",
        deployment_id=deployment_id,
        checksum=frozen.checksum(shas),
        files=files,
    )


# -- verify -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    sha256: str
    applied_at: Any
    checksum: str | None
    files: list[dict[str, Any]] | None


def recorded(conn: Any) -> dict[str, Recorded]:
    if not table_exists(conn, "venuedb.revision_checksums"):
        return {}
    has_files = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attname = 'files' AND NOT attisdropped "
        "AND attrelid = to_regclass('venuedb.revision_checksums'))"
    ).fetchone()[0]
    extra = "checksum, files" if has_files else "NULL, NULL"
    rows = conn.execute(
        f"SELECT revision, path, sha256, applied_at, {extra} FROM venuedb.revision_checksums"
    ).fetchall()
    return {r[0]: Recorded(r[1], r[2], r[3], r[4], r[5]) for r in rows}


class Findings:
    """Tamper findings and notes, an accepted checksum turning a revision's findings into
    notes (the acceptance is the record of why they are fine)."""

    def __init__(self, conn: Any, tamper: list[dict[str, Any]], notes: list[str]) -> None:
        self.tamper = tamper
        self.notes = notes
        self.ok = accepted(conn)
        self.manifest = frozen.load_manifest()
        self.seen: set[tuple[str, str, str | None]] = set()

    def current(self, revision: str, rec: Recorded | None) -> str | None:
        entry = self.manifest.get(revision)
        if entry is not None:
            return frozen.current_checksum(entry)
        if rec is not None and rec.files:
            return frozen.checksum((f["path"], frozen.file_sha(f["path"])) for f in rec.files)
        return None

    def add(self, finding: dict[str, Any], revision: str | None, rec: Recorded | None) -> None:
        key = (finding["kind"], finding["name"], revision)
        if key in self.seen:
            return
        self.seen.add(key)
        if revision is not None:
            current = self.current(revision, rec)
            acceptance = self.ok.get((revision, current)) if current else None
            if acceptance is not None:
                note = describe_acceptance(revision, acceptance)
                if note not in self.notes:
                    self.notes.append(note)
                return
        self.tamper.append(finding | ({"revision": revision} if revision else {}))


def tamper(
    conn: Any,
    heads: tuple[str, ...],
    scope: set[str] | None,
    tamper_list: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Recorded]:
    """Append the findings of every check to tamper_list / notes; return the records."""
    found = Findings(conn, tamper_list, notes)
    rows = recorded(conn)
    steps = {s.revision: s for s in revs.all_steps()}
    for revision, rec in rows.items():
        if scope is None or revision in scope:
            _against_record(found, revision, rec, steps.get(revision))
    _against_manifest(found, scope, rows)
    _bookkeeping(conn, found, heads, scope, rows)
    return rows


def _against_record(found: Findings, revision: str, rec: Recorded, step: Any) -> None:
    """The files now against what was recorded when the revision was applied."""
    path = step.path if step else rec.path
    now = frozen.file_sha(frozen.relative(path))
    if now is None:
        finding = {"kind": "revision_file_missing", "name": revision, "expected": rec.sha256}
        found.add(finding | {"actual": None}, revision, rec)
        return
    if now != rec.sha256:
        detail = f"{frozen.relative(path)} changed after it was applied"
        finding = {"kind": "revision_file_changed", "name": revision, "detail": detail}
        found.add(finding | {"expected": rec.sha256, "actual": now}, revision, rec)
    if not rec.files:
        return  # recorded by a toolkit from before issue 17: the revision file only
    if frozen.checksum((f["path"], f["sha256"]) for f in rec.files) != rec.checksum:
        detail = "the recorded checksum does not match the files recorded with it"
        finding = {"kind": "checksum_record_altered", "name": revision, "detail": detail}
        found.add(finding | {"expected": rec.checksum, "actual": None}, revision, rec)
    for item in rec.files:
        if not item["path"].startswith("sql/"):
            continue
        sha = frozen.file_sha(item["path"])
        if sha != item["sha256"]:
            found.add(
                _file_finding(item["path"], item["sha256"], sha, revision, "applied"), revision, rec
            )


def _file_finding(
    path: str, expected: str, actual: str | None, revision: str, when: str
) -> dict[str, Any]:
    return {
        "kind": "function_file_edited" if actual else "function_file_removed",
        "name": path.removeprefix("sql/"),
        "expected": expected,
        "actual": actual,
        "detail": f"{'edited' if actual else 'removed'} after {revision} was {when}: released "
        "files are immutable (restore it from git, add a new version file)",
    }


def _against_manifest(found: Findings, scope: set[str] | None, rows: dict[str, Recorded]) -> None:
    """The files now against the committed manifest of released files."""
    from toolkit.engine.releases import load_releases

    for revision, entry in found.manifest.items():
        if scope is not None and revision not in scope:
            continue
        change = frozen.compare_entry(revision, entry)
        for item in change.files if change else []:
            if item.role == "revision":
                kind = "revision_file_changed" if item.actual else "revision_file_missing"
                finding = {
                    "kind": kind,
                    "name": revision,
                    "expected": item.expected,
                    "actual": item.actual,
                    "detail": f"{item.path} differs from the released one",
                }
            else:
                finding = _file_finding(item.path, item.expected, item.actual, revision, "released")
            found.add(finding, revision, rows.get(revision))
    released = [r for release in load_releases() for r in release.revisions]
    missing = [r for r in released if r not in found.manifest and (scope is None or r in scope)]
    if missing:
        found.notes.append(
            f"released but not in migrations/released.json, so not guarded: {', '.join(missing)} "
            "(run `venuedb release-manifest`)"
        )


def _bookkeeping(
    conn: Any,
    found: Findings,
    heads: tuple[str, ...],
    scope: set[str] | None,
    rows: dict[str, Recorded],
) -> None:
    """The toolkit's own records against alembic_version: a record that is gone, or an
    alembic_version changed behind the records' back, is no green."""
    known = tuple(h for h in heads if _known(h))
    if known != heads:
        found.notes.append(
            "alembic_version holds revisions this checkout does not know: checksum records "
            "and deployment records not compared with it"
        )
        return
    applied = revs.applied_revisions(heads)
    if not records.schema_exists(conn):
        if applied:
            found.notes.append(
                "no checksums recorded (revisions applied without the toolkit's records)"
            )
        return
    migrations = conn.execute(
        "SELECT count(*) FROM venuedb.deployments WHERE command = ANY(%s) "
        "AND result <> 'rehearsed'",
        (list(MIGRATING_COMMANDS),),
    ).fetchone()[0]
    missing = [r for r in revs.all_steps() if r.revision in applied and r.revision not in rows]
    missing = [s for s in missing if scope is None or s.revision in scope]
    if missing and not migrations:
        found.notes.append(
            "no checksums recorded for "
            + ", ".join(s.revision for s in missing)
            + " (applied without the toolkit's records)"
        )
    elif missing:
        for step in missing:
            found.add(
                {
                    "kind": "checksums_missing",
                    "name": step.revision,
                    "expected": "a row in venuedb.revision_checksums",
                    "actual": None,
                    "detail": f"{step.revision} is applied but its checksum record is gone",
                },
                step.revision,
                None,
            )
    if migrations:
        _version_against_records(conn, found, heads)


def _known(revision: str) -> bool:
    try:
        return revs.script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises several flavours for an unknown or ambiguous id
        return False


def _version_against_records(conn: Any, found: Findings, heads: tuple[str, ...]) -> None:
    row = conn.execute(
        "SELECT id, command, result, to_revisions FROM venuedb.deployments "
        "WHERE command = ANY(%s) AND result <> 'rehearsed' ORDER BY id DESC LIMIT 1",
        (list(MIGRATING_COMMANDS),),
    ).fetchone()
    deployment_id, command, result, to_revisions = row
    if result == "running":
        found.notes.append(
            f"deployment #{deployment_id} ({command}) is running: alembic_version not "
            "compared with the records"
        )
        return
    if to_revisions is None:
        found.notes.append(
            f"deployment #{deployment_id} ({command}) ended without recording the heads it "
            f"left ({result}): alembic_version not compared with the records"
        )
        return
    live = revs.heads_by_branch(heads)
    recorded_heads = {branch: to_revisions.get(branch) for branch in live}
    if recorded_heads != live:
        found.add(
            {
                "kind": "version_disagrees_with_records",
                "name": "alembic_version",
                "expected": recorded_heads,
                "actual": live,
                "detail": f"alembic_version is not where deployment #{deployment_id} "
                f"({command}, {result}) left it: changed outside venuedb and alembic "
                "(an UPDATE, a restore of one table?); see `venuedb records`",
            },
            None,
            None,
        )


# -- plain `alembic upgrade` ------------------------------------------------------------------


class PlainRun:
    """The deployment record of a plain `alembic upgrade/downgrade/stamp`, so the records
    always say which heads the last migration left (verify compares them)."""

    def __init__(self, deployment: records.Deployment) -> None:
        self.deployment = deployment
        self.done: list[str] = []

    @classmethod
    def begin(cls, driver: Any, target: str | None) -> PlainRun:
        """driver: the lock session's psycopg connection, in autocommit."""
        from toolkit.engine.locks import DEPLOY_LOCK
        from toolkit.engine.migrate import current_heads

        refuse_changed_files(driver)
        records.ensure_schema(driver)
        deployment = records.start(
            driver,
            command="alembic",
            target=target or "(alembic)",
            actor=records.default_actor(),
            from_revisions=revs.heads_by_branch(current_heads(driver)),
            planned=[],
            lock_id=DEPLOY_LOCK,  # this session holds it for the whole run
        )
        return cls(deployment)

    def on_step(self, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        verb = "stamped" if step.is_stamp else ("applied" if step.is_upgrade else "rolled back")
        name = step.up_revision_id
        self.done.append(name)
        self.deployment.output.append(f"step: {verb} {name}")

    def finish(self, driver: Any, failure: BaseException | None) -> None:
        from toolkit.engine.migrate import current_heads
        from toolkit.server.urls import mask_text

        error = None
        if failure is not None:
            lines = [line for line in str(failure).splitlines() if line.strip()]
            error = mask_text(lines[0] if lines else type(failure).__name__)
        try:
            records.finish(
                driver,
                self.deployment,
                result="failed" if failure is not None else "succeeded",
                to_revisions=revs.heads_by_branch(current_heads(driver)),
                done=self.done,
                error=error,
            )
        except Exception:
            # The run's own error matters more; a record left running is marked
            # interrupted by the next command (records.reap) once this session is gone.
            if failure is None:
                raise


def accept_for(target: Any, revision: str, reason: str, actor: str) -> Acceptance:
    """accept() on the database `target` names."""
    from toolkit.server import connection as db

    with db.connect(target, purpose="accept-checksum") as conn:
        return accept(conn, revision, reason, actor)
