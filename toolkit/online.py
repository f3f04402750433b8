"""Kept for released revision files, which are frozen and import `toolkit.online`:
the code lives in toolkit.ops.online. New revisions import toolkit.ops."""

from toolkit.ops.online import *  # noqa: F403
