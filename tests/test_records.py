"""`venuedb records` and `records show`, Markdown record file names, the schema upgrade."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from tests.clihelpers import as_json, invoke, rollback_cascade
from tests.queries import one
from toolkit.deployments.markdown import Record, write
from toolkit.server.urls import database_name


def test_show_prints_one_record_in_full_and_exit_2_for_an_unknown_id(db_url: str) -> None:
    down = rollback_cascade(db_url, "assignment-pipeline-v3")
    assert down.exit_code == 0, down.output
    record_id = as_json(down)["deployment_id"]
    shown = invoke("records", "show", str(record_id), "--database-url", db_url, "--json")
    assert shown.exit_code == 0, shown.output
    record = as_json(shown)["record"]
    with psycopg.connect(db_url) as conn:
        cur = conn.execute("SELECT * FROM venuedb.deployments WHERE id = %s", (record_id,))
        columns = [d.name for d in cur.description or []]
    assert sorted(record) == sorted(columns)
    assert (record["command"], record["result"]) == ("rollback", "succeeded")
    assert record["done"] and record["done"] == record["planned"]
    assert "step: rolled back" in record["output"]
    text = invoke("records", "show", str(record_id), "--database-url", db_url)
    assert text.exit_code == 0
    for revision in record["done"]:
        assert f"  - {revision}" in text.stdout
    assert "backend_pid:" in text.stdout and "duration_ms:" in text.stdout
    assert "  step: rolled back" in text.stdout
    unknown = invoke("records", "show", "999999", "--database-url", db_url, "--json")
    assert unknown.exit_code == 2 and "#999999" in as_json(unknown)["error"]
    listed = as_json(invoke("records", "--last", "1", "--database-url", db_url, "--json"))
    assert [r["id"] for r in listed["records"]] == [record_id]


def test_two_databases_never_write_the_same_record_file(tmp_path: Path) -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    urls = [
        "postgresql://u@host-a:5432/venue_alpha",
        "postgresql://u@host-a:5432/venue beta/../x",
        "postgresql://u@host-b:5432/venue_alpha",  # same name on another server
    ]
    paths = [
        write(Record("apply head Deployment Record", None, url, "me", "me", started), tmp_path, 1)
        for url in urls
    ]
    assert len(set(paths)) == 3 and all(p.exists() for p in paths)
    assert "venue_alpha" in paths[0].name and "venue_alpha" in paths[2].name
    assert "/" not in paths[1].name.replace(str(tmp_path), "") and " " not in paths[1].name
    assert [urls[i] in p.read_text() for i, p in enumerate(paths)] == [True, True, True]


def test_cli_records_of_two_databases_share_a_folder(db_url: str, empty_db_url: str) -> None:
    one = as_json(invoke("apply", "core", "--database-url", empty_db_url, "--json"))
    two = as_json(rollback_cascade(db_url, "assignment-pipeline-v3"))
    names = {Path(one["record"]).name, Path(two["record"]).name}
    assert len(names) == 2
    assert database_name(empty_db_url) in Path(one["record"]).name
    assert database_name(db_url) in Path(two["record"]).name
    folder = Path(os.environ["VENUEDB_RECORDS_DIR"])
    assert {p.name for p in folder.glob("*.md")} == names


def test_a_schema_from_before_interrupted_is_upgraded_by_a_read_only_command(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE venuedb.deployments DROP COLUMN backend_pid, DROP COLUMN lock_id, "
            "DROP COLUMN interrupted_at, DROP CONSTRAINT deployments_result_check, "
            "ADD CONSTRAINT deployments_result_check "
            "CHECK (result IN ('running', 'succeeded', 'failed', 'rehearsed'))"
        )
        # An apply of the old toolkit that died: nobody holds the deploy lock.
        (old_id,) = one(
            conn,
            "INSERT INTO venuedb.deployments (command, target, actor, os_user, hostname, "
            "toolkit_version) VALUES ('apply', 'heads', 'x', 'x', 'h', '0') RETURNING id",
        )
    listed = invoke("records", "--database-url", db_url, "--json")
    assert listed.exit_code == 0, listed.output
    entry = next(r for r in as_json(listed)["records"] if r["id"] == old_id)
    assert entry["result"] == "interrupted"
