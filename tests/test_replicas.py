"""`venuedb db start --replicas N`, `db status`, `db url --replica N`, `db stop`: hot standbys
of the embedded server, driven through the command line in a state directory of their own."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import scalar
from toolkit.server.embedded import free_port

pytestmark = pytest.mark.xdist_group("replicas")


@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="venuedb-test-replicas-"))  # see conftest.pg_server
    monkeypatch.setenv("VENUEDB_STATE_DIR", str(home))
    yield home
    invoke("db", "stop")
    shutil.rmtree(home, ignore_errors=True)


def _url(*args: str) -> str:
    result = invoke("db", "url", "--reveal", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_replicas_start_stream_report_their_lag_and_stop(state_dir: Path) -> None:
    started = invoke("db", "start", "--port", str(free_port()), "--replicas", "1", "--json")
    assert started.exit_code == 0, started.output
    assert "venuedb_replica_1: built by pg_basebackup" in " ".join(as_json(started)["replicas"])
    assert (state_dir / "replicas" / "1" / "pgdata" / "standby.signal").exists()

    with psycopg.connect(_url(), autocommit=True) as primary:
        primary.execute("CREATE TABLE replicated (n int)")
        primary.execute("INSERT INTO replicated SELECT generate_series(1, 100)")
    status = invoke("db", "status", "--json")
    assert status.exit_code == 0, status.output
    (replica,) = as_json(status)["replicas"]
    assert replica["name"] == "venuedb_replica_1" and replica["streaming"] is True
    assert isinstance(replica["replay_lag_bytes"], int)

    with psycopg.connect(_url("--replica", "1"), autocommit=True) as standby:
        assert scalar(standby, "SELECT pg_is_in_recovery()") is True
        # What the primary wrote arrives; nothing can be written here.
        for _ in range(100):
            if scalar(standby, "SELECT to_regclass('replicated') IS NOT NULL"):
                break
            standby.execute("SELECT pg_sleep(0.05)")
        assert scalar(standby, "SELECT count(*) FROM replicated") == 100
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("INSERT INTO replicated VALUES (1)")

    # Replay paused: status still streaming, says paused, and the byte lag grows.
    with psycopg.connect(_url("--replica", "1"), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        with psycopg.connect(_url(), autocommit=True) as primary:
            primary.execute("INSERT INTO replicated SELECT generate_series(1, 10000)")
            primary.execute("SELECT pg_switch_wal()")
        text = invoke("db", "status")
        assert "replay paused" in text.output
        standby.execute("SELECT pg_wal_replay_resume()")

    stopped = invoke("db", "stop", "--json")
    assert stopped.exit_code == 0, stopped.output
    assert as_json(stopped)["replicas"][0].startswith("venuedb_replica_1: stopped")
    # Started again without --replicas: the replica that exists comes back, not rebuilt.
    again = invoke("db", "start", "--json")
    assert again.exit_code == 0, again.output
    (line,) = as_json(again)["replicas"]
    assert line.startswith("venuedb_replica_1: started") and "pg_basebackup" not in line


def test_a_replica_that_does_not_stream_makes_status_exit_1(state_dir: Path) -> None:
    assert invoke("db", "start", "--port", str(free_port()), "--replicas", "1").exit_code == 0
    with psycopg.connect(_url("--replica", "1"), autocommit=True) as standby:
        standby.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
        standby.execute("SELECT pg_reload_conf()")
    with psycopg.connect(_url(), autocommit=True) as primary:
        for _ in range(200):
            if not scalar(primary, "SELECT count(*) FROM pg_stat_replication"):
                break
            primary.execute("SELECT pg_sleep(0.05)")
    status = invoke("db", "status", "--json")
    assert status.exit_code == 1, status.output
    document = as_json(status)
    assert document["status"] == "degraded"
    assert document["replicas"][0]["streaming"] is False


def test_fewer_replicas_removes_the_extra_ones_and_bad_counts_are_refused(
    state_dir: Path,
) -> None:
    refused = invoke("db", "start", "--replicas", "9")
    assert refused.exit_code == 2 and "0 .. 5" in refused.output
    assert not (state_dir / "pgdata").exists(), "nothing may start on a refused count"
    assert invoke("db", "start", "--port", str(free_port()), "--replicas", "2").exit_code == 0
    assert sorted(p.name for p in (state_dir / "replicas").iterdir()) == ["1", "2"]
    fewer = invoke("db", "start", "--replicas", "1", "--json")
    assert fewer.exit_code == 0, fewer.output
    assert any("removed" in line for line in as_json(fewer)["replicas"])
    assert sorted(p.name for p in (state_dir / "replicas").iterdir()) == ["1"]
    missing = invoke("db", "url", "--replica", "2")
    assert missing.exit_code == 2 and "there is no replica 2 (replicas: 1)" in missing.output
