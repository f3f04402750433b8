"""A realistic, deterministic booking sample for trying the planner and auto-assignment.

load_booking_sample() creates a few restaurants, each with 2-3 zones of 20-60 tables in
total (mixed sizes, mostly movable, adjacency between neighbouring tables of a zone
laid out in rows) and a month of PENDING bookings at lunch and dinner seatings. Every
choice comes from random.Random(seed), so one seed always yields the same rows (the
uuids aside: they are random). Slugs start with `sample-{seed}-`: a load never
collides with other restaurants, though the same seed cannot be loaded twice into one
database.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

import psycopg

NAMES = (
    "Olive & Ash",
    "The Copper Pot",
    "Saffron Lane",
    "Harbour Table",
    "Juniper House",
    "Little Fig",
    "Marrow",
    "Salt Yard",
)
TIMEZONES = ("Europe/London", "Europe/Paris", "America/New_York", "Asia/Kathmandu")
ZONE_NAMES = ("Main", "Terrace", "Bar", "Garden", "Mezzanine")
# Table sizes by weight: mostly twos and fours, some sixes and eights, few big ones.
TABLE_SIZES = ((2, 30), (4, 35), (6, 15), (8, 12), (10, 5), (12, 3))
# Party sizes by weight: mostly 2-4, some 5-8, a few 10+.
PARTY_SIZES = (
    (1, 4),
    (2, 34),
    (3, 14),
    (4, 22),
    (5, 7),
    (6, 7),
    (7, 3),
    (8, 3),
    (10, 2),
    (12, 2),
    (14, 1),
    (16, 1),
)
LUNCH = (dt.time(11, 30), dt.time(14, 0))  # first and last start
DINNER = (dt.time(17, 30), dt.time(21, 30))
DURATIONS = (90, 105, 120)  # minutes
SLOT = 15  # minutes between possible starts
# Share of the tables booked per seating, Monday first: weekends are busier.
LUNCH_LOAD = (0.3, 0.3, 0.35, 0.4, 0.5, 0.7, 0.6)
DINNER_LOAD = (0.5, 0.55, 0.6, 0.7, 0.9, 1.0, 0.6)
FIRST_NAMES = ("Asha", "Ben", "Chen", "Dana", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jon")
LAST_NAMES = ("Adhikari", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Gupta", "Hill")


@dataclass
class Table:
    number: str
    capacity: int
    min_party: int
    mobility: str
    row: int
    column: int
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Zone:
    name: str
    tables: list[Table]
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Restaurant:
    name: str
    slug: str
    timezone: str
    zones: list[Zone]
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def next_monday(today: dt.date | None = None) -> dt.date:
    """The first Monday after today (a week ahead when today is a Monday)."""
    today = today or dt.date.today()
    return today + dt.timedelta(days=7 - today.weekday())


def _weighted(rng: random.Random, choices: tuple[tuple[int, int], ...]) -> int:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def _zone(rng: random.Random, name: str, size: int) -> Zone:
    """`size` tables in rows of 3-6; big tables stand fixed, a few others too."""
    per_row = rng.randint(3, 6)
    tables = []
    for i in range(size):
        capacity = _weighted(rng, TABLE_SIZES)
        fixed = capacity >= 10 or rng.random() < 0.1
        tables.append(
            Table(
                number=f"{name[:2].upper()}{i + 1:02}",  # MA01, TE01, ...: unique
                capacity=capacity,
                min_party=1 if capacity <= 4 else capacity // 2,
                mobility="fixed" if fixed else "movable",
                row=i // per_row,
                column=i % per_row,
            )
        )
    return Zone(name=name, tables=tables)


def _restaurant(rng: random.Random, seed: int, index: int) -> Restaurant:
    name = NAMES[index % len(NAMES)]
    zone_names = rng.sample(ZONE_NAMES[1:], rng.randint(1, 2))
    total = rng.randint(20, 60)
    zone_count = 1 + len(zone_names)
    sizes = [total // zone_count + (1 if i < total % zone_count else 0) for i in range(zone_count)]
    zones = [
        _zone(rng, zone_name, size)
        for zone_name, size in zip(("Main", *zone_names), sizes, strict=True)
    ]
    slug_name = name.lower().replace("&", "and").replace(" ", "-")
    return Restaurant(
        name=name,
        slug=f"sample-{seed}-{index + 1}-{slug_name}",
        timezone=rng.choice(TIMEZONES),
        zones=zones,
    )


def _adjacencies(zone: Zone) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Neighbours in a zone's grid: side by side in a row, and front to back."""
    at = {(t.row, t.column): t for t in zone.tables}
    pairs = []
    for (row, column), table in at.items():
        for other in (at.get((row, column + 1)), at.get((row + 1, column))):
            if other is not None:
                pairs.append((table.id, other.id))
    return pairs


def _starts(rng: random.Random, seating: tuple[dt.time, dt.time], count: int) -> list[dt.time]:
    first = seating[0].hour * 60 + seating[0].minute
    last = seating[1].hour * 60 + seating[1].minute
    slots = range(first, last + 1, SLOT)
    return sorted(dt.time(m // 60, m % 60) for m in rng.choices(slots, k=count))


def _bookings(
    rng: random.Random, restaurant: Restaurant, start: dt.date, days: int
) -> list[tuple[object, ...]]:
    """COPY rows for `days` days of lunch and dinner bookings, all pending."""
    tables = sum(len(z.tables) for z in restaurant.zones)
    rows: list[tuple[object, ...]] = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        for seating, load in ((LUNCH, LUNCH_LOAD), (DINNER, DINNER_LOAD)):
            count = round(tables * load[day.weekday()] * rng.uniform(0.8, 1.2))
            for begin in _starts(rng, seating, count):
                rows.append(_booking_row(rng, restaurant, day, begin))
    return rows


def _booking_row(
    rng: random.Random, restaurant: Restaurant, day: dt.date, begin: dt.time
) -> tuple[object, ...]:
    local_start = dt.datetime.combine(day, begin)
    local_end = local_start + dt.timedelta(minutes=rng.choice(DURATIONS))
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    # Local wall-clock times with the zone name: the server resolves the offset.
    return (
        restaurant.id,
        f"{first} {last}",
        f"{first}.{last}.{rng.randrange(10_000)}@example.com".lower(),
        _weighted(rng, PARTY_SIZES),
        day,
        begin,
        local_end.time(),
        f"{local_start:%Y-%m-%d %H:%M:%S} {restaurant.timezone}",
        f"{local_end:%Y-%m-%d %H:%M:%S} {restaurant.timezone}",
        "pending",
        "sample",
    )


def _insert_floors(cur: psycopg.Cursor, restaurants: list[Restaurant]) -> dict[str, int]:
    cur.executemany(
        "INSERT INTO restaurants (id, name, slug, timezone) VALUES (%s, %s, %s, %s)",
        [(r.id, r.name, r.slug, r.timezone) for r in restaurants],
    )
    zones = [(z.id, r.id, z.name) for r in restaurants for z in r.zones]
    cur.executemany("INSERT INTO zones (id, restaurant_id, name) VALUES (%s, %s, %s)", zones)
    tables = [
        (t.id, r.id, z.id, t.number, t.capacity, t.min_party, t.capacity, t.mobility)
        for r in restaurants
        for z in r.zones
        for t in z.tables
    ]
    with cur.copy(
        "COPY table_inventory (id, restaurant_id, zone_id, table_number, capacity, "
        "min_party_size, max_party_size, mobility) FROM STDIN"
    ) as copy:
        for row in tables:
            copy.write_row(row)
    pairs = [(r.id, a, b) for r in restaurants for z in r.zones for a, b in _adjacencies(z)]
    with cur.copy("COPY table_adjacencies (restaurant_id, table_a, table_b) FROM STDIN") as copy:
        for pair in pairs:
            copy.write_row(pair)
    return {
        "restaurants": len(restaurants),
        "zones": len(zones),
        "table_inventory": len(tables),
        "table_adjacencies": len(pairs),
    }


def _insert_bookings(cur: psycopg.Cursor, rows: list[tuple[object, ...]]) -> int:
    with cur.copy(
        "COPY bookings (restaurant_id, customer_name, customer_email, party_size, booking_date, "
        "start_time, end_time, start_at, end_at, status, source) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def load_booking_sample(
    conn: psycopg.Connection,
    *,
    restaurants: int = 4,
    days: int = 30,
    seed: int = 42,
    start: dt.date | None = None,
) -> dict[str, int]:
    """Load the sample in the connection's current transaction (the caller commits).

    Returns the number of rows written per table. `start` is the first day of bookings
    (default: next Monday).
    """
    if restaurants < 1 or days < 0:
        raise ValueError("restaurants must be at least 1 and days not negative")
    rng = random.Random(seed)
    first_day = start or next_monday()
    floors = [_restaurant(rng, seed, i) for i in range(restaurants)]
    bookings = [row for r in floors for row in _bookings(rng, r, first_day, days)]
    with conn.cursor() as cur:
        counts = _insert_floors(cur, floors)
        counts["bookings"] = _insert_bookings(cur, bookings)
    return counts
