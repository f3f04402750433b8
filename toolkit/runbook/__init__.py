"""Runbook operations: backfills, backups, release rollouts, rollback levels."""
