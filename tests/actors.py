"""Acting as the API's roles from SQL, as an attacker with psql would."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg

ROLES = ("anon", "service_role")  # any other actor is a user, acting as authenticated


def become(conn: psycopg.Connection, actor: str, users: Mapping[str, str]) -> None:
    """For the rest of the transaction, be `actor`: anon, service_role, or a user named in
    `users` (authenticated, with auth.uid() = that user's id)."""
    if actor in ROLES:
        conn.execute(f"SET LOCAL ROLE {actor}")
        return
    conn.execute("SET LOCAL ROLE authenticated")
    conn.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", (users[actor],))


@contextmanager
def acting(url: str, actor: str, users: Mapping[str, str]) -> Iterator[psycopg.Connection]:
    """A transaction as `actor` (see become()); always rolled back."""
    with psycopg.connect(url) as conn:
        become(conn, actor, users)
        try:
            yield conn
        finally:
            conn.rollback()
