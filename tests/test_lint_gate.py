"""Lint is a gate (issue 17, point 6).

A revision that failed lint used to be applied, its record saying "Issues: none ...
SUCCESS". Now `apply` and `rollout` lint the pending revisions first and refuse an
unjustified finding with nothing changed; `--skip-lint REASON` applies anyway and the
record carries the reason and the findings; justifications are squawk's own comments,
so squawk run on `venuedb apply --sql` finds nothing unjustified; a finding's line is
the revision file's line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.checkout import add_bar_099, copy_checkout, executing
from tests.clihelpers import as_json, invoke, rollout
from tests.queries import one, scalar

SQUAWK = Path(sys.executable).parent / "squawk"
HAZARD = "CREATE INDEX sales_total_idx ON public.sales (total);"
RULE = "require-concurrent-index-creation"
REASON = "sales is empty in this test database"


def _project(
    tmp_path: Path, body: str, *, release: bool = False, upgrade: str | None = None
) -> Path:
    """A copy of the checkout with bar_099 on top of bar, its upgrade running `body` (or
    being `upgrade`); with `release`, a release of its own."""
    project = copy_checkout(tmp_path)
    add_bar_099(
        project,
        upgrade or executing(body),
        downgrade='op.execute("DROP INDEX IF EXISTS public.sales_total_idx")',
    )
    if release:
        with (project / "migrations" / "releases.toml").open("a") as handle:
            handle.write(
                '\n[[release]]\nname = "hazards"\nbranch = "bar"\nseed = "test"\n'
                'summary = "a hazard"\nrevisions = ["bar_099"]\n'
            )
    return project


def _line_of(project: Path, text: str) -> int:
    path = project / "migrations" / "versions" / "bar_099_hazards.py"
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _state(url: str) -> tuple[list[str], int, bool]:
    with psycopg.connect(url) as conn:
        heads = sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
        records = scalar(conn, "SELECT count(*) FROM venuedb.deployments")
        index = scalar(conn, "SELECT to_regclass('public.sales_total_idx') IS NOT NULL")
        return heads, records, index


def _markdown() -> list[Path]:
    return sorted(Path(os.environ["VENUEDB_RECORDS_DIR"]).glob("*.md"))


def test_an_unjustified_finding_refuses_apply_and_changes_nothing(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    project = _project(tmp_path, HAZARD)
    in_project(project)
    before = _state(db_url)
    for extra in ([], ["--rehearse"]):
        result = invoke("apply", "--database-url", db_url, "--json", *extra)
        assert result.exit_code == 1, result.output
        document = as_json(result)
        assert document["status"] == "lint_failed"
        (finding,) = [f for f in document["findings"] if f["rule"] == RULE]
        # Where the statement is written, not the line of the generated SQL.
        assert finding["file"] == "migrations/versions/bar_099_hazards.py"
        assert finding["line"] == _line_of(project, "CREATE INDEX sales_total_idx")
        assert "create_index_concurrently" in finding["fix"]
        assert document["revisions"] == ["bar_099"]
    # Nothing applied, not even a record saying success.
    assert _state(db_url) == before and "bar_099" not in before[0]
    assert _markdown() == []
    text = invoke("apply", "--database-url", db_url)
    assert text.exit_code == 1
    assert f"bar_099_hazards.py:{finding['line']}" in text.output and RULE in text.output


def test_skip_lint_applies_and_the_records_say_why_and_what(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, HAZARD))
    result = invoke("apply", "--database-url", db_url, "--json", "--skip-lint", REASON)
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert document["lint"]["skipped"] == REASON
    assert [f["rule"] for f in document["lint"]["findings"]] == [RULE]
    heads, _, index = _state(db_url)
    assert "bar_099" in heads and index
    with psycopg.connect(db_url) as conn:
        (output,) = one(
            conn,
            "SELECT output FROM venuedb.deployments WHERE id = %s",
            (document["deployment_id"],),
        )
    assert REASON in output and RULE in output and "bar_099_hazards.py:" in output
    (record,) = _markdown()
    markdown = record.read_text()
    issues = markdown.split("## Issues Encountered")[1].split("##")[0]
    assert REASON in issues and RULE in issues and "- none" not in issues
    assert f"**SUCCESS, LINT SKIPPED: {REASON}**" in markdown
    assert "- [x] Lint" not in markdown  # never a ticked box for findings left in


@pytest.mark.parametrize("reason", ["", "   "])
def test_skip_lint_without_a_reason_is_bad_input(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str, reason: str
) -> None:
    in_project(_project(tmp_path, HAZARD))
    before = _state(db_url)
    result = invoke("apply", "--database-url", db_url, "--json", "--skip-lint", reason)
    assert result.exit_code == 2, result.output
    assert "--skip-lint needs a reason" in as_json(result)["error"]
    assert _state(db_url) == before


def test_a_squawk_ignore_with_its_reason_is_a_justification(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    body = f"-- squawk-ignore {RULE} -- sales is created empty in the same release\n{HAZARD}"
    in_project(_project(tmp_path, body))
    result = invoke("apply", "--database-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    assert as_json(result)["lint"]["findings"] == []
    (record,) = _markdown()
    assert "- [x] Lint: squawk on 1 pending revision(s)" in record.read_text()
    assert "clean" in record.read_text()


@pytest.mark.parametrize(
    ("comment", "rule"),
    [
        (f"-- squawk-ignore {RULE}", "squawk-ignore-without-reason"),
        (f"-- squawk-ignore-file {RULE} -- the whole file", "squawk-ignore-file"),
    ],
)
def test_an_ignore_that_is_not_a_justification_is_refused(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str, comment: str, rule: str
) -> None:
    project = _project(tmp_path, f"{comment}\n{HAZARD}")
    in_project(project)
    result = invoke("apply", "--database-url", db_url, "--json")
    assert result.exit_code == 1, result.output
    (finding,) = [f for f in as_json(result)["findings"] if f["rule"] == rule]
    assert finding["line"] == _line_of(project, comment)


def test_a_revision_that_cannot_be_linted_is_refused(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    upgrade = (
        "def upgrade() -> None:\n"
        "    rows = op.get_bind().exec_driver_sql('SELECT 1').fetchall()\n"
        "    op.execute(f'CREATE INDEX sales_total_idx ON public.sales (total) -- {rows}')\n"
    )
    in_project(_project(tmp_path, "", upgrade=upgrade))
    before = _state(db_url)
    result = invoke("apply", "--database-url", db_url, "--json")
    assert result.exit_code == 1, result.output
    (finding,) = as_json(result)["findings"]
    assert finding["rule"] == "offline-sql" and "not linted" in finding["message"]
    assert _state(db_url) == before


def _squawk(sql: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "up.sql"
    script.write_text(sql)
    return subprocess.run(
        [str(SQUAWK), str(script)], capture_output=True, text=True, cwd=tmp_path, check=False
    )


def test_squawk_run_directly_on_apply_sql_finds_nothing_unjustified(tmp_path: Path) -> None:
    result = invoke("apply", "--sql")
    assert result.exit_code == 0, result.output
    assert "lint: allow" not in result.stdout and "-- squawk-ignore " in result.stdout
    checked = _squawk(result.stdout, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_same_squawk_run_sees_an_unjustified_hazard(
    tmp_path: Path, in_project: Callable[[Path], None]
) -> None:
    in_project(_project(tmp_path, HAZARD))
    result = invoke("apply", "--sql")
    assert result.exit_code == 0 and RULE in result.stderr
    checked = _squawk(result.stdout, tmp_path)
    assert checked.returncode != 0 and RULE in checked.stdout


def test_lint_reports_the_revision_files_line(
    tmp_path: Path, in_project: Callable[[Path], None]
) -> None:
    project = _project(tmp_path, f"SELECT 1;\n\n\n{HAZARD}")
    in_project(project)
    result = invoke("lint", "--json")
    (finding,) = [f for f in as_json(result)["findings"] if f["rule"] == RULE]
    assert finding["file"] == "migrations/versions/bar_099_hazards.py"
    assert finding["line"] == _line_of(project, "CREATE INDEX sales_total_idx")


def test_rollout_refuses_before_its_backup_and_changes_nothing(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, HAZARD, release=True))
    before = _state(db_url)
    result = rollout(db_url, "hazards", tmp_path)
    assert result.exit_code == 1, result.output
    document = as_json(result)
    assert document["status"] == "lint_failed"
    assert [f["rule"] for f in document["findings"]] == [RULE]
    heads, _, index = _state(db_url)
    assert heads == before[0] and not index
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    (record,) = (tmp_path / "records").glob("*.md")  # recorded as refused, never as success
    assert "SUCCESS" not in record.read_text() and "lint refused" in record.read_text()


def test_rollout_with_skip_lint_records_the_reason_and_the_findings(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, HAZARD, release=True))
    result = rollout(db_url, "hazards", tmp_path, "--skip-lint", REASON)
    assert result.exit_code == 0, result.output
    assert "bar_099" in _state(db_url)[0]
    markdown = Path(as_json(result)["record"]).read_text()
    issues = markdown.split("## Issues Encountered")[1].split("##")[0]
    assert REASON in issues and f"bar_099_hazards.py:{_line_of_hazard(tmp_path)}" in issues
    assert f"**SUCCESS, LINT SKIPPED: {REASON}**" in markdown


def _line_of_hazard(tmp_path: Path) -> int:
    return _line_of(tmp_path / "project", "CREATE INDEX sales_total_idx")


def test_a_refused_apply_writes_nothing_at_all(
    tmp_path: Path, in_project: Callable[[Path], None], empty_db_url: str
) -> None:
    in_project(_project(tmp_path, HAZARD))
    result = invoke("apply", "--database-url", empty_db_url, "--json")
    assert result.exit_code == 1 and as_json(result)["status"] == "lint_failed"
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "SELECT to_regclass('public.alembic_version'), to_regnamespace('venuedb')"
        ).fetchone()
    assert row == (None, None)  # not even the toolkit's own record schema
