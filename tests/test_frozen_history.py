"""Released history is frozen in fact (issue 17, point 5) and verify checks its own
bookkeeping (issue 17, point 4): each test makes the false green happen and asserts the
true answer.

Released files are only ever edited in a copy of the checkout (VENUEDB_HOME), never in
the real tree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.checkout import ROOT, copy_checkout
from tests.clihelpers import as_json, invoke, rollout, verify, verify_after
from tests.queries import rows_at
from toolkit.engine import frozen
from toolkit.engine import revisions as revs
from toolkit.engine.releases import load_releases

MANIFEST = "migrations/released.json"
V11 = "sql/functions/confirm_hold_assignment_tx/v11.sql"


def _alembic(url: str, direction: str, target: str) -> None:
    """Plain Alembic, as `alembic -x url=URL upgrade TARGET` runs it."""
    from alembic import command

    config = revs.alembic_config()
    config.cmd_opts = argparse.Namespace(x=[f"url={url}"], revision=target)
    getattr(command, direction)(config, target)


def _rows(url: str, sql: str) -> list[tuple]:
    return rows_at(url, sql)


def _heads(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,):
            return []
        return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))


@pytest.fixture
def project(tmp_path: Path, in_project: Callable[[Path], None]) -> Path:
    """A copy of the checkout the toolkit works from (VENUEDB_HOME)."""
    copy = copy_checkout(tmp_path)
    in_project(copy)
    return copy


@pytest.fixture
def edited(project: Path) -> Path:
    """The copy with a released function file edited in place (the forbidden quick fix)."""
    path = project / V11
    path.write_text(path.read_text() + "\n-- a quiet fix\n")
    return project


# -- the manifest ------------------------------------------------------------------------------


def test_the_manifest_lists_exactly_the_released_revisions() -> None:
    released = {r for release in load_releases() for r in release.revisions}
    assert set(frozen.load_manifest()) == released
    assert frozen.changes() == [], "a released file differs from migrations/released.json"


def test_the_manifest_lists_every_sql_file_each_revision_installs_up_and_down() -> None:
    installs = frozen.collect_installs()
    for revision, entry in frozen.load_manifest().items():
        listed = {(f["path"], f["role"]) for f in entry["files"]}
        step = next(s for s in revs.all_steps() if s.revision == revision)
        rebuilt = frozen.build_entry(revision, entry["release"], step.path, installs[revision])
        assert listed == {(f["path"], f["role"]) for f in rebuilt["files"]}, revision
        assert entry["checksum"] == frozen.checksum(frozen.entry_files(entry))
    # bar_004 and bar_007 build their paths with f-strings: learnt by running them.
    bar_007 = {f["path"] for f in frozen.load_manifest()["bar_007"]["files"]}
    assert "sql/functions/backfill_returns_server_id/v1.sql" in bar_007
    downgrades = {f["path"] for f in frozen.load_manifest()["booking_007"]["files"]}
    assert V11 in downgrades  # the rollback of v12 installs v11 again


def test_migrating_from_scratch_installs_exactly_the_manifest_files(empty_db_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from toolkit.ops.sql_files import collecting
    from toolkit.server.urls import sqlalchemy_url

    seen: dict[tuple[str, str], list[str]] = {}
    engine = create_engine(sqlalchemy_url(empty_db_url), poolclass=NullPool)
    try:
        with collecting() as installed:

            def on_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
                seen[(step.up_revision_id, "upgrade" if step.is_upgrade else "downgrade")] = [
                    f"sql/{p}" for p in installed
                ]
                installed.clear()

            config = revs.alembic_config(engine)
            config.attributes["on_version_apply"] = [on_step]
            command.upgrade(config, "heads")
            command.downgrade(config, "base")
    finally:
        engine.dispose()
    for revision, entry in frozen.load_manifest().items():
        for direction in ("upgrade", "downgrade"):
            listed = {f["path"] for f in entry["files"] if direction in f["role"].split("+")}
            assert set(seen[(revision, direction)]) == listed, (revision, direction)


def _git(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def _git_ready() -> str | None:
    """Why the git checks cannot run here, or None."""
    if shutil.which("git") is None:
        return "git is not installed"
    if _git("rev-parse", "--verify", "HEAD").returncode != 0:
        return "not a git checkout with a commit"
    return None


def _at(commit: str, path: str, root: Path = ROOT) -> bytes | None:
    shown = _git("show", f"{commit}:{path}", root=root)
    return shown.stdout if shown.returncode == 0 else None


def differences_from_head(manifest: dict[str, dict[str, Any]]) -> list[str]:
    """Entries whose files differ from the committed files (HEAD). A file that is not at
    HEAD yet is only allowed in an entry that is not in HEAD's manifest either."""
    head_manifest = _at("HEAD", MANIFEST)
    committed = json.loads(head_manifest)["revisions"] if head_manifest else {}
    found = []
    for revision, entry in manifest.items():
        for item in entry["files"]:
            content = _at("HEAD", item["path"])
            if content is None:
                if revision in committed:
                    found.append(f"{revision}: {item['path']} is not at HEAD")
                continue
            if hashlib.sha256(content).hexdigest() != item["sha256"]:
                found.append(f"{revision}: {item['path']} differs from HEAD")
    return found


def changed_released_entries(manifest: dict[str, dict[str, Any]], root: Path = ROOT) -> list[str]:
    """Entries of any committed version of the manifest that are now changed or gone."""
    log = _git("log", "--format=%H", "--", MANIFEST, root=root)
    found = []
    for commit in log.stdout.decode().split():
        older = json.loads(_at(commit, MANIFEST, root) or b'{"revisions": {}}')["revisions"]
        for revision, entry in older.items():
            if manifest.get(revision) != entry:
                found.append(f"{revision}: changed or removed since {commit[:12]}")
    return found


def test_the_manifest_matches_the_committed_files() -> None:
    reason = _git_ready()
    if reason:
        pytest.skip(reason)
    assert differences_from_head(frozen.load_manifest()) == []


def test_no_released_entry_was_ever_changed_or_removed() -> None:
    reason = _git_ready()
    if reason:
        pytest.skip(reason)
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true":
        pytest.skip("a shallow clone has no history to compare (the HEAD check still runs)")
    assert changed_released_entries(frozen.load_manifest()) == []


def test_the_git_checks_catch_an_edited_file_and_a_rewritten_entry() -> None:
    reason = _git_ready()
    if reason:
        pytest.skip(reason)
    manifest = frozen.load_manifest()
    # A released file edited and the manifest "regenerated" to match: HEAD disagrees.
    forged = json.loads(json.dumps(manifest))
    forged["booking_001"]["files"][1]["sha256"] = "0" * 64
    assert differences_from_head(forged) == [f"booking_001: {V11} differs from HEAD"]


def test_the_history_check_catches_a_rewritten_or_removed_entry(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "migrations").mkdir(parents=True)
    shutil.copy(ROOT / MANIFEST, repo / MANIFEST)
    for args in (("init", "-q"), ("add", "."), ("commit", "-qm", "release")):
        done = _git("-c", "user.name=t", "-c", "user.email=t@example.com", *args, root=repo)
        assert done.returncode == 0, done.stderr
    manifest = frozen.load_manifest(repo / MANIFEST)
    assert changed_released_entries(manifest, repo) == []
    # `snapshot`-style regeneration after editing v11.sql: the entry "follows" the file.
    manifest["booking_001"]["files"][1]["sha256"] = "0" * 64
    del manifest["bar_014"]
    found = changed_released_entries(manifest, repo)
    assert [f.split(":")[0] for f in found] == ["booking_001", "bar_014"]


def test_release_manifest_never_rewrites_an_entry(edited: Path) -> None:
    manifest = edited / MANIFEST
    before = manifest.read_bytes()
    result = invoke("release-manifest", "--json")
    assert result.exit_code == 3
    document = as_json(result)
    assert document["status"] == "tampered" and document["written"] is False
    assert {c["revision"] for c in document["changed"]} == {"booking_001", "booking_007"}
    assert manifest.read_bytes() == before


def test_release_manifest_appends_a_missing_entry_exactly(project: Path) -> None:
    path = project / MANIFEST
    document = json.loads(path.read_text())
    original = document["revisions"].pop("bar_014")
    path.write_text(json.dumps(document, indent=1) + "\n")
    check = invoke("release-manifest", "--check", "--json")
    assert (check.exit_code, as_json(check)["status"]) == (3, "drift")
    assert as_json(check)["missing"] == ["bar_014"]
    assert invoke("release-manifest").exit_code == 0
    assert frozen.load_manifest()["bar_014"] == original
    assert invoke("release-manifest", "--check").exit_code == 0


# -- an edited released file: verify, apply, rollback, plain alembic ---------------------------


def test_verify_finds_an_edited_released_file(db_url: str, edited: Path) -> None:
    code, report = verify(db_url)
    assert code == 3
    edits = {
        (t["kind"], t["name"], t["revision"])
        for t in report["tamper"]
        if t["kind"] == "function_file_edited"
    }
    name = V11.removeprefix("sql/")
    assert edits == {("function_file_edited", name, r) for r in ("booking_001", "booking_007")}
    # The records still say which files were applied: the other findings are about them.
    assert {t["kind"] for t in report["tamper"]} == {"function_file_edited"}


def test_a_forged_manifest_does_not_hide_an_edit_from_the_records(
    db_url: str, edited: Path
) -> None:
    # The edit "blessed" by rewriting the manifest entries to the new sha: the manifest
    # check passes, the git check (above) fails, and the database's own records still see
    # that v11.sql is not the file booking_001 was applied with.
    path = edited / MANIFEST
    document = json.loads(path.read_text())
    sha = hashlib.sha256((edited / V11).read_bytes()).hexdigest()
    for entry in document["revisions"].values():
        for item in entry["files"]:
            if item["path"] == V11:
                item["sha256"] = sha
        entry["checksum"] = frozen.checksum(frozen.entry_files(entry))
    path.write_text(json.dumps(document, indent=1) + "\n")
    assert frozen.changes() == []
    code, report = verify(db_url)
    assert code == 3
    found = {(t["kind"], t["revision"]) for t in report["tamper"]}
    assert ("function_file_edited", "booking_001") in found
    assert all(
        "after booking_0" in t["detail"] and "applied" in t["detail"] for t in report["tamper"]
    )


def test_apply_refuses_an_edited_released_file_and_changes_nothing(
    empty_db_url: str, edited: Path
) -> None:
    result = invoke("apply", "--database-url", empty_db_url)
    assert result.exit_code == 3, result.output
    message = " ".join(result.stderr.split())
    sha = hashlib.sha256((edited / V11).read_bytes()).hexdigest()
    assert "booking_001" in message and "booking_007" in message
    assert V11 in message and sha in message
    assert frozen.load_manifest()["booking_001"]["files"][1]["sha256"] in message
    assert "git checkout" in message and "venuedb accept-checksum" in message
    assert "Traceback" not in result.output
    assert _rows(
        empty_db_url, "SELECT to_regclass('public.alembic_version'), to_regnamespace('venuedb')"
    ) == [(None, None)]


def test_rollback_refuses_an_edited_released_file(db_url: str, edited: Path) -> None:
    before = _heads(db_url)
    result = invoke("rollback", "capacity-overlap", "--yes", "--database-url", db_url, "--json")
    assert result.exit_code == 3, result.output
    assert "released files differ" in as_json(result)["error"]
    assert _heads(db_url) == before


def test_plain_alembic_refuses_an_edited_released_file(empty_db_url: str, edited: Path) -> None:
    with pytest.raises(frozen.Tampered, match="accept-checksum"):
        _alembic(empty_db_url, "upgrade", "heads")
    assert _heads(empty_db_url) == []


def test_an_accepted_checksum_lets_apply_run_and_is_recorded(
    empty_db_url: str, edited: Path
) -> None:
    refused = invoke(
        "accept-checksum", "booking_001", "--reason", " ", "--database-url", empty_db_url
    )
    assert refused.exit_code == 2 and "--reason" in refused.stderr
    unknown = invoke(
        "accept-checksum", "booking_999", "--reason", "x", "--database-url", empty_db_url
    )
    assert unknown.exit_code == 2 and "booking_013" in unknown.stderr
    unchanged = invoke(
        "accept-checksum", "bar_001", "--reason", "x", "--database-url", empty_db_url
    )
    assert unchanged.exit_code == 2 and "nothing to accept" in unchanged.stderr
    accepted = {}
    for revision in ("booking_001", "booking_007"):
        result = invoke(
            "accept-checksum",
            revision,
            "--reason",
            "hotfix INC-42, reviewed by bob",
            "--actor",
            "alice",
            "--database-url",
            empty_db_url,
            "--json",
        )
        assert result.exit_code == 0, result.output
        accepted[revision] = as_json(result)["acceptance"]
        assert as_json(result)["status"] == "ok"
    applied = invoke("apply", "--database-url", empty_db_url)
    assert applied.exit_code == 0, applied.output
    assert "accepted for this database by alice" in applied.stdout
    rows = _rows(
        empty_db_url,
        "SELECT revision, checksum, reason, actor FROM venuedb.accepted_checksums ORDER BY id",
    )
    assert rows == [
        (r, accepted[r]["checksum"], "hotfix INC-42, reviewed by bob", "alice")
        for r in ("booking_001", "booking_007")
    ]
    assert _rows(
        empty_db_url,
        "SELECT count(*) FROM venuedb.deployments WHERE command = 'accept-checksum'",
    ) == [(2,)]
    code, report = verify(empty_db_url)
    assert code == 0 and report["tamper"] == [], report
    assert sum("accepted for this database" in n for n in report["notes"]) == 2
    # The acceptance covers that exact checksum: a further edit is refused again.
    path = edited / V11
    path.write_text(path.read_text() + "-- and another\n")
    again = invoke("rollback", "capacity-overlap", "--yes", "--database-url", empty_db_url)
    assert again.exit_code == 3, again.output


# -- checksums on every path -------------------------------------------------------------------


def test_plain_alembic_upgrade_records_checksums_of_revision_and_sql_files(
    empty_db_url: str,
) -> None:
    _alembic(empty_db_url, "upgrade", "heads")
    manifest = frozen.load_manifest()
    rows = _rows(empty_db_url, "SELECT revision, checksum, files FROM venuedb.revision_checksums")
    assert {r[0] for r in rows} == {s.revision for s in revs.all_steps()}
    for revision, checksum, files in rows:
        assert checksum == manifest[revision]["checksum"], revision
        assert {f["path"] for f in files} == {f["path"] for f in manifest[revision]["files"]}
    assert any(f["path"] == V11 for r in rows if r[0] == "booking_001" for f in r[2])
    ((command, result, to),) = _rows(
        empty_db_url, "SELECT command, result, to_revisions FROM venuedb.deployments"
    )
    assert (command, result) == ("alembic", "succeeded") and all(to.values())
    code, report = verify(empty_db_url)
    assert code == 0 and report["tamper"] == [], report


def test_plain_alembic_downgrade_keeps_the_bookkeeping_true(db_url: str) -> None:
    _alembic(db_url, "downgrade", "bar_008")  # bar-integrity, rolled back by hand
    assert "bar_009" not in {
        r[0] for r in _rows(db_url, "SELECT revision FROM venuedb.revision_checksums")
    }
    code, report = verify(db_url)
    assert code == 0 and report["tamper"] == [], report
    assert invoke("apply", "--database-url", db_url).exit_code == 0
    code, report = verify(db_url)
    assert (code, report["tamper"]) == (0, [])


def test_toolkit_apply_records_the_combined_checksum(db_url: str) -> None:
    manifest = frozen.load_manifest()
    rows = _rows(db_url, "SELECT revision, checksum, deployment_id FROM venuedb.revision_checksums")
    for revision, checksum, deployment_id in rows:
        assert checksum == manifest[revision]["checksum"] and deployment_id is not None


# -- verify checks its own bookkeeping --------------------------------------------------------


def test_emptied_checksum_table_is_tampering(db_url: str) -> None:
    assert verify(db_url)[0] == 0
    report = verify_after(db_url, "TRUNCATE venuedb.revision_checksums")
    assert {(t["kind"], t["name"]) for t in report["tamper"]} == {
        ("checksums_missing", s.revision) for s in revs.all_steps()
    }


def test_alembic_version_changed_behind_the_records(db_url: str) -> None:
    report = verify_after(
        db_url,
        "UPDATE alembic_version SET version_num = 'booking_019' WHERE version_num = 'booking_020'",
    )
    (finding,) = [t for t in report["tamper"] if t["kind"] == "version_disagrees_with_records"]
    assert finding["expected"]["booking"] == "booking_020"
    assert finding["actual"]["booking"] == "booking_019"


def test_checksum_tables_of_an_older_toolkit_are_upgraded(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE venuedb.accepted_checksums")
        conn.execute(
            "ALTER TABLE venuedb.revision_checksums DROP COLUMN checksum, DROP COLUMN files"
        )
    code, report = verify(db_url)  # old rows: the revision file's sha256 only
    assert (code, report["tamper"]) == (0, []), report
    assert (
        invoke(
            "rollback", "bar-integrity", "--cascade", "--yes", "--database-url", db_url
        ).exit_code
        == 0
    )
    assert invoke("apply", "--database-url", db_url).exit_code == 0
    rows = dict(_rows(db_url, "SELECT revision, checksum FROM venuedb.revision_checksums"))
    assert rows["bar_014"] == frozen.load_manifest()["bar_014"]["checksum"]
    assert rows["booking_001"] is None  # recorded by the older toolkit, left as it was
    assert verify(db_url)[0] == 0


def test_the_new_commands_explain_themselves() -> None:
    for command in ("accept-checksum", "release-manifest"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage: venuedb" in result.stdout
    assert "REVISION" in invoke("accept-checksum", "--help").stdout
    missing = invoke("accept-checksum", "booking_001")
    assert missing.exit_code == 2 and "--reason" in missing.output


def test_rollout_refuses_an_edited_released_file_before_its_backup(
    empty_db_url: str, edited: Path, tmp_path: Path
) -> None:
    """The rollout checks the released files in its pre-flight: a refusal takes no backup
    and applies nothing, and its record says why."""
    backups = tmp_path / "backups"
    result = rollout(empty_db_url, "core", tmp_path)
    assert result.exit_code == 3, result.output
    assert "SUCCESS" not in result.output and "released files differ" in result.output
    assert not backups.exists() or not any(backups.iterdir())
    assert _heads(empty_db_url) == []
    assert _rows(
        empty_db_url, "SELECT result, error LIKE '%released files differ%' FROM venuedb.deployments"
    ) == [("failed", True)]
