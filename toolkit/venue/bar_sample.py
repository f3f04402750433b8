"""A realistic, deterministic bar sample for the mode-switching release (seed 002).

load_bar_sample() creates bars (a third in simplified mode, a third in full mode, a third
with no mode set), their owner, managers and servers (auth.users + bar_members), the
server_name_mappings of most servers, and a week of sales, consignments and returns
that record the server only by the name typed on the till: in varied case and spacing
("marie  CLAIRE"), sometimes a name nobody mapped, sometimes no name at all, and a few
created by users who have since been deleted (created_by NULL). No row has a server_id:
that is the backfill's job. Every choice comes from random.Random(seed), uuids included,
so one seed always yields the same rows; times are relative to now(). Loaded with COPY.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

import psycopg

FIRST = ("Marie", "Jean", "Luc", "Sofia", "Ama", "Kofi", "Nadia", "Omar", "Lea", "Hugo")
LAST = ("Claire", "Dupont", "Mensah", "Okafor", "Martin", "Diallo", "Rossi", "Bernard")
PRODUCTS = (("Beer", 4.5), ("Wine", 6.0), ("Soda", 2.5), ("Cocktail", 9.0), ("Water", 1.5))
MODES = ("simplified", "full", None)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _typed(rng: random.Random, name: str) -> str:
    """The name as typed on the till: case and spacing vary, the name does not."""
    roll = rng.random()
    if roll < 0.4:
        return name
    if roll < 0.6:
        return name.lower()
    if roll < 0.7:
        return name.upper()
    if roll < 0.85:
        return "  " + name.replace(" ", "   ") + " "
    return " ".join(part.capitalize() for part in name.lower().split())


def load_bar_sample(
    conn: psycopg.Connection, *, bars: int = 20, sales: int = 30_000, seed: int = 42
) -> dict[str, int]:
    """Load the sample in the connection's current transaction; return the row counts."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    users: list[tuple[uuid.UUID, str]] = []
    bar_rows: list[tuple[Any, ...]] = []
    members: list[tuple[Any, ...]] = []
    mappings: list[tuple[Any, ...]] = []
    # per bar: (bar id, managers' ids, [(server id, name)], departed creators' ids)
    staff: list[tuple[uuid.UUID, list[uuid.UUID], list[tuple[uuid.UUID, str]], list[uuid.UUID]]]
    staff = []
    departed: list[uuid.UUID] = []

    def new_user(tag: str) -> uuid.UUID:
        uid = _uuid(rng)
        users.append((uid, f"{tag}.{uid.hex[:10]}@sample-{seed}.bar"))
        return uid

    for b in range(bars):
        bar_id = _uuid(rng)
        owner = new_user("owner")
        mode = MODES[b % len(MODES)]
        settings: dict[str, Any] = {"currency": "EUR"}
        if mode is not None:
            settings["operatingMode"] = mode
        last_sale = now - dt.timedelta(hours=rng.choice((1, 3, 30, 200)))
        bar_rows.append(
            (bar_id, f"Sample {seed} Bar {b + 1}", owner, json.dumps(settings), last_sale)
        )
        members.append((_uuid(rng), bar_id, owner, "owner", "Owner", True))
        managers = [new_user("manager") for _ in range(rng.randint(1, 2))]
        for i, manager in enumerate(managers):
            members.append((_uuid(rng), bar_id, manager, "manager", f"Manager {i + 1}", True))
        servers: list[tuple[uuid.UUID, str]] = []
        used: set[str] = set()
        for i in range(rng.randint(4, 8)):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            while name in used:
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            used.add(name)
            server = new_user("server")
            servers.append((server, name))
            members.append((_uuid(rng), bar_id, server, "server", name, i != 0 or b % 4 != 0))
            if i != 1 or b % 2:  # in every other bar, the second server was never mapped
                mappings.append((_uuid(rng), bar_id, server, name, managers[0]))
        gone = [new_user("departed") for _ in range(2)]
        departed += gone
        staff.append((bar_id, managers, servers, gone))

    def activity_row(rng: random.Random) -> tuple[uuid.UUID, uuid.UUID, str | None, dt.datetime]:
        bar_id, managers, servers, gone = staff[rng.randrange(len(staff))]
        roll = rng.random()
        if roll < 0.03:
            server_name = None
        elif roll < 0.06:
            server_name = _typed(rng, "Temp Staff")  # nobody mapped this name
        else:
            server_name = _typed(rng, rng.choice(servers)[1])
        creator = rng.choice(gone) if rng.random() < 0.02 else rng.choice(managers)
        created_at = now - dt.timedelta(seconds=rng.randrange(7 * 24 * 3600))
        return bar_id, creator, server_name, created_at

    sale_rows = []
    for _ in range(sales):
        bar_id, creator, server_name, created_at = activity_row(rng)
        product, price = rng.choice(PRODUCTS)
        qty = rng.randint(1, 4)
        items = json.dumps([{"product": product, "qty": qty, "price": price}])
        sale_rows.append(
            (
                _uuid(rng),
                bar_id,
                creator,
                server_name,
                items,
                round(price * qty, 2),
                rng.choice(("cash", "card")),
                created_at,
            )
        )
    consignment_rows = []
    for _ in range(max(1, sales // 10)):
        bar_id, creator, server_name, created_at = activity_row(rng)
        consignment_rows.append(
            (_uuid(rng), bar_id, creator, server_name, "Bottle of wine", 1, 18.0, created_at)
        )
    return_rows = []
    for sale in rng.sample(sale_rows, k=max(1, sales // 20)):
        return_rows.append((_uuid(rng), sale[1], sale[0], sale[2], sale[3], sale[5], sale[7]))

    has_mappings = (
        conn.execute("SELECT to_regclass('public.server_name_mappings') IS NOT NULL").fetchone()
        or (False,)
    )[0]
    with conn.cursor() as cur:
        copies: list[tuple[str, list[tuple[Any, ...]]]] = [
            ("auth.users (id, email)", list(users)),
            ("public.bars (id, name, owner_id, settings, last_sale_at)", bar_rows),
            (
                "public.bar_members (id, bar_id, user_id, role, display_name, is_active)",
                members,
            ),
            (
                "public.sales (id, bar_id, created_by, server_name, items, total, "
                "payment_method, created_at)",
                sale_rows,
            ),
            (
                "public.consignments (id, bar_id, created_by, server_name, product_name, "
                "quantity, amount, created_at)",
                consignment_rows,
            ),
            (
                "public.returns (id, bar_id, sale_id, created_by, server_name, amount, created_at)",
                return_rows,
            ),
        ]
        if has_mappings:
            copies.append(
                (
                    "public.server_name_mappings (id, bar_id, user_id, server_name, created_by)",
                    mappings,
                )
            )
        for target, rows in copies:
            with cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        # The departed users leave: their sales keep created_by NULL (ON DELETE SET NULL).
        cur.execute("DELETE FROM auth.users WHERE id = ANY(%s)", (departed,))
    return {
        "users": len(users) - len(departed),
        "bars": len(bar_rows),
        "bar_members": len(members),
        "server_name_mappings": len(mappings) if has_mappings else 0,
        "sales": len(sale_rows),
        "consignments": len(consignment_rows),
        "returns": len(return_rows),
        "departed_users": len(departed),
    }
