"""binascii stand-in for the 32-bit measurement port: importable (core.password imports it),
not usable (nothing at boot calls it)."""


def hexlify(*a):
    raise NotImplementedError("binascii is not in the tools/mp32 build")


unhexlify = a2b_base64 = b2a_base64 = hexlify
