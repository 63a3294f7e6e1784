"""CRC-16 used on the link frames and in every data file.

Polynomial 0xA2EB (normal form; 0xD175 in Koopman's notation): Koopman's CRC tables give it
Hamming distance 4 for data words up to 32751 bits, which covers the longest frame a 255-cell
chain sends, and a higher distance than CCITT-16 for short frames. Initial value 0xFFFF, no
reflection, no final xor. Table-driven: 256 entries made once at import (512 bytes).
"""
from micropython import const
from array import array

POLY = const(0xA2EB)
INIT = const(0xFFFF)


def _make_table():
    table = array("H", bytes(512))
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ POLY) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
        table[i] = crc
    return table


TABLE = _make_table()


def crc16_update(crc, byte):
    """Feed one byte into a running CRC (the cut-through path uses this per byte)."""
    return ((crc << 8) & 0xFFFF) ^ TABLE[((crc >> 8) ^ byte) & 0xFF]


def crc16(buf, start=0, end=-1, crc=INIT):
    """CRC-16 of buf[start:end] (end -1 = to the end) without slicing (no allocation)."""
    if end < 0:
        end = len(buf)
    table = TABLE
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ buf[i]) & 0xFF]
        i += 1
    return crc
