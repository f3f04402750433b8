"""`venuedb lint`: SQL style and migration safety before anything reaches a database.

- sqlfluff (postgres dialect, the committed .sqlfluff) over sql/, and every revision's
  offline SQL parsed by sqlfluff;
- every PL/pgSQL body in sql/functions parsed by pglast's parse_plpgsql, so a syntax
  error inside $$ ... $$ is caught before deploy, with file and line;
- the offline SQL of every revision (`alembic upgrade down:rev --sql`) linted by squawk
  for lock hazards, the same check `venuedb apply` and `venuedb rollout` gate on
  (toolkit/integrity/lint_gate.py). A statement that knowingly breaks a rule carries squawk's own
  justification right above it, with the reason after a second `--`:
      -- squawk-ignore <rule>[, <rule>] -- <why>
  (released revisions' `-- lint: allow <rule>: <why>` is still read). An unjustified
  finding fails the lint, reported at the revision file's line;
- with a database that has the plpgsql_check extension, every PL/pgSQL function
  checked semantically (missing columns, wrong types); otherwise it says it skipped;
- ready to distribute: a scratch database migrated revision by revision, its catalog held
  to migrations/distribution.toml after each (toolkit/integrity/distribution.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit.paths import project_root, sql_dir


@dataclass(frozen=True)
class Finding:
    source: str  # sqlfluff | plpgsql | squawk | plpgsql_check | distribution
    file: str
    line: int
    rule: str
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_path(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def sqlfluff_findings(paths: list[Path] | None = None) -> list[Finding]:
    targets = [str(p) for p in (paths or [sql_dir()])]
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "--format", "json", "--nofail", *targets],
        capture_output=True,
        text=True,
        cwd=project_root(),
        check=False,
    )
    try:
        files = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [Finding("sqlfluff", "sql/", 0, "sqlfluff", result.stderr.strip()[:500])]
    return [
        Finding(
            "sqlfluff",
            relative_path(Path(project_root()) / f["filepath"]),
            int(v.get("start_line_no") or v.get("line_no") or 0),
            v.get("code", "?"),
            v.get("description", ""),
            "sqlfluff fix, or follow the rule",
        )
        for f in files
        for v in f.get("violations", [])
    ]


def plpgsql_findings(root: Path | None = None) -> list[Finding]:
    import pglast

    findings = []
    for path in sorted((root or sql_dir() / "functions").rglob("*.sql")):
        text = path.read_text(encoding="utf-8")
        try:
            slices = list(pglast.split(text, with_parser=False, only_slices=True))
        except pglast.parser.ParseError as exc:
            findings.append(Finding("plpgsql", relative_path(path), 1, "sql-syntax", str(exc)))
            continue
        for piece in slices:
            statement = text[piece]
            if not re.search(r"LANGUAGE\s+plpgsql", statement, re.I) or not re.search(
                r"CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)", statement, re.I
            ):
                continue
            try:
                pglast.parse_plpgsql(statement)
            except pglast.parser.ParseError as exc:
                first = text.count("\n", 0, piece.start) + 1
                findings.append(
                    Finding(
                        "plpgsql",
                        relative_path(path),
                        first + _locate(statement, str(exc)),
                        "plpgsql-syntax",
                        str(exc),
                        "fix the PL/pgSQL body",
                    )
                )
    return findings


def _locate(statement: str, message: str) -> int:
    """pglast gives no position for PL/pgSQL errors: find the quoted token's line."""
    match = re.search(r'"([^"]+)"', message)
    if match is None:
        return 0
    token = match[1]
    body_start = statement.find("$$")
    for number, line in enumerate(statement.splitlines()):
        if statement.find(line) < body_start:
            continue
        if re.search(rf"(?<![\w]){re.escape(token)}(?![\w])", line):
            return number
    return 0


def emitted_sql_findings() -> list[Finding]:
    """The SQL every revision emits (offline) must parse as PostgreSQL for sqlfluff."""
    import sqlfluff
    from sqlfluff.api.simple import APIParsingError

    from toolkit.engine import revisions as revs

    findings = []
    for step in revs.all_steps():
        try:
            sqlfluff.parse(offline_sql(step.revision), dialect="postgres")
        except APIParsingError as exc:
            for violation in exc.violations:
                findings.append(
                    Finding(
                        "sqlfluff",
                        relative_path(step.path),
                        int(violation.line_no or 0),
                        violation.rule_code(),
                        f"{step.revision} (offline SQL): {violation.desc()}",
                        "the revision emits SQL that does not parse",
                    )
                )
    return findings


def offline_sql(revision: str) -> str:
    """The SQL Alembic emits for one revision (from its predecessor).

    What `alembic upgrade down:rev --sql` does, on the process's one ScriptDirectory:
    building the revision map again for every revision would make the lint gate in
    front of every apply take a second instead of a tenth of one."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationStep

    from toolkit.engine import revisions as revs

    script = revs.script_directory()
    script_rev = script.get_revision(revision)
    down = script_rev.down_revision
    if down is None and script_rev.dependencies:  # a branch root: start after what it needs
        needs = script_rev.dependencies
        down = needs if isinstance(needs, str) else needs[0]
    start = down if isinstance(down, str) else None
    config = revs.alembic_config()
    buffer = io.StringIO()
    config.output_buffer = buffer

    def upgrade(rev: Any, context: Any) -> Any:
        # The steps alembic.command.upgrade would run, built from the public API.
        between = reversed(list(script.iterate_revisions(revision, rev, implicit_base=True)))
        return [MigrationStep.upgrade_from_script(script.revision_map, r) for r in between]

    with (
        contextlib.redirect_stdout(buffer),
        EnvironmentContext(
            config,
            script,
            fn=upgrade,
            as_sql=True,
            starting_rev=start,
            destination_rev=revision,
        ),
    ):
        script.run_env()
    return buffer.getvalue()


def squawk_findings() -> list[Finding]:
    """squawk on every revision's offline SQL; the same check `venuedb apply` gates on."""
    from toolkit.engine import revisions as revs
    from toolkit.integrity.lint_gate import findings

    return findings(step.revision for step in revs.all_steps())


# Every PL/pgSQL function of public through plpgsql_check; a trigger function once per table
# it is attached to (relid: 0 for a plain function; plpgsql_check refuses NULL), since its
# NEW and OLD are that table's rows. One function serving several tables branches on
# TG_TABLE_NAME, and each branch reads fields only its own table has: an error is the
# function's only when it is found on every one of its tables. A trigger function attached
# to no table cannot be checked (plpgsql_check needs a relation for NEW).
_PLPGSQL_CHECK_ERRORS = """
WITH functions AS (
    SELECT p.oid, t.tgrelid
    FROM pg_proc AS p
    JOIN pg_language AS l ON l.oid = p.prolang
    LEFT JOIN (SELECT DISTINCT tgfoid, tgrelid FROM pg_trigger) AS t ON t.tgfoid = p.oid
    WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'public'::regnamespace
      AND p.prorettype <> 'pg_catalog.event_trigger'::regtype
      AND (p.prorettype <> 'pg_catalog.trigger'::regtype OR t.tgrelid IS NOT NULL)
)
SELECT f.oid::regprocedure::text, r.lineno, r.message, r.level
FROM functions AS f
CROSS JOIN LATERAL plpgsql_check_function_tb(f.oid, coalesce(f.tgrelid, 0)) AS r
WHERE r.level = 'error'
GROUP BY f.oid, r.lineno, r.message, r.level
HAVING count(DISTINCT f.tgrelid) = (SELECT count(g.tgrelid) FROM functions AS g WHERE g.oid = f.oid)
ORDER BY 1, 2
"""


def plpgsql_check_findings(target: Any) -> tuple[list[Finding], str | None]:
    """Semantic checks when the server has plpgsql_check; (findings, why skipped)."""
    from toolkit.server import connection as db

    with db.connect(target, autocommit=False, purpose="lint") as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'"
        ).fetchone()
        if available is None:
            return [], "plpgsql_check is not available on this server: semantic checks skipped"
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        rows = conn.execute(_PLPGSQL_CHECK_ERRORS).fetchall()
        conn.rollback()  # the extension was only borrowed
    return [Finding("plpgsql_check", r[0], int(r[1] or 0), r[3], r[2]) for r in rows], None


@dataclass
class LintResult:
    findings: list[Finding]
    notes: list[str]
    distribution: Any  # toolkit.integrity.distribution.DistributionReport


def lint(target: Any = None, scratch_url: str | None = None) -> LintResult:
    """Every check; the distribution check on a scratch database on `scratch_url`'s
    server, else on a throwaway embedded server (toolkit/integrity/distribution.py)."""
    from toolkit.integrity import distribution

    notes = []
    findings = sqlfluff_findings() + emitted_sql_findings() + plpgsql_findings() + squawk_findings()
    if target is None:
        notes.append("no database given: plpgsql_check semantic checks skipped")
    else:
        semantic, skipped = plpgsql_check_findings(target)
        findings += semantic
        if skipped:
            notes.append(skipped)
    report = distribution.check(scratch_url)
    findings += report.findings()
    return LintResult(findings, notes, report)
