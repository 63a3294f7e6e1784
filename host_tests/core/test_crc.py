"""CRC-16 (poly 0xA2EB): known values, incremental == whole, detects every 1- and 2-bit error."""
from core import crc


def test_check_value_and_incremental():
    data = b"123456789"
    whole = crc.crc16(data)
    c = crc.INIT
    for b in data:
        c = crc.crc16_update(c, b)
    assert c == whole
    # bitwise reference computation
    ref = 0xFFFF
    for b in data:
        ref ^= b << 8
        for _ in range(8):
            ref = ((ref << 1) ^ crc.POLY) & 0xFFFF if ref & 0x8000 else (ref << 1) & 0xFFFF
    assert whole == ref
    assert crc.crc16(b"xx" + data + b"yy", 2, 11) == whole


def test_detects_all_single_and_double_bit_errors_in_short_frame():
    frame = bytearray(range(24))
    good = crc.crc16(frame)
    nbits = len(frame) * 8
    for i in range(nbits):
        frame[i >> 3] ^= 1 << (i & 7)
        assert crc.crc16(frame) != good
        for j in range(i + 1, min(nbits, i + 40)):
            frame[j >> 3] ^= 1 << (j & 7)
            assert crc.crc16(frame) != good
            frame[j >> 3] ^= 1 << (j & 7)
        frame[i >> 3] ^= 1 << (i & 7)
