"""One vocabulary across the commands (issue 21): durations always with their unit, the
database always --database-url, rollout's deploy options as apply's, an unknown release
answered with the valid ones, one set of JSON status words (the README's table), and
`new-revision` writing the next revision of a branch from the project's template."""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer.main

from tests.clihelpers import as_json, invoke, rollout
from toolkit.cli import app
from toolkit.cli.plans import plan_status
from toolkit.cli.rollback_level import LevelIncomplete
from toolkit.engine import revisions as revs
from toolkit.engine.locks import DEPLOY_LOCK, NAMESPACE
from toolkit.engine.releases import load_releases
from toolkit.integrity import health_checks, verify

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Nothing listens on port 1: a command that tried to connect would say "cannot reach".
# typer (0.29) builds on its own copy of click, so the command objects are typer's.
Command = Any

UNREACHABLE = "postgresql://u:pw@127.0.0.1:1/db"


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _commands() -> Iterator[tuple[str, Command]]:
    def walk(command: Command, path: list[str]) -> Iterator[tuple[str, Command]]:
        subcommands = getattr(command, "commands", {})
        if path and (not subcommands or command.params):
            yield " ".join(path), command
        for name, sub in subcommands.items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def _visible_options(command: Command) -> dict[str, Any]:
    return {
        opt: param
        for param in command.params
        if not getattr(param, "hidden", False)
        for opt in param.opts
    }


# -- durations: always with their unit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["check", "--timeout", "5000"], "--timeout"),
        (["check", "--watch", "10"], "--watch"),
        (["exporter", "--once", "--timeout", "5000"], "--timeout"),
        (["apply", "--lock-wait", "30"], "--lock-wait"),
        (["apply", "--lock-timeout", "1"], "--lock-timeout"),
        (["rollback", "base", "--yes", "--statement-timeout", "5"], "--statement-timeout"),
        (["rollout", "core", "--yes", "--lock-wait", "30"], "--lock-wait"),
        (["backfill", "run", "sales_server_id", "--sleep", "50"], "--sleep"),
    ],
)
def test_a_bare_number_is_refused_naming_the_option_and_the_unit(
    args: list[str], option: str
) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.stderr)
    value = args[args.index(option) + 1]
    assert option in line and "needs a unit" in line
    assert f"{value}ms or {value}s" in line and "allowed:" in line
    assert "cannot reach" not in result.output


def test_check_timeout_reaches_the_checks_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []

    def run_checks(target: Any, chosen: Any, *, window: Any, timeout_ms: int) -> list[Any]:
        seen.append(timeout_ms)
        return []

    monkeypatch.setattr(health_checks, "run_checks", run_checks)
    for extra in ([], ["--timeout", "250ms"], ["--timeout", "2s"], ["--timeout", "1m"]):
        result = invoke("check", "--json", "--database-url", UNREACHABLE, *extra)
        assert result.exit_code == 0, result.output
    assert seen == [5000, 250, 2000, 60000]


def test_check_watch_is_a_duration() -> None:
    from toolkit.cli.check import parsed_timing

    assert parsed_timing("5s", None) == (5000, None)
    assert parsed_timing("500ms", "1m") == (500, 60.0)


def test_the_help_shows_durations_with_their_unit() -> None:
    commands = dict(_commands())
    for name, option, default in [
        ("check", "--timeout", "5s"),
        ("exporter", "--timeout", "5s"),
        ("apply", "--lock-wait", "30s"),
        ("rollout", "--lock-wait", "30s"),
    ]:
        assert _visible_options(commands[name])[option].default == default, (name, option)


# -- --database-url everywhere -------------------------------------------------------------------

# The commands that reach no database of their own, and what they work on instead.
NO_DATABASE = {
    "new-revision": "writes a file in migrations/versions/",
    "release-manifest": "reads and writes migrations/released.json",
    "snapshot": "builds a scratch database on --scratch-url",
    "db start": "the embedded server itself",
    "db stop": "the embedded server itself",
    "db status": "the embedded server itself",
    "db url": "the embedded server itself",
    "backfill list": "reads migrations/backfills.toml",
    "monitoring generate": "writes monitoring/ from the check files",
    "fleet apply": "the databases of --inventory",
    "fleet verify": "the databases of --inventory",
    "fleet check": "the databases of --inventory",
    "fleet status": "the databases of --inventory",
}


def test_every_command_that_reaches_a_database_takes_database_url() -> None:
    lacking = {
        name for name, command in _commands() if "--database-url" not in _visible_options(command)
    }
    assert lacking == set(NO_DATABASE)


def test_restore_takes_database_url_and_its_old_name_with_a_note() -> None:
    missing = ROOT / "no-such.dump"
    by_new = invoke("restore", str(missing), "--database-url", UNREACHABLE)
    by_old = invoke("restore", str(missing), "--target-url", UNREACHABLE)
    for result in (by_new, by_old):
        # The URL was read (the note names it), then the missing file refused it.
        assert result.exit_code == 2, result.output
        assert "127.0.0.1:1" in result.stderr and "no backup file" in result.stderr
    assert "deprecated" not in by_new.stderr
    assert "--target-url is deprecated; use --database-url" in by_old.stderr
    none = invoke("restore", str(missing))
    assert none.exit_code == 2 and "restore needs --database-url" in none.stderr
    both = invoke("restore", str(missing), "--database-url", UNREACHABLE, "--target-url", "x")
    assert both.exit_code == 2 and "give --database-url only" in both.stderr


def test_restore_into_an_empty_database_by_database_url(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    dump = as_json(invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json"))
    restored = invoke("restore", dump["path"], "--database-url", empty_db_url, "--json")
    assert restored.exit_code == 0, restored.output
    assert as_json(restored)["verify"]["clean"] is True


def test_snapshot_takes_scratch_url_and_its_old_name_with_a_note() -> None:
    by_new = invoke("snapshot", "--check", "--scratch-url", UNREACHABLE)
    by_old = invoke("snapshot", "--check", "--database-url", UNREACHABLE)
    for result in (by_new, by_old):
        assert "scratch database on postgresql://u:***@127.0.0.1:1/db" in result.stderr
        assert result.exit_code != 0
    assert "deprecated" not in by_new.stderr
    assert "--database-url is deprecated; use --scratch-url" in by_old.stderr


# -- rollout's deploy options are apply's ----------------------------------------------------


def test_rollout_declares_apply_deploy_options_with_the_same_defaults() -> None:
    commands = dict(_commands())
    apply, rollout = (_visible_options(commands[n]) for n in ("apply", "rollout"))
    for option in ("--lock-wait", "--lock-timeout", "--statement-timeout", "--retries", "--actor"):
        assert option in rollout, option
        assert (rollout[option].default, rollout[option].help) == (
            apply[option].default,
            apply[option].help,
        ), option


def test_rollout_passes_its_deploy_options_on(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.runbook import release_rollout

    seen: list[Any] = []

    def fake_rollout(target: Any, name: str, **kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs["options"])
        return {"failed_checks": [], "outcome": "SUCCESS", "record": "r"}

    monkeypatch.setattr(release_rollout, "rollout", fake_rollout)
    result = invoke(
        "rollout",
        "core",
        "--yes",
        "--database-url",
        db_url,
        "--lock-wait",
        "500ms",
        "--lock-timeout",
        "250ms",
        "--statement-timeout",
        "2m",
        "--retries",
        "5",
    )
    assert result.exit_code == 0, result.output
    (options,) = seen
    assert (options.lock_wait, options.lock_timeout, options.statement_timeout) == (0.5, 0.25, 120)
    assert options.retries == 5


def test_rollout_lock_wait_reaches_the_deploy_lock(empty_db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (NAMESPACE, DEPLOY_LOCK))
        result = rollout(empty_db_url, "core", tmp_path, "--lock-wait", "300ms")
    assert result.exit_code == 4, result.output
    # Not apply's default of 30s: the option got through to the deploy lock.
    assert "waited 0.3s" in as_json(result)["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["rollout", "core", "--yes", "--lock-wait", "2h"],
        ["rollout", "core", "--yes", "--retries", "21"],
        ["rollout", "core", "--yes", "--statement-timeout", "25h"],
        ["rollout", "core", "--plan", "--lock-timeout", "0"],
    ],
)
def test_rollout_refuses_a_bad_deploy_option_before_connecting(args: list[str]) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.stderr)
    assert args[-2] in line and "allowed:" in line
    assert "cannot reach" not in result.output


# -- an unknown release lists the valid ones -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "nope"],
        ["apply", "nope", "--rehearse"],
        ["rollback", "nope", "--yes"],
        ["rollback", "nope", "--plan"],
        ["rollback", "nope", "--level", "2", "--yes"],
        ["rollout", "nope", "--yes"],
        ["rollout", "nope", "--plan"],
        ["verify", "--release", "nope"],
    ],
)
def test_an_unknown_release_exits_2_listing_the_releases(args: list[str]) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE, "--json")
    assert result.exit_code == 2, result.output
    document = as_json(result)
    releases = ", ".join(r.name for r in load_releases())
    assert document["status"] == "bad_input"
    assert f"unknown release 'nope'; releases: {releases}" in document["error"]
    assert "Can't locate" not in result.output and "cannot reach" not in result.output


@pytest.mark.parametrize("args", [["apply", "nope@head"], ["rollback", "nope@base", "--yes"]])
def test_an_unknown_branch_exits_2_listing_the_branches(args: list[str]) -> None:
    result = invoke(*args, "--database-url", UNREACHABLE)
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.stderr)
    assert "unknown branch 'nope'" in line and "branches: core, booking, bar" in line


def test_a_known_revision_and_branch_target_are_still_taken() -> None:
    assert revs.upgrade_target("bar_002") == ("bar_002", None)
    assert revs.upgrade_target("bar@head") == ("bar@head", None)
    assert revs.downgrade_target("booking@-1") == ("booking@-1", None)


# -- one set of JSON status words ------------------------------------------------------------


def _readme_words() -> set[str]:
    section = README.read_text(encoding="utf-8").split("### Exit codes and JSON status words")[1]
    section = section.split("\n#", 1)[0]
    words = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            words.update(re.findall(r"`([a-z_]+)`", cells[1]))
    return words


def _class_statuses() -> set[str]:
    """`status = "..."` in a class body anywhere in the toolkit: the errors' words."""
    found: set[str] = set()
    for path in (ROOT / "toolkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if (
                    isinstance(item, ast.Assign)
                    and [getattr(t, "id", None) for t in item.targets] == ["status"]
                    and isinstance(item.value, ast.Constant)
                    and isinstance(item.value.value, str)
                ):
                    found.add(item.value.value)
    return found


# A status computed elsewhere: the words it can take, from the code that computes it.
DYNAMIC = {
    "exc.status": _class_statuses,
    "report.status": lambda: set(verify.EXIT_CODES),
    "LevelIncomplete.status": lambda: {LevelIncomplete.status},
    "health.overall(results, named=bool(names))": lambda: set(health_checks.STATUSES),
}


def _words(expr: ast.expr, function: ast.AST, where: str) -> set[str]:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _words(expr.body, function, where) | _words(expr.orelse, function, where)
    if isinstance(expr, ast.Name):  # a local variable: whatever the function assigns to it
        values = [
            node.value
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == expr.id for t in node.targets)
        ]
        assert values, f"{where}: {expr.id} is never assigned"
        return set().union(*(_words(v, function, where) for v in values))
    if isinstance(expr, ast.Call) and getattr(expr.func, "id", None) == "plan_status":
        # A --plan's word, whichever list of refusals it is given.
        return {plan_status([]), plan_status(["refused"])}
    source = ast.unparse(expr)
    assert source in DYNAMIC, f"{where}: status {source}: add the words it can take to DYNAMIC"
    return DYNAMIC[source]()


def _documented_words() -> dict[str, set[str]]:
    """Every word `.document(STATUS, ...)` can print, with the places that print it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "toolkit" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "document"
                    and call.args
                ):
                    where = f"{path.relative_to(ROOT)}:{call.lineno}"
                    for word in _words(call.args[0], function, where):
                        found.setdefault(word, set()).add(where)
    return found


def test_every_status_word_a_command_prints_is_in_the_readme_table() -> None:
    found = _documented_words()
    # Sanity: the search sees literals, conditionals, variables and computed statuses.
    assert {"ok", "lint_failed", "stopped", "clean", "no_data", "bad_input"} <= set(found)
    missing = {
        word: sorted(places) for word, places in found.items() if word not in _readme_words()
    }
    assert missing == {}


def test_the_readme_table_lists_no_word_that_no_command_prints() -> None:
    assert _readme_words() - set(_documented_words()) == set()


# -- new-revision ----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the project files (VENUEDB_PROJECT_DIR): never write into the checkout."""
    copy = tmp_path / "project"
    for part in ("migrations", "sql"):
        shutil.copytree(ROOT / part, copy / part)
    shutil.copy(ROOT / "alembic.ini", copy / "alembic.ini")
    monkeypatch.setenv("VENUEDB_PROJECT_DIR", str(copy))
    revs.script_directory.cache_clear()
    yield copy
    monkeypatch.undo()
    revs.script_directory.cache_clear()


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_new_revision_writes_the_branch_next_revision_and_history_lists_it(
    project: Path,
) -> None:
    before = {p.name for p in (ROOT / "migrations" / "versions").iterdir()}
    head = revs.script_directory().get_revision("bar@head")
    assert head is not None
    number = int(head.revision.split("_")[1]) + 1
    result = invoke("new-revision", "bar", "-m", "Add sales.note, for the till (v2)")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    expected = f"bar_{number:03d}"
    assert (
        path
        == project / "migrations" / "versions" / f"{expected}_add_sales_note_for_the_till_v2.py"
    )
    text = path.read_text(encoding="utf-8")
    assert f'revision = "{expected}"' in text
    assert f'down_revision = "{head.revision}"' in text
    assert "branch_labels = None" in text  # a label only on a branch's first revision
    assert text.startswith('"""Add sales.note, for the till (v2)')
    # The ops surface only (and Alembic's op): what a revision may import.
    assert all(m == "alembic" or m.startswith("toolkit.ops") for m in _imports(path))
    history = as_json(invoke("history", "--offline", "--json"))
    (entry,) = [e for e in history["revisions"] if e["revision"] == expected]
    assert (entry["branch"], entry["release"]) == ("bar", None)
    assert {p.name for p in (ROOT / "migrations" / "versions").iterdir()} == before


def test_new_revision_json(project: Path) -> None:
    result = invoke("new-revision", "core", "-m", "Second core revision", "--json")
    assert result.exit_code == 0, result.output
    document = as_json(result)
    assert (document["status"], document["branch"], document["revision"]) == (
        "ok",
        "core",
        "core_002",
    )
    assert Path(document["path"]).name == "core_002_second_core_revision.py"


def test_new_revision_refuses_an_unknown_branch_listing_the_branches(project: Path) -> None:
    versions = sorted((project / "migrations" / "versions").iterdir())
    result = invoke("new-revision", "kitchen", "-m", "x")
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.stderr)
    assert "unknown branch 'kitchen'; branches: core, booking, bar" in line
    assert sorted((project / "migrations" / "versions").iterdir()) == versions


def test_new_revision_refuses_a_taken_number(project: Path) -> None:
    draft = project / "migrations" / "versions" / "core_002_draft.py.orig"
    draft.write_text("kept\n")
    versions = sorted((project / "migrations" / "versions").iterdir())
    result = invoke("new-revision", "core", "-m", "something")
    assert result.exit_code == 2, result.output
    assert "core_002_draft.py.orig exists already" in result.stderr
    assert sorted((project / "migrations" / "versions").iterdir()) == versions
    assert draft.read_text() == "kept\n"


def test_new_revision_refuses_an_empty_message(project: Path) -> None:
    result = invoke("new-revision", "core", "-m", " - ")
    assert result.exit_code == 2 and "-m needs a message" in result.stderr
