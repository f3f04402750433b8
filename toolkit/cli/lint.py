"""`venuedb lint`."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled, table


def lint(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Also run plpgsql_check on this database's functions (when the server has the extension).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """sqlfluff on sql/, PL/pgSQL bodies parsed by pglast, squawk on the SQL every revision
    emits (justify a knowing exception right above the statement with
    `-- lint: allow <rule>: <why>`), and plpgsql_check with --database-url. Exit 0 clean,
    1 findings."""
    from toolkit.lint import lint as run_lint

    out = Output(json_output)
    with handled(out):
        target = None
        if database_url:
            from toolkit.connection import resolve

            target = resolve(database_url)
            out.note(target.describe())
        findings, notes = run_lint(target)
        out.document(
            "findings" if findings else "ok", findings=[f.to_dict() for f in findings], notes=notes
        )
        if not json_output:
            if findings:
                out.out.print(
                    table(
                        "Lint findings",
                        ["source", "file:line", "rule", "message", "fix"],
                        [
                            [f.source, f"{f.file}:{f.line}", f.rule, f.message, f.fix]
                            for f in findings
                        ],
                    )
                )
            for note in notes:
                out.line(f"note: {note}")
            out.line(f"{len(findings)} finding(s)" if findings else "lint clean")
        if findings:
            raise typer.Exit(1)
