"""The deployment record: stored in the database's `venuedb` schema and rendered as
Markdown, one path."""
