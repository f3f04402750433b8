"""Seating a booking as every path does since booking-integrity: an assignment and an
allocation covering the booking's time, together in one transaction; and a floor to seat on."""

from __future__ import annotations

import psycopg

from tests.queries import scalar


def assign_table(conn: psycopg.Connection, booking: str, table: str) -> None:
    """Assign `table` to `booking` with its allocation, in the caller's transaction."""
    conn.execute(
        "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES (%s, %s)",
        (booking, table),
    )
    conn.execute(
        "INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "
        "\"window\") SELECT restaurant_id, id, 'table', %s, tstzrange(start_at, end_at) "
        "FROM bookings WHERE id = %s",
        (table, booking),
    )


# The restaurant and zone of add_floor: tests that write to them by hand use these ids.
RESTAURANT = "11111111-1111-4111-8111-111111111111"
ZONE = "22222222-2222-4222-8222-222222222222"


def add_floor(url: str, tables: int) -> list[str]:
    """Restaurant RESTAURANT with one zone ZONE of `tables` four-seat tables (T0, T1, ...),
    committed: the tables' ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO restaurants (id, name, slug) VALUES (%s, 'R', %s)",
            (RESTAURANT, f"r-{RESTAURANT}"),
        )
        conn.execute(
            "INSERT INTO zones (id, restaurant_id, name) VALUES (%s, %s, 'Z')", (ZONE, RESTAURANT)
        )
        return [
            str(
                scalar(
                    conn,
                    "INSERT INTO table_inventory (restaurant_id, zone_id, table_number, capacity) "
                    "VALUES (%s, %s, %s, 4) RETURNING id",
                    (RESTAURANT, ZONE, f"T{i}"),
                )
            )
            for i in range(tables)
        ]


def overlapping_allocations(conn: psycopg.Connection) -> int:
    """Pairs of live (not shadow) allocations of one resource whose windows overlap: what no
    path may ever leave behind."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM allocations a JOIN allocations b ON a.resource_id = "
            'b.resource_id AND a.id < b.id AND a."window" && b."window" '
            "WHERE NOT a.shadow AND NOT b.shadow",
        )
    )


def allocation_kinds(conn: psycopg.Connection, booking: str) -> list[tuple[str, int]]:
    """How many allocations of each resource type `booking` holds, by type (a combination:
    one merge group and its tables)."""
    return conn.execute(
        "SELECT resource_type, count(*) FROM allocations WHERE booking_id = %s "
        "GROUP BY 1 ORDER BY 1",
        (booking,),
    ).fetchall()
