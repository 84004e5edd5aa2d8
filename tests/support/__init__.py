"""Helpers shared by the tests and the benchmarks (bench/).

Plain functions and classes, no fixtures: tests/conftest.py builds its
fixtures from them, and a benchmark imports them without pulling in pytest's
conftest. `app`, `auth` and `images` need nothing of pytest; `services`
(skip or fail when a local server is missing) is for tests only.
"""
