"""`venuedb exporter`: every scrape parsed with prometheus_client's parser and held to
`venuedb check --json` and the check headers; no transaction left open between scrapes;
concurrent scrapes run the checks once; the database gone is venuedb_up 0 and nothing
else, and it recovers; the HTTP server on an ephemeral port, the CLI as a real process."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.clihelpers import as_json, invoke, spawn
from tests.conftest import Server
from toolkit.deployments import store as records
from toolkit.engine.releases import load_releases
from toolkit.integrity import health_checks as health
from toolkit.integrity.exporter import Exporter
from toolkit.integrity.exporter_http import ExporterServer, bind
from toolkit.runbook import backfill as backfills
from toolkit.server.connection import Target
from toolkit.server.embedded import free_port

NAMES = {
    "venuedb_up",
    "venuedb_check_value",
    "venuedb_check_status",
    "venuedb_check_threshold",
    "venuedb_check_window_seconds",
    "venuedb_check_duration_seconds",
    "venuedb_release_applied",
    "venuedb_last_deployment_timestamp_seconds",
    "venuedb_backfill_rows_remaining",
    "venuedb_backfill_done_ratio",
}
APP = "venuedb exporter"
LOCK = 4242  # the advisory lock a test holds to keep a scrape waiting inside its check
HEADER = (
    "-- name: {0}\n-- domain: core\n-- severity: critical\n-- critical: > 5\n"
    "-- unit: n\n-- returns: value\n-- description: d\n-- runbook: r\n"
)


# -- helpers --------------------------------------------------------------------------


def parse(text: str) -> dict[str, Any]:
    """Every family of a scrape by name; the parser refuses anything malformed."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in found, f"{family.name} twice"
        found[family.name] = family
    return found


def samples(families: dict[str, Any], name: str) -> list[Sample]:
    return list(families[name].samples) if name in families else []


def by_check(families: dict[str, Any], name: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples(families, name):
        out.setdefault(s.labels["check"], []).append(s)
    return out


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def get(url: str) -> tuple[int, str, str]:
    try:
        with _OPENER.open(url, timeout=120) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(server: ExporterServer) -> dict[str, Any]:
    status, content_type, body = get(server.url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), body
    return parse(body)


def wait_until(what: str, condition: Callable[[], Any], limit: float = 60) -> Any:
    """Poll until condition() is truthy (bounded: a hang fails the test, it never waits)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def sessions(url: str, where: str = "true") -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, wait_event_type FROM pg_stat_activity "
            f"WHERE application_name = %s AND datname = current_database() AND ({where})",
            (APP,),
        ).fetchall()


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def check_file(directory: Path, name: str, sql: str) -> None:
    (directory / f"{name}.sql").write_text(HEADER.format(name) + sql)


def waiting_checks(directory: Path) -> list[health.HealthCheck]:
    """A check that waits for the test's advisory lock, and one that does not."""
    check_file(directory, "waits", f"SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared({LOCK})) l")
    check_file(directory, "fine", "SELECT 2")
    return health.load_checks(directory)


@pytest.fixture
def serve() -> Iterator[Callable[[Exporter], ExporterServer]]:
    """Start an exporter's HTTP server on 127.0.0.1:0 in a thread; stopped at the end."""
    running: list[tuple[ExporterServer, threading.Thread]] = []

    def start(exporter: Exporter) -> ExporterServer:
        server = bind(exporter, "127.0.0.1:0")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


class LoggingExporter(Exporter):
    """An Exporter that keeps the lines it logs, in `logged`."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.logged: list[str] = []
        super().__init__(*args, log=self.logged.append, **kw)


def exporter_for(
    url: str, checks: list[health.HealthCheck] | None = None, **kw: Any
) -> LoggingExporter:
    return LoggingExporter(
        Target(url, "tests"),
        health.load_checks() if checks is None else checks,
        kw.pop("declared_backfills", None),
        **kw,
    )


# -- what a scrape says ---------------------------------------------------------------


def test_every_metric_agrees_with_venuedb_check_and_the_headers(
    db_url: str, serve: Callable[[Exporter], ExporterServer]
) -> None:
    # A critical check (RLS off on sales), rate checks without data (a fresh database),
    # row checks measuring 0: every kind of state at once.
    _sql(db_url, "ALTER TABLE sales DISABLE ROW LEVEL SECURITY")
    server = serve(exporter_for(db_url))
    families = scrape(server)
    document = as_json(invoke("check", "--json", "--database-url", db_url))
    expected = {c["name"]: c for c in document["checks"]}

    assert set(families) == NAMES
    for family in families.values():
        assert family.type == "gauge" and family.documentation, family.name
    (up,) = samples(families, "venuedb_up")
    assert up.value == 1

    values = by_check(families, "venuedb_check_value")
    statuses = by_check(families, "venuedb_check_status")
    assert set(statuses) == set(expected)
    for name, check in expected.items():
        states = {s.labels["state"]: s.value for s in statuses[name]}
        assert set(states) == set(health.STATUSES), name
        assert [state for state, v in states.items() if v == 1] == [check["status"]], name
        assert sum(states.values()) == 1, name
        assert {(s.labels["domain"], s.labels["severity"]) for s in statuses[name]} == {
            (check["domain"], check["severity"])
        }
        if check["value"] is None or check["status"] == "error" or not check["applicable"]:
            assert name not in values, f"{name} has no value, yet a sample: {values.get(name)}"
        else:
            (sample,) = values[name]
            assert sample.value == pytest.approx(check["value"]), name
            assert (sample.labels["domain"], sample.labels["unit"]) == (
                check["domain"],
                check["unit"],
            )
    # The states this database is in, so the loop above met each kind.
    assert expected["rls_enabled_on_protected_tables"]["status"] == "critical"
    assert values["rls_enabled_on_protected_tables"][0].value == 1
    assert expected["confirmation_rate"]["status"] == "no_data"
    assert "confirmation_rate" not in values  # never a 0 for "nothing measured"
    assert values["orphaned_confirmed_bookings"][0].value == 0  # rows: none is a measurement

    assert {
        (s.labels["check"], s.labels["level"], s.labels["op"], s.value)
        for s in samples(families, "venuedb_check_threshold")
    } == _thresholds_in_the_headers()

    windows = {
        s.labels["check"]: s.value for s in samples(families, "venuedb_check_window_seconds")
    }
    assert windows == {  # each check's own window; none for a check that reads none
        name: float(r["window_seconds"])
        for name, r in expected.items()
        if r["window_seconds"] is not None
    }
    durations = by_check(families, "venuedb_check_duration_seconds")
    assert set(durations) == set(expected)
    assert all(s.value >= 0 for (s,) in durations.values())


def _thresholds_in_the_headers() -> set[tuple[str, str, str, float]]:
    """Read the headers here, independently of the exporter's parser."""
    expected = set()
    for path in sorted(health.checks_dir().glob("*.sql")):
        for line in path.read_text().splitlines():
            match = re.match(r"^-- (warning|critical): (.*)$", line)
            if not match:
                continue
            level, text = match[1], match[2].strip()
            outside = re.fullmatch(r"outside (\S+)\s*\.\.\s*(\S+)", text)
            if outside:
                expected.add((path.stem, level, "<", float(outside[1])))
                expected.add((path.stem, level, ">", float(outside[2])))
            else:
                op, number = text.split()
                expected.add((path.stem, level, op, float(number)))
    assert expected
    return expected


def test_releases_and_the_last_deployment(
    db_url: str, serve: Callable[[Exporter], ExporterServer]
) -> None:
    families = scrape(serve(exporter_for(db_url)))
    applied = {
        (s.labels["release"], s.labels["branch"]): s.value
        for s in samples(families, "venuedb_release_applied")
    }
    # The test database has every migration applied.
    assert applied == {(r.name, r.branch): 1.0 for r in load_releases()}
    with psycopg.connect(db_url) as conn:
        newest = records.last_deployment(conn)
    assert newest is not None and newest["finished_at"]
    (last,) = samples(families, "venuedb_last_deployment_timestamp_seconds")
    assert last.value == pytest.approx(datetime.fromisoformat(newest["finished_at"]).timestamp())


def test_a_release_not_applied_reads_0(
    db_url: str, serve: Callable[[Exporter], ExporterServer]
) -> None:
    from toolkit.engine.revisions import script_directory

    latest = load_releases()[-1]
    down = script_directory().get_revision(latest.first).down_revision
    # What a rollback of the release leaves in alembic_version, all the exporter reads.
    with psycopg.connect(db_url, autocommit=True) as conn:
        moved = conn.execute(
            "UPDATE alembic_version SET version_num = %s WHERE version_num = %s",
            (down, latest.last),
        ).rowcount
    assert moved == 1
    families = scrape(serve(exporter_for(db_url)))
    applied = {s.labels["release"]: s.value for s in samples(families, "venuedb_release_applied")}
    assert applied[latest.name] == 0
    assert sum(v == 0 for v in applied.values()) == 1 and applied["core"] == 1


BACKFILL_SETUP = """
CREATE TABLE xp_items (id bigint PRIMARY KEY, value int NOT NULL, doubled int);
INSERT INTO xp_items (id, value) SELECT g, g FROM generate_series(1, 100) g;
CREATE FUNCTION xp_double(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    UPDATE xp_items SET doubled = value * 2 WHERE id > coalesce(p_from, -1) AND id <= p_to;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
"""


def test_backfill_progress_is_what_the_dry_run_counts(
    db_url: str, serve: Callable[[Exporter], ExporterServer]
) -> None:
    _sql(db_url, BACKFILL_SETUP)
    items = backfills.Backfill("xp", "xp_items", "id", "xp_double", "doubled IS NULL", "double")
    absent = backfills.Backfill("absent", "no_such_table", "id", "nothing", "true", "")
    server = serve(exporter_for(db_url, declared_backfills=[items, absent]))
    target = Target(db_url, "tests")

    def progress() -> tuple[float, float, float]:
        families = scrape(server)
        remaining = {
            s.labels["backfill"]: s.value
            for s in samples(families, "venuedb_backfill_rows_remaining")
        }
        ratio = {
            s.labels["backfill"]: s.value for s in samples(families, "venuedb_backfill_done_ratio")
        }
        assert set(remaining) == set(ratio) == {"xp"}  # no table: no sample, never a 0
        dry = backfills.run(target, items, backfills.Options(dry_run=True)).total
        return remaining["xp"], ratio["xp"], float(dry or 0)

    remaining, ratio, dry = progress()
    assert (remaining, ratio, dry) == (100, 0, 100)
    backfills.run(target, items, backfills.Options(batch_size=10, max_rows=30))
    remaining, ratio, dry = progress()
    assert (remaining, dry) == (70, 70) and ratio == pytest.approx(30 / 100)
    backfills.run(target, items, backfills.Options(batch_size=50))
    remaining, ratio, dry = progress()
    assert (remaining, ratio, dry) == (0, 1, 0)


def test_a_broken_check_is_error_without_a_value_and_up_stays_1(
    db_url: str, tmp_path: Path, serve: Callable[[Exporter], ExporterServer]
) -> None:
    check_file(tmp_path, "broken", "SELECT nonsense FROM nowhere")
    check_file(tmp_path, "breached", "SELECT 9")
    families = scrape(serve(exporter_for(db_url, health.load_checks(tmp_path))))
    assert samples(families, "venuedb_up")[0].value == 1
    states = {
        (s.labels["check"], s.labels["state"]): s.value
        for s in samples(families, "venuedb_check_status")
    }
    assert states[("broken", "error")] == 1 and states[("breached", "critical")] == 1
    assert set(by_check(families, "venuedb_check_value")) == {"breached"}


def test_a_role_without_rights_gets_errors_and_the_parts_it_cannot_read_left_out(
    db_url: str, pg_server: Server, serve: Callable[[Exporter], ExporterServer]
) -> None:
    role = f"xp_monitor_{uuid.uuid4().hex[:8]}"
    _sql(db_url, f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")  # no grant at all
    try:
        dbname = db_url.rsplit("/", 1)[1]
        exporter = exporter_for(
            f"postgresql://{role}:pw@{pg_server.host}:{pg_server.port}/{dbname}"
        )
        families = scrape(serve(exporter))
    finally:
        _sql(db_url, f"DROP OWNED BY {role}")
        _sql(db_url, f"DROP ROLE {role}")
    assert samples(families, "venuedb_up")[0].value == 1  # it connected and ran the checks
    errored = {
        s.labels["check"]
        for s in samples(families, "venuedb_check_status")
        if s.labels["state"] == "error" and s.value == 1
    }
    assert errored and not errored & set(by_check(families, "venuedb_check_value"))
    # Not readable: left out (never a 0 that reads "no release applied") and logged once.
    assert "venuedb_release_applied" not in families
    assert any("releases left out: permission denied" in line for line in exporter.logged)


# -- transactions, concurrency, the database going away --------------------------------


def test_no_transaction_is_left_open_between_scrapes_and_two_scrapes_run_the_checks_once(
    db_url: str, tmp_path: Path, serve: Callable[[Exporter], ExporterServer]
) -> None:
    exporter = exporter_for(db_url, waiting_checks(tmp_path), timeout_ms=120_000)
    server = serve(exporter)
    scrape(server)
    # Every transaction ended before the answer; then the connections closed, so between
    # scrapes the exporter has no session at all (a closing backend may linger a moment).
    assert sessions(db_url, "state = 'idle in transaction'") == []
    wait_until("the exporter's sessions to end", lambda: sessions(db_url) == [])
    answers: list[str] = []

    def fetch() -> None:
        answers.append(get(server.url + "/metrics")[2])

    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        first = threading.Thread(target=fetch)
        first.start()
        # The scrape waits inside its check, under the exporter's own application_name.
        wait_until(
            "the scrape to wait for the lock", lambda: sessions(db_url, "wait_event_type = 'Lock'")
        )
        second = threading.Thread(target=fetch)
        second.start()
        wait_until("the second request to wait for the first scrape", lambda: exporter.waiting == 1)
        assert len(sessions(db_url)) == 1  # the second request runs no check of its own
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
        first.join()
        second.join()
    assert exporter.runs == 2  # the first scrape, then the one both requests shared
    assert len(answers) == 2 and answers[0] == answers[1]
    assert samples(parse(answers[0]), "venuedb_up")[0].value == 1
    assert sessions(db_url, "state = 'idle in transaction'") == []
    wait_until("the exporter's sessions to end", lambda: sessions(db_url) == [])


def test_a_terminated_backend_reads_up_0_then_the_next_scrape_recovers(
    db_url: str, tmp_path: Path, serve: Callable[[Exporter], ExporterServer]
) -> None:
    exporter = exporter_for(db_url, waiting_checks(tmp_path), timeout_ms=120_000)
    server = serve(exporter)
    answers: list[dict[str, Any]] = []
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        fetch = threading.Thread(target=lambda: answers.append(scrape(server)))
        fetch.start()
        ((pid, _, _),) = wait_until(
            "the scrape to wait for the lock", lambda: sessions(db_url, "wait_event_type = 'Lock'")
        )
        holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
        fetch.join()
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
    (down,) = answers
    assert set(down) == {"venuedb_up"} and samples(down, "venuedb_up")[0].value == 0
    assert any("venuedb_up 0" in line for line in exporter.logged)
    back = scrape(server)
    assert samples(back, "venuedb_up")[0].value == 1
    assert {s.labels["check"]: s.value for s in samples(back, "venuedb_check_value")} == {
        "waits": 1,
        "fine": 2,
    }
    assert any("answers again" in line for line in exporter.logged)


def test_a_closed_port_is_up_0_and_nothing_else_with_no_password_shown(
    serve: Callable[[Exporter], ExporterServer],
) -> None:
    url = f"postgresql://postgres:s3cret-Pw@127.0.0.1:{free_port()}/venuedb"
    exporter = exporter_for(url)
    families = scrape(serve(exporter))
    assert set(families) == {"venuedb_up"} and samples(families, "venuedb_up")[0].value == 0
    assert exporter.logged and all("s3cret-Pw" not in line for line in exporter.logged)
    once = invoke("exporter", "--once", "--database-url", url)
    assert once.exit_code == 2, once.output
    assert set(parse(once.stdout)) == {"venuedb_up"}
    assert "s3cret-Pw" not in once.stdout + once.stderr
    assert "postgres:***@" in once.stderr


def test_a_database_that_refuses_connections_then_comes_back(
    db_url: str, pg_server: Server, serve: Callable[[Exporter], ExporterServer]
) -> None:
    server = serve(exporter_for(db_url))
    dbname = db_url.rsplit("/", 1)[1]
    admin = pg_server.url("postgres")
    _sql(admin, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
    try:
        gone = scrape(server)
    finally:
        _sql(admin, f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
    assert set(gone) == {"venuedb_up"} and samples(gone, "venuedb_up")[0].value == 0
    assert samples(scrape(server), "venuedb_up")[0].value == 1


# -- the HTTP endpoint and the command line --------------------------------------------


def test_index_page_and_404(db_url: str, serve: Callable[[Exporter], ExporterServer]) -> None:
    server = serve(exporter_for(db_url))
    status, content_type, body = get(server.url + "/")
    assert status == 200 and content_type.startswith("text/html") and 'href="/metrics"' in body
    assert db_url.rsplit("@", 1)[1] not in body  # not even the host of the database
    for path in ("/nope", "/metrics/extra", "/favicon.ico"):
        assert get(server.url + path)[0] == 404
    assert get(server.url + "/metrics?debug=1")[0] == 200


def test_help_teaches() -> None:
    text = invoke("exporter", "--help").stdout
    for needle in ("--listen", "--once", "--database-url", "19187", "venuedb_up", "SIGTERM"):
        assert needle in text, needle


@pytest.mark.parametrize(
    "listen", ["nonsense", "127.0.0.1", "127.0.0.1:99999", "::1:9000", "127.0.0.1:http", ""]
)
def test_a_bad_listen_exits_2_with_nothing_started(listen: str) -> None:
    result = invoke("exporter", "--listen", listen, "--database-url", "postgresql://u:pw@h/d")
    assert result.exit_code == 2, result.output
    assert "nothing was started" in result.stderr and "Traceback" not in result.output


def test_a_port_in_use_exits_2(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("exporter", "--listen", f"127.0.0.1:{port}", "--database-url", db_url)
    assert result.exit_code == 2, result.output
    assert f"cannot listen on '127.0.0.1:{port}'" in result.stderr


def test_once_exits_as_venuedb_check_does(db_url: str) -> None:
    fresh = invoke("exporter", "--once", "--database-url", db_url)
    check = invoke("check", "--database-url", db_url)
    assert fresh.exit_code == check.exit_code == 5  # rates without data on a fresh database
    assert samples(parse(fresh.stdout), "venuedb_up")[0].value == 1
    _sql(db_url, "ALTER TABLE sales DISABLE ROW LEVEL SECURITY")
    assert invoke("exporter", "--once", "--database-url", db_url).exit_code == 1


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_command_serves_until_a_signal_stops_it(
    db_url: str, pg_server: Server, stop: signal.Signals
) -> None:
    process = spawn("exporter", "--listen", "127.0.0.1:0", "--database-url", db_url)
    try:
        assert process.stderr is not None
        lines: list[str] = []
        while not any("serving http://" in line for line in lines):
            line = process.stderr.readline()
            assert line, "".join(lines)  # the process ended before serving
            lines.append(line)
        serving = re.search(r"serving (http://\S+)/metrics", lines[-1])
        assert serving, lines[-1]
        url = serving[1]
        status, _, body = get(url + "/metrics")
        assert status == 200 and samples(parse(body), "venuedb_up")[0].value == 1
        process.send_signal(stop)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    output = "".join(lines) + rest
    assert f"stopped ({stop.name})" in output and "Traceback" not in output
    if pg_server.password:  # the embedded server's URL carries one
        assert pg_server.password not in output
    wait_until("the exporter's sessions to end", lambda: sessions(db_url) == [])
