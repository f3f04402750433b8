"""`venuedb flags`: the seeds' feature flags, resolved and validated; per-restaurant rollout."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table

app = typer.Typer(
    help="The seeds' feature flags: each value and where it came from (environment, .env, "
    "default), validated. `venuedb flags rollout` shows and sets per-restaurant rollout.",
    invoke_without_command=True,
)


@app.callback()
def flags(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Show every flag; exit 2 when a value is invalid (e.g. FEATURE_ALLOCATOR_K_MAX=0 or =abc)."""
    if ctx.invoked_subcommand is not None:
        return
    from toolkit.errors import BadInput
    from toolkit.flags import errors, resolve, warnings

    out = Output(json_output)
    with handled(out):
        resolved = resolve()
        problems, cautions = errors(resolved), warnings(resolved)
        if json_output:
            out.document(
                "error" if problems else "ok",
                flags=[r.to_dict() for r in resolved],
                errors=problems,
                warnings=cautions,
            )
        else:
            out.out.print(
                table(
                    "Feature flags",
                    ["flag", "value", "source", "seed"],
                    [
                        [
                            r.flag.name,
                            "INVALID" if r.error else _show(r.value),
                            r.source,
                            r.flag.seed,
                        ]
                        for r in resolved
                    ],
                )
            )
            for r in resolved:
                out.line(
                    f"[x] {r.error}" if r.error else f"[ok] {r.flag.accessor} = {_show(r.value)}"
                )
            for caution in cautions:
                out.emit("warning", caution)
        if problems:
            if json_output:
                raise typer.Exit(2)
            raise BadInput("invalid feature flags: " + "; ".join(problems))


@app.command()
def rollout(
    flag: Annotated[str | None, typer.Argument(help="Flag to change (omit to show all).")] = None,
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
    explicit restaurant list. The same restaurant always lands on the same side."""
    from toolkit import feature_rollout as rollouts
    from toolkit.records import default_actor

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        if flag is not None and (percent is not None or add or remove):
            rollouts.set_rollout(
                target,
                flag,
                percentage=percent,
                add=add or [],
                remove=remove or [],
                actor=default_actor(),
            )
        entries = rollouts.show(target)
        out.document("ok", rollouts=entries)
        if not json_output:
            out.out.print(
                table(
                    "Per-restaurant rollout",
                    ["flag", "percent", "listed", "restaurants enabled"],
                    [
                        [
                            e["flag"],
                            e["percentage"],
                            len(e["restaurants"]),
                            f"{e['enabled_restaurants']} of {e['total_restaurants']}",
                        ]
                        for e in entries
                    ],
                )
            )


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
