"""`venuedb lint`: hazards caught with the right rule, justified ones pass, PL/pgSQL
syntax errors reported at their line, the project's own migrations clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.checkout import add_bar_099, copy_checkout, executing
from tests.clihelpers import as_json, invoke
from toolkit.integrity import lint
from toolkit.server.connection import Target

HAZARDS = {
    "require-concurrent-index-creation": "CREATE INDEX sales_total_idx ON public.sales (total);",
    "constraint-missing-not-valid": "ALTER TABLE public.sales ADD CONSTRAINT sales_small CHECK (total < 1000);",
    "changing-column-type": "ALTER TABLE public.sales ALTER COLUMN total TYPE numeric(14, 2);",
    "adding-field-with-default": "ALTER TABLE public.sales ADD COLUMN lucky float8 DEFAULT random();",
}


def _project(tmp_path: Path, body: str) -> Path:
    """A copy of the checkout (with its .sqlfluff) and bar_099 on top, executing `body`."""
    project = copy_checkout(tmp_path, ".sqlfluff")
    add_bar_099(project, executing(body))
    return project


def test_the_projects_own_sql_and_migrations_lint_clean() -> None:
    result = invoke("lint", "--json")
    assert result.exit_code == 0, result.output
    assert as_json(result)["findings"] == []


@pytest.mark.parametrize("rule", sorted(HAZARDS))
def test_each_hazard_is_caught_with_its_rule(
    tmp_path: Path, in_project: Callable[[Path], None], rule: str
) -> None:
    in_project(_project(tmp_path, HAZARDS[rule]))
    found = [f for f in lint.squawk_findings() if "bar_099" in f.file]
    assert rule in {f.rule for f in found}, found
    assert all(f.fix for f in found)


@pytest.mark.parametrize(
    "justification",
    [
        "-- squawk-ignore require-concurrent-index-creation -- sales is created empty in the "
        "same release",
        # The form released revisions carry (they are frozen).
        "-- lint: allow require-concurrent-index-creation: sales is created empty in the "
        "same release",
    ],
)
def test_a_justified_hazard_passes(
    tmp_path: Path, in_project: Callable[[Path], None], justification: str
) -> None:
    body = justification + "\n" + HAZARDS["require-concurrent-index-creation"]
    in_project(_project(tmp_path, body))
    assert [f for f in lint.squawk_findings() if "bar_099" in f.file] == []


def test_an_unjustified_finding_fails_the_command(
    tmp_path: Path, in_project: Callable[[Path], None]
) -> None:
    in_project(_project(tmp_path, HAZARDS["constraint-missing-not-valid"]))
    result = invoke("lint", "--json")
    assert result.exit_code == 1
    assert any(f["rule"] == "constraint-missing-not-valid" for f in as_json(result)["findings"])


def test_a_plpgsql_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "functions" / "broken" / "v1.sql"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "-- function: broken\n"
        "CREATE OR REPLACE FUNCTION public.broken() RETURNS integer\n"
        "LANGUAGE plpgsql AS $$\n"
        "DECLARE\n"
        "    total integer := 0;\n"
        "BEGIN\n"
        "    totl := total + 1;\n"
        "    RETURN total;\n"
        "END;\n"
        "$$;\n"
    )
    (finding,) = lint.plpgsql_findings(tmp_path / "functions")
    assert (finding.rule, finding.line) == ("plpgsql-syntax", 7)
    assert "totl" in finding.message


def _without_plpgsql_check(url: str) -> str | None:
    """Why this server cannot run plpgsql_check (its version named), None when it can."""
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'"
        ).fetchone()
    if available:
        return None
    return f"plpgsql_check is not available on PostgreSQL {version[0] if version else '?'}"


@pytest.mark.compat
def test_semantic_checks_say_when_they_are_skipped(db_url: str) -> None:
    if _without_plpgsql_check(db_url) is None:
        pytest.skip("plpgsql_check is available on this server: nothing is skipped")
    result = invoke("lint", "--database-url", db_url, "--json")
    skipped = "plpgsql_check is not available on this server: semantic checks skipped"
    assert skipped in as_json(result)["notes"]


@pytest.mark.compat
def test_semantic_checks_run_where_plpgsql_check_is_available(db_url: str) -> None:
    """The project's functions are clean under plpgsql_check, its trigger functions shared by
    several tables included (each branch reads its own table's fields); a function reading a
    column that does not exist (which plain CREATE FUNCTION accepts) is reported at its line,
    and so is a trigger function's field that none of its tables has, once."""
    missing = _without_plpgsql_check(db_url)
    if missing:
        pytest.skip(f"{missing}: `venuedb lint --database-url` skips its semantic checks")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.lint_probe() RETURNS integer LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "    RETURN (SELECT no_such_column FROM public.bookings LIMIT 1);\n"
            "END\n"
            "$$"
        )
        conn.execute(
            "CREATE FUNCTION public.lint_probe_trigger() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "    RETURN CASE WHEN NEW.no_such_field THEN NEW END;\n"
            "END\n"
            "$$"
        )
        for table in ("bookings", "table_holds"):
            conn.execute(
                f"CREATE TRIGGER lint_probe BEFORE INSERT ON public.{table} "
                "FOR EACH ROW EXECUTE FUNCTION public.lint_probe_trigger()"
            )
    findings, skipped = lint.plpgsql_check_findings(Target(db_url, "tests"))
    assert skipped is None
    # Line 1 is the rest of the `AS $$` line.
    assert [(f.file, f.line, f.rule) for f in findings] == [
        ("lint_probe()", 3, "error"),
        ("lint_probe_trigger()", 3, "error"),
    ]
    assert "no_such_column" in findings[0].message and "no_such_field" in findings[1].message


def test_emitted_sql_that_does_not_parse_is_reported(
    tmp_path: Path, in_project: Callable[[Path], None]
) -> None:
    in_project(_project(tmp_path, "SELEC 1 FROMM nowhere;"))
    found = [f for f in lint.emitted_sql_findings() if "bar_099" in f.file]
    assert found and all(f.source == "sqlfluff" for f in found)


def test_the_toolkit_uses_no_private_alembic_api() -> None:
    """Issue 20: the planner, the branch of a revision and the offline SQL go through
    Alembic's public API (iterate_revisions, branch_labels, MigrationStep), so an Alembic
    upgrade cannot change them silently. Names with a leading underscore that Alembic
    defines must not be reached for."""
    import re

    from toolkit.paths import project_root

    private = re.compile(
        r"\.(_upgrade_revs|_downgrade_revs|_all_down_revisions|_orig_branch_labels"
        r"|_resolved_dependencies|_revision_map|_catch_revision_errors)\b"
    )
    offenders = [
        f"{path.relative_to(project_root())}:{number}"
        for path in sorted((project_root() / "toolkit").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


def test_the_command_line_opens_no_connection_and_runs_no_sql() -> None:
    """Issue 20: toolkit/cli parses, calls one toolkit function and renders; connecting and
    querying happen in the toolkit, where they are tested without the CLI."""
    import re

    from toolkit.paths import project_root

    forbidden = re.compile(r"\.execute\(|\bconnect\(|\bscalar\(")
    offenders = [
        f"{path.relative_to(project_root())}:{number}: {line.strip()}"
        for path in sorted((project_root() / "toolkit" / "cli").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
