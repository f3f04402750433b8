"""The shadow-table swap that replaces allocations_resource_window_excl online (seed 003)."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import DATA, load_sql
from toolkit.revisions import script_directory

NEW_DEF = (
    "EXCLUDE USING gist (restaurant_id WITH =, resource_type WITH =, resource_id WITH =, "
    '"window" WITH &&) WHERE ((NOT shadow)) DEFERRABLE'
)
OLD_DEF = (
    'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&) '
    "WHERE ((NOT shadow)) DEFERRABLE INITIALLY DEFERRED"
)
RESTAURANT = "10000000-0000-4000-8000-000000000001"
# The revision just before the swap (booking_005), whatever it is.
PRE_SWAP = script_directory().get_revision("booking_005").down_revision


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
        constraints = dict(
            conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'allocations'::regclass AND contype = 'x'"
            ).fetchall()
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
        leftovers = (
            conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'allocations\\_\\_venuedb%%'"
            ).fetchone()[0]
            + conn.execute(
                "SELECT count(*) FROM pg_proc WHERE proname LIKE 'venuedb\\_sync%%'"
            ).fetchone()[0]
        )
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
            "'allocations'::regclass AND NOT tgisinternal"
        ).fetchone()[0]
    return {
        "constraints": constraints,
        "indexes": indexes,
        "content": content,
        "leftovers": leftovers,
        "triggers": triggers,
    }


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
        live, shadow = conn.execute(
            "SELECT (SELECT count(*) FROM allocations), "
            "(SELECT count(*) FROM allocations__venuedb_shadow)"
        ).fetchone()
        assert live == shadow
    notices = _apply(before_swap, "booking_005")["notices"]
    assert any("resuming" in n for n in notices)
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

    def writer() -> None:
        rng = random.Random(7)
        with psycopg.connect(before_swap, autocommit=True) as conn:
            ids = list(expected)
            while not stop.is_set():
                try:
                    action = rng.random()
                    if action < 0.4:
                        row = conn.execute(
                            "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                            "\"window\") VALUES (%s, 'table', gen_random_uuid(), "
                            "'[2032-01-01 19:00+00,2032-01-01 21:00+00)') "
                            'RETURNING id, "window"',
                            (RESTAURANT,),
                        ).fetchone()
                        expected[str(row[0])] = str(row[1])
                        ids.append(str(row[0]))
                    elif action < 0.7 and ids:
                        victim = ids.pop(rng.randrange(len(ids)))
                        conn.execute("DELETE FROM allocations WHERE id = %s", (victim,))
                        expected.pop(victim, None)
                    elif ids:
                        target = ids[rng.randrange(len(ids))]
                        row = conn.execute(
                            'UPDATE allocations SET "window" = tstzrange(lower("window") '
                            "+ interval '1 minute', upper(\"window\") + interval '1 minute') "
                            'WHERE id = %s RETURNING "window"',
                            (target,),
                        ).fetchone()
                        if row:
                            expected[target] = str(row[0])
                except psycopg.errors.LockNotAvailable:
                    continue
                except psycopg.Error as exc:  # the swap's brief lock may make one wait
                    errors.append(exc)
                    return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        _apply(before_swap, "booking_005")
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    with psycopg.connect(before_swap) as conn:
        actual = {str(i): str(w) for i, w in conn.execute('SELECT id, "window" FROM allocations')}
    assert actual == expected
    assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}


# The plain self-joins the chunked, sorted forms replaced: the reference they must match.
def _self_join(swap: object, extra: str = "") -> str:
    eq = swap.equal_columns  # type: ignore[attr-defined]
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
        kinds = conn.execute(
            'SELECT count(*) FILTER (WHERE isempty("window")), count(*) FILTER (WHERE shadow), '
            'count(*) FILTER (WHERE upper_inf("window")) FROM allocations'
        ).fetchone()
        assert all(kinds), kinds  # the data set has each kind
    return db_url


@pytest.mark.parametrize("direction", ["UPGRADE", "DOWNGRADE"])
def test_chunked_preflight_finds_exactly_the_self_joins_pairs(tangled: str, direction: str) -> None:
    from dataclasses import replace

    from toolkit.shadow_swap import find_violations

    swap = replace(getattr(_revision_module(), direction), preflight_chunk=3)
    said: list[str] = []
    with psycopg.connect(tangled) as conn:
        expected = {tuple(r) for r in conn.execute(_self_join(swap))}
        total = conn.execute("SELECT count(*) FROM allocations").fetchone()[0]
        found = find_violations(conn, swap, 100_000, said.append)
        touching = conn.execute(  # [) windows that meet end to start: no violation
            'SELECT count(*) FROM allocations a JOIN allocations b ON a."window" -|- b."window" '
            "AND a.resource_id = b.resource_id AND a.resource_type = b.resource_type"
        ).fetchone()[0]
    assert touching > 0
    assert len(expected) > 20
    assert len(found) == len(set(found))
    assert set(found) == expected
    assert said[-1].startswith(f"pre-flight: {total} of {total} rows checked")
    with psycopg.connect(tangled) as conn:  # the limit stops it early, with that many pairs
        first = find_violations(conn, swap, 5, said.append)
    assert len(first) == 5 and set(first) <= expected


def test_downgrade_preflight_sees_only_cross_restaurant_overlaps(tangled: str) -> None:
    from toolkit.shadow_swap import find_violations

    module = _revision_module()
    with psycopg.connect(tangled) as conn:
        down = {r[:2] for r in find_violations(conn, module.DOWNGRADE, 100_000, print)}
        up = {r[:2] for r in find_violations(conn, module.UPGRADE, 100_000, print)}
    assert up < down  # the downgrade also reports the cross-restaurant pairs


def test_allocation_overlaps_check_lists_exactly_the_self_joins_pairs(tangled: str) -> None:
    from toolkit import checks as health
    from toolkit.connection import Target

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
        actual = [(str(r[0]), str(r[1])) for r in conn.execute(query)]
    assert len(expected) > 0 and actual == expected
    (result,) = health.run_checks(Target(tangled, "tests"), [check])
    assert result.status == "critical" and result.value == float(len(expected))


def _revision_module():  # type: ignore[no-untyped-def]
    import importlib.util

    from toolkit.revisions import script_directory

    path = script_directory().get_revision("booking_005").path
    spec = importlib.util.spec_from_file_location("booking_005_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allocation_overlaps_trusts_only_the_overlap_rules_constraint(tangled: str) -> None:
    """A valid constraint of the overlap rule answers for the data (the scan is skipped);
    a weaker exclusion constraint does not, nor one whose index is not valid."""
    from toolkit import checks as health
    from toolkit.connection import Target

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
    assert _state(before_swap)["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert _state(before_swap)["leftovers"] == 0


def test_killing_the_lock_session_mid_swap_never_lets_a_second_deploy_run(
    before_swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16.1, mid-swap: the copy is done and the swap waits for its brief lock when the
    deploy lock's session is terminated. A second apply is refused; the first finishes."""
    from tests.clihelpers import spawn

    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "40")
    reader = psycopg.connect(before_swap)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # the swap cannot take its lock
    try:
        first = spawn(
            "apply", "booking_005", "--database-url", before_swap, "--lock-timeout", "200ms"
        )
        with psycopg.connect(before_swap, autocommit=True) as admin:
            deadline = time.monotonic() + 30
            while not admin.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = "
                "'allocations__venuedb_shadow_sync')"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the swap never started"
                time.sleep(0.1)
            time.sleep(0.5)  # copied; now retrying for the swap's lock
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND application_name = 'venuedb apply (control)'"
            )
        second = invoke("apply", "booking_005", "--database-url", before_swap, "--lock-wait", "1s")
        assert second.exit_code == 4, second.output
        assert "still migrating" in second.stderr
    finally:
        reader.rollback()
        reader.close()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    state = _state(before_swap)
    assert state["constraints"] == {"allocations_no_overlap": NEW_DEF}
    assert state["leftovers"] == 0
