"""`venuedb lint`, and how apply and rollout report a lint refusal."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

from toolkit.cli.common import JsonFlag, Output, handled, table

SkipLint = Annotated[
    str | None,
    typer.Option(
        "--skip-lint",
        metavar="REASON",
        help="Apply even if squawk finds unjustified hazards in the pending revisions; the "
        "reason and the findings go into the deployment record. Better: fix the statement, "
        "or justify it right above with `-- squawk-ignore <rule> -- <why>`.",
        show_default=False,
    ),
]


def skip_reason(value: str | None) -> str | None:
    """--skip-lint's reason, refused when empty (the record must say why)."""
    if value is None:
        return None
    if not value.strip():
        from toolkit.errors import BadInput

        raise BadInput(
            '--skip-lint needs a reason, e.g. --skip-lint "index built on an empty table"; '
            "nothing was changed"
        )
    return value.strip()


def gate(reason: str | None, out: Output) -> Any:
    from toolkit.integrity.lint_gate import LintGate

    return LintGate(skip_reason=reason, emit=out.emit)


def findings_table(title: str, findings: list[Any]) -> Any:
    return table(
        title,
        ["source", "file:line", "rule", "message", "fix"],
        [[f.source, f"{f.file}:{f.line}", f.rule, f.message, f.fix] for f in findings],
    )


def refuse(out: Output, exc: Any) -> NoReturn:
    """A lint refusal: the findings, where they are written and how to fix them; exit 1."""
    if not out.as_json:
        out.err.print(findings_table("Unjustified lint findings", exc.findings))
    out.fail(
        exc,
        findings=[f.to_dict() for f in exc.findings],
        revisions=exc.revisions,
        lint_seconds=round(exc.seconds, 3),
    )


def lint(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Also run plpgsql_check on this database's functions (when the server has the extension).",
            show_default=False,
        ),
    ] = None,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="A server where this role may CREATE DATABASE, for the distribution check's "
            "scratch database. Default: a throwaway embedded server started for the check.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """sqlfluff on sql/, PL/pgSQL bodies parsed by pglast, squawk on the SQL every revision
    emits (the check `apply` and `rollout` refuse to deploy past), plpgsql_check with
    --database-url, and the distribution check: a scratch database migrated revision by
    revision, held to migrations/distribution.toml (docs/citus.md). Justify a knowing
    exception in squawk's own syntax, right above the statement: `-- squawk-ignore <rule>
    -- <why>` (released revisions' `-- lint: allow <rule>: <why>` is still read); a
    distribution exception in migrations/distribution.toml, with its reason. Findings point
    at the revision file's line. Exit 0 clean, 1 findings (JSON "status": "lint_failed")."""
    from toolkit.integrity.lint import lint as run_lint
    from toolkit.server.urls import mask_url

    out = Output(json_output)
    with handled(out):
        target = None
        if database_url:
            from toolkit.server.connection import resolve

            target = resolve(database_url)
            out.note(target.describe())
        out.note(
            f"distribution check: scratch database on {mask_url(scratch_url)}"
            if scratch_url
            else "distribution check: scratch database on a temporary embedded server"
        )
        result = run_lint(target, scratch_url)
        findings = result.findings
        # lint_failed, as `apply` says when it refuses the same findings.
        out.document(
            "lint_failed" if findings else "ok",
            findings=[f.to_dict() for f in findings],
            notes=result.notes,
            distribution=result.distribution.to_dict(),
        )
        if not json_output:
            if findings:
                out.out.print(findings_table("Lint findings", findings))
            for line in result.distribution.lines():
                out.line(line)
            for note in result.notes:
                out.line(f"note: {note}")
            out.line(f"{len(findings)} finding(s)" if findings else "lint clean")
        if findings:
            raise typer.Exit(1)
