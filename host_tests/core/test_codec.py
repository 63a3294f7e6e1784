"""Link codec: round trips through edge timestamps under clock error, jitter and noise."""
from core import codec
import support


class Lcg:
    """Deterministic pseudo-random numbers, identical on CPython and MicroPython."""

    def __init__(self, seed):
        self.s = seed & 0x7FFFFFFF

    def next(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n


def edges(data, baud=9600, invert=False, clock_ppm=0, jitter_us=0, rng=None, gap_bits=0):
    """(dt_us, level) edge list for data sent back to back by a transmitter whose clock is
    off by clock_ppm; each edge moved by up to +-jitter_us. gap_bits of idle between bytes."""
    bit_ns = 1000000000 * (1000000 + clock_ppm) // (1000000 * baud)
    out = []
    level = codec.idle_level(invert)
    t_ns = 100000
    last_us = 0
    for b in data:
        levels = codec.char_levels(b, invert)
        for k in range(codec.BITS_PER_CHAR):
            lv = (levels >> k) & 1
            if lv != level:
                j = rng.next(2 * jitter_us + 1) - jitter_us if jitter_us else 0
                t_us = t_ns // 1000 + j
                if t_us < last_us:
                    t_us = last_us
                out.append((t_us - last_us, lv))
                last_us = t_us
                level = lv
            t_ns += bit_ns
        t_ns += gap_bits * bit_ns
    return out, last_us


def decode(pairs, dec, tail_us=5000):
    got = []
    gaps = 0
    for dt, lv in pairs:
        r = dec.feed(dt, lv)
        if r != codec.NONE:
            got.append(r)
        if dec.gap:
            dec.gap = False
            gaps += 1
            got.append("gap")
    r = dec.feed(tail_us, dec.level)
    if r != codec.NONE:
        got.append(r)
    if dec.gap:
        dec.gap = False
        got.append("gap")
    return got


def test_char_levels_and_idle():
    assert codec.char_levels(0x00) == 0x200
    assert codec.char_levels(0xFF) == 0x3FE
    assert codec.char_levels(0x55, True) == (0x2AA ^ 0x3FF)
    assert codec.idle_level(False) == 1 and codec.idle_level(True) == 0


def test_round_trip_exact_both_polarities():
    data = bytes(range(256))
    for invert in (False, True):
        pairs, _ = edges(data, invert=invert)
        got = decode(pairs, codec.Decoder(9600, invert))
        assert got[:-1] == list(data)
        assert got[-1] == "gap"


def test_round_trip_clock_error_and_jitter():
    rng = Lcg(7)
    data = bytes((i * 37 + 11) & 0xFF for i in range(300))
    for ppm in (-30000, -15000, 0, 15000, 30000):
        pairs, _ = edges(data, clock_ppm=ppm, jitter_us=8, rng=rng)
        dec = codec.Decoder(9600)
        got = decode(pairs, dec)
        assert got[:-1] == list(data), ppm
        assert dec.framing_errors == 0
    # nominal clock: a quarter bit of jitter either way
    pairs, _ = edges(data, jitter_us=24, rng=rng)
    assert decode(pairs, codec.Decoder(9600))[:-1] == list(data)


def test_other_baud_rates():
    data = b"\x00\xff\x5a\xa5cellchain"
    for baud in (1200, 4800, 19200, 38400):
        pairs, _ = edges(data, baud=baud, clock_ppm=20000)
        got = decode(pairs, codec.Decoder(baud), tail_us=40 * 1000000 // baud)
        assert got == list(data) + ["gap"], baud


def test_gap_between_frames_reported_once():
    dec = codec.Decoder(9600, gap_bits=30)
    a, _ = edges(b"\x01\x02", gap_bits=0)
    got = decode(a, dec, tail_us=1000)     # 1000 us < 30 bits: no gap yet
    assert got == [1, 2]
    assert dec.feed(3000, dec.level) == codec.NONE and dec.gap
    dec.gap = False
    assert dec.feed(100000, dec.level) == codec.NONE and not dec.gap   # once per idle period


def test_short_gaps_inside_frame_are_not_gaps():
    pairs, _ = edges(b"\x11\x22\x33", gap_bits=5)
    assert decode(pairs, codec.Decoder(9600, gap_bits=30)) == [0x11, 0x22, 0x33, "gap"]


def test_framing_error_reported_not_invented():
    # a character whose stop bit is space: start, 8 zero bits, stop 0, then mark again
    dec = codec.Decoder(9600)
    assert dec.feed(5000, 0) == codec.NONE        # falling edge: start bit
    r = dec.feed(1250, 1)                          # 12 bit times of space, then mark
    assert r == codec.FRAMING and dec.framing_errors == 1
    # recovers on the next clean character
    pairs, _ = edges(b"\x42")
    assert decode(pairs, dec)[0] == 0x42


def test_noise_glitches_are_ignored_or_flagged():
    dec = codec.Decoder(9600)
    assert dec.feed(3000, 0) == codec.NONE
    assert dec.feed(10, 1) == codec.NONE          # 10 us spike: shorter than half a bit
    assert dec.feed(2000, 1) == codec.NONE
    assert dec.noise == 1
    rng = Lcg(99)
    data = bytes(range(40, 120))
    pairs, _ = edges(data)
    noisy = []
    for dt, lv in pairs:      # insert short spikes into some long runs
        if dt > 300 and rng.next(4) == 0:
            noisy.append((dt // 2, lv ^ 1))
            noisy.append((3, lv))
            noisy.append((dt - dt // 2 - 3, lv))
        else:
            noisy.append((dt, lv))
    got = decode(noisy, codec.Decoder(9600))
    nbytes = [x for x in got if x != "gap"]
    # never more characters than were sent, each a byte or an explicit FRAMING, and most of
    # them intact (each character resynchronises on its own start edge)
    assert len(nbytes) <= len(data)
    assert all(x == codec.FRAMING or 0 <= x <= 255 for x in nbytes)
    same = sum(1 for i in range(min(len(nbytes), len(data))) if nbytes[i] == data[i])
    assert same >= len(data) // 2


def test_tx_bits_round_trip_and_overrun():
    tx = codec.TxBits(4, invert=True)
    assert tx.put(0xA5) and tx.put(0x3C)
    assert tx.pending() == 2
    dec = codec.Decoder(9600, invert=True)
    got = []
    level = tx.idle
    for _ in range(40):
        lv = tx.next_level()
        r = dec.feed(104, lv) if lv != level else dec.feed(104, level)
        level = lv
        if r >= 0:
            got.append(r)
    dec.feed(2000, level)
    assert got == [0xA5, 0x3C] and tx.pending() == 0
    for i in range(4):
        assert tx.put(i)
    assert not tx.put(9) and tx.overruns == 1


def test_feed_and_next_level_allocate_nothing():
    dec = codec.Decoder(9600)
    tx = codec.TxBits(8)
    state = [1]

    def step():
        for _ in range(30):
            tx.put(0x5A)
            lv = tx.next_level()
            dec.feed(104, lv)
        state[0] = dec.level

    assert support.no_alloc(step)
