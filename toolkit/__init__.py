"""venuedb: apply, verify, back-fill and roll back the venuedb schema."""

__version__ = "0.1.0"
