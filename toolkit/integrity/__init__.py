"""What says the database is right: the catalog, postconditions, verify, the health
checks and their Prometheus export, lint."""
