"""The embedded server: idempotent start, stale pid files, busy ports, clear messages."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from toolkit.errors import BadInput, OperationFailed
from toolkit.server.embedded import EmbeddedServer, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    home = Path(tempfile.mkdtemp(prefix="venuedb-test-lifecycle-"))  # see conftest.pg_server
    srv = EmbeddedServer(home, settings={"fsync": "off"})
    yield srv
    srv.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_start_is_idempotent_and_serves_a_database(server: EmbeddedServer) -> None:
    port = free_port()
    first, message = server.start(port=port)
    assert first.state == "running" and first.port == port
    assert first.version and first.version.startswith("18")
    again, message = server.start()
    assert again.pid == first.pid and "already running" in message
    with psycopg.connect(server.url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("venuedb",)


def test_url_carries_a_password_that_is_required(server: EmbeddedServer) -> None:
    server.start()
    url = server.url()
    assert server.password() in url
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace(server.password(), "wrong"), connect_timeout=5)


def test_moving_a_running_server_to_another_port_is_refused(server: EmbeddedServer) -> None:
    status, _ = server.start()
    with pytest.raises(BadInput, match="already running on port"):
        server.start(port=(status.port or 0) + 1)


def test_stale_pid_file_is_reported_and_cleared(server: EmbeddedServer) -> None:
    server.start()
    server.stop()
    pid_file = server.data_dir / "postmaster.pid"
    pid_file.write_text(f"999999\n{server.data_dir}\n0\n{free_port()}\n\n127.0.0.1\n0\nready\n")
    status = server.status()
    assert status.state == "stale" and "stale postmaster.pid" in status.message
    started, message = server.start()
    assert started.state == "running" and "stale postmaster.pid" in message


def test_stop_leaves_a_pid_file_without_a_pid_and_says_why(server: EmbeddedServer) -> None:
    """A starting server has created postmaster.pid but not yet written its pid: stop must
    not remove the file (the server would run on, unseen), nor claim success."""
    server.stop()
    pid_file = server.data_dir / "postmaster.pid"
    pid_file.write_text("")
    try:
        with pytest.raises(OperationFailed, match="names no process yet"):
            server.stop()
        assert pid_file.exists()
    finally:
        pid_file.unlink(missing_ok=True)


def test_busy_port_gives_a_clear_message(server: EmbeddedServer) -> None:
    server.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        with pytest.raises(BadInput, match=f"port {busy} on 127.0.0.1 is in use"):
            server.start(port=busy)
    assert server.status().state == "stopped"


def test_status_of_an_uninitialised_home(tmp_path: Path) -> None:
    status = EmbeddedServer(tmp_path / "nothing").status()
    assert status.state == "not_initialised" and "venuedb db start" in status.message
