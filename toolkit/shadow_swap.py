"""Kept for released revision files, which are frozen and import `toolkit.shadow_swap`:
the code lives in toolkit.ops.shadow_swap. New revisions import toolkit.ops."""

from toolkit.ops.shadow_swap import *  # noqa: F403
