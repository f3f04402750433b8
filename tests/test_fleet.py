"""`venuedb fleet apply|verify|check|status --inventory FILE` over many databases of the
test server: canaries first, stop at the first failure (the rest skipped) or --continue,
one JSON document, an inventory checked in full before anything runs, no password shown."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import Server
from tests.queries import rows_at, scalar
from toolkit.engine.locks import DEPLOY_LOCK, NAMESPACE
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.revisions import script_directory
from toolkit.server.connection import Target

# An index the heads have (booking_017's): dropped, it is drift.
LAST_INDEX = "idx_booking_table_assignments_assigned_at"
# The booking branch's last revision, and the one before it: a database there has one
# revision to apply.
BOOKING_HEAD = next(h for h in script_directory().get_heads() if h.startswith("booking_"))
BEFORE_BOOKING_HEAD = str(script_directory().get_revision(BOOKING_HEAD).down_revision)


def _clones(server: Server, template: str, count: int, prefix: str) -> Iterator[list[str]]:
    names = [f"{prefix}_{uuid.uuid4().hex[:8]}_{i}" for i in range(count)]
    janitors = [server.janitor(name, template=template) for name in names]
    for janitor in janitors:
        janitor.init()
    yield [server.url(name) for name in names]
    for janitor in janitors:
        janitor.drop()


@pytest.fixture(scope="module")
def fleet_urls(pg_server: Server, template_db: str) -> Iterator[list[str]]:
    """Twelve databases at every head, only read by the tests that use them."""
    yield from _clones(pg_server, template_db, 12, "fleet")


@pytest.fixture(scope="module")
def before_last_booking_release(pg_server: Server, template_db: str) -> Iterator[str]:
    """A template one revision short of the heads (the booking head pending): an apply
    with little to do."""
    name = f"fleet_old_{uuid.uuid4().hex[:8]}"
    janitor = pg_server.janitor(name, template=template_db)
    janitor.init()
    run(
        Target(pg_server.url(name), "tests"),
        "downgrade",
        BEFORE_BOOKING_HEAD,
        RunOptions(actor="tests"),
    )
    yield name
    janitor.drop()


def _inventory(
    path: Path,
    urls: list[str],
    canaries: tuple[int, ...] = (),
    *,
    env: dict[int, str] | None = None,
    defaults: str = "",
) -> Path:
    """An inventory naming db-0, db-1, ... (the URL of db-i in the file, or the name of a
    variable when i is in `env`), db-i a canary when i is in `canaries`."""
    lines = [defaults] if defaults else []
    for i, url in enumerate(urls):
        lines += ["[[database]]", f'name = "db-{i}"']
        lines.append(f'url_env = "{env[i]}"' if env and i in env else f'url = "{url}"')
        lines += ["canary = true"] if i in canaries else []
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fleet(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("fleet", *args, "--json")
    return result.exit_code, as_json(result)


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in document["databases"]}


def _when(entry: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(entry[key])


def _drop_last_index(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX public.{LAST_INDEX}")


# -- verify: order, JSON, stopping and going on ---------------------------------------------


def test_verify_runs_the_canaries_first_then_every_database(
    fleet_urls: list[str], tmp_path: Path
) -> None:
    inventory = _inventory(tmp_path / "fleet.toml", fleet_urls, canaries=(4, 9))
    summary = tmp_path / "summary.json"
    code, document = _fleet(
        "verify",
        "--inventory",
        str(inventory),
        "--concurrency",
        "3",
        "--summary-file",
        str(summary),
    )
    assert code == 0, document
    assert document["status"] == "ok"
    assert document["summary"] == {"ok": 12, "failed": 0, "skipped": 0}
    names = [d["name"] for d in document["databases"]]
    assert names[:2] == ["db-4", "db-9"]
    assert sorted(names) == sorted(f"db-{i}" for i in range(12))
    canaries = [d for d in document["databases"] if d["canary"]]
    others = [d for d in document["databases"] if not d["canary"]]
    # Every canary finished before any other database started.
    assert max(_when(d, "finished_at") for d in canaries) <= min(
        _when(d, "started_at") for d in others
    )
    for entry in document["databases"]:
        assert (entry["status"], entry["exit_code"]) == ("ok", 0)
        assert isinstance(entry["duration_ms"], int)
        # The result is `venuedb verify --json`'s document for that database.
        assert entry["result"]["status"] == "clean"
        assert entry["result"]["drift_status"] == "compared"
        assert entry["result"]["postconditions"]
    assert json.loads(summary.read_text()) == document


def test_a_drifted_database_stops_the_rest(
    fleet_urls: list[str], db_url: str, tmp_path: Path
) -> None:
    _drop_last_index(db_url)
    urls = [*fleet_urls[:2], db_url, *fleet_urls[2:10]]
    inventory = _inventory(tmp_path / "fleet.toml", urls, canaries=(0,))
    result = invoke("fleet", "verify", "--inventory", str(inventory), "--concurrency", "1")
    assert result.exit_code == 1, result.output
    # A person's output: the table, the summary line, one progress line per database run.
    assert "fleet verify: 2 ok, 1 failed, 8 skipped, of 11" in result.stdout
    assert "SKIPPED" in result.stdout and "FAILED" in result.stdout
    assert "[3/11] db-2: failed (drift: " in result.stderr
    assert "[4/11]" not in result.stderr
    code, document = _fleet("verify", "--inventory", str(inventory), "--concurrency", "1")
    assert code == 1
    assert document["status"] == "failed"
    assert document["summary"] == {"ok": 2, "failed": 1, "skipped": 8}
    entries = _by_name(document)
    drifted = entries["db-2"]
    assert (drifted["status"], drifted["exit_code"]) == ("failed", 3)
    assert drifted["result"]["status"] == "drift"
    assert any(d["name"].endswith(LAST_INDEX) for d in drifted["result"]["drift"])
    for i in range(3, 11):
        skipped = entries[f"db-{i}"]
        assert skipped["status"] == "skipped"
        assert skipped["exit_code"] is None and skipped["result"] is None
        assert skipped["started_at"] is None and "db-2 failed" in skipped["detail"]


def test_continue_runs_every_database_past_a_failure(
    fleet_urls: list[str], db_url: str, tmp_path: Path
) -> None:
    _drop_last_index(db_url)
    urls = [*fleet_urls[:2], db_url, *fleet_urls[2:10]]
    inventory = _inventory(tmp_path / "fleet.toml", urls)
    code, document = _fleet(
        "verify", "--inventory", str(inventory), "--concurrency", "1", "--continue"
    )
    assert code == 1  # one failed: never 0
    assert document["summary"] == {"ok": 10, "failed": 1, "skipped": 0}
    assert _by_name(document)["db-2"]["result"]["status"] == "drift"
    assert all(
        d["result"]["status"] == "clean" for d in document["databases"] if d["name"] != "db-2"
    )


def test_a_failed_canary_stops_every_other_database(
    fleet_urls: list[str], db_url: str, tmp_path: Path
) -> None:
    _drop_last_index(db_url)
    urls = [*fleet_urls[:6], db_url]
    # The drifted canary is last in the file, the concurrency would run them all at once.
    inventory = _inventory(tmp_path / "fleet.toml", urls, canaries=(0, 6))
    code, document = _fleet("verify", "--inventory", str(inventory), "--concurrency", "8")
    assert code == 1
    entries = _by_name(document)
    assert [d["name"] for d in document["databases"][:2]] == ["db-0", "db-6"]
    assert entries["db-0"]["status"] == "ok" and entries["db-6"]["status"] == "failed"
    assert {entries[f"db-{i}"]["status"] for i in range(1, 6)} == {"skipped"}
    code, document = _fleet(
        "verify", "--inventory", str(inventory), "--concurrency", "8", "--continue"
    )
    assert code == 1
    assert document["summary"] == {"ok": 6, "failed": 1, "skipped": 0}


def test_only_selects_databases_and_an_unknown_name_is_refused(
    fleet_urls: list[str], tmp_path: Path
) -> None:
    inventory = _inventory(tmp_path / "fleet.toml", fleet_urls[:4], canaries=(3,))
    code, document = _fleet(
        "status", "--inventory", str(inventory), "--only", "db-1", "--only", "db-3"
    )
    assert code == 0, document
    assert [d["name"] for d in document["databases"]] == ["db-3", "db-1"]
    for entry in document["databases"]:
        assert entry["result"]["status"] == "ok" and entry["result"]["pending"] == []
        assert entry["result"]["branches"]["booking"] == BOOKING_HEAD
    code, document = _fleet("status", "--inventory", str(inventory), "--only", "db-7")
    assert code == 2
    assert document["status"] == "bad_input"
    assert (
        "--only db-7: not in" in document["error"] and "db-0, db-1, db-2, db-3" in document["error"]
    )


# -- check ----------------------------------------------------------------------------------


def test_check_keeps_each_database_checks_document_and_exit_code(
    fleet_urls: list[str], tmp_path: Path
) -> None:
    single = as_json(invoke("check", "--json", "--database-url", fleet_urls[0]))
    fine = [c["name"] for c in single["checks"] if c["status"] == "ok"][:3]
    assert fine, single
    inventory = _inventory(tmp_path / "fleet.toml", fleet_urls[:3])
    code, document = _fleet("check", *fine, "--inventory", str(inventory))
    assert code == 0, document
    for entry in document["databases"]:
        assert [c["name"] for c in entry["result"]["checks"]] == fine
        assert entry["result"]["status"] == "ok"
    # Every check: some measure nothing on these empty databases, `venuedb check` exits 5
    # for each, and the fleet fails; --continue so that all three run.
    code, document = _fleet("check", "--inventory", str(inventory), "--continue")
    assert (single["status"], code) == ("no_data", 1)
    assert {(d["status"], d["exit_code"]) for d in document["databases"]} == {("failed", 5)}
    assert all(d["result"]["counts"] == single["counts"] for d in document["databases"])


# -- apply ----------------------------------------------------------------------------------


@pytest.fixture
def pending(
    pg_server: Server, before_last_booking_release: str
) -> Iterator[Callable[[int], list[str]]]:
    """pending(n): n new databases with the booking head still to apply (dropped after)."""
    made: list[Iterator[list[str]]] = []

    def make(count: int) -> list[str]:
        made.append(_clones(pg_server, before_last_booking_release, count, "fleet_apply"))
        return next(made[-1])

    yield make
    for clones in made:
        next(clones, None)


@pytest.fixture(scope="module")
def shared_pending(pg_server: Server, before_last_booking_release: str) -> Iterator[str]:
    """One database with the booking head pending, that no test may apply to."""
    for urls in _clones(pg_server, before_last_booking_release, 1, "fleet_never"):
        yield urls[0]


def _deployments(url: str) -> list[tuple[Any, ...]]:
    return rows_at(
        url,
        "SELECT id, command, result, actor, to_revisions->>'booking' FROM venuedb.deployments "
        "WHERE actor = 'fleet-tests' ORDER BY id",
    )


def test_apply_gives_every_database_its_own_deployment_record(
    pending: Callable[[int], list[str]], tmp_path: Path
) -> None:
    # Each apply is a process of its own (a few seconds each on a busy machine): five.
    pending_urls = pending(5)
    inventory = _inventory(tmp_path / "fleet.toml", pending_urls, canaries=(1, 3))
    code, document = _fleet(
        "apply",
        "--inventory",
        str(inventory),
        "--actor",
        "fleet-tests",
        "--lock-timeout",
        "2s",
        "--concurrency",
        "3",
    )
    assert code == 0, document
    assert document["summary"] == {"ok": 5, "failed": 0, "skipped": 0}
    assert [d["name"] for d in document["databases"][:2]] == ["db-1", "db-3"]
    canaries, others = document["databases"][:2], document["databases"][2:]
    assert max(_when(d, "finished_at") for d in canaries) <= min(
        _when(d, "started_at") for d in others
    )
    entries = _by_name(document)
    for i, url in enumerate(pending_urls):
        result = entries[f"db-{i}"]["result"]  # `venuedb apply --json`'s document
        assert result["status"] == "ok" and result["done"] == [BOOKING_HEAD]
        ((deployment_id, command, outcome, actor, booking),) = _deployments(url)
        assert (command, outcome, actor, booking) == (
            "apply",
            "succeeded",
            "fleet-tests",
            BOOKING_HEAD,
        )
        assert result["deployment_id"] == deployment_id
        with psycopg.connect(url) as conn:
            assert (
                scalar(
                    conn,
                    "SELECT count(*) FROM alembic_version WHERE version_num = %s",
                    (BOOKING_HEAD,),
                )
                == 1
            )


def test_apply_stops_at_a_database_whose_deploy_lock_is_held(
    pending: Callable[[int], list[str]], tmp_path: Path
) -> None:
    urls = pending(3)
    inventory = _inventory(tmp_path / "fleet.toml", urls)
    with psycopg.connect(urls[1], autocommit=True) as other_deploy:
        other_deploy.execute("SELECT pg_advisory_lock(%s, %s)", (NAMESPACE, DEPLOY_LOCK))
        code, document = _fleet(
            "apply",
            "--inventory",
            str(inventory),
            "--concurrency",
            "1",
            "--lock-wait",
            "0s",
            "--actor",
            "fleet-tests",
        )
    assert code == 1
    entries = _by_name(document)
    assert [entries[f"db-{i}"]["status"] for i in range(3)] == ["ok", "failed", "skipped"]
    assert (entries["db-1"]["exit_code"], entries["db-1"]["result"]["status"]) == (4, "locked")
    assert [len(_deployments(url)) for url in urls] == [1, 0, 0]


def test_apply_refuses_a_bad_option_before_any_database(
    pending: Callable[[int], list[str]], tmp_path: Path
) -> None:
    pending_urls = pending(2)
    inventory = _inventory(tmp_path / "fleet.toml", pending_urls)
    code, document = _fleet("apply", "--inventory", str(inventory), "--lock-timeout", "0")
    assert code == 2 and "--lock-timeout" in document["error"]
    assert [_deployments(url) for url in pending_urls[:2]] == [[], []]


# -- the inventory, checked before anything runs ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[database]]\nname = "a"\nurl = "{url}"\nregion = "eu"\n',
            "database 1 ('a'): unknown key 'region'",
        ),
        (
            '[[database]]\nname = "a"\nurl = "{url}"\n[[database]]\nname = "a"\nurl = "{url}"\n',
            "database 2 repeats the name 'a'",
        ),
        (
            '[[database]]\nname = "a"\nurl = "{url}"\n[[database]]\nname = "b"\n',
            "database 2 ('b'): give exactly one of url and url_env",
        ),
        (
            '[[database]]\nname = "a"\nurl = "{url}"\nurl_env = "X"\n',
            "database 1 ('a'): give exactly one of url and url_env",
        ),
        (
            '[[database]]\nname = "a"\nurl = "{url}"\n[[database]]\nname = "b"\nurl_env = "FLEET_UNSET_URL"\n',
            "database 2 ('b'): url_env FLEET_UNSET_URL is not set",
        ),
        ("[defaults]\nconcurrency = 4\n", "names no database"),
        (
            '[defaults]\nconcurrency = 0\n[[database]]\nname = "a"\nurl = "{url}"\n',
            "concurrency must be a whole number from 1 to 64",
        ),
        (
            '[defaults]\nretries = 2\n[[database]]\nname = "a"\nurl = "{url}"\n',
            "[defaults]: unknown key 'retries'",
        ),
        (
            '[[database]]\nname = "a"\nurl = "{url}"\ncanary = "yes"\n',
            "canary must be true or false",
        ),
        ('[[database]]\nname = "a b"\nurl = "{url}"\n', "name must be letters, digits"),
        (
            '[[database]]\nname = "a"\nurl = "mysql://h/db"\n',
            "database 1 ('a'): malformed database URL",
        ),
        ('[[database]\nname = "a"\n', "is not valid TOML"),
        ('[[databases]]\nname = "a"\nurl = "{url}"\n', "unknown top-level key 'databases'"),
    ],
)
def test_a_bad_inventory_exits_2_naming_the_entry_and_runs_nothing(
    shared_pending: str, tmp_path: Path, body: str, message: str
) -> None:
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(body.replace("{url}", shared_pending), encoding="utf-8")
    code, document = _fleet("apply", "--inventory", str(inventory), "--actor", "fleet-tests")
    assert code == 2, document
    assert document["status"] == "bad_input"
    assert message in document["error"]
    assert _deployments(shared_pending) == []  # the valid entry was not applied either


def test_a_missing_inventory_and_a_bad_concurrency_exit_2(tmp_path: Path) -> None:
    code, document = _fleet("verify", "--inventory", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read the inventory" in document["error"]
    inventory = _inventory(tmp_path / "fleet.toml", ["postgresql://u@127.0.0.1:1/db"])
    code, document = _fleet("verify", "--inventory", str(inventory), "--concurrency", "0")
    assert code == 2 and "--concurrency must be" in document["error"]
    code, document = _fleet("verify", "--inventory", str(inventory), "--release", "nope")
    assert code == 2 and "unknown release 'nope'" in document["error"]


# -- passwords ------------------------------------------------------------------------------


def test_url_env_reads_the_url_and_no_password_is_ever_printed(
    fleet_urls: list[str],
    db_url: str,
    pg_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = pg_server.password
    assert password and password in fleet_urls[0], "the test needs URLs with a password"
    _drop_last_index(db_url)
    monkeypatch.setenv("FLEET_DB1_URL", fleet_urls[1])
    urls = [fleet_urls[0], "unused", db_url, "postgresql://u:s3cret-pw@127.0.0.1:1/unreachable"]
    inventory = _inventory(tmp_path / "fleet.toml", urls, canaries=(1,), env={1: "FLEET_DB1_URL"})
    summary = tmp_path / "summary.json"
    written = []
    for extra in ([], ["--json"]):
        result = invoke(
            "fleet",
            "verify",
            "--inventory",
            str(inventory),
            "--continue",
            "--summary-file",
            str(summary),
            *extra,
        )
        assert result.exit_code == 1, result.output
        written.append(summary.read_text())
        for text in (result.stdout, result.stderr, written[-1]):
            assert password not in text and "s3cret-pw" not in text
    document = json.loads(written[-1])
    entries = _by_name(document)
    assert entries["db-1"]["status"] == "ok" and entries["db-1"]["canary"]
    assert entries["db-3"]["exit_code"] == 2 and "cannot reach" in entries["db-3"]["detail"]
    assert entries["db-0"]["url"] == fleet_urls[0].replace(password, "***")
    status = invoke("fleet", "status", "--inventory", str(inventory), "--continue")
    assert password not in status.output and "s3cret-pw" not in status.output
    monkeypatch.delenv("FLEET_DB1_URL")
    code, document = _fleet("verify", "--inventory", str(inventory))
    assert code == 2 and "url_env FLEET_DB1_URL is not set" in document["error"]


def test_the_help_teaches_with_an_inventory() -> None:
    result = invoke("fleet", "--help")
    assert result.exit_code == 0
    for text in ("[[database]]", "url_env", "canary = true", "--continue", "skipped"):
        assert text in result.stdout
    for command in ("apply", "verify", "check", "status"):
        sub = invoke("fleet", command, "--help")
        assert sub.exit_code == 0 and "--inventory" in sub.stdout and "Example:" in sub.stdout


# -- the expected side, read once; scratch references built one at a time ----------------------


def test_the_project_files_are_read_once_only_inside_a_fleet_run() -> None:
    from toolkit.engine import revisions as revs
    from toolkit.engine.releases import load_releases
    from toolkit.read_once import project_files_fixed

    assert load_releases() is not load_releases()  # every other command reads them again
    with project_files_fixed():
        assert load_releases() is load_releases()
        assert revs.all_steps() is revs.all_steps()
    assert revs.all_steps() is not revs.all_steps()


def test_verify_below_the_heads_builds_each_scratch_reference_in_turn(
    pending: Callable[[int], list[str]], tmp_path: Path
) -> None:
    """Two databases a revision short of the heads, verified at once: each needs a scratch
    database migrated in this process (Alembic's proxies are module-global), one at a time."""
    urls = pending(2)
    inventory = _inventory(tmp_path / "fleet.toml", urls)
    code, document = _fleet("verify", "--inventory", str(inventory), "--concurrency", "2")
    assert code == 0, document
    for entry in document["databases"]:
        assert entry["result"]["status"] == "clean"
        assert entry["result"]["drift_reference"].startswith("a scratch database migrated to")
