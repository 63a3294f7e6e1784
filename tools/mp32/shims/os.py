"""os stand-in for the 32-bit measurement port: no filesystem calls (every one raises OSError)."""


def _no(*a):
    raise OSError(2)


stat = mkdir = remove = rename = listdir = urandom = sync = _no
