"""The cluster-aware throttle: a backfill waits while a hot standby lags, goes on when it
catches up, and reports a standby that falls away; with nothing lost on the way."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.clihelpers import invoke, spawn
from tests.queries import dict_of, scalar
from tests.replication import Replicated
from tests.test_backfill import REGISTRY, SETUP, declare_backfill
from toolkit import progress
from toolkit.ops.cluster_throttle import Limits, Sample, Standby, Throttle
from toolkit.runbook.backfill import Options, Report, find_backfill, run
from toolkit.server.connection import Target

pytestmark = pytest.mark.xdist_group("replicas")


def _slow_batches(url: str, seconds: float) -> None:
    """Each batch of more than 150 rows sleeps this long (tests/test_backfill.py's bf_double)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET bf.slow = '{seconds}'")


@pytest.fixture
def bf_replicated(
    replicated: Replicated, replicated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    url = replicated.primary_url(replicated_db)
    declare_backfill(url, REGISTRY, SETUP, tmp_path, monkeypatch)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {replicated_db} SET bf.slow = '0'")
        conn.execute(f"ALTER DATABASE {replicated_db} SET bf.fail = '-1'")
    replicated.caught_up()
    return url


def _in_thread(url: str, options: Options) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with progress.configured(progress.Settings("lines", 60.0)):
                outcome["report"] = run(Target(url, "test"), find_backfill("bf"), options)
        except BaseException as exc:  # the assertion below shows it
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome


def _rows_done(url: str) -> int:
    with psycopg.connect(url) as conn:
        if not scalar(conn, "SELECT to_regclass('venuedb.backfill_progress') IS NOT NULL"):
            return 0  # the runner has not created its records yet
        row = conn.execute(
            "SELECT rows_done FROM venuedb.backfill_progress WHERE name = 'bf'"
        ).fetchone()
    return int(row[0]) if row else 0


def _touched(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        return dict_of(conn, "SELECT touched, count(*) FROM bf_items GROUP BY 1")


def test_a_backfill_waits_while_replay_is_paused_and_finishes_when_it_resumes(
    replicated: Replicated,
    replicated_db: str,
    bf_replicated: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _slow_batches(bf_replicated, 0.05)
    standby = replicated.standby_conn()
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        options = Options(batch_size=200, limits=Limits(max_replica_lag=0.3, max_wal_rate=0))
        thread, outcome = _in_thread(bf_replicated, options)
        # Replay is paused: once the first batches' WAL has waited 0.3 s, the run stops
        # taking batches and stays stopped.
        time.sleep(2.0)
        held = _rows_done(bf_replicated)
        time.sleep(1.0)
        assert _rows_done(bf_replicated) == held
        assert 0 < held < 2000, f"the run did not pause part way: {held} rows done"
        assert thread.is_alive()
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
        standby.close()
    thread.join(60)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    report: Report = outcome["report"]
    assert report.state == "finished" and report.rows == 2000
    assert report.throttle is not None and report.throttle["pauses"] >= 1
    assert report.throttle["max_replica_lag_seconds"] > 0.3
    assert report.throttle["standbys_watched"] == [replicated.standby.name]
    assert report.throttle["standbys_lost"] == []
    # Nothing lost, nothing done twice, and the standby has all of it.
    assert _touched(bf_replicated) == {1: 2000}
    replicated.caught_up()
    with replicated.standby_conn(replicated_db) as conn:
        assert scalar(conn, "SELECT count(*) FROM bf_items WHERE doubled = value * 2") == 2000
    err = capfd.readouterr().err
    assert f"paused: standby {replicated.standby.name} replay lag" in err
    assert "resumed after" in err


def test_a_pause_request_stops_a_run_that_waits_for_the_standby(
    replicated: Replicated, bf_replicated: str
) -> None:
    _slow_batches(bf_replicated, 0.05)
    standby = replicated.standby_conn()
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        options = Options(batch_size=200, limits=Limits(max_replica_lag=0.2, max_wal_rate=0))
        thread, outcome = _in_thread(bf_replicated, options)
        time.sleep(1.5)
        with psycopg.connect(bf_replicated, autocommit=True) as conn:
            conn.execute(
                "UPDATE venuedb.backfill_progress SET pause_requested = true WHERE name = 'bf'"
            )
        thread.join(30)
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
        standby.close()
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    report: Report = outcome["report"]
    assert report.state == "paused" and report.stopped_by == "pause requested"
    assert report.rows < 2000


def test_without_a_limit_the_run_does_not_wait_for_a_paused_standby(
    replicated: Replicated, bf_replicated: str
) -> None:
    standby = replicated.standby_conn()
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        options = Options(batch_size=100, limits=Limits(max_replica_lag=0, max_wal_rate=0))
        report = run(Target(bf_replicated, "test"), find_backfill("bf"), options)
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
        standby.close()
    assert report.state == "finished" and report.rows == 2000
    assert report.throttle is not None and report.throttle["pauses"] == 0


def test_a_standby_that_falls_away_is_reported_and_the_run_goes_on_without_it(
    replicated: Replicated, bf_replicated: str, capfd: pytest.CaptureFixture[str]
) -> None:
    _slow_batches(bf_replicated, 0.1)
    standby = replicated.standby_conn()
    conninfo = scalar(standby, "SHOW primary_conninfo")
    options = Options(
        batch_size=200,
        limits=Limits(max_replica_lag=5.0, max_wal_rate=0, standby_grace=0.5),
    )
    thread, outcome = _in_thread(bf_replicated, options)
    try:
        deadline = time.monotonic() + 20
        while _rows_done(bf_replicated) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The standby now follows a primary that is not there: it stops streaming.
        standby.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
        standby.execute("SELECT pg_reload_conf()")
        thread.join(60)
    finally:
        standby.execute(
            sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo))
        )
        standby.execute("SELECT pg_reload_conf()")
        standby.close()
        replicated.streaming()
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    report: Report = outcome["report"]
    assert report.state == "finished" and report.rows == 2000
    assert report.throttle is not None
    assert report.throttle["standbys_lost"] == [replicated.standby.name]
    err = capfd.readouterr().err
    assert f"standby {replicated.standby.name} is no longer streaming" in err
    assert "going on without it" in err


def _sample(at: float, wal: int, replay: int | None, wraparound: bool = False) -> Sample:
    standbys = {"s1": Standby("s1", "streaming", replay, None)} if replay is not None else {}
    return Sample(at, wal, standbys, True, wraparound)


def test_an_anti_wraparound_autovacuum_on_the_table_pauses_the_work() -> None:
    # Judged on a sample: making PostgreSQL run a real anti-wraparound autovacuum takes
    # 100,000 transactions and a minute of naptime. The query that reads it runs in every
    # test above (Throttle.sample).
    throttle = Throttle("public.sales", Limits(max_wal_rate=0))
    verdict = throttle.judge(_sample(0.0, 100, 100, wraparound=True), paused=False)
    assert verdict.wait == "an anti-wraparound autovacuum is running on public.sales"
    ignoring = Throttle("public.sales", Limits(max_wal_rate=0, pause_for_wraparound_vacuum=False))
    assert ignoring.judge(_sample(0.0, 100, 100, wraparound=True), paused=False).wait is None


def test_replay_lag_counts_from_when_the_unreplayed_wal_was_written() -> None:
    """A stalled standby keeps reporting its last small replay_lag; the throttle's own
    samples of the primary's WAL position say how long the WAL it lacks has waited."""
    throttle = Throttle("public.t", Limits(max_replica_lag=1.0, max_wal_rate=0))
    throttle.history.extend([(0.0, 100), (0.5, 200), (1.0, 300)])
    sample = _sample(3.0, 300, 150)
    # The WAL past 150 existed at 0.5 s: it has waited 2.5 s.
    assert throttle.replay_lag(sample, sample.standbys["s1"]) == pytest.approx(2.5)
    assert throttle.judge(sample, paused=False).wait is not None
    caught_up = _sample(3.0, 300, 300)
    assert throttle.replay_lag(caught_up, caught_up.standbys["s1"]) == 0.0


def test_the_wal_rate_limit_slows_down_without_stopping() -> None:
    throttle = Throttle("public.t", Limits(max_replica_lag=0, max_wal_rate=1000.0))
    throttle.history.extend([(0.0, 0), (1.0, 10_000)])
    verdict = throttle.judge(_sample(2.0, 20_000, None), paused=False)
    assert verdict.wait is not None and verdict.wait.startswith("WAL rate")
    assert 0 < verdict.sleep <= 1.0


def test_the_shadow_copy_of_an_apply_waits_for_a_paused_standby(
    replicated: Replicated, replicated_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """booking_005's swap copies allocations into a shadow table in batches: with replay
    paused it stops copying, and it finishes, every row swapped in, once replay resumes."""
    from tests.conftest import DATA, load_sql
    from tests.test_shadow_swap import PRE_SWAP, RESTAURANT

    url = replicated.primary_url(replicated_db)
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "50")
    for step in (PRE_SWAP, "bar-baseline"):
        result = invoke("apply", step, "--database-url", url)
        assert result.exit_code == 0, result.output
    for rows in ("core_001", "booking_001", "bar_001"):
        load_sql(url, DATA / "rows" / f"{rows}.sql")
    with psycopg.connect(url) as conn:
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT %s, 'table', gen_random_uuid(), tstzrange(now(), now() + interval '1 hour') "
            "FROM generate_series(1, 5000)",
            (RESTAURANT,),
        )
        total = scalar(conn, "SELECT count(*) FROM allocations")
    replicated.caught_up()
    standby = replicated.standby_conn()
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        apply = spawn(
            "apply", "booking_005", "--database-url", url, "--max-replica-lag", "200ms", "--json"
        )
        time.sleep(4.0)
        assert apply.poll() is None, "the apply did not wait for the standby"
        with psycopg.connect(url) as conn:
            shadow = scalar(
                conn, "SELECT count(*) FROM pg_class WHERE relname = 'allocations__venuedb_shadow'"
            )
        assert shadow == 1, "the apply should be waiting in its copy, the shadow table built"
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
        standby.close()
    out, err = apply.communicate(timeout=120)
    assert apply.returncode == 0, out + err
    notices = " ".join(json.loads(out)["notices"])
    assert f"paused: standby {replicated.standby.name} replay lag" in notices
    with psycopg.connect(url) as conn:
        assert scalar(conn, "SELECT count(*) FROM allocations") == total
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM pg_constraint WHERE conname = 'allocations_no_overlap'",
            )
            == 1
        )
