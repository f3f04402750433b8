"""The database server: the embedded PostgreSQL, connections, URLs."""
