"""Bars as the bar tests set them up: users, bars in an operating mode, their staff by role,
and the server-name mappings that switching mode resolves a typed server name with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Member:
    user: str  # an auth.users id
    role: str  # owner, manager or server
    display_name: str


@dataclass(frozen=True)
class Bar:
    id: str
    name: str
    mode: str  # settings.operatingMode: simplified or full
    members: Sequence[Member]  # the first owner among them owns the bar

    @property
    def owner(self) -> str:
        return next(m.user for m in self.members if m.role == "owner")


def add_bars(conn: psycopg.Connection[Any], bars: Sequence[Bar]) -> None:
    """Every member as a user (email `<id>@test`), then the bars, then their members, in the
    caller's transaction."""
    users = [m.user for bar in bars for m in bar.members]
    conn.execute(
        "INSERT INTO auth.users (id, email) SELECT u::uuid, u || '@test' FROM unnest(%s::text[]) u",
        (users,),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bars (id, name, owner_id, settings) VALUES (%s, %s, %s, %s::jsonb)",
            [(b.id, b.name, b.owner, json.dumps({"operatingMode": b.mode})) for b in bars],
        )
        cur.executemany(
            "INSERT INTO bar_members (bar_id, user_id, role, display_name) VALUES (%s, %s, %s, %s)",
            [(b.id, m.user, m.role, m.display_name) for b in bars for m in b.members],
        )


def map_servers(conn: psycopg.Connection[Any], bar: str, users: Sequence[str]) -> None:
    """A server-name mapping of each of `users` in `bar`, under their display name."""
    for user in users:
        conn.execute(
            "INSERT INTO server_name_mappings (bar_id, user_id, server_name) "
            "SELECT %s, user_id, display_name FROM bar_members WHERE bar_id = %s AND user_id = %s",
            (bar, bar, user),
        )
