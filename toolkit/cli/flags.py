"""`venuedb flags`: the seeds' feature flags, resolved and validated; per-restaurant rollout."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table

app = typer.Typer(
    help="The seeds' feature flags: each value and where it came from (environment, .env, "
    "default, or the database for the flags it owns), validated. `venuedb flags set` writes "
    "a database-owned flag; `venuedb flags rollout` shows and sets per-restaurant rollout.",
    invoke_without_command=True,
)


@app.callback()
def flags(
    ctx: typer.Context, database_url: DatabaseUrl = None, json_output: JsonFlag = False
) -> None:
    """Show every flag; exit 2 when a value is invalid (e.g. FEATURE_ALLOCATOR_K_MAX=0 or =abc).

    ENABLE_SWITCHING_MODE is owned by the database (public.feature_flags, release
    bar-integrity): its value there is shown when a database is reachable, with a warning
    when the environment says otherwise. A per-restaurant rollout that does nothing is
    warned about: one of a flag that nothing reads per restaurant (ignored), or one whose
    flag is false here (the flag is the kill switch: off for every restaurant)."""
    if ctx.invoked_subcommand is not None:
        return
    from toolkit.errors import BadInput
    from toolkit.venue import flag_store
    from toolkit.venue.flags import errors, resolve, warnings

    out = Output(json_output)
    with handled(out):
        resolved = resolve()
        target, stored, note = flag_store.database_view(database_url)
        if target is not None:
            out.note(target.describe())
        problems = errors(resolved)
        cautions = warnings(resolved, flag_store.decided_values(stored))
        cautions += flag_store.disagreements(resolved, stored)
        cautions += _rollout_cautions(target, resolved)
        if json_output:
            out.document(
                "bad_input" if problems else "ok",
                flags=[_as_dict(r, stored) for r in resolved],
                database={"reachable": stored is not None, "note": note},
                errors=problems,
                warnings=cautions,
            )
        else:
            out.out.print(
                table(
                    "Feature flags",
                    ["flag", "value", "source", "seed"],
                    [[r.flag.name, *_value_and_source(r, stored), r.flag.seed] for r in resolved],
                )
            )
            for r in resolved:
                if r.error:
                    out.line(f"[x] {r.error}")
                elif r.flag.owner == "database":
                    out.line(
                        f"[ok] {r.flag.accessor} is owned by the database "
                        f"({flag_store.TABLE}): {_value_and_source(r, stored)[0]}"
                    )
                else:
                    out.line(f"[ok] {r.flag.accessor} = {_show(r.value)}")
            if note:
                out.emit("notice", note)
            for caution in cautions:
                out.emit("warning", caution)
        if problems:
            if json_output:
                raise typer.Exit(2)
            raise BadInput("invalid feature flags: " + "; ".join(problems))


@app.command("set")
def set_(
    flag: Annotated[str, typer.Argument(help="A flag the database owns: ENABLE_SWITCHING_MODE.")],
    state: Annotated[str, typer.Argument(help="on or off.")],
    bar: Annotated[
        list[str] | None,
        typer.Option(
            "--bar",
            help="Only this bar (repeatable): `on` adds it to the flag's bars, `off` takes it "
            "off. Without --bar: `on` for every bar, `off` everywhere.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a database-owned flag (public.feature_flags). Exit 2 for a flag the database
    does not own, or when its table does not exist yet (the release to apply is named)."""
    from toolkit.deployments.store import default_actor
    from toolkit.errors import BadInput
    from toolkit.venue import flag_store

    out = Output(json_output)
    with handled(out):
        if state.lower() not in ("on", "off"):
            raise BadInput(f"state must be on or off, got {state!r}")
        flag_store.database_flag(flag)
        target = resolve_target(database_url, out, writes="flags set")
        row, notes = flag_store.set_flag(
            target, flag, on=state.lower() == "on", bars=bar or [], actor=default_actor()
        )
        out.document("ok", flag=row.to_dict(), notes=notes)
        out.line(
            f"{row.name}: {row.state}"
            + (f" ({', '.join(row.bar_ids)})" if row.bar_ids and not row.enabled else "")
        )
        for text in notes:
            out.emit("warning", text)


@app.command()
def rollout(
    flag: Annotated[
        str | None,
        typer.Argument(
            help="Flag to change (omit to show all): FEATURE_ASSIGNMENT_PIPELINE_V3 or "
            "FEATURE_COMBINATION_PLANNER, the flags read per restaurant."
        ),
    ] = None,
    percent: Annotated[
        int | None,
        typer.Option("--percent", help="Share of restaurants (0-100), bucketed deterministically."),
    ] = None,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", help="Restaurant id or slug to enable explicitly (repeatable)."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="Restaurant id or slug to take off the explicit list."),
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Per-restaurant rollout stored in the database: show it, or set a flag's percentage and
    explicit restaurant list. The same restaurant always lands on the same side.

    The flag's own value (environment or .env) is the kill switch and always wins: false
    turns the feature off for every restaurant, whatever the rollout says; true lets the
    rollout pick the restaurants (every restaurant when the flag has no rollout). "enabled"
    counts the restaurants that get the feature with this environment's value. Exit 2 for
    a flag that nothing reads per restaurant (its rollout would be ignored)."""
    from toolkit.deployments.store import default_actor
    from toolkit.venue import flag_rollout as rollouts
    from toolkit.venue.flags import resolve, rollout_flags, value_of

    out = Output(json_output)
    with handled(out):
        if flag is not None:
            rollouts.rollout_flag(flag)
        resolved = resolve()
        switches = {f.name: bool(value_of(resolved, f.name)) for f in rollout_flags()}
        changes = percent is not None or bool(add) or bool(remove)
        writes = "flags rollout" if flag is not None and changes else None
        target = resolve_target(database_url, out, writes=writes)
        if flag is not None and changes:
            rollouts.set_rollout(
                target,
                flag,
                percentage=percent,
                add=add or [],
                remove=remove or [],
                actor=default_actor(),
            )
        entries = rollouts.show(target, switches)
        cautions = rollouts.cautions(entries)
        out.document("ok", rollouts=entries, warnings=cautions)
        if not json_output:
            out.out.print(
                table(
                    "Per-restaurant rollout",
                    ["flag", "flag value", "percent", "listed", "restaurants enabled"],
                    [
                        [
                            e["flag"],
                            _switch(e),
                            "none (all)" if e["percentage"] is None else e["percentage"],
                            len(e["restaurants"]),
                            _enabled(e),
                        ]
                        for e in entries
                    ],
                )
            )
            for caution in cautions:
                out.emit("warning", caution)


def _switch(entry: dict[str, Any]) -> str:
    if entry["switch"] is None:
        return "-"
    return "true" if entry["switch"] else "false (off everywhere)"


def _enabled(entry: dict[str, Any]) -> str:
    if entry["state"] == "ignored":
        return "ignored: not read per restaurant"
    return f"{entry['enabled_restaurants']} of {entry['total_restaurants']}"


def _rollout_cautions(target: Any, resolved: Any) -> list[str]:
    """Rollout rows that are ignored or switched off. Best effort, like the database's
    values: the listing of flags never fails because the database cannot be read."""
    from toolkit.venue import flag_rollout as rollouts
    from toolkit.venue.flags import rollout_flags

    switches = {
        r.flag.name: bool(r.value) for r in resolved if r.flag in rollout_flags() and not r.error
    }
    return rollouts.cautions_for(target, switches)


def _value_and_source(r: Any, stored: Any) -> list[str]:
    """A database-owned flag shows the database's value when there is one."""
    if r.error:
        return ["INVALID", r.source]
    if r.flag.owner == "database" and stored is not None:
        row = stored.get(r.flag.name)
        return [row.state if row else "off (no row)", "database"]
    if r.flag.owner == "database":
        return [_show(r.value), f"{r.source} (owned by the database)"]
    return [_show(r.value), r.source]


def _as_dict(r: Any, stored: Any) -> dict[str, Any]:
    document = r.to_dict()
    if r.flag.owner == "database":
        row = stored.get(r.flag.name) if stored is not None else None
        document["database_value"] = row.to_dict() if row else None
    return document


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
