"""The deploy engine: the revision graph, the runner, locks, blockers, rollback risk,
rehearsals, checksums of released history, status."""
