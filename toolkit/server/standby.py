"""Whether a database session may write: a hot standby (in recovery), or a session whose
transactions are read-only (`default_transaction_read_only = on`, e.g. a read-only role).

The read-only commands (verify, check, status, records) take a path that writes nothing
on such a session; the commands that must write refuse before doing anything, naming
the standby's primary (from `primary_conninfo`, else the WAL receiver's view of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.errors import BadInput

if TYPE_CHECKING:
    import psycopg

    from toolkit.server.connection import Target


@dataclass(frozen=True)
class ReadOnly:
    """Why a session cannot write."""

    in_recovery: bool  # a hot standby; else a read-only transaction default on a primary
    primary: str | None  # host:port of a standby's primary, when the session may see it

    def describe(self) -> str:
        if self.in_recovery:
            return "a hot standby (read-only, in recovery)"
        return "read-only for this session (default_transaction_read_only = on)"

    def where_to_write(self) -> str:
        """Where a command that writes must run instead, e.g. `on its primary, host:5432`."""
        if not self.in_recovery:
            return "with a role or connection whose transactions may write"
        if self.primary:
            return f"on its primary, {self.primary}"
        return (
            "on its primary (not named here: this role may read neither primary_conninfo "
            "nor pg_stat_wal_receiver)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "in_recovery": self.in_recovery,
            "primary": self.primary,
            "what": self.describe(),
        }


def read_only(conn: psycopg.Connection[Any]) -> ReadOnly | None:
    """None when `conn`'s next transaction may write; else why it may not. Reads only."""
    from toolkit.server.connection import scalar

    if scalar(conn, "SELECT pg_is_in_recovery()"):
        return ReadOnly(True, _primary(conn))
    if scalar(conn, "SELECT current_setting('transaction_read_only')::boolean"):
        return ReadOnly(False, None)
    return None


def _primary(conn: psycopg.Connection[Any]) -> str | None:
    """host:port the standby replicates from (never its password): primary_conninfo is
    readable by superusers and pg_read_all_settings only; pg_stat_wal_receiver's sender
    columns by those who may read all statistics. None when neither says."""
    import psycopg

    from toolkit.server.connection import scalar

    try:
        with conn.transaction():  # a savepoint: a refused SHOW leaves no aborted transaction
            conninfo = str(scalar(conn, "SHOW primary_conninfo"))
    except psycopg.errors.InsufficientPrivilege:
        conninfo = ""
    if conninfo:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            params = {}
        hosts = str(params.get("host") or params.get("hostaddr") or "")
        if hosts:
            return _host_port(hosts, str(params.get("port") or ""))
    row = conn.execute("SELECT sender_host, sender_port FROM pg_stat_wal_receiver").fetchone()
    if row is None or not row[0]:
        return None
    return _host_port(str(row[0]), "" if row[1] is None else str(row[1]))


def _host_port(hosts: str, ports: str) -> str:
    """libpq's host and port lists (host=a,b port=1,2) as `a:1, b:2`; 5432 when unset."""
    host_list = hosts.split(",")
    port_list = ports.split(",") if ports else []
    pairs = []
    for i, host in enumerate(host_list):
        port = port_list[i] if i < len(port_list) else (port_list[0] if port_list else "")
        shown = f"[{host}]" if ":" in host else host
        pairs.append(f"{shown}:{port or 5432}")
    return ", ".join(pairs)


def refusal(target: Target, command: str, why: ReadOnly) -> BadInput:
    """The one message a writing command refuses with on a read-only target."""
    return BadInput(
        f"{target.masked} is {why.describe()}: {command} must run "
        f"{why.where_to_write()}; nothing was changed"
    )


def require_writable(target: Target, command: str) -> None:
    """Raise BadInput (exit 2) when `target` cannot be written: before the command reads,
    locks or writes anything. A target that cannot be reached is left to the command,
    which checks its own input first and then says so as it always has."""
    from toolkit.server import connection as db

    try:
        conn = db.connect(target, purpose=f"{command} (probe)")
    except BadInput:
        return
    with conn:
        why = read_only(conn)
    if why is not None:
        raise refusal(target, command, why)
