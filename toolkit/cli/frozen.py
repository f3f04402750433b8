"""`venuedb accept-checksum` and `venuedb release-manifest`: released history stays frozen."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table


def accept_checksum(
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION",
            help="The revision whose changed files are accepted (e.g. booking_001).",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why these files are accepted (required, recorded with who and when).",
            show_default=False,
        ),
    ],
    actor: Annotated[
        str | None,
        typer.Option(help="Who accepts, recorded (default: $VENUEDB_ACTOR or the OS user)."),
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Let THIS database run REVISION with its files exactly as they are now.

    A released file that differs from migrations/released.json makes apply, rollback and
    `alembic upgrade` refuse (exit 3) and verify report tampering. The right fix is to
    restore the file from git and put the change in a new revision or a new version file;
    when a changed file must run anyway, this records who accepted which checksum and why.
    The acceptance covers that exact checksum only: any further change is refused again.

    Example: venuedb accept-checksum booking_001 --reason "INC-42: hotfix reviewed by bob"

    Exit 0 accepted, 2 unknown revision, empty --reason, nothing to accept or unreachable
    database.
    """
    from toolkit.deployments.store import default_actor
    from toolkit.engine.checksums import accept_for

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out, writes="accept-checksum")
        acceptance = accept_for(target, revision, reason, actor or default_actor())
        out.document("ok", acceptance=acceptance.to_dict())
        out.line(
            f"accepted checksum {acceptance.checksum} of {acceptance.revision} for this "
            f"database (acceptance #{acceptance.id} by {acceptance.actor}): {acceptance.reason}"
        )
        if acceptance.released_checksum:
            out.line(f"released checksum: {acceptance.released_checksum}")
        if not json_output:
            out.out.print(
                table(
                    "Files accepted as they are now",
                    ["file", "sha256"],
                    [[f["path"], f["sha256"] or "(missing)"] for f in acceptance.files],
                )
            )


def release_manifest(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Compare instead of writing; exit 3 when entries are missing."
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Add every released revision (migrations/releases.toml) missing from
    migrations/released.json: its revision file and every SQL file its upgrade and
    downgrade install, each with its sha256, and one checksum over them.

    Existing entries are never changed: when a released file differs from its entry,
    nothing is written and the command exits 3 (restore the file from git). No database
    needed. Exit 0 written or current, 3 changed released files or (--check) missing
    entries, 2 a malformed manifest or release list.
    """
    from toolkit.engine import frozen

    out = Output(json_output)
    with handled(out):
        if not check:
            from toolkit.paths import editable_project_root

            editable_project_root("venuedb release-manifest")
        plan = frozen.plan_manifest()
        if plan.changed or plan.unreleased:
            out.document(
                "tampered",
                changed=[c.to_dict() for c in plan.changed],
                unreleased=plan.unreleased,
                written=False,
            )
            for change in plan.changed:
                for item in change.files:
                    out.line(
                        f"{change.revision}: {item.path} differs from its released entry "
                        f"(expected sha256 {item.expected}, actual {item.actual or 'missing'})"
                    )
            for revision in plan.unreleased:
                out.line(f"{revision} is in the manifest but no longer in releases.toml")
            out.line(
                "TAMPERED: released entries are never rewritten; restore the files from git "
                "(`git checkout -- PATH`). Nothing was written."
            )
            raise typer.Exit(3)
        added = sorted(plan.added)
        if check:
            out.document("drift" if added else "ok", missing=added, entries=plan.kept)
            out.line(
                f"missing from the manifest: {', '.join(added)} (run `venuedb release-manifest`)"
                if added
                else f"manifest is current ({plan.kept} released revisions)"
            )
            if added:
                raise typer.Exit(3)
            return
        path = frozen.write_manifest(plan.added) if added else frozen.manifest_file()
        out.document("ok", path=str(path), added=added, entries=plan.kept + len(added))
        out.line(
            f"added {', '.join(added)} to {path}"
            if added
            else f"{path} is current ({plan.kept} released revisions)"
        )
