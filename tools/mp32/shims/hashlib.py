"""hashlib stand-in for the 32-bit measurement port: importable, not usable."""


class sha256:
    def __init__(self, *a):
        raise NotImplementedError("hashlib is not in the tools/mp32 build")
