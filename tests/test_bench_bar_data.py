"""bench/data/bar.py: deterministic bar data that loads on bar-baseline and on all heads,
and that the server_id backfill then resolves."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from bench.data.bar import load
from tests.queries import dict_of, one, scalar
from toolkit.engine.migrate import RunOptions
from toolkit.engine.migrate import run as migrate
from toolkit.runbook.backfill import Options, find_backfill, run
from toolkit.server.connection import Target

SCALE = 0.001
ANCHOR = dt.date(2030, 1, 7)
TABLES = {
    "users": "SELECT id, email, created_at FROM auth.users",
    "bars": "SELECT id, name, owner_id, settings, created_at, last_sale_at FROM bars",
    "bar_members": "SELECT id, bar_id, user_id, role, display_name, is_active FROM bar_members",
    "sales": "SELECT id, bar_id, created_by, server_name, items, total, payment_method, status, "
    "created_at FROM sales",
    "consignments": "SELECT id, bar_id, created_by, server_name, product_name, quantity, amount, "
    "status, created_at FROM consignments",
    "returns": "SELECT id, bar_id, sale_id, created_by, server_name, amount, created_at "
    "FROM returns",
}


def _load(url: str, **kwargs: Any) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return load(conn, scale=SCALE, anchor=ANCHOR, **kwargs)


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"{sql} ORDER BY 1").fetchall() for t, sql in TABLES.items()}


def _baseline(url: str) -> str:
    migrate(Target(url, "tests"), "upgrade", "bar-baseline", RunOptions(actor="tests"))
    return url


def test_same_seed_same_rows_on_baseline_and_heads(empty_db_url: str, db_url: str) -> None:
    baseline_counts = _load(_baseline(empty_db_url))
    heads_counts = _load(db_url)
    baseline, heads = _rows(empty_db_url), _rows(db_url)
    assert baseline == heads  # ids included: the same rows, whatever the schema
    assert baseline_counts["server_name_mappings"] == 0 < heads_counts["server_name_mappings"]
    for table in ("bars", "sales", "consignments", "returns"):
        assert baseline_counts[table] == heads_counts[table] == len(heads[table]) > 0
    assert heads_counts["bars"] >= 3 and 900 <= heads_counts["sales"] <= 1100


def test_another_seed_other_rows(empty_db_url: str, db_url: str) -> None:
    _load(_baseline(empty_db_url), seed=2)
    _load(db_url, seed=1)
    assert _rows(empty_db_url)["sales"] != _rows(db_url)["sales"]


def test_rows_look_like_the_till(db_url: str) -> None:
    _load(db_url)
    with psycopg.connect(db_url) as conn:
        modes, null_names, odd_spacing, no_server_id = one(
            conn,
            "SELECT (SELECT count(DISTINCT settings ->> 'operatingMode') FROM bars), "
            "count(*) FILTER (WHERE server_name IS NULL), "
            "count(*) FILTER (WHERE server_name LIKE '  %'), "
            "count(*) FILTER (WHERE server_id IS NULL) = count(*) FROM sales",
        )
        staff = dict_of(conn, "SELECT role, count(*) FROM bar_members GROUP BY 1")
        bars = scalar(conn, "SELECT count(*) FROM bars")
    assert modes == 2  # simplified, full (and bars with none)
    assert null_names > 0 and odd_spacing > 0 and no_server_id
    assert staff["owner"] == bars and bars <= staff["manager"] <= 2 * bars
    assert 4 * bars <= staff["server"] <= 8 * bars


def test_backfill_resolves_the_mapped_names(db_url: str) -> None:
    counts = _load(db_url)
    outcome = run(Target(db_url, "tests"), find_backfill("sales_server_id"), Options(batch_size=97))
    assert outcome.state == "finished" and outcome.rows == counts["sales"]
    with psycopg.connect(db_url) as conn:
        mapped, wrong, by_name = one(
            conn,
            "SELECT count(*), count(*) FILTER (WHERE s.server_id IS DISTINCT FROM m.user_id), "
            "(SELECT count(*) FROM migration_server_id_log "
            " WHERE table_name = 'sales' AND NOT fallback_used) "
            "FROM sales AS s JOIN server_name_mappings AS m ON m.bar_id = s.bar_id "
            "AND m.name_normalized = lower(btrim(regexp_replace(s.server_name, '\\s+', ' ', 'g')))",
        )
    # Every mapped name went to its mapping; backfill v2 (bar-observability) also resolves
    # names nobody mapped through the members' display names, so more rows than the
    # mapped ones were resolved by name rather than credited to their creator.
    assert mapped > counts["sales"] // 2 and wrong == 0 and by_name > mapped
