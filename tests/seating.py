"""Seating a booking as every path does since booking-integrity: an assignment and an
allocation covering the booking's time, together in one transaction."""

from __future__ import annotations

import psycopg


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
