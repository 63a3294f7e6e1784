"""Helpers for tests that run on both CPython (pytest) and the MicroPython Unix port.

Plain functions only (no pytest fixtures) so tools/mp_test_runner.py can run the same files.
"""
import gc
import os
import sys

ON_MICROPYTHON = sys.implementation.name == "micropython"
_counter = [0]
_made = []            # folders made by tmpdir(), removed by cleanup() after each test


def raises(exc_type, fn, *args):
    """Call fn(*args); fail unless it raises exc_type. Returns the exception."""
    try:
        fn(*args)
    except exc_type as e:  # noqa: B030
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def tmpdir():
    """A fresh, empty folder under /tmp for this test."""
    _counter[0] += 1
    try:
        import time
        stamp = time.ticks_us() if ON_MICROPYTHON else time.perf_counter_ns()
    except AttributeError:
        stamp = 0
    base = "/tmp"
    if not ON_MICROPYTHON:
        import tempfile
        base = tempfile.gettempdir()          # pytest's session folder (host_tests/conftest.py)
    path = "%s/cellchain-test-%d-%d-%d" % (base, os.getpid() if hasattr(os, "getpid") else 0, stamp, _counter[0])
    os.mkdir(path)
    _made.append(path)
    return path


def _remove_tree(path):
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:                        # a folder (S_IFDIR): os.path is not on MicroPython
        for name in os.listdir(path):
            _remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def cleanup():
    """Remove every folder tmpdir() made (pytest's conftest and tools/mp_test_runner.py call
    this after each test, so nothing is left in /tmp)."""
    while _made:
        _remove_tree(_made.pop())


def alloc_bytes(fn, repeats=50):
    """Bytes allocated by ``repeats`` calls of fn() after one warm-up call (MicroPython), or
    None on CPython where gc.mem_alloc does not exist."""
    if not ON_MICROPYTHON:
        fn()
        return None
    fn()
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(repeats):
        fn()
    return gc.mem_alloc() - before


def no_alloc(fn, repeats=50):
    """Run fn() repeatedly with the heap locked (MicroPython): any allocation raises
    MemoryError. On CPython just runs it. Returns True when nothing was allocated."""
    fn()
    if not ON_MICROPYTHON:
        for _ in range(repeats):
            fn()
        return True
    import micropython
    gc.collect()
    micropython.heap_lock()
    try:
        for _ in range(repeats):
            fn()
    except MemoryError:
        return False
    finally:
        micropython.heap_unlock()
    return True
