"""One record path for an operation that is not a migration (a backfill, a restore): the
row in the database's `venuedb` schema, then its Markdown twin naming that row's id, so
the two never disagree on what ran."""

from __future__ import annotations

from toolkit.deployments import store
from toolkit.deployments.markdown import RecordStep, simple
from toolkit.server import connection as db


def record_operation(
    target: db.Target,
    *,
    command: str,
    what: str,
    title: str,
    status: str,
    step: RecordStep,
    lines: list[str],
    error: str | None = None,
) -> int:
    """Record `command` on `what` (started and finished as `step` says) in the database,
    then as Markdown; the deployment's id."""
    actor = store.default_actor()
    with db.connect(target, purpose=f"{command} record") as conn:
        deployment_id = store.record_once(
            conn,
            command=command,
            target=what,
            actor=actor,
            result="failed" if error else "succeeded",
            output=lines,
            error=error,
            started_at=step.started,
        )
    simple(
        title,
        target.masked,
        actor,
        release=None,
        status=status,
        steps=[step],
        lines=lines,
        issues=[error] if error else [],
        deployment_id=deployment_id,
    )
    return deployment_id
