"""Ready to distribute (issue 22): `venuedb lint` holds every revision's catalog to
migrations/distribution.toml and Citus's rules (toolkit/integrity/distribution*.py).

The rules are proven on small schemas built by hand in an empty database (one kind of
violation each, beside a correct table that must stay clean); the revision walk on a copy
of the checkout with revisions of its own on top of the migrated template; and the real
migrations once, end to end.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.checkout import add_bar_099, copy_checkout, executing
from tests.clihelpers import as_json, invoke
from tests.conftest import Server
from toolkit.integrity import distribution
from toolkit.integrity.distribution_plan import Classification, parse
from toolkit.integrity.distribution_rules import violations
from toolkit.server.embedded import temporary_server

PLAN = """
[branches.shop]
tenant_key = "shop_id"
root = "public.shops"
root_key = "id"
distributed = ["public.orders", "public.order_lines"]

[branches.club]
tenant_key = "club_id"
root = "public.clubs"
root_key = "id"
distributed = []

[[reference]]
table = "public.countries"
reason = "the same rows for every shop"

[[local]]
table = "public.journal"
reason = "the coordinator's own log"
"""

# A correct schema: nothing to find in it.
BASE = """
CREATE EXTENSION btree_gist;
CREATE TABLE public.shops (id uuid PRIMARY KEY, name text);
CREATE TABLE public.clubs (id uuid PRIMARY KEY);
CREATE TABLE public.countries (code text PRIMARY KEY);
CREATE TABLE public.journal (id bigint PRIMARY KEY, country text REFERENCES public.countries);
CREATE TABLE public.orders (
    shop_id uuid NOT NULL REFERENCES public.shops (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    code text,
    country text REFERENCES public.countries ON DELETE SET NULL,
    during tstzrange,
    PRIMARY KEY (shop_id, id),
    UNIQUE (shop_id, code),
    EXCLUDE USING gist (shop_id WITH =, during WITH &&)
);
"""
LINES = "CREATE TABLE public.order_lines (shop_id uuid NOT NULL, id uuid NOT NULL, order_id uuid, "

# kind of violation -> (the SQL that makes it, on top of BASE; the key it must be found as)
CASES = {
    "primary key without the key": (
        LINES + "PRIMARY KEY (id));",
        ("public.order_lines", "order_lines_pkey", "unique-without-key"),
    ),
    "unique constraint without the key": (
        LINES + "PRIMARY KEY (shop_id, id), CONSTRAINT order_lines_once UNIQUE (order_id));",
        ("public.order_lines", "order_lines_once", "unique-without-key"),
    ),
    "unique index without the key": (
        LINES + "PRIMARY KEY (shop_id, id));"
        "CREATE UNIQUE INDEX order_lines_code ON public.order_lines (lower(order_id::text));",
        ("public.order_lines", "order_lines_code", "unique-without-key"),
    ),
    "exclusion without the key": (
        "ALTER TABLE public.orders ADD CONSTRAINT orders_no_overlap "
        "EXCLUDE USING gist (code WITH =, during WITH &&);",
        ("public.orders", "orders_no_overlap", "exclusion-without-key"),
    ),
    "exclusion with the key not under =": (
        "ALTER TABLE public.orders ADD CONSTRAINT orders_other_shop "
        "EXCLUDE USING gist (shop_id WITH <>, during WITH &&);",
        ("public.orders", "orders_other_shop", "exclusion-without-key"),
    ),
    "foreign key without the key on the referencing side": (
        "ALTER TABLE public.orders ADD CONSTRAINT orders_id_key UNIQUE (id);"
        + LINES
        + "PRIMARY KEY (shop_id, id), "
        "CONSTRAINT order_lines_order FOREIGN KEY (order_id) REFERENCES public.orders (id));",
        ("public.order_lines", "order_lines_order", "fk-without-key"),
    ),
    "foreign key with the key mapped onto another column": (
        LINES + "PRIMARY KEY (shop_id, id), CONSTRAINT order_lines_order "
        "FOREIGN KEY (order_id, shop_id) REFERENCES public.orders (shop_id, id));",
        ("public.order_lines", "order_lines_order", "fk-without-key"),
    ),
    "foreign key between two co-location groups": (
        LINES + "PRIMARY KEY (shop_id, id), CONSTRAINT order_lines_club "
        "FOREIGN KEY (shop_id) REFERENCES public.clubs (id));",
        ("public.order_lines", "order_lines_club", "fk-not-colocated"),
    ),
    "foreign key from a distributed to a local table": (
        LINES + "PRIMARY KEY (shop_id, id), journal bigint "
        "CONSTRAINT order_lines_journal REFERENCES public.journal);",
        ("public.order_lines", "order_lines_journal", "fk-to-local"),
    ),
    "foreign key setting the key NULL": (
        LINES + "PRIMARY KEY (shop_id, id), CONSTRAINT order_lines_order "
        "FOREIGN KEY (shop_id, order_id) REFERENCES public.orders (shop_id, id) "
        "ON DELETE SET NULL (order_id));",
        ("public.order_lines", "order_lines_order", "fk-sets-key"),
    ),
    "foreign key from a reference to a distributed table": (
        "ALTER TABLE public.countries ADD COLUMN shop uuid "
        "CONSTRAINT countries_shop REFERENCES public.shops (id);",
        ("public.countries", "countries_shop", "reference-to-distributed"),
    ),
    "foreign key from a reference to a local table": (
        "ALTER TABLE public.countries ADD COLUMN entry bigint "
        "CONSTRAINT countries_entry REFERENCES public.journal (id);",
        ("public.countries", "countries_entry", "reference-to-local"),
    ),
    "foreign key from a local to a distributed table": (
        "ALTER TABLE public.journal ADD COLUMN shop uuid "
        "CONSTRAINT journal_shop REFERENCES public.shops (id);",
        ("public.journal", "journal_shop", "local-to-distributed"),
    ),
    "tenant key nullable": (
        "ALTER TABLE public.orders DROP CONSTRAINT orders_pkey, ADD UNIQUE (shop_id, id);"
        "ALTER TABLE public.orders ALTER COLUMN shop_id DROP NOT NULL;",
        ("public.orders", "shop_id", "key-nullable"),
    ),
    "tenant key missing": (
        "CREATE TABLE public.order_lines (id uuid PRIMARY KEY);",
        ("public.order_lines", "shop_id", "key-missing"),
    ),
    "unclassified table": (
        "CREATE TABLE public.coupons (code text PRIMARY KEY);",
        ("public.coupons", "public.coupons", "unclassified"),
    ),
}


def _plan(extra: str = "") -> Classification:
    return parse(tomllib.loads(PLAN + extra))


def _violations(url: str, sql: str, plan: Classification) -> set[tuple[str, str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)
        return set(violations(conn, plan))


def test_a_schema_that_keeps_the_rules_has_no_violation(empty_db_url: str) -> None:
    assert _violations(empty_db_url, BASE, _plan()) == set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_of_violation_is_found(empty_db_url: str, case: str) -> None:
    sql, expected = CASES[case]
    found = _violations(empty_db_url, BASE + sql, _plan())
    assert expected in found, found


def _probe_walk(url: str, exceptions: str) -> distribution.DistributionReport:
    """Two violations at the 'heads' of a hand-made schema, judged with `exceptions`."""
    plan = _plan(exceptions)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BASE + CASES["primary key without the key"][0])
        conn.execute("ALTER TABLE public.orders ADD CONSTRAINT orders_code UNIQUE (code)")
        state = distribution.State("bar_001", violations(conn, plan))
    tables = [name for name in plan.tables]
    return distribution.judge(
        distribution.Walk([distribution.State(None, {}), state], tables), plan
    )


def test_an_exception_silences_only_what_it_names(empty_db_url: str) -> None:
    report = _probe_walk(
        empty_db_url,
        '[[exception]]\ntable = "public.orders"\nobject = "orders_code"\n'
        'reason = "codes are unique across shops by construction"\n',
    )
    assert [(o.violation.table, o.violation.object) for o in report.failing] == [
        ("public.order_lines", "order_lines_pkey")
    ]
    assert [(o.violation.object, e.reason) for o, e in report.accepted] == [
        ("orders_code", "codes are unique across shops by construction")
    ]
    assert any("exception public.orders orders_code" in line for line in report.lines())
    assert report.to_dict()["exceptions"][0]["reason"].startswith("codes are unique")
    assert [f.rule for f in report.findings()] == ["distribution-key"]


def test_an_exception_that_matches_nothing_is_a_finding(empty_db_url: str) -> None:
    report = _probe_walk(
        empty_db_url,
        '[[exception]]\ntable = "public.orders"\nobject = "orders_gone"\nreason = "old"\n',
    )
    assert any("orders_gone matches no violation" in f.message for f in report.file_findings)


@pytest.mark.parametrize(
    "toml, complaint",
    [
        ('[[reference]]\ntable = "public.x"\n', "reason"),
        ('[[local]]\ntable = "public.countries"\nreason = "twice"\n', "classified twice"),
        ('[[exception]]\ntable = "public.x"\nreason = "r"\n', "object"),
        ('[[referenced]]\ntable = "public.x"\n', "unknown key"),
    ],
)
def test_a_malformed_classification_is_bad_input(toml: str, complaint: str) -> None:
    from toolkit.errors import BadInput

    with pytest.raises(BadInput, match=complaint):
        _plan("\n" + toml)


# -- the revision walk, on a copy of the checkout ------------------------------------------

PROBE = "CREATE TABLE public.probe_tabs (id uuid PRIMARY KEY, bar_id uuid NOT NULL);"
FIXED = (
    "ALTER TABLE public.probe_tabs DROP CONSTRAINT probe_tabs_pkey, ADD PRIMARY KEY (bar_id, id);"
)


def _project(tmp_path: Path, fix: bool, classify: bool = True) -> Path:
    """The checkout with bar_099 creating probe_tabs with PRIMARY KEY (id); with `fix`,
    bar_100 makes it (bar_id, id); with `classify`, probe_tabs is a bar table."""
    project = copy_checkout(tmp_path)
    add_bar_099(project, executing(PROBE))
    if fix:
        (project / "migrations" / "versions" / "bar_100_probe_fix.py").write_text(
            '"""probe fix"""\nfrom alembic import op\n\nrevision = "bar_100"\n'
            'down_revision = "bar_099"\nbranch_labels = None\ndepends_on = None\n\n\n'
            + executing(FIXED)
            + "\n\ndef downgrade() -> None:\n    pass\n"
        )
    if classify:
        toml = project / "migrations" / "distribution.toml"
        text = toml.read_text(encoding="utf-8")
        toml.write_text(
            text.replace(
                '    "public.bar_members",\n',
                '    "public.bar_members",\n    "public.probe_tabs",\n',
            ),
            encoding="utf-8",
        )
    return project


def _walked(db_url: str) -> distribution.DistributionReport:
    plan = distribution.load()
    return distribution.judge(distribution.walk(db_url, plan), plan)


def _about_probe(report: distribution.DistributionReport) -> list[str]:
    return [
        f"{f.file}:{f.line} {f.message}" for f in report.findings() if "probe_tabs" in f.message
    ]


def test_a_violation_a_later_revision_fixes_is_informational(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, fix=True))
    report = _walked(db_url)
    assert report.revisions == ["bar_099", "bar_100"]
    assert _about_probe(report) == []
    assert (
        "distribution: bar_099 public.probe_tabs probe_tabs_pkey (unique-without-key): "
        "fixed by bar_100"
    ) in report.lines()
    assert report.to_dict()["fixed_later"][0]["fixed_by"] == "bar_100"


def test_a_violation_still_at_the_heads_fails_at_its_revision(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, fix=False))
    found = _about_probe(_walked(db_url))
    # PostgreSQL named the primary key: the finding points at the CREATE TABLE line.
    assert len(found) == 1, found
    assert found[0].startswith("migrations/versions/bar_099_hazards.py:")
    assert "probe_tabs_pkey" in found[0] and ":0 " not in found[0]


def test_a_table_no_entry_classifies_fails(
    tmp_path: Path, in_project: Callable[[Path], None], db_url: str
) -> None:
    in_project(_project(tmp_path, fix=True, classify=False))
    found = _about_probe(_walked(db_url))
    assert len(found) == 1 and found[0].startswith("migrations/distribution.toml:"), found
    assert "not classified" in found[0]


# -- the real migrations --------------------------------------------------------------------


def _every_table(pg_server: Server, template_db: str) -> set[str]:
    with psycopg.connect(pg_server.url(template_db)) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname IN ('public', 'auth')"
        ).fetchall()
    return {r[0] for r in rows}


def test_every_table_the_migrations_create_is_classified(
    pg_server: Server, template_db: str
) -> None:
    plan = distribution.load()
    assert _every_table(pg_server, template_db) == set(plan.tables)


@pytest.fixture(scope="module")
def linted(pg_server: Server) -> tuple[int, dict[str, Any]]:
    """`venuedb lint --json` over the real migrations, once for the tests below (it walks
    every revision: tens of seconds)."""
    result = invoke("lint", "--scratch-url", pg_server.url("postgres"), "--json")
    return result.exit_code, as_json(result)


def test_lint_reports_the_classification_with_its_reasons(
    linted: tuple[int, dict[str, Any]],
) -> None:
    """Every reference and local table says why, and so does the one exception."""
    code, document = linted
    assert (code, document["findings"]) == (0, []), document["findings"]
    classification = document["distribution"]["classification"]
    assert {t["table"] for t in classification["reference"]} >= {
        "auth.users",
        "public.restaurants",
        "public.bars",
    }
    assert all(t["reason"] for t in classification["reference"] + classification["local"])
    assert len(document["distribution"]["revisions_checked"]) >= 35


def test_the_real_migrations_are_ready_to_distribute(linted: tuple[int, dict[str, Any]]) -> None:
    code, document = linted
    assert (code, document["distribution"]["violations"]) == (0, [])


def test_the_temporary_server_is_gone_after_use() -> None:
    with temporary_server() as url, psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
