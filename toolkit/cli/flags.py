"""`venuedb flags`: the seeds' feature flags, resolved and validated."""

from __future__ import annotations

import typer

from toolkit.cli.common import JsonFlag, Output, handled, table


def flags(json_output: JsonFlag = False) -> None:
    """Show every feature flag's value and where it came from (environment, .env, default).

    Exit 2 when a value is invalid (e.g. FEATURE_ALLOCATOR_K_MAX=0 or =abc), naming it.
    """
    from toolkit.errors import BadInput
    from toolkit.flags import errors, resolve

    out = Output(json_output)
    with handled(out):
        resolved = resolve()
        problems = errors(resolved)
        if json_output:
            out.document(
                "error" if problems else "ok",
                flags=[r.to_dict() for r in resolved],
                errors=problems,
            )
        else:
            out.out.print(
                table(
                    "Feature flags",
                    ["flag", "value", "source", "meaning"],
                    [
                        [
                            r.flag.name,
                            "INVALID" if r.error else _show(r.value),
                            r.source,
                            r.flag.description,
                        ]
                        for r in resolved
                    ],
                )
            )
            for r in resolved:
                mark = "x" if r.error else "ok"
                out.line(
                    f"[{mark}] {r.flag.accessor} = {_show(r.value)}"
                    if not r.error
                    else f"[{mark}] {r.error}"
                )
        if problems:
            if json_output:
                raise typer.Exit(2)
            raise BadInput("invalid feature flags: " + "; ".join(problems))


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
