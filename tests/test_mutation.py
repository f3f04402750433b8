"""Schema mutation testing's own parts (mutation/): every mutation kind finds objects to
weaken and PostgreSQL takes its SQL; the report's verdict and exit code. The whole run is
`make mutation` (too slow for the suite)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mutation import kinds, objects, report
from mutation.__main__ import exit_code

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def equivalent() -> dict[str, str]:
    """Filled by `generated`: the mutations proven equivalent, with why."""
    return {}


@pytest.fixture
def generated(db_url: str, equivalent: dict[str, str]) -> list[kinds.Mutation]:
    with psycopg.connect(db_url) as conn:
        return kinds.generate(objects.read(conn), conn, {}, equivalent)


def test_every_kind_weakens_some_object_and_postgresql_takes_its_sql(
    db_url: str, generated: list[kinds.Mutation], equivalent: dict[str, str]
) -> None:
    """Every kind is made somewhere or proven equivalent everywhere (policy.to_public: no
    policy of ours leaves out a role the API grants a table to), each with its reason."""
    registered = {f"{o}.{name}" for o, makers in kinds.KINDS.items() for name, _ in makers}
    first: dict[str, kinds.Mutation] = {}
    for mutation in generated:
        first.setdefault(mutation.kind, mutation)
    proven = {mutation_id.split(" ")[0] for mutation_id in equivalent}
    assert set(first) | proven == registered
    assert all(equivalent.values())
    assert not {m.id for m in generated} & set(equivalent)
    assert len({m.id for m in generated}) == len(generated)
    with psycopg.connect(db_url) as conn:
        for mutation in first.values():
            with conn.transaction(force_rollback=True):
                conn.execute(mutation.sql)


def test_a_not_valid_mutation_leaves_a_row_that_breaks_the_constraint(
    db_url: str, generated: list[kinds.Mutation]
) -> None:
    mutation = next(
        m
        for m in generated
        if m.id == "constraint.not_valid public.bookings.bookings_party_size_check"
    )
    with psycopg.connect(db_url) as conn:
        conn.execute(mutation.sql)
        assert conn.execute("SELECT count(*) FROM bookings WHERE party_size <= 0").fetchone() == (
            1,
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("ALTER TABLE bookings VALIDATE CONSTRAINT bookings_party_size_check")


def _result(id_: str, detected: bool = True, killed: str | None = "t::x") -> dict[str, Any]:
    return {
        "id": id_,
        "kind": id_.split(" ")[0],
        "object_kind": id_.split(".")[0],
        "release": "core",
        "description": "d",
        "sql": "s",
        "verify_detected": detected,
        "killed_by": killed,
        "error": None,
    }


def test_a_mutation_verify_misses_fails_the_run() -> None:
    result = report.Report([_result("a.b x"), _result("a.b y", detected=False)], [], 1.0)
    assert result.score(result.applied, "verify") == 0.5
    assert any("verify missed 1" in f for f in result.failures)
    assert exit_code(result) == 1


def test_survivors_need_an_explanation_and_the_score_its_floor() -> None:
    killed = [_result(f"a.b k{i}") for i in range(19)]
    survivor = _result("trigger.drop public.t.guard", killed=None)
    unexplained = report.Report([*killed, survivor], [], 1.0)
    assert [r["id"] for r in unexplained.unexplained] == ["trigger.drop public.t.guard"]
    assert exit_code(unexplained) == 1
    explained = report.Report([*killed, survivor], [("trigger.* public.t.guard", "why")], 1.0)
    assert explained.failures == [] and exit_code(explained) == 0
    assert "why" in explained.markdown()
    below_floor = report.Report([*killed[:5], survivor], [("trigger.* public.t.guard", "why")], 1.0)
    assert any("under 95%" in f for f in below_floor.failures)


def test_an_explanation_that_no_longer_matches_a_survivor_is_reported_stale() -> None:
    result = report.Report([_result("a.b x")], [("a.b x", "was harmless")], 1.0)
    assert result.stale_explanations == ["a.b x"]


def test_a_run_that_measured_nothing_or_broke_is_not_green() -> None:
    assert exit_code(report.Report([], [], 1.0)) == 1
    broken = report.Report([_result("a.b x")], [], 1.0, ["worker 0 stopped"])
    assert exit_code(broken) == 2


def _servers_under(home: Path) -> list[str]:
    """The postgres processes whose data directory is under home."""
    # -ww: unlimited width (into a pipe, ps cuts each line at 80 columns).
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if str(home) in line and "postgres" in line]


def test_a_run_stopped_by_sigterm_stops_its_workers_servers(tmp_path: Path) -> None:
    """Fault injected: SIGTERM to `python -m mutation` once its worker's embedded server
    runs. It exits 130 and leaves no server, no data directory behind."""
    # The worker's server lives under TMPDIR (tests/conftest.py), which the server's
    # system user must be able to enter: not pytest's 0700 tree.
    home = Path(tempfile.mkdtemp(prefix="venuedb-mutation-sigterm-", dir="/tmp"))
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    env["TMPDIR"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "mutation", "--workers", "1", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a CI job's background shell starts it: with SIGINT ignored, inherited by the
        # workers (the runner must not count on SIGINT reaching them).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 180
        while not list(home.glob("venuedb-test-pg-*/pgdata/postmaster.pid")):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the worker's server never started"
            time.sleep(0.2)
        assert _servers_under(home)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
        assert process.returncode == 130, output
        assert "interrupted" in output
        # pg_ctl stop returns once the server has removed its postmaster.pid, a moment
        # before its last processes exit.
        deadline = time.monotonic() + 15
        while _servers_under(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _servers_under(home) == []
        assert list(home.glob("venuedb-test-pg-*")) == []
    finally:
        if process.poll() is None:
            process.kill()
        # Whatever a failed run left: not for the next test.
        subprocess.run(["pkill", "-INT", "-f", f"{home}/"], check=False)
        shutil.rmtree(home, ignore_errors=True)
