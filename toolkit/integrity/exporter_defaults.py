"""Where `venuedb exporter` listens unless told otherwise.

Apart from toolkit.integrity.exporter so that building the command line (every `venuedb` run
shows these in `exporter --help`) does not import the exporter and what it reads.
"""

from __future__ import annotations

DEFAULT_PORT = 19187
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
