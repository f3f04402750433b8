"""The shadow-table swap that replaces allocations_resource_window_excl online (seed 003)."""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
import uuid
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql

from tests.clihelpers import as_json, invoke
from tests.conftest import DATA, load_sql
from tests.queries import dict_of, one, scalar
from tests.seating import assign_table
from tests.swapwait import swap_held_at_its_lock
from toolkit.engine.revisions import script_directory
from toolkit.ops import revision_module
from toolkit.ops.shadow_swap import ExclusionSwap

NEW_DEF = (
    "EXCLUDE USING gist (restaurant_id WITH =, resource_type WITH =, resource_id WITH =, "
    '"window" WITH &&) WHERE ((NOT shadow)) DEFERRABLE'
)
OLD_DEF = (
    'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&) '
    "WHERE ((NOT shadow)) DEFERRABLE INITIALLY DEFERRED"
)
RESTAURANT = "10000000-0000-4000-8000-000000000001"


def _revision_before(revision: str) -> str:
    down = script_directory().get_revision(revision).down_revision
    assert isinstance(down, str), f"{revision} follows {down!r}, not one revision"
    return down


# The revision just before the swap (booking_005), whatever it is.
PRE_SWAP = _revision_before("booking_005")


@pytest.fixture
def before_swap(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database just before booking_005, holding rows; the swap forced onto small data."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "7")
    assert _apply(empty_db_url, PRE_SWAP)["done"]
    assert invoke("apply", "bar-baseline", "--database-url", empty_db_url).exit_code == 0
    for rows in ("core_001", "booking_001", "bar_001"):
        load_sql(empty_db_url, DATA / "rows" / f"{rows}.sql")
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT %s, 'table', gen_random_uuid(), tstzrange(now(), now() + interval '1 hour') "
            "FROM generate_series(1, 200)",
            (RESTAURANT,),
        )
    return empty_db_url


def _apply(url: str, *args: str) -> dict:
    result = invoke("apply", *args, "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    return as_json(result)


def _state(url: str) -> dict:
    with psycopg.connect(url) as conn:
        constraints: dict[str, str] = dict_of(
            conn,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'allocations'::regclass AND contype = 'x'",
        )
        indexes = sorted(
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'allocations'"
            )
        )
        content = conn.execute(
            "SELECT md5(string_agg(a::text, ',' ORDER BY id)), count(*) FROM allocations a"
        ).fetchone()
        leftovers = scalar(
            conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'allocations\\_\\_venuedb%%'"
        ) + scalar(conn, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'venuedb\\_sync%%'")
        triggers = scalar(
            conn,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
            "'allocations'::regclass AND NOT tgisinternal",
        )
    return {
        "constraints": constraints,
        "indexes": indexes,
        "content": content,
        "leftovers": leftovers,
        "triggers": triggers,
    }


def _swapped(url: str) -> dict[str, Any]:
    """The state (see _state) after booking_005's swap, which must have left the new
    constraint alone on allocations and nothing of the swap behind."""
    state = _state(url)
    assert state["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert state["leftovers"] == 0
    return state


def _apply_held_at_its_lock(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> AbstractContextManager[tuple[subprocess.Popen[str], psycopg.Connection[Any]]]:
    """`venuedb apply booking_005` in its own process, held past its copy at the swap's lock
    (see tests.swapwait.swap_held_at_its_lock)."""
    return swap_held_at_its_lock(
        url, monkeypatch, "apply", "booking_005", "--database-url", url, "--lock-timeout", "200ms"
    )


def test_swap_replaces_the_constraint_and_keeps_every_row(before_swap: str) -> None:
    before = _state(before_swap)
    assert before["constraints"] == {"allocations_resource_window_excl": OLD_DEF}
    notices = _apply(before_swap, "booking_005")["notices"]
    assert any(n.startswith("path: shadow table") for n in notices), notices
    assert any("0 constraint violations found" in n for n in notices)
    assert any(re.match(r"pre-flight: (\d+) of \1 rows checked", n) for n in notices), notices
    assert any(n.startswith("swap held the lock for") for n in notices)
    after = _state(before_swap)
    assert after["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert after["content"] == before["content"]
    assert after["indexes"] == sorted(
        [i for i in before["indexes"] if i != "allocations_resource_window_excl"]
        + ["allocations_no_overlap"]
    )
    assert after["leftovers"] == 0 and after["triggers"] == 0


def test_downgrade_swaps_back_to_the_seeds_rollback_definition(before_swap: str) -> None:
    before = _state(before_swap)
    _apply(before_swap, "booking_005")
    result = invoke("rollback", PRE_SWAP, "--yes", "--database-url", before_swap, "--json")
    assert result.exit_code == 0, result.output
    assert any(n.startswith("path: shadow table") for n in as_json(result)["notices"])
    assert _state(before_swap) == before


def test_small_tables_take_the_plain_path(empty_db_url: str) -> None:
    _apply(empty_db_url, PRE_SWAP)
    notices = _apply(empty_db_url, "booking_005")["notices"]
    assert any(n.startswith("path: plain ALTER TABLE") for n in notices)
    assert _state(empty_db_url)["constraints"] == {"allocations_no_overlap": NEW_DEF}


def test_preflight_refuses_with_the_violating_rows(empty_db_url: str) -> None:
    _apply(empty_db_url, PRE_SWAP)
    load_sql(empty_db_url, DATA / "rows" / "booking_001.sql")
    with psycopg.connect(empty_db_url) as conn:  # a production that lost its old constraint
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT allocations_resource_window_excl")
        resource = uuid.uuid4()
        for window in (
            "[2031-01-01 19:00+00,2031-01-01 21:00+00)",
            "[2031-01-01 20:00+00,2031-01-01 22:00+00)",
        ):
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'table', %s, %s)",
                (RESTAURANT, resource, window),
            )
    result = invoke("apply", "booking_005", "--database-url", empty_db_url)
    assert result.exit_code == 1
    assert "would violate allocations_no_overlap" in result.stderr
    assert str(resource) in result.stderr
    assert _state(empty_db_url)["constraints"] == {}


def test_downgrade_preflight_protects_cross_restaurant_rows(db_url: str) -> None:
    """Seed 003 flow 3 (same resource in two restaurants is allowed) blocks the rollback.
    A merge group: booking-integrity refuses a table of another restaurant outright."""
    with psycopg.connect(db_url) as conn:
        restaurants = [
            r[0]
            for r in conn.execute(
                "INSERT INTO restaurants (name, slug) VALUES ('A', 'a-x'), ('B', 'b-x') RETURNING id"
            )
        ]
        resource = uuid.uuid4()
        for restaurant in restaurants:
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'merge_group', %s, "
                "'[2031-01-01 19:00+00,2031-01-01 21:00+00)')",
                (restaurant, resource),
            )
    result = invoke("rollback", "capacity-overlap", "--cascade", "--yes", "--database-url", db_url)
    assert result.exit_code == 1
    assert "would violate allocations_resource_window_excl" in result.stderr


def test_a_swap_that_cannot_get_its_lock_resumes_on_the_next_run(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "2")
    reader = psycopg.connect(before_swap)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # ACCESS SHARE until rollback
    try:
        result = invoke(
            "apply",
            "booking_005",
            "--database-url",
            before_swap,
            "--lock-timeout",
            "100ms",
            "--retries",
            "0",
        )
        assert result.exit_code == 4, result.output
        assert "resumes it" in result.stderr
    finally:
        reader.rollback()
        reader.close()
    with psycopg.connect(before_swap) as conn:  # the shadow is live and in sync meanwhile
        conn.execute(
            "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
            "\"window\") VALUES (%s, 'table', gen_random_uuid(), "
            "'[2031-02-01 19:00+00,2031-02-01 21:00+00)')",
            (RESTAURANT,),
        )
        live, shadow = one(
            conn,
            "SELECT (SELECT count(*) FROM allocations), "
            "(SELECT count(*) FROM allocations__venuedb_shadow)",
        )
        assert live == shadow
    notices = _apply(before_swap, "booking_005")["notices"]
    assert any("resuming" in n for n in notices)
    assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}


def _interrupted_at_the_lock(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """booking_005 copied every row into the shadow, then could not get its lock."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "1")
    reader = psycopg.connect(url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # ACCESS SHARE until rollback
    try:
        args = ("apply", "booking_005", "--database-url", url, "--lock-timeout", "100ms")
        assert invoke(*args, "--retries", "0").exit_code == 4
    finally:
        reader.rollback()
        reader.close()


def test_a_row_deleted_while_the_copy_read_it_is_not_swapped_in(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy takes no row locks, so a row deleted between a batch's snapshot and its
    insert reaches the shadow after the trigger mirrored the delete: made here by hand."""
    _interrupted_at_the_lock(before_swap, monkeypatch)
    with psycopg.connect(before_swap) as conn:
        ghost = scalar(conn, "SELECT id FROM allocations ORDER BY id LIMIT 1")
        conn.execute("CREATE TEMP TABLE stale AS SELECT * FROM allocations WHERE id = %s", (ghost,))
        conn.execute("DELETE FROM allocations WHERE id = %s", (ghost,))  # mirrored: gone
        conn.execute("INSERT INTO allocations__venuedb_shadow SELECT * FROM stale")  # stale copy
        expected = conn.execute(
            "SELECT md5(string_agg(a::text, ',' ORDER BY id)), count(*) FROM allocations a"
        ).fetchone()
    assert any("removed 1 ghost rows" in n for n in _apply(before_swap, "booking_005")["notices"])
    state = _state(before_swap)
    assert state["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert state["content"] == expected


def test_the_swap_waits_for_a_writer_open_since_the_copy_and_then_resumes(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete still uncommitted when the copy ends may have made a ghost the ghost
    removal cannot see yet: the swap waits for it, and gives up (resumably) at a limit."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_WAIT_SECONDS", "1")
    _interrupted_at_the_lock(before_swap, monkeypatch)
    writer = psycopg.connect(before_swap)
    writer.execute("SELECT pg_current_xact_id()")  # holds a transaction id, no lock
    try:
        result = invoke("apply", "booking_005", "--database-url", before_swap)
        assert result.exit_code != 0, result.output
        assert f"{writer.info.backend_pid}" in result.stderr
        assert "still open" in result.stderr
        assert _state(before_swap)["constraints"] == {"allocations_resource_window_excl": OLD_DEF}
        with psycopg.connect(before_swap) as conn:  # nothing swapped; still mirroring
            conn.execute(
                "DELETE FROM allocations WHERE id = (SELECT id FROM allocations ORDER BY id LIMIT 1)"
            )
            live, shadow = one(
                conn,
                "SELECT (SELECT count(*) FROM allocations), "
                "(SELECT count(*) FROM allocations__venuedb_shadow)",
            )
            assert live == shadow
    finally:
        writer.commit()
        writer.close()
    _apply(before_swap, "booking_005")
    assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}


def test_concurrent_writes_during_the_swap_are_neither_lost_nor_duplicated(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "20")
    with psycopg.connect(before_swap) as conn:
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT %s, 'table', gen_random_uuid(), tstzrange(now(), now() + interval '1 hour') "
            "FROM generate_series(1, 3000)",
            (RESTAURANT,),
        )
        expected = {str(i): str(w) for i, w in conn.execute('SELECT id, "window" FROM allocations')}
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0]  # writes committed so far

    def writer() -> None:
        rng = random.Random(7)
        with psycopg.connect(before_swap, autocommit=True) as conn:
            ids = list(expected)
            while not stop.is_set():
                try:
                    action = rng.random()
                    if action < 0.4:
                        row = one(
                            conn,
                            "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                            "\"window\") VALUES (%s, 'table', gen_random_uuid(), "
                            "'[2032-01-01 19:00+00,2032-01-01 21:00+00)') "
                            'RETURNING id, "window"',
                            (RESTAURANT,),
                        )
                        expected[str(row[0])] = str(row[1])
                        ids.append(str(row[0]))
                    elif action < 0.7 and ids:
                        victim = ids.pop(rng.randrange(len(ids)))
                        conn.execute("DELETE FROM allocations WHERE id = %s", (victim,))
                        expected.pop(victim, None)
                    elif ids:
                        target = ids[rng.randrange(len(ids))]
                        moved = conn.execute(
                            'UPDATE allocations SET "window" = tstzrange(lower("window") '
                            "+ interval '1 minute', upper(\"window\") + interval '1 minute') "
                            'WHERE id = %s RETURNING "window"',
                            (target,),
                        ).fetchone()
                        if moved:
                            expected[target] = str(moved[0])
                    written[0] += 1
                except psycopg.errors.LockNotAvailable:
                    continue
                except psycopg.Error as exc:  # the swap's brief lock may make one wait
                    errors.append(exc)
                    return

    def until_written(count: int) -> None:
        deadline = time.monotonic() + 30
        while written[0] < count and not errors:
            assert thread.is_alive() and time.monotonic() < deadline, "the writer stalled"
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Writes under way before the swap starts, during it, and after it (into the
        # swapped-in table): waited for, not assumed after a pause.
        until_written(20)
        before = written[0]
        _apply(before_swap, "booking_005")
        assert written[0] > before, "no write ran while the swap did"
        until_written(written[0] + 20)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    with psycopg.connect(before_swap) as conn:
        actual = {str(i): str(w) for i, w in conn.execute('SELECT id, "window" FROM allocations')}
    assert actual == expected
    assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}


# The plain self-joins the chunked, sorted forms replaced: the reference they must match.
def _self_join(swap: ExclusionSwap, extra: str = "") -> str:
    eq = swap.equal_columns
    return (
        "SELECT a.id::text, b.id::text, "
        + ", ".join(f"a.{c}::text" for c in eq)
        + ', a."window"::text, b."window"::text FROM allocations a JOIN allocations b ON '
        + " AND ".join(f"a.{c} = b.{c}" for c in eq)
        + ' AND a."window" && b."window" AND a.id < b.id WHERE NOT a.shadow AND NOT b.shadow'
        + extra
    )


@pytest.fixture
def tangled(db_url: str) -> str:
    """Allocations without any overlap constraint: overlaps within and across restaurants
    and resource types, shadow rows, touching [) windows, every bound kind, unbounded and
    empty windows."""
    rng = random.Random(16)
    with psycopg.connect(db_url) as conn:
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap")
        restaurants = [
            r[0]
            for r in conn.execute(
                "INSERT INTO restaurants (name, slug) SELECT 'T' || g, 'tangled-' || g "
                "FROM generate_series(1, 3) g RETURNING id"
            )
        ]
        resources = [uuid.uuid4() for _ in range(8)]
        conn.execute("SET session_replication_role = replica")  # no FKs or triggers: raw rows
        rows = []
        for n in range(600):
            start = rng.randrange(0, 48)
            length = rng.choice((0, 1, 2, 2, 3, 6))
            bounds = rng.choice(("[)",) * 6 + ("[]", "()", "(]"))
            low = f"'2031-01-01'::timestamptz + make_interval(hours => {start})"
            high = f"'2031-01-01'::timestamptz + make_interval(hours => {start + length})"
            if n % 97 == 0:
                low = "NULL"  # unbounded below
            if n % 89 == 0:
                high = "NULL"  # unbounded above
            rows.append(
                f"('{rng.choice(restaurants)}', '{rng.choice(('table', 'table', 'merge_group'))}',"
                f" '{rng.choice(resources)}', tstzrange({low}, {high}, '{bounds}'),"
                f" {str(rng.random() < 0.15).lower()})"
            )
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", '
            "shadow) VALUES " + ", ".join(rows)
        )
        kinds = one(
            conn,
            'SELECT count(*) FILTER (WHERE isempty("window")), count(*) FILTER (WHERE shadow), '
            'count(*) FILTER (WHERE upper_inf("window")) FROM allocations',
        )
        assert all(kinds), kinds  # the data set has each kind
    return db_url


@pytest.mark.parametrize("direction", ["UPGRADE", "DOWNGRADE"])
def test_chunked_preflight_finds_exactly_the_self_joins_pairs(tangled: str, direction: str) -> None:
    from dataclasses import replace

    from toolkit.ops.shadow_swap import find_violations

    swap = replace(getattr(_revision_module(), direction), preflight_chunk=3)
    said: list[str] = []
    with psycopg.connect(tangled) as conn:
        expected = {tuple(r) for r in conn.execute(_self_join(swap))}
        total = scalar(conn, "SELECT count(*) FROM allocations")
        found = find_violations(conn, swap, 100_000, said.append)
        touching = scalar(
            conn,
            'SELECT count(*) FROM allocations a JOIN allocations b ON a."window" -|- b."window" '
            "AND a.resource_id = b.resource_id AND a.resource_type = b.resource_type",
        )
    assert touching > 0
    assert len(expected) > 20
    assert len(found) == len(set(found))
    assert set(found) == expected
    assert said[-1].startswith(f"pre-flight: {total} of {total} rows checked")
    with psycopg.connect(tangled) as conn:  # the limit stops it early, with that many pairs
        first = find_violations(conn, swap, 5, said.append)
    assert len(first) == 5 and set(first) <= expected


def test_downgrade_preflight_sees_only_cross_restaurant_overlaps(tangled: str) -> None:
    from toolkit.ops.shadow_swap import find_violations

    module = _revision_module()
    with psycopg.connect(tangled) as conn:
        down = {r[:2] for r in find_violations(conn, module.DOWNGRADE, 100_000, print)}
        up = {r[:2] for r in find_violations(conn, module.UPGRADE, 100_000, print)}
    assert up < down  # the downgrade also reports the cross-restaurant pairs


def test_allocation_overlaps_check_lists_exactly_the_self_joins_pairs(tangled: str) -> None:
    from toolkit.integrity import health_checks as health
    from toolkit.server.connection import Target

    (check,) = health.select(health.load_checks(), ["allocation_overlaps"], None)
    module = _revision_module()
    with psycopg.connect(tangled) as conn:
        # Half the windows end before the check's cutoff (now() - 1 day): move them back.
        conn.execute(
            'UPDATE allocations SET "window" = tstzrange(lower("window") - interval \'10 years\','
            " upper(\"window\") - interval '10 years', '[)') "
            'WHERE NOT isempty("window") AND hashtext(id::text) % 2 = 0'
        )
        conn.commit()
        expected = [
            tuple(r[:2])
            for r in conn.execute(
                _self_join(module.UPGRADE, " AND upper(a.\"window\") > now() - interval '1 day'")
                + " ORDER BY a.id, b.id LIMIT 100"
            )
        ]
        query = check.path.read_text()
        conn.execute("SELECT set_config('venuedb.lookback', '1 day', false)")  # as check sets it
        actual = [(str(r[0]), str(r[1])) for r in conn.execute(query)]
    assert len(expected) > 0 and actual == expected
    (result,) = health.run_checks(Target(tangled, "tests"), [check])
    assert result.status == "critical" and result.value == float(len(expected))


def _revision_module() -> ModuleType:
    """booking_005's revision file, as Alembic loaded it (capacity-overlap's swaps)."""
    module: ModuleType = revision_module("booking_005")
    return module


def test_allocation_overlaps_trusts_only_the_overlap_rules_constraint(tangled: str) -> None:
    """A valid constraint of the overlap rule answers for the data (the scan is skipped);
    a weaker exclusion constraint does not, nor one whose index is not valid."""
    from toolkit.integrity import health_checks as health
    from toolkit.server.connection import Target

    (check,) = health.select(health.load_checks(), ["allocation_overlaps"], None)
    target = Target(tangled, "tests")
    with psycopg.connect(tangled, autocommit=True) as conn:
        conn.execute(  # never violated: id is unique
            "ALTER TABLE allocations ADD CONSTRAINT weaker EXCLUDE USING gist "
            '(id WITH =, resource_type WITH =, resource_id WITH =, "window" WITH &&) '
            "WHERE (NOT shadow)"
        )
        (result,) = health.run_checks(target, [check])
        assert result.status == "critical"
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT weaker")
        conn.execute("DELETE FROM allocations")
        conn.execute(
            "ALTER TABLE allocations ADD CONSTRAINT allocations_no_overlap EXCLUDE USING gist "
            "(restaurant_id WITH =, resource_type WITH =, resource_id WITH =, "
            '"window" WITH &&) WHERE (NOT shadow) DEFERRABLE'
        )
        conn.execute("SELECT set_config('venuedb.lookback', '1 day', false)")  # as check sets it
        plan = "\n".join(
            r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + check.path.read_text())
        )
        assert "One-Time Filter" in plan and "never executed" in plan, plan
        (result,) = health.run_checks(target, [check])
        assert result.status == "ok"


def _interrupt(url: str, monkeypatch: pytest.MonkeyPatch, *command: str) -> None:
    """Run `command` while a reader keeps the swap from its lock: it stops (exit 4) with
    the shadow table copied and the sync trigger live, as a killed run leaves it."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "1")
    reader = psycopg.connect(url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # ACCESS SHARE until rollback
    try:
        result = invoke(
            *command, "--database-url", url, "--lock-timeout", "100ms", "--retries", "0"
        )
        assert result.exit_code == 4, result.output
    finally:
        reader.rollback()
        reader.close()
    assert _state(url)["leftovers"] > 0  # the shadow table, its indexes, its sync function


def _in_progress_reported(url: str, building: str) -> None:
    status = invoke("status", "--database-url", url, "--json")
    assert status.exit_code == 1, status.output
    (item,) = as_json(status)["in_progress"]
    assert item["building"] == building and item["rows_copied"] > 0 and item["since"]
    assert as_json(status)["status"] == "in_progress"
    verify = invoke("verify", "--database-url", url)
    assert verify.exit_code == 3, verify.output
    assert "OPERATION IN PROGRESS" in verify.stdout and "clean" not in verify.stdout
    assert f"to {building} is in progress" in verify.stdout


def test_an_interrupted_apply_is_reported_and_a_rollback_abandons_it(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state(before_swap)
    _interrupt(before_swap, monkeypatch, "apply", "booking_005")
    _in_progress_reported(before_swap, "allocations_no_overlap")
    # Not applied, so nothing to roll back, but the half-done swap must not stay behind.
    result = invoke("rollback", PRE_SWAP, "--yes", "--database-url", before_swap, "--json")
    assert result.exit_code == 0, result.output
    assert any(n.startswith("abandoned a shadow-table swap") for n in as_json(result)["notices"])
    assert _state(before_swap) == before  # the old constraint, every row, no shadow object
    assert invoke("status", "--database-url", before_swap).exit_code == 0


def test_an_interrupted_rollback_is_abandoned_by_apply_and_legal_writes_pass(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(before_swap, "booking_005")
    applied = _state(before_swap)
    _interrupt(before_swap, monkeypatch, "rollback", PRE_SWAP, "--yes")
    _in_progress_reported(before_swap, "allocations_resource_window_excl")
    result = invoke("apply", "booking_005", "--database-url", before_swap, "--json")
    assert result.exit_code == 0, result.output
    assert any(n.startswith("abandoned a shadow-table swap") for n in as_json(result)["notices"])
    assert _state(before_swap) == applied
    with psycopg.connect(before_swap) as conn:
        # Legal under allocations_no_overlap, refused by the old rule the shadow carried.
        resource = uuid.uuid4()
        for restaurant in (RESTAURANT, "10000000-0000-4000-8000-000000000002"):
            conn.execute(
                "INSERT INTO restaurants (id, name, slug) VALUES (%s, 'R', %s) "
                "ON CONFLICT DO NOTHING",
                (restaurant, f"r-{restaurant}"),
            )
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'merge_group', %s, "
                "'[2031-03-01 19:00+00,2031-03-01 21:00+00)')",
                (restaurant, resource),
            )


def test_an_interrupted_apply_is_resumed_by_the_next_apply(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt(before_swap, monkeypatch, "apply", "booking_005")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "10")
    notices = _apply(before_swap, "booking_005")["notices"]
    assert any(n.endswith("this run resumes it") for n in notices), notices
    _swapped(before_swap)


def test_killing_the_lock_session_mid_swap_never_lets_a_second_deploy_run(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16.1, mid-swap: the copy is done and the swap waits for its brief lock when the
    deploy lock's session is terminated. A second apply is refused; the first finishes."""
    with _apply_held_at_its_lock(before_swap, monkeypatch) as (first, admin):
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
            "datname = current_database() AND application_name = 'venuedb apply (control)'"
        )
        second = invoke("apply", "booking_005", "--database-url", before_swap, "--lock-wait", "1s")
        assert second.exit_code == 4, second.output
        assert "still migrating" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    _swapped(before_swap)


# Triggers, row-level security and policies carried by the swap (issue 18, rollback
# level 2: the downgrade swap runs at the heads, where allocations has both).
CARRIED_SETUP = """
CREATE TABLE swap_test_fired (n int NOT NULL);
INSERT INTO swap_test_fired VALUES (0);
CREATE FUNCTION swap_test_too_early() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'swap test: window before 2000' USING ERRCODE = 'check_violation'; END $$;
CREATE TRIGGER swap_test_before BEFORE INSERT OR UPDATE OF "window" ON allocations
    FOR EACH ROW WHEN (lower(NEW."window") < '2000-01-01') EXECUTE FUNCTION swap_test_too_early();
CREATE FUNCTION swap_test_no_maintenance_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM allocations WHERE id = NEW.id AND is_maintenance) THEN
        RAISE EXCEPTION 'swap test: maintenance row % left at commit', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER swap_test_deferred AFTER INSERT OR UPDATE OF is_maintenance
    ON allocations DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION swap_test_no_maintenance_left();
COMMENT ON TRIGGER swap_test_deferred ON allocations IS 'checked at commit';
CREATE FUNCTION swap_test_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE swap_test_fired SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER swap_test_counted AFTER INSERT ON allocations
    FOR EACH ROW EXECUTE FUNCTION swap_test_count();
ALTER TABLE allocations ENABLE ALWAYS TRIGGER swap_test_counted;
CREATE FUNCTION swap_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'swap test: % fired', TG_NAME; END $$;
CREATE TRIGGER swap_test_disabled BEFORE INSERT ON allocations
    FOR EACH ROW EXECUTE FUNCTION swap_test_refuse();
ALTER TABLE allocations DISABLE TRIGGER swap_test_disabled;
CREATE SCHEMA "swap test";  -- off the search_path: pg_get_triggerdef qualifies it
CREATE FUNCTION "swap test".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'swap test: % fired', TG_NAME; END $$;
CREATE TRIGGER swap_test_replica BEFORE DELETE ON allocations
    FOR EACH ROW EXECUTE FUNCTION "swap test".refuse();
ALTER TABLE allocations ENABLE REPLICA TRIGGER swap_test_replica;
ALTER TABLE allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE allocations FORCE ROW LEVEL SECURITY;
CREATE POLICY "no shadow rows" ON allocations AS RESTRICTIVE FOR ALL TO PUBLIC
    USING (NOT shadow) WITH CHECK (NOT shadow AND NOT isempty("window"));
CREATE POLICY staff_reads_its_restaurant ON allocations FOR SELECT TO {role}, authenticated
    USING (restaurant_id = '{restaurant}'::uuid);
COMMENT ON POLICY staff_reads_its_restaurant ON allocations IS 'staff''s view';
GRANT SELECT ON allocations TO {role};
GRANT SELECT (id, "window") ON allocations TO authenticated WITH GRANT OPTION;
COMMENT ON TABLE allocations IS 'who holds what, when';
INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", shadow)
VALUES ('{restaurant}', 'table', gen_random_uuid(), '[2031-04-01 19:00+00,2031-04-01 21:00+00)',
        true);
"""


def _carried(url: str) -> dict:
    """What the swap must carry, as the catalogs say it (names only, never oids)."""
    with psycopg.connect(url) as conn:

        def rows(sql: str) -> list:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

        return {
            "triggers": rows(
                "SELECT tgname, pg_get_triggerdef(oid), tgenabled, "
                "obj_description(oid, 'pg_trigger'), tgconstraint <> 0 FROM pg_trigger "
                "WHERE tgrelid = 'allocations'::regclass AND NOT tgisinternal ORDER BY tgname"
            ),
            "table": rows(
                "SELECT relrowsecurity, relforcerowsecurity, relowner::regrole::text, "
                "obj_description(oid, 'pg_class'), relreplident, reloptions "
                "FROM pg_class WHERE oid = 'allocations'::regclass"
            ),
            "policies": rows(
                "SELECT p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check, "
                "obj_description(o.oid, 'pg_policy') FROM pg_policies p JOIN pg_policy o "
                "ON o.polrelid = 'allocations'::regclass AND o.polname = p.policyname "
                "WHERE p.schemaname = 'public' AND p.tablename = 'allocations' "
                "ORDER BY p.policyname"
            ),
            "statistics": rows(
                "SELECT pg_get_statisticsobjdef(oid), obj_description(oid, 'pg_statistic_ext') "
                "FROM pg_statistic_ext WHERE stxrelid = 'allocations'::regclass ORDER BY 1"
            ),
            "publications": rows(
                "SELECT pubname, attnames, rowfilter FROM pg_publication_tables "
                "WHERE schemaname = 'public' AND tablename = 'allocations' ORDER BY 1"
            ),
            "privileges": rows(
                "SELECT grantee, privilege_type, is_grantable, '' FROM "
                "information_schema.role_table_grants WHERE table_name = 'allocations' "
                "UNION ALL SELECT grantee, privilege_type, is_grantable, column_name FROM "
                "information_schema.column_privileges WHERE table_name = 'allocations' "
                "AND grantee = 'authenticated' ORDER BY 1, 2, 4"
            ),
        }


def _visible_to(url: str, role: str) -> int:
    with psycopg.connect(url) as conn:
        conn.execute(psql.SQL("SET ROLE {}").format(psql.Identifier(role)))
        return int(scalar(conn, "SELECT count(*) FROM allocations"))


def test_the_swap_carries_triggers_row_level_security_and_policies(before_swap: str) -> None:
    role = f"Swap Staff {uuid.uuid4().hex[:6]}"
    with psycopg.connect(before_swap, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE ROLE {} NOLOGIN").format(psql.Identifier(role)))
    try:
        with psycopg.connect(before_swap, autocommit=True) as conn:
            conn.execute(
                CARRIED_SETUP.format(
                    role=psql.Identifier(role).as_string(conn), restaurant=RESTAURANT
                ).encode()
            )
            expected_visible = scalar(
                conn,
                "SELECT count(*) FROM allocations WHERE restaurant_id = %s AND NOT shadow",
                (RESTAURANT,),
            )
        before = _carried(before_swap)
        assert len(before["triggers"]) == 5 and len(before["policies"]) == 2
        assert {t[2] for t in before["triggers"]} == {"O", "D", "A", "R"}
        assert any('"swap test".refuse()' in t[1] for t in before["triggers"])
        assert _visible_to(before_swap, role) == expected_visible
        content = _state(before_swap)["content"]
        with psycopg.connect(before_swap) as conn:
            assert scalar(conn, "SELECT n FROM swap_test_fired") == 1

        notices = _apply(before_swap, "booking_005")["notices"]

        assert any(n.startswith("path: shadow table") for n in notices), notices
        state = _state(before_swap)
        assert state["constraints"] == {"allocations_no_overlap": NEW_DEF}
        assert state["content"] == content and state["leftovers"] == 0
        assert _carried(before_swap) == before
        # The policies filter as before: the restrictive one hides the shadow row.
        assert _visible_to(before_swap, role) == expected_visible
        _triggers_fire_on_the_new_table(before_swap)
    finally:
        with psycopg.connect(before_swap, autocommit=True) as conn:
            conn.execute(psql.SQL("DROP OWNED BY {}").format(psql.Identifier(role)))
            conn.execute(psql.SQL("DROP ROLE {}").format(psql.Identifier(role)))


def test_the_swap_carries_statistics_storage_replica_identity_publications_and_owner(
    before_swap: str,
) -> None:
    role = f"swap_owner_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(before_swap, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(
            "CREATE STATISTICS swap_test_stats (dependencies) ON resource_type, resource_id "
            "FROM allocations;"
            "COMMENT ON STATISTICS swap_test_stats IS 'resources by type';"
            "ALTER TABLE allocations SET (fillfactor = 80, autovacuum_enabled = false);"
            "ALTER TABLE allocations REPLICA IDENTITY USING INDEX allocations_pkey;"
            'CREATE PUBLICATION swap_test_pub FOR TABLE allocations (id, "window") '
            "WHERE (NOT shadow) WITH (publish = 'insert');"
            f"ALTER TABLE allocations OWNER TO {role};"
            "GRANT SELECT ON allocations TO authenticated"
        )
    try:
        before = _carried(before_swap)
        assert before["statistics"] and before["publications"]
        assert before["table"][0][2] == role and before["table"][0][4] == "i"
        _apply(before_swap, "booking_005")
        assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}
        assert _carried(before_swap) == before
    finally:
        with psycopg.connect(before_swap, autocommit=True) as conn:
            conn.execute("DROP PUBLICATION IF EXISTS swap_test_pub")
            conn.execute("ALTER TABLE allocations OWNER TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _triggers_fire_on_the_new_table(url: str) -> None:
    insert = (
        'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", '
        "is_maintenance) VALUES (%s, 'table', gen_random_uuid(), %s, %s) RETURNING id"
    )
    later = "[2031-05-01 19:00+00,2031-05-01 21:00+00)"
    with psycopg.connect(url) as conn:
        # The copy wrote every row into the shadow: no user trigger fired there (the one
        # count is the setup's own insert).
        assert scalar(conn, "SELECT n FROM swap_test_fired") == 1
        with pytest.raises(psycopg.errors.CheckViolation, match="window before 2000"):
            conn.execute(insert, (RESTAURANT, "[1999-01-01,1999-01-02)", False))
        conn.rollback()
        # Deferred: a maintenance row cleared before commit passes; one left fails at commit.
        (row,) = one(conn, insert, (RESTAURANT, later, True))
        conn.execute("UPDATE allocations SET is_maintenance = false WHERE id = %s", (row,))
        conn.commit()
        conn.execute(insert, (RESTAURANT, "[2031-06-01 19:00+00,2031-06-01 21:00+00)", True))
        with pytest.raises(psycopg.errors.CheckViolation, match="left at commit"):
            conn.commit()
        # The disabled trigger stays disabled (the insert above passed it); the ALWAYS
        # one counted the one committed insert; the REPLICA one stays out of a delete.
        assert scalar(conn, "SELECT n FROM swap_test_fired") == 2
        conn.execute("DELETE FROM allocations WHERE id = %s", (row,))
        conn.commit()


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (
            "CREATE TABLE swap_test_ref (a uuid REFERENCES allocations (id))",
            "foreign key swap_test_ref_a_fkey on swap_test_ref references it",
        ),
        (
            "CREATE VIEW swap_test_view AS SELECT id FROM allocations",
            "view swap_test_view depends on it",
        ),
        (
            "CREATE RULE swap_test_rule AS ON DELETE TO allocations DO ALSO NOTIFY swap_test",
            "rule swap_test_rule",
        ),
        (
            "CREATE FUNCTION swap_test_rows() RETURNS SETOF allocations LANGUAGE sql "
            "AS 'SELECT * FROM allocations'",
            "function swap_test_rows() depends on it",
        ),
    ],
)
def test_the_swap_refuses_what_it_cannot_carry(before_swap: str, setup: str, problem: str) -> None:
    with psycopg.connect(before_swap, autocommit=True) as conn:
        conn.execute(setup)
    before = _state(before_swap)
    result = invoke("apply", "booking_005", "--database-url", before_swap)
    assert result.exit_code == 1, result.output
    assert f"cannot carry: {problem}" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert _state(before_swap) == before


def _swap_refused_as(url: str, role: str, refusal: str) -> None:
    """booking_005's swap, run by the toolkit as `role`, is refused (a RuntimeError matching
    `refusal`) before it changes anything."""
    from toolkit.engine.alembic_context import operations
    from toolkit.ops.shadow_swap import replace_exclusion_constraint
    from toolkit.server.connection import Target, engine

    before = _state(url)
    bind = engine(Target(url, "tests"))
    try:
        with bind.connect() as conn:
            conn.exec_driver_sql(f"SET ROLE {role}")
            conn.commit()
            with pytest.raises(RuntimeError, match=refusal), operations(conn):
                replace_exclusion_constraint(_revision_module().UPGRADE)
    finally:
        bind.dispose()
    assert _state(url) == before


def test_the_swap_refuses_when_row_level_security_hides_rows_from_it(
    before_swap: str,
) -> None:
    """A role that owns a FORCE ROW LEVEL SECURITY table reads only what its policies
    allow: copying as that role would lose the other rows without a word."""
    role = f"swap_owner_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(before_swap, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"ALTER TABLE allocations OWNER TO {role}")
        conn.execute("ALTER TABLE allocations ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE allocations FORCE ROW LEVEL SECURITY")
        conn.execute(f"CREATE POLICY most ON allocations TO {role} USING (NOT is_maintenance)")
        conn.execute(
            "UPDATE allocations SET is_maintenance = true "
            "WHERE id = (SELECT min(id::text)::uuid FROM allocations)"
        )
    try:
        _swap_refused_as(before_swap, role, "row-level security applies to the migrating")
    finally:
        with psycopg.connect(before_swap, autocommit=True) as conn:
            conn.execute("ALTER TABLE allocations OWNER TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _seated(url: str, bookings: int) -> list[str]:
    """A restaurant at the heads with `bookings` confirmed bookings, each seated on one of
    four tables (an assignment and an allocation), and as many merge-group allocations."""
    restaurant, zone = RESTAURANT, "20000000-0000-4000-8000-000000000001"
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO restaurants (id, name, slug) VALUES (%s, 'R', 'r-swap')", (restaurant,)
        )
        conn.execute(
            "INSERT INTO zones (id, restaurant_id, name) VALUES (%s, %s, 'Z')", (zone, restaurant)
        )
        tables = [
            scalar(
                conn,
                "INSERT INTO table_inventory (restaurant_id, zone_id, table_number, capacity) "
                "VALUES (%s, %s, %s, 4) RETURNING id",
                (restaurant, zone, f"T{i}"),
            )
            for i in range(4)
        ]
        ids = []
        for i in range(bookings):
            (booking,) = one(
                conn,
                "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, "
                "end_at) VALUES (%s, 2, current_date, now() + make_interval(hours => %s), "
                "now() + make_interval(hours => %s + 2)) RETURNING id",
                (restaurant, i * 3, i * 3),
            )
            assign_table(conn, str(booking), str(tables[i % 4]))
            conn.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (booking,))
            ids.append(str(booking))
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT %s, 'merge_group', gen_random_uuid(), "
            "tstzrange(now(), now() + interval '1 hour') FROM generate_series(1, %s)",
            (restaurant, bookings),
        )
    return ids


def test_the_downgrade_swap_runs_at_the_heads_from_an_operations_context(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollback level 2 of capacity-overlap: booking_005's DOWNGRADE swap, called outside
    Alembic's revisions, on allocations as the heads have it (two triggers, row-level
    security enabled)."""
    from toolkit.engine.alembic_context import operations
    from toolkit.ops.shadow_swap import replace_exclusion_constraint
    from toolkit.server.connection import Target, engine

    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "7")
    bookings = _seated(db_url, 12)
    before, state = _carried(db_url), _state(db_url)
    assert [t[0] for t in before["triggers"]] == [
        "allocations_booking_validation",
        "allocations_table_restaurant_check",
    ]
    assert before["table"][0][:2] == (True, False)
    assert state["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert state["content"][1] == 24

    notices: list[str] = []
    bind = engine(Target(db_url, "tests"))
    try:
        with bind.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None  # a connection checked out of the pool
            driver.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
            with operations(conn):
                replace_exclusion_constraint(_revision_module().DOWNGRADE)
    finally:
        bind.dispose()

    assert any(n.startswith("path: shadow table") for n in notices), notices
    assert any(n.startswith("swap held the lock") for n in notices), notices
    after = _state(db_url)
    assert after["constraints"] == {"allocations_resource_window_excl": OLD_DEF}
    assert after["content"] == state["content"]  # every row, unchanged
    assert after["leftovers"] == 0 and after["triggers"] == 2
    assert _carried(db_url) == before
    with psycopg.connect(db_url) as conn:
        # allocations_table_restaurant_check: a 'table' allocation naming no table.
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="not a table at all"):
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'table', gen_random_uuid(), "
                "'[2031-01-01 19:00+00,2031-01-01 21:00+00)')",
                (RESTAURANT,),
            )
        conn.rollback()
        # allocations_booking_validation, deferred: a confirmed booking losing its
        # allocation is refused at commit, not at the delete.
        conn.execute("DELETE FROM allocations WHERE booking_id = %s", (bookings[0],))
        with pytest.raises(psycopg.errors.CheckViolation, match="allocations disagree") as info:
            conn.commit()
        assert info.value.diag.constraint_name == "booking_allocations_in_step"
        # The old rule is back: the same resource in two restaurants overlaps.
        conn.execute(
            "INSERT INTO restaurants (id, name, slug) VALUES (%s, 'S', 's-swap')",
            ("10000000-0000-4000-8000-000000000002",),
        )
        resource = uuid.uuid4()
        for restaurant in (RESTAURANT, "10000000-0000-4000-8000-000000000002"):
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'merge_group', %s, "
                "'[2031-03-01 19:00+00,2031-03-01 21:00+00)')",
                (restaurant, resource),
            )
        with pytest.raises(psycopg.errors.ExclusionViolation, match="resource_window_excl"):
            conn.commit()
    assert _state(db_url)["content"] == state["content"]


def test_operations_refuses_a_connection_in_a_transaction(db_url: str) -> None:
    from toolkit.engine.alembic_context import operations
    from toolkit.server.connection import Target, engine

    bind = engine(Target(db_url, "tests"))
    try:
        with bind.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # SQLAlchemy autobegins a transaction
            with pytest.raises(RuntimeError, match="not in a transaction"), operations(conn):
                pass
    finally:
        bind.dispose()


def test_a_trigger_created_while_the_swap_waits_for_its_lock_is_carried(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap reads what it carries under its lock, not before: a trigger created while
    it retries for that lock (after the copy) is on the new table."""
    with _apply_held_at_its_lock(before_swap, monkeypatch) as (swap, admin):
        admin.execute("SET lock_timeout = '30s'")  # gets in between two attempts
        admin.execute(
            "CREATE FUNCTION swap_test_late() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'swap test: late trigger' USING ERRCODE = "
            "'check_violation'; END $$"
        )
        admin.execute(
            "CREATE TRIGGER swap_test_late BEFORE INSERT ON allocations FOR EACH ROW "
            "WHEN (NEW.is_maintenance) EXECUTE FUNCTION swap_test_late()"
        )
    out, err = swap.communicate(timeout=120)
    assert swap.returncode == 0, out + err
    assert _swapped(before_swap)["triggers"] == 1
    with (
        psycopg.connect(before_swap) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="late trigger"),
    ):
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", '
            "is_maintenance) VALUES (%s, 'table', gen_random_uuid(), "
            "'[2031-07-01 19:00+00,2031-07-01 21:00+00)', true)",
            (RESTAURANT,),
        )


def test_application_roles_write_while_the_shadow_mirrors(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the heads the application writes as service_role, which has no privilege on the
    shadow table: the sync trigger must still mirror its writes (and a swap stopped by a
    busy lock must leave the table writable for it until the next run resumes)."""
    import psycopg.errors

    from toolkit.engine.alembic_context import operations
    from toolkit.ops.shadow_swap import replace_exclusion_constraint
    from toolkit.server.connection import Target, engine

    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_MIN_ROWS", "10")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_BATCH", "7")
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "1")
    _seated(db_url, 6)
    downgrade = _revision_module().DOWNGRADE
    bind = engine(Target(db_url, "tests"))
    reader = psycopg.connect(db_url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # the swap cannot take its lock
    try:
        with bind.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '100ms'")
            conn.commit()
            with pytest.raises(psycopg.errors.LockNotAvailable), operations(conn):
                replace_exclusion_constraint(downgrade)
    finally:
        reader.rollback()
        reader.close()
    with psycopg.connect(db_url) as app:
        app.execute("SET ROLE service_role")
        app.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "VALUES (%s, 'merge_group', gen_random_uuid(), "
            "'[2031-08-01 19:00+00,2031-08-01 21:00+00)')",
            (RESTAURANT,),
        )
        app.execute(
            "DELETE FROM allocations WHERE id = (SELECT min(id::text)::uuid "
            "FROM allocations WHERE resource_type = 'merge_group')"
        )
        app.commit()
        app.execute("RESET ROLE")
        live, shadow = one(
            app,
            "SELECT (SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM allocations a), "
            "(SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM allocations__venuedb_shadow s)",
        )
        assert live == shadow
    content = _state(db_url)["content"]
    try:
        with bind.connect() as conn, operations(conn):
            replace_exclusion_constraint(downgrade)
    finally:
        bind.dispose()
    after = _state(db_url)
    assert after["constraints"] == {"allocations_resource_window_excl": OLD_DEF}
    assert after["content"] == content and after["leftovers"] == 0


def test_the_swap_refuses_a_table_its_role_could_not_drop(before_swap: str) -> None:
    """DROP TABLE needs the owner: a role that only may read and write the table would
    fail at the very end, after the whole copy. It is refused before anything is built."""
    role = f"swap_writer_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(before_swap, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON allocations TO {role}")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    try:
        _swap_refused_as(before_swap, role, r"it is owned by .+, which the migrating role cannot")
    finally:
        with psycopg.connect(before_swap, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
