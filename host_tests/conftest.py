"""pytest set-up: the firmware sources and the CPython shim for the ``micropython`` module."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("host_shims", "firmware", "host_tests/core", ""):
    p = os.path.join(_ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)
