"""sys.path set-up for the host side: firmware sources, the ``micropython`` shim, board_defs.

Imported by every sim module that imports firmware code (also works when an old editable
install made ``sim`` a namespace package, where sim/__init__.py does not run)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
HOST_SHIMS = os.path.join(ROOT, "host_shims")
for _p in (HOST_SHIMS, FIRMWARE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)
