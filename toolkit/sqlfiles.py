"""Kept for released revision files, which are frozen and import `toolkit.sqlfiles`:
the code lives in toolkit.ops.sql_files. New revisions import toolkit.ops."""

from toolkit.ops.sql_files import *  # noqa: F403
