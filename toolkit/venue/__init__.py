"""The venue application: feature flags and their rollout, auto-assignment and its
coordinator, the demo and its sample data."""
