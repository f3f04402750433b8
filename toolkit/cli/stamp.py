"""`venuedb stamp RELEASE`: adopt a database built without the migrations' records."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table
from toolkit.cli.migrations import Actor, LockWait
from toolkit.cli.plans import finish_plan, plan_status


def stamp(
    releases: Annotated[
        list[str],
        typer.Argument(
            help="The release the database is at (see `venuedb history`); several when it "
            "holds more than one branch, e.g. `assignment-times bar-observability`.",
            show_default=False,
        ),
    ],
    accept_differences: Annotated[
        str | None,
        typer.Option(
            "--accept-differences",
            metavar="REASON",
            help="Stamp although the schema differs from the release's: the differences and "
            "REASON go into the deployment record.",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Compare and print what would be stamped; write nothing (exit 0; 1 when the stamp would refuse).",
        ),
    ] = False,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="A server where a scratch database may be created for the release's "
            "expected schema, when the target's own user may not CREATE DATABASE.",
            show_default=False,
        ),
    ] = None,
    lock_wait: LockWait = "30s",
    actor: Actor = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Adopt a database whose schema was built without Alembic (restored from a dump, made
    by hand, migrated by another tool): compare its schema with the one the migrations
    build for RELEASE (a scratch database migrated to it, as `venuedb verify` builds its
    reference), print the differences, and write alembic_version only when there are none.

    Exit 0 stamped (or --plan); 3 the schema differs (status drift, the differences
    listed, nothing written) unless --accept-differences REASON, which stamps anyway and
    records them with the reason; 2 an unknown release (the valid ones listed), or a
    database that already has alembic_version rows (use `venuedb apply`); 4 another deploy
    holds the lock. A stamp is recorded (deployment record `stamp`, checksums of the
    stamped revisions' files), so `venuedb status` and `venuedb verify` see it as applied."""
    from toolkit import durations as d
    from toolkit.deployments.store import default_actor
    from toolkit.engine import stamp as stamping

    out = Output(json_output)
    with handled(out):
        if scratch_url is not None:
            from toolkit.server.urls import validate_url

            scratch_url = validate_url(scratch_url)
        wait = d.parse_bounded(lock_wait, d.LOCK_WAIT, option="--lock-wait")
        stamping.releases_named(releases)  # an unknown release before any connection
        target = resolve_target(database_url, out, writes="stamp")
        if plan:
            found = stamping.compare(target, releases, scratch_url=scratch_url, progress=out.note)
            _print_plan(out, found, accept_differences)
            return
        found, stamped = stamping.stamp(
            target,
            releases,
            accept_reason=accept_differences,
            actor=actor or default_actor(),
            lock_wait=wait,
            scratch_url=scratch_url,
            progress=out.note,
        )
        if stamped is None:
            _refuse(out, found)
        out.document(
            "ok",
            **found.to_dict(),
            plan=False,
            accepted_reason=accept_differences if not found.matches else None,
            deployment_id=stamped.deployment_id,
            record=stamped.record,
        )
        _print_differences(out, found)
        out.line(
            f"stamped {', '.join(stamped.heads)} ({len(found.revisions)} revisions recorded "
            f"as applied; deployment #{stamped.deployment_id})"
            + (
                f"; {len(found.differences)} difference(s) accepted: {accept_differences}"
                if not found.matches
                else ""
            )
        )


def _print_differences(out: Output, found: Any) -> None:
    if out.as_json:
        return
    out.line(f"compared with {found.reference}")
    for note in found.notes:
        out.line(f"note: {note}")
    if found.differences:
        out.out.print(
            table(
                f"Differences from {', '.join(found.releases)}",
                ["kind", "object", "status", "expected", "actual"],
                [[d.kind, d.name, d.status, d.expected, d.actual] for d in found.differences],
            )
        )
    else:
        out.line("the schema matches: no difference")


def _print_plan(out: Output, found: Any, accept_differences: str | None) -> None:
    would_refuse = (
        []
        if found.matches or accept_differences is not None
        else [
            f"the schema differs from {', '.join(found.releases)} in "
            f"{len(found.differences)} object(s): stamping needs --accept-differences REASON"
        ]
    )
    out.document(plan_status(would_refuse), **found.to_dict(), plan=True, would_refuse=would_refuse)
    _print_differences(out, found)
    out.line(
        f"would stamp alembic_version with {', '.join(found.heads)} (revisions "
        f"{', '.join(found.revisions)})"
    )
    finish_plan(
        out, would_refuse, "without the flag it needs", "plan only (--plan): nothing was written"
    )


def _refuse(out: Output, found: Any) -> NoReturn:
    out.document("drift", **found.to_dict(), plan=False, exit_code=3)
    if not out.as_json:
        _print_differences(out, found)
        out.err.print(
            f"error: not stamped: the schema differs from {', '.join(found.releases)} in "
            f"{len(found.differences)} object(s); nothing was written. Make it match, or "
            "stamp anyway with --accept-differences REASON (recorded with the differences)",
            style="bold red",
            markup=False,
        )
    raise typer.Exit(3)
