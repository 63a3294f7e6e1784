"""The one door from the host tools (sim/, bench/, tools/, cellchain/) into firmware's ``core``.

Firmware's packages (``core``, ``hal``, ``roles``) are top-level packages on a board. Host code
asks for a core module here instead of ``import core`` / ``from core import ...`` itself, so only
this module (with sim/paths.py, which puts firmware/ on sys.path) knows where they come from;
host_tests/test_architecture.py keeps it that way.

    from sim import fw
    codec = fw.core("codec")          # firmware/core/codec.py

On the MicroPython Unix port (the micropython engine's sim/wire.py under sim/mp_board.py, the
bench's probes) the running image's folder - or firmware/ - is on the path already: ``import
fw`` from sim/ gives the same function, and ``core`` is that image's.
"""
import sys

if sys.implementation.name != "micropython":
    from sim import paths  # noqa: F401  (CPython: firmware/ and host_shims/ on sys.path)
# (on the MicroPython Unix port the caller has put the image, or firmware/, on the path)


def core(name):
    """Firmware module ``core.<name>`` (ImportError when this is not a source checkout)."""
    full = "core." + name
    __import__(full)
    return sys.modules[full]
