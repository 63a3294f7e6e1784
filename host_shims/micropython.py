"""CPython stand-in for MicroPython's built-in ``micropython`` module (host tests, simulator).

Only on the host path: on a board and on the Unix port the built-in module is used.
"""


def const(value):
    """Compile-time constant on MicroPython; the value itself here."""
    return value


def native(fn):
    return fn


def viper(fn):
    return fn


def heap_lock():
    return 0


def heap_unlock():
    return 0


def schedule(fn, arg):
    fn(arg)


def mem_info(*_args):
    return None
