"""`venuedb stamp`: adopt a database whose schema was built without Alembic's records.

The live schema is compared with what the migrations build for the releases named: a
scratch database (beside the target, or on --scratch-url's server) is migrated to them
as `venuedb apply RELEASE` would on an empty database, and the two catalogs are diffed
by the one comparison verify uses (toolkit.integrity.catalog.diff). Only when they match,
or when the operator accepts the differences with a reason, is alembic_version written
(Alembic's own `stamp`), with a checksum row per stamped revision over its files as they
are now and a deployment record `stamp` saying what was compared and accepted. From then
on apply, verify and status treat the database as one the migrations built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from toolkit.deployments import store as records
from toolkit.engine import checksums, frozen, locks
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import current_heads
from toolkit.engine.releases import Release, find_release, load_releases
from toolkit.errors import BadInput, OperationFailed
from toolkit.integrity import catalog
from toolkit.server import connection as db

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    pass


@dataclass
class Comparison:
    """The live schema against the releases' expected catalog, and what a stamp writes."""

    releases: list[str]
    heads: list[str]  # the alembic_version rows a stamp writes
    branches: dict[str, str | None]  # the newest stamped revision per branch
    revisions: list[str]  # every revision the stamp marks applied, in apply order
    reference: str  # what the live schema was compared with
    differences: list[catalog.Drift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "releases": self.releases,
            "heads": self.heads,
            "branches": self.branches,
            "revisions": self.revisions,
            "reference": self.reference,
            "matches": self.matches,
            "differences": [d.to_dict() for d in self.differences],
            "notes": self.notes,
        }


def releases_named(names: list[str]) -> list[Release]:
    """The releases, or BadInput naming the unknown ones and listing the valid ones."""
    if not names:
        raise BadInput("name the release the database is at (see `venuedb history`)")
    found = {name: find_release(name) for name in names}
    unknown = [name for name, release in found.items() if release is None]
    if unknown:
        known = ", ".join(r.name for r in load_releases())
        raise BadInput(
            f"unknown release {', '.join(repr(u) for u in unknown)} (known: {known}); "
            "nothing was written"
        )
    return [release for release in found.values() if release is not None]


def refuse_a_migrated_database(conn: Any) -> None:
    """A database with alembic_version rows is the migrations' already: never re-stamp it."""
    heads = current_heads(conn)
    if heads:
        raise BadInput(
            f"the database already has alembic_version rows ({', '.join(heads)}): it is "
            "managed by the migrations, so there is nothing to adopt. Use `venuedb apply` "
            "(and `venuedb status`, `venuedb verify`); nothing was written"
        )


def compare(
    target: db.Target,
    names: list[str],
    *,
    scratch_url: str | None = None,
    progress: Progress = _silent,
) -> Comparison:
    """Compare the (never migrated) database with the releases `names`; writes nothing."""
    releases = releases_named(names)
    with db.connect(target, purpose="stamp (compare)") as conn:
        refuse_a_migrated_database(conn)
        return _compare(conn, releases, scratch_url or target.url, progress)


def _compare(
    conn: Any, releases: list[Release], scratch_server: str, progress: Progress
) -> Comparison:
    from urllib.parse import urlsplit

    names = [r.name for r in releases]
    server = urlsplit(scratch_server)
    progress(
        f"building the schema of {', '.join(names)} in a scratch database on "
        f"{server.hostname}:{server.port or 5432} (a few seconds)"
    )
    try:
        reference, built = catalog.build(scratch_server, targets=names)
    except catalog.ScratchUnavailable as exc:
        raise BadInput(
            f"no reference schema for {', '.join(names)}: {exc}; pass --scratch-url URL (a "
            "server where a scratch database may be created); nothing was written"
        ) from None
    live = catalog.take(conn)
    notes = _cluster_kinds(reference, live)
    heads = _version_rows(built)
    applied = revs.applied_revisions(tuple(heads))
    return Comparison(
        releases=names,
        heads=heads,
        branches=revs.heads_by_branch(tuple(heads)),
        revisions=[s.revision for s in revs.all_steps() if s.revision in applied],
        reference=f"a scratch database migrated to {', '.join(names)}",
        differences=catalog.diff(reference, live),
        notes=notes,
    )


def _cluster_kinds(
    reference: dict[str, dict[str, str]], live: dict[str, dict[str, str]]
) -> list[str]:
    """Roles are cluster-wide: held to the committed snapshot, as verify holds them."""
    path = catalog.snapshot_file()
    committed = catalog.load(path) if path.exists() else None
    return catalog.hold_cluster_kinds_to_snapshot(reference, live, committed, path)


def _version_rows(branch_heads: list[str]) -> list[str]:
    """The alembic_version rows an upgrade to these per-branch heads leaves: a head another
    one depends on (core_001 under booking and bar) is applied through it, not a row."""
    rows = []
    for head in branch_heads:
        others = tuple(h for h in branch_heads if h != head)
        if head not in revs.applied_revisions(others):
            rows.append(head)
    return sorted(rows)


@dataclass
class Stamped:
    deployment_id: int
    heads: list[str]
    record: str | None  # the Markdown twin's path


def stamp(
    target: db.Target,
    names: list[str],
    *,
    accept_reason: str | None,
    actor: str,
    lock_wait: float,
    scratch_url: str | None = None,
    progress: Progress = _silent,
) -> tuple[Comparison, Stamped | None]:
    """Compare under the deploy lock, then stamp when the schema matches or `accept_reason`
    accepts its differences. (comparison, None): differences and no reason, nothing was
    written (not even the toolkit's schema)."""
    if accept_reason is not None and not accept_reason.strip():
        raise BadInput("--accept-differences is empty: say why they are accepted (recorded)")
    releases = releases_named(names)
    started = datetime.now(UTC)
    with db.connect(target, purpose="stamp (control)") as control:
        # A stamp vouches for the files as they are now: not for a changed released one.
        for accepted in checksums.refuse_changed_files(control):
            progress(accepted)
        locks.acquire(control, locks.DEPLOY_LOCK, lock_wait, "deploy")
        try:
            refuse_a_migrated_database(control)
            found = _compare(control, releases, scratch_url or target.url, progress)
            if not found.matches and accept_reason is None:
                return found, None
            return found, _write(target, control, found, accept_reason, actor, started)
        finally:
            locks.release(control, locks.DEPLOY_LOCK)


def _write(
    target: db.Target,
    control: Any,
    found: Comparison,
    reason: str | None,
    actor: str,
    started: datetime,
) -> Stamped:
    records.ensure_schema(control)
    deployment = records.start(
        control,
        command="stamp",
        target=", ".join(found.releases),
        actor=actor,
        from_revisions=revs.heads_by_branch(()),
        planned=found.revisions,
        lock_id=locks.DEPLOY_LOCK,
        started_at=started,
    )
    deployment.output = record_lines(found, reason)
    try:
        _stamp_version(target, found, deployment.id)
    except Exception as exc:
        from toolkit.engine.migrate import error_text

        records.finish(
            control,
            deployment,
            result="failed",
            to_revisions=revs.heads_by_branch(current_heads(control)),
            done=[],
            error=error_text(exc),
        )
        raise OperationFailed(
            f"the stamp failed and was rolled back: {error_text(exc)}; nothing was stamped"
        ) from None
    records.finish(
        control,
        deployment,
        result="succeeded",
        to_revisions=found.branches,
        done=found.revisions,
    )
    path = _markdown(target, found, reason, actor, deployment.id, started)
    return Stamped(deployment.id, found.heads, path)


def _stamp_version(target: db.Target, found: Comparison, deployment_id: int) -> None:
    """alembic_version (Alembic's stamp) and one checksum row per stamped revision, in one
    transaction: both or neither."""
    from alembic import command

    manifest = frozen.load_manifest()
    script = revs.script_directory()
    engine = db.engine(target, purpose="stamp")
    try:
        with engine.connect() as conn, conn.begin():
            config = revs.alembic_config(conn)
            # migrations/env.py: the toolkit checked the released files itself.
            config.attributes["venuedb_deployment_id"] = deployment_id
            command.stamp(config, found.heads)
            stamped = revs.heads_by_branch(current_heads(conn))
            if stamped != found.branches:
                raise OperationFailed(
                    f"Alembic stamped {stamped}, not the expected {found.branches}"
                )
            records.ensure_checksum_tables(conn)
            for revision in found.revisions:
                checksums.record_applied(
                    conn, script.get_revision(revision), [], deployment_id, manifest
                )
    finally:
        engine.dispose()


def record_lines(found: Comparison, reason: str | None) -> list[str]:
    """The deployment record's output: what was compared, and what was accepted and why."""
    lines = [
        f"compared with {found.reference}: "
        + ("no difference" if found.matches else f"{len(found.differences)} difference(s)")
    ]
    if reason is not None and not found.matches:
        lines.append(f"differences accepted (--accept-differences): {reason.strip()}")
        lines += [f"accepted difference: {describe(d)}" for d in found.differences]
    lines += [f"note: {n}" for n in found.notes]
    lines.append(f"stamped {', '.join(found.heads)} (revisions {', '.join(found.revisions)})")
    return lines


def describe(difference: catalog.Drift) -> str:
    return (
        f"{difference.kind} {difference.name} {difference.status} "
        f"(expected: {difference.expected}; actual: {difference.actual})"
    )


def _markdown(
    target: db.Target,
    found: Comparison,
    reason: str | None,
    actor: str,
    deployment_id: int,
    started: datetime,
) -> str:
    from toolkit.deployments.markdown import RecordStep, simple

    accepted = reason is not None and not found.matches
    step = RecordStep(f"stamped {', '.join(found.heads)}", started, datetime.now(UTC), "ok")
    path = simple(
        f"stamp {' '.join(found.releases)} Deployment Record",
        target.masked,
        actor,
        release=found.releases[0] if len(found.releases) == 1 else None,
        status=f"SUCCESS, DIFFERENCES ACCEPTED: {reason}" if accepted else "SUCCESS",
        steps=[step],
        issues=[f"accepted difference: {describe(d)}" for d in found.differences]
        if accepted
        else [],
        lines=record_lines(found, reason),
        facts={
            "Compared with": found.reference,
            "From": "(no alembic_version rows)",
            "To": str(found.branches),
        },
        deployment_id=deployment_id,
    )
    return str(path)
