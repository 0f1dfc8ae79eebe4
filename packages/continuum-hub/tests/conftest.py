"""The fixtures of these tests. The helpers and fixtures live in hub_testkit.py and are
imported by that name: several packages' tests run in one session, and "conftest" is not
a unique module name (a test importing from it may get another package's)."""

from hub_testkit import *  # noqa: F403 - pytest finds the fixtures here
