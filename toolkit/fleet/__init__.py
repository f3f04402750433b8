"""One venuedb command over many databases: the inventory (which databases, which are
canaries), the order and concurrency they run in, and the per-database jobs."""
