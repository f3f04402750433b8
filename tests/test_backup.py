"""backup / restore: a verified dump, restored into an empty database only, verified after."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.clihelpers import as_json, invoke
from tests.conftest import DATA, load_sql


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname IN ('public', 'auth')"
            )
        ]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_backup_then_restore_gives_identical_rows_and_a_clean_verify(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    load_sql(db_url, DATA / "rows" / "core_001.sql")
    made = invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json")
    assert made.exit_code == 0, made.output
    dump = as_json(made)
    assert dump["objects"] > 100 and dump["size_bytes"] > 0
    assert Path(dump["path"]).name.startswith(db_url.rsplit("/", 1)[1] + "-")
    restored = invoke("restore", dump["path"], "--target-url", empty_db_url, "--json")
    assert restored.exit_code == 0, restored.output
    assert as_json(restored)["verify"]["clean"] is True
    assert _counts(empty_db_url) == _counts(db_url)


def test_restore_refuses_a_non_empty_database(db_url: str, tmp_path: Path) -> None:
    dump = as_json(invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json"))
    refused = invoke("restore", dump["path"], "--target-url", db_url)
    assert refused.exit_code == 2 and "not empty" in refused.stderr


def test_restore_of_a_file_that_is_not_a_dump(empty_db_url: str, tmp_path: Path) -> None:
    bogus = tmp_path / "nope.dump"
    bogus.write_text("not a dump")
    result = invoke("restore", str(bogus), "--target-url", empty_db_url)
    assert result.exit_code == 2 and "not a readable" in result.stderr
