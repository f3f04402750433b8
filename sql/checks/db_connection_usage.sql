-- name: db_connection_usage
-- domain: core
-- severity: critical
-- critical: > 80
-- unit: percent
-- returns: value
-- description: Client connections open on the server as a share of max_connections less the reserved slots (superuser_reserved_connections, and reserved_connections from PostgreSQL 16): the nearest signal PostgreSQL has of seed 002's critical alert "DB connection pool > 80%". The application's own pool (its size, its waiting requests) is not visible from the database; the connections it opened are.
-- runbook: runbooks/bar-observability.md#db_connection_usage
SELECT
    round(
        100.0 * (
            SELECT count(*) FROM pg_catalog.pg_stat_activity AS a
            WHERE a.backend_type = 'client backend'
        )
        / nullif(
            current_setting('max_connections')::int
            - current_setting('superuser_reserved_connections')::int
            - coalesce(current_setting('reserved_connections', true), '0')::int,
            0
        ),
        2
    )
