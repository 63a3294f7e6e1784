"""Virtual pack: simulated cells, charger, load and the real firmware in the loop.

Importing ``sim`` puts the firmware sources (``firmware/``), the CPython stand-in for the
``micropython`` module (``host_shims/``) and the repository root (``board_defs``) on sys.path, so
the cpython engine imports the very role code that runs on the boards (see sim/paths.py).
"""
from sim import paths  # noqa: F401
