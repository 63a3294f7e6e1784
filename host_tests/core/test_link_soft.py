"""hal.link_soft against fake hardware in virtual time (CPython and the MicroPython Unix port).

SoftTx drives a fake Pin from a fake Timer; SoftRx gets the pin's edges through its IRQ
handler, timestamps from the virtual clock, hands off through a fake micropython.schedule and
decodes with core.codec. The IRQ handler, the timer tick and the decoding are run with the
heap locked on the Unix port.
"""
from fake_machine import NS, Clock, Waveform, char_edges, make_machine
from support import ON_MICROPYTHON, no_alloc

from core import codec
from hal import link_soft

BAUD = 9600
GAP_BITS = 30
TX_PIN = 0
RX_PIN = 1


def rig(invert, tx_baud=BAUD, rx_baud=BAUD, wired=True):
    """A transmitter wired to a receiver on one virtual clock; results collect in rig.got
    through the receiver's scheduled handler (what roles.LinkPort does)."""

    class Rig:
        pass

    r = Rig()
    r.clock = Clock()
    r.m = make_machine(r.clock)
    m = r.m
    r.tx = link_soft.SoftTx(m.Pin(TX_PIN, m.Pin.OUT, value=0 if invert else 1), m.Timer(-1),
                            invert, tx_baud)
    m.pins[TX_PIN].record = True
    r.rx = link_soft.SoftRx(m.Pin(RX_PIN, m.Pin.IN), invert, rx_baud, GAP_BITS,
                            ticks_us=r.clock.ticks_us, ticks_diff=r.clock.ticks_diff,
                            schedule=r.clock.schedule)
    if wired:
        m.connect(TX_PIN, RX_PIN)
        r.rx.dec.level = m.pins[RX_PIN].level
    r.got = []
    r.calls = [0]

    def handler():
        r.calls[0] += 1
        while True:
            v = r.rx.read()
            if v == codec.NONE:
                return
            r.got.append(v)

    r.rx.set_handler(handler)
    return r


def drain(r):
    """What the board loop's poll does after the line went quiet."""
    while True:
        v = r.rx.read()
        if v == codec.NONE:
            return
        r.got.append(v)


def bit_ns(baud=BAUD):
    return NS // baud


# ---- TX ---------------------------------------------------------------------------------------

def check_tx_levels(invert):
    r = rig(invert, wired=False)
    pin = r.m.pins[TX_PIN]
    assert pin.level == codec.idle_level(invert)
    assert r.m.timers[0].freq == BAUD and r.m.timers[0].hard is True
    data = bytes([0x00, 0xFF, 0x55, 0xA3])
    r.clock.advance_us(500)                  # idle first: nothing on the line
    assert pin.history == []
    r.tx.write(data, len(data))
    assert r.tx.pending() == 4
    r.clock.advance_us(5000)
    assert r.tx.pending() == 0
    # expected line: tick k of the timer (at k * NS // BAUD) puts the k-th level on the pin
    t_first = pin.history[0][0]
    k0 = (t_first * BAUD) // NS
    assert k0 * NS // BAUD == t_first or (k0 + 1) * NS // BAUD == t_first
    if (k0 * NS) // BAUD != t_first:
        k0 += 1
    levels = []
    for b in data:
        lv = codec.char_levels(b, invert)
        for i in range(10):
            levels.append((lv >> i) & 1)
    expect = []
    cur = codec.idle_level(invert)
    for i, lv in enumerate(levels):
        if lv != cur:
            expect.append(((k0 + i) * NS // BAUD, lv))
            cur = lv
    assert pin.history == expect
    assert pin.level == codec.idle_level(invert)


def test_tx_levels_and_times_normal():
    check_tx_levels(False)


def test_tx_levels_and_times_inverted():
    check_tx_levels(True)


def test_tx_fifo_full_is_reported():
    r = rig(False, wired=False)
    tx = link_soft.SoftTx(r.m.Pin(5, r.m.Pin.OUT, value=1), r.m.Timer(-1), False, BAUD, size=4)
    assert [tx.write_byte(i) for i in range(6)] == [True] * 4 + [False, False]
    assert tx.bits.overruns == 2


# ---- TX into RX -------------------------------------------------------------------------------

def loop(invert, data, tx_baud=BAUD):
    r = rig(invert, tx_baud=tx_baud)
    r.clock.advance_us(1000)
    r.tx.write(data, len(data))
    r.clock.advance_us(len(data) * 1100 + 200)
    drain(r)
    r.clock.advance_us(4000)                 # > 30 bit times of idle: the frame ended
    drain(r)
    return r


def test_tx_into_rx_both_polarities():
    data = bytes([0xC5, 0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80, 0x7E, 0x12, 0x34])
    for invert in (False, True):
        r = loop(invert, data)
        assert r.got == list(data) + [codec.GAP], (invert, r.got)
        assert r.calls[0] > 0                # the handler ran from the scheduled hand-off
        assert r.rx.overruns == 0 and r.rx.dec.framing_errors == 0


def test_rx_results_arrive_while_the_frame_is_on_the_wire():
    r = rig(True)
    data = bytes(range(40))
    r.tx.write(data, len(data))
    r.clock.advance_us(20 * 1042)            # half the frame sent
    assert 17 <= len(r.got) <= 20 and r.got == list(range(len(r.got)))


def test_every_byte_value_round_trips():
    data = bytes(range(256))
    for invert in (False, True):
        r = loop(invert, data)
        assert r.got == list(data) + [codec.GAP]


def test_clock_error_plus_minus_3_percent():
    data = bytes([0x00, 0xFF, 0x0F, 0xF0, 0x55, 0xAA, 0x80, 0x01, 0xC5, 0x3C] * 3)
    for tx_baud in (BAUD * 103 // 100, BAUD * 97 // 100):
        for invert in (False, True):
            r = loop(invert, data, tx_baud=tx_baud)
            assert r.got == list(data) + [codec.GAP], (tx_baud, invert, r.got)


def lcg(seed):
    s = [seed]

    def nxt(k):
        s[0] = (s[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return s[0]
    return nxt


def waveform_rig(invert, edges):
    r = rig(invert, wired=False)
    pin = r.m.pins[RX_PIN]
    pin.level = codec.idle_level(invert)       # the line idles before the waveform starts
    r.rx.dec.level = pin.level
    Waveform(r.clock, pin, edges)
    return r


def test_clock_error_with_edge_jitter():
    data = bytes([0xC5, 0x00, 0xFF, 0x55, 0xAA, 0x81, 0x7E, 0x3C, 0x99, 0x66])
    rnd = lcg(7)
    for scale in (103, 97):
        for invert in (False, True):
            b_ns = bit_ns() * 100 / scale
            span = int(0.08 * bit_ns())

            def jitter(k, span=span):
                return (rnd(k) % (2 * span + 1)) - span
            r = waveform_rig(invert, char_edges(data, 1000000, b_ns, invert, jitter))
            r.clock.run_until(1000000 + int(len(data) * 10 * b_ns) + 5000000)
            drain(r)
            assert r.got == list(data) + [codec.GAP], (scale, invert, r.got)


def test_framing_error_is_reported_not_invented():
    b = bit_ns()
    for invert in (False, True):
        space = 1 if invert else 0
        mark = 1 - space
        t0 = 1000000
        # 0x41, then a break (line at space for 12 bit times), then 0x42 after idle
        edges = char_edges(b"\x41", t0, b, invert)
        t1 = t0 + 11 * b
        edges.append((t1, space))
        edges.append((t1 + 12 * b, mark))
        edges += char_edges(b"\x42", t1 + 14 * b, b, invert)
        r = waveform_rig(invert, edges)
        r.clock.run_until(t1 + 40 * b)
        drain(r)
        r.clock.advance_us(5000)
        drain(r)
        assert r.got == [0x41, codec.FRAMING, 0x42, codec.GAP], (invert, r.got)
        assert r.rx.dec.framing_errors == 1


def test_stop_bit_space_gives_framing_then_resyncs():
    b = bit_ns()
    t0 = 1000000
    # a character with its stop bit held at space one bit longer, then normal characters
    edges = [(t0, 0), (t0 + 11 * b, 1)]       # 0x00 whose stop bit is space
    edges += char_edges(b"\x5A\xA5", t0 + 12 * b, b)
    r = waveform_rig(False, edges)
    r.clock.run_until(t0 + 40 * b)
    drain(r)
    assert r.got == [codec.FRAMING, 0x5A, 0xA5]


def test_glitch_is_noise_not_a_byte():
    b = bit_ns()
    t0 = 1000000
    edges = [(t0, 0), (t0 + b // 5, 1)]        # 0.2 bit spike: gone before the start bit's middle
    edges += char_edges(b"\x33", t0 + 5 * b, b)
    r = waveform_rig(False, edges)
    r.clock.run_until(t0 + 30 * b)
    drain(r)
    assert r.got == [0x33] and r.rx.dec.noise == 1


def test_no_handler_the_loop_drains():
    r = rig(False)
    r.rx.set_handler(None)
    r.tx.write(b"\x10\x20\x30", 3)
    r.clock.advance_us(3500)
    assert r.got == [] and r.clock._n == 0   # nothing scheduled
    drain(r)
    r.clock.advance_us(4000)
    drain(r)
    assert r.got == [0x10, 0x20, 0x30, codec.GAP]


def test_schedule_queue_full_falls_back_to_the_loop():
    r = rig(False)
    r.clock.auto_run = False
    for _i in range(16):                     # someone else filled the queue
        r.clock.schedule(lambda a: None, 0)
    r.tx.write(b"\x77", 1)
    r.clock.advance_us(1500)
    assert r.rx._pending is False            # the failed schedule did not stick
    drain(r)
    assert r.got == [0x77]


def test_edge_ring_overrun_counted_not_fatal():
    r = rig(False, wired=False)
    pin = r.m.pins[RX_PIN]
    r.rx.set_handler(None)
    for i in range(600):                     # a burst of noise faster than the decoder runs
        r.clock.ns += 3000
        pin.drive(i & 1)
    assert r.rx.overruns > 0
    pin.drive(1)
    drain(r)
    r.clock.advance_us(10000)
    drain(r)
    assert all(v == codec.GAP or v == codec.FRAMING or 0 <= v <= 255 for v in r.got)
    # and it still receives afterwards
    r.got = []
    Waveform(r.clock, pin, char_edges(b"\x99", r.clock.ns + 1000, bit_ns()))
    r.clock.advance_us(3000)
    drain(r)
    assert r.got == [0x99]


def test_long_idle_keeps_numbers_small():
    r = rig(False)
    for _ in range(50):
        r.clock.advance_us(10000000)          # 10 s of silence, polled
        drain(r)
    assert r.rx._fed <= 0x1FFFFFF and r.rx.dec._t < 0x3FFFFFFF
    r.tx.write(b"\x42", 1)
    r.clock.advance_us(2000)
    drain(r)
    assert r.got == [0x42]


# ---- extended output: 58-byte bursts ----------------------------------------------------------

def test_58_byte_bursts_back_to_back_nothing_between():
    invert = True                            # EXTOUT_INVERT
    r = rig(invert)
    pin = r.m.pins[TX_PIN]
    burst = bytes((i * 37 + 11) & 0xFF for i in range(58))
    r.tx.write(burst, 58)
    r.clock.advance_us(70000)
    end1 = pin.history[-1][0]
    r.clock.advance_us(300000)               # the next packet comes a cycle later
    n1 = len(pin.history)
    assert pin.history[-1][0] == end1        # nothing between bursts
    r.tx.write(burst, 58)
    r.clock.advance_us(70000)
    drain(r)
    r.clock.advance_us(4000)
    drain(r)
    assert r.got == list(burst) + [codec.GAP] + list(burst) + [codec.GAP]
    # back to back: every start bit on the 10-bit grid of the burst's first start bit
    for hist in (pin.history[:n1], pin.history[n1:]):
        t0 = hist[0][0]
        k0 = (t0 * BAUD + NS - 1) // NS
        starts = [t for t, v in hist if v == (1 if invert else 0)]
        expected_starts = []
        for i, b in enumerate(burst):
            lv = codec.char_levels(b, invert)
            prev = codec.idle_level(invert) if i == 0 else (codec.char_levels(burst[i - 1], invert) >> 9) & 1
            for j in range(10):
                cur = (lv >> j) & 1
                if cur != prev and cur == (1 if invert else 0):
                    expected_starts.append((k0 + i * 10 + j) * NS // BAUD)
                prev = cur
        assert starts == expected_starts
        assert hist[-1][0] <= (k0 + 58 * 10) * NS // BAUD


# ---- no allocation in the interrupt paths -----------------------------------------------------

def test_irq_handler_and_timer_tick_allocate_nothing():
    r = rig(False, wired=False)
    pin = r.m.pins[RX_PIN]
    clock = r.clock
    clock.auto_run = False

    def edge():
        clock.ns += 52000
        pin.drive(1 - pin.level)             # calls SoftRx._edge through the pin IRQ

    assert no_alloc(edge, 40)
    assert r.rx.e_head != r.rx.e_tail and clock._n == 1   # edges stored, one hand-off queued

    tx = r.tx
    r.m.pins[TX_PIN].record = False           # the fake's own history list would allocate
    for i in range(200):
        tx.write_byte(i)
    assert no_alloc(lambda: tx._tick(None), 300)


def test_decoding_allocates_nothing():
    r = rig(False, wired=False)
    pin = r.m.pins[RX_PIN]
    clock = r.clock
    clock.auto_run = False
    rx = r.rx
    pin.level = 1                             # idle (mark)
    rx.dec.level = 1
    b = bit_ns()
    got = [0, 0]

    def one_char():
        # 0x5A on the line with edges at the right virtual times, then decode it
        t = clock.ns
        lv = codec.char_levels(0x5A)
        for i in range(10):
            clock.ns = t + i * b
            pin.drive((lv >> i) & 1)
        clock.ns = t + 10 * b
        v = rx.read()
        while v != codec.NONE:
            got[0] = v
            got[1] += 1
            v = rx.read()
        clock._n = 0                          # the loop would run the queued hand-off
        rx._pending = False

    assert no_alloc(one_char, 30)
    assert got[0] == 0x5A and got[1] >= 30
    if ON_MICROPYTHON:
        assert rx.dec.framing_errors == 0


def test_default_schedule_and_ticks():
    """Without injection the receiver uses micropython.schedule and time.ticks_us (the
    CPython shim runs the scheduled call at once)."""
    clock = Clock()
    m = make_machine(clock)
    if not ON_MICROPYTHON:
        import time
        if not hasattr(time, "ticks_us"):
            return _default_with_shim(m)
    rx = link_soft.SoftRx(m.Pin(3, m.Pin.IN), False, BAUD, GAP_BITS)
    assert rx.read() == codec.NONE


def _default_with_shim(m):
    import micropython
    calls = []
    rx = link_soft.SoftRx(m.Pin(3, m.Pin.IN), False, BAUD, GAP_BITS,
                          ticks_us=lambda: 0, ticks_diff=lambda a, b: a - b)
    assert rx._schedule is micropython.schedule
    rx.set_handler(lambda: calls.append(1))
    m.pins[3].drive(1)
    assert calls == [1]
