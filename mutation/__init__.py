"""Schema mutation testing (issue 23): weaken one rule of the migrated schema at a time and
ask whether `venuedb verify` notices and whether the rule tests fail. `make mutation`."""
