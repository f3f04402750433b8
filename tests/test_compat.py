"""The PostgreSQL 15 compatibility run (tests/compat.py): where it finds PostgreSQL 15, the
line it prints when there is none, and that a run on other binaries really is on them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from tests import compat
from tests.conftest import Server
from toolkit.server.embedded import EmbeddedServer, postgres_version


def _fake_binaries(root: Path, version_line: str) -> Path:
    """A bin directory whose postgres prints version_line (initdb and pg_ctl beside it)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name in compat.SERVER_PROGRAMS:
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho '{version_line}'\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _major(version: str) -> int:
    return int(version.split(".")[0])


@pytest.mark.compat
def test_the_server_under_test_is_the_one_asked_for(pg_server: Server) -> None:
    with psycopg.connect(pg_server.base_url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    running = row[0] // 10000
    if os.environ.get("VENUEDB_TEST_DATABASE_URL"):
        pytest.skip(f"the server at VENUEDB_TEST_DATABASE_URL is PostgreSQL {running}")
    requested = os.environ.get("VENUEDB_TEST_PG_BIN")
    binaries = Path(requested) if requested else None
    assert running == _major(postgres_version(binaries))


def test_the_first_postgresql_15_is_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sixteen = _fake_binaries(tmp_path / "16", "postgres (PostgreSQL) 16.4")
    fifteen = _fake_binaries(
        tmp_path / "15", "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    )
    monkeypatch.setattr(compat, "_pg_config_bindir", lambda: None)
    assert compat.find_binaries((tmp_path / "none", sixteen, fifteen)) == (fifteen, "15.18")
    monkeypatch.setattr(compat, "_pg_config_bindir", lambda: fifteen)
    assert compat.find_binaries((sixteen,)) == (fifteen, "15.18")


def test_found_binaries_run_the_marked_tests_on_two_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifteen = _fake_binaries(tmp_path, "postgres (PostgreSQL) 15.2")
    monkeypatch.setattr(compat, "find_binaries", lambda: (fifteen, "15.2"))
    planned = compat.plan({"PATH": "/bin"})
    assert not isinstance(planned, str)
    args, env, where = planned
    assert args == ["-m", "compat", "-n", "2"] and env["VENUEDB_TEST_PG_BIN"] == str(fifteen)
    assert where == f"PostgreSQL 15.2 from {fifteen}, 2 workers"


def test_a_running_server_is_used_serially() -> None:
    planned = compat.plan(
        {"VENUEDB_TEST_DATABASE_URL": "postgresql://x", "VENUEDB_TEST_PG_BIN": "/x"}
    )
    assert not isinstance(planned, str)
    args, env, _ = planned
    assert args == ["-m", "compat"] and "VENUEDB_TEST_PG_BIN" not in env


def test_no_postgresql_15_is_a_skip_that_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VENUEDB_TEST_PG_BIN", raising=False)
    monkeypatch.delenv("VENUEDB_TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(compat, "find_binaries", lambda: None)
    assert compat.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PostgreSQL 15 compatibility run: skipped: no PostgreSQL 15 found")
    assert "VENUEDB_TEST_PG_BIN" in out


def test_binaries_asked_for_that_are_not_a_server_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENUEDB_TEST_PG_BIN", str(tmp_path))
    assert compat.main([]) == 2
    assert f"VENUEDB_TEST_PG_BIN={tmp_path} holds no PostgreSQL server" in capsys.readouterr().out


def test_another_installations_version_is_read_from_its_own_postgres(tmp_path: Path) -> None:
    debian = _fake_binaries(tmp_path, "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")
    assert EmbeddedServer(tmp_path / "home", binaries=debian).version() == "15.18"
