"""hal.link, hal.link_pio and hal.link_uart against injected fake hardware (CPython only: the
fake rp2.asm_pio swaps the program function's globals, which needs ``__globals__``).

PIO: the firmware's programs are assembled by host_tests/core/fake_machine.py into RP2040
instruction words (encodings checked against the datasheet's). Whether the programs themselves
are right (line levels, bit timing, clock skew, framing errors) is tested in a real PIO
emulator, host_tests/test_pio_emulator.py; here the PioTx / PioRx classes' contract (FIFO,
write_byte / read, gap timing, bursts, soft <-> pio) runs on fake_machine's small state-machine
simulator in virtual time. UART: the write / read contract, gap
detection from idle time, bad bytes. Factory: make_tx / make_rx for every board definition.
"""

from fake_machine import NS, Clock, decode_fields, make_machine, make_rp2

from board_defs import esp32_devkitc, esp32c3_devkitm, pico, pico_w
from core import codec, frame
from hal import link, link_pio, link_soft, link_uart

BAUD = 9600
GAP_US = (30 * 1000000 + BAUD - 1) // BAUD


# ---- the fake assembler encodes like the RP2040 datasheet -------------------------------------

def _prog(**opts):
    rp2 = make_rp2(Clock())
    return lambda fn: rp2.asm_pio(**opts)(fn)


def test_assembler_encodings_match_the_datasheet():
    def p():
        nop()                      # noqa: F821 - names come from the assembler
        pull(block)                # noqa: F821
        push(block)                # noqa: F821
        set(pins, 1)               # noqa: F821
        mov(isr, invert(null))     # noqa: F821
        jmp(x_dec, "end")          # noqa: F821
        wait(1, pin, 0)            # noqa: F821
        in_(pins, 1)               # noqa: F821
        out(pins, 1)               # noqa: F821
        irq(rel(0))                # noqa: F821
        label("end")               # noqa: F821
        jmp(pin, 0)                # noqa: F821
    prog = _prog()(p)
    assert prog.words == [0xA042, 0x80A0, 0x8020, 0xE001, 0xA0CB, 0x004A, 0x20A0, 0x4001,
                          0x6001, 0xC010, 0x00C0]
    assert "nop" not in globals()              # the function's globals were restored


def test_tx_programs_eight_cycles_per_bit_and_polarity():
    rp2 = make_rp2(Clock())
    for name, mark in (("tx_normal", 1), ("tx_inverted", 0)):
        prog = link_pio.program(rp2, name)
        assert prog.sideset_bits == 2 and prog.sideset_opt     # 1 pin + enable bit
        fields = [decode_fields(w, 2, True) for w in prog.words]
        ops = [f[0] for f in fields]
        assert ops == [4, 7, 3, 0]                              # pull, set, out, jmp
        (_, _, d_pull, s_pull), (_, a_set, d_set, s_set), (_, a_out, d_out, s_out), \
            (_, a_jmp, d_jmp, s_jmp) = fields
        assert (s_pull, s_set, s_out, s_jmp) == (mark, 1 - mark, None, None)
        assert 1 + d_pull == 8 and 1 + d_set == 8 and (1 + d_out) + (1 + d_jmp) == 8
        assert a_set == (1 << 5) | 7                            # set x, 7: 8 data bits
        assert a_jmp == (2 << 5) | 2                            # jmp x--, back to out
        assert prog.opts["out_shiftdir"] == rp2.PIO.SHIFT_RIGHT  # LSB first
        assert prog.opts["fifo_join"] == rp2.PIO.JOIN_TX


def test_rx_program_sampling_points():
    """Cycles from the start edge to each `in` and to the stop-bit `jmp pin`."""
    rp2 = make_rp2(Clock())
    for name in ("rx_normal", "rx_inverted"):
        prog = link_pio.program(rp2, name)
        words = prog.words
        # PIO0 holds TX (4) + RX + (Pico W) the extended output's TX: 32 instructions in all
        assert len(words) <= 17
        fields = [decode_fields(w, 0, False) for w in words]
        assert fields[0][0] == 1                               # wait
        cyc = 0
        pc = 1
        x = None
        samples = []
        stop = None
        while stop is None:
            op, arg, delay, _ = fields[pc]
            cyc += 1
            if op == 7 and arg >> 5 == 1:
                x = arg & 0x1F
            elif op == 2:
                samples.append(cyc)
            elif op == 0 and arg >> 5 == 2:
                if x:
                    x -= 1
                    cyc += delay
                    pc = arg & 0x1F
                    continue
            elif op == 0 and arg >> 5 == 6:
                stop = cyc
            cyc += delay
            pc += 1
        assert samples == [24 + 16 * k for k in range(8)]        # data bits at 1.5 .. 8.5 bits
        assert stop == 148                                      # stop bit at 9.25 bits
        # after the stop bit: push, irq, then the start-edge wait at 151 cycles = 9.44 bits,
        # before a 5 % fast sender's next start edge (10 / 1.05 bits = 152.4 cycles)
        g = pc if name == "rx_inverted" else prog.labels["good"]   # pc: after the jmp pin
        assert fields[g][0] == 4 and fields[g][1] & 0x80 == 0     # push
        assert fields[g + 1][0] == 6 and prog.wrap == g + 1       # irq, then wrap to the wait
        assert prog.wrap_target == 0


# ---- PIO in virtual time ----------------------------------------------------------------------

def pio_rig(invert, tx_scale=1.0, phase_ns=0, rx_backend="pio", tx_backend="pio"):
    class Rig:
        pass

    r = Rig()
    r.clock = Clock()
    r.m = make_machine(r.clock)
    r.rp2 = make_rp2(r.clock)
    r.rp2.clock_scale[0] = tx_scale
    r.rp2.phase_ns[1] = phase_ns
    m = r.m
    tx_pin = m.Pin(0, m.Pin.OUT, value=0 if invert else 1)
    tx_pin.record = True
    if tx_backend == "pio":
        r.tx = link_pio.PioTx(0, tx_pin, invert, BAUD, rp2=r.rp2)
    else:
        r.tx = link_soft.SoftTx(tx_pin, m.Timer(-1), invert, int(BAUD * tx_scale))
    rx_pin = m.Pin(1, m.Pin.IN)
    m.connect(0, 1)
    if rx_backend == "pio":
        r.rx = link_pio.PioRx(1, rx_pin, invert, BAUD, 30, rp2=r.rp2, ticks_us=r.clock.ticks_us,
                              ticks_diff=r.clock.ticks_diff)
    else:
        r.rx = link_soft.SoftRx(rx_pin, invert, BAUD, 30, ticks_us=r.clock.ticks_us,
                                ticks_diff=r.clock.ticks_diff, schedule=r.clock.schedule)
    r.got = []
    r.handled = [0]

    def handler():
        r.handled[0] += 1
        drain(r)

    r.rx.set_handler(handler)
    r.clock.advance_us(5000)     # the line idle a gap long since the start (hal/link.py "Start-up")
    return r


def drain(r):
    while True:
        v = r.rx.read()
        if v == codec.NONE:
            return
        r.got.append(v)


def send(r, data, settle_us=5000):
    r.tx.write(data, len(data))
    r.clock.advance_us(len(data) * 1100 + 500)
    drain(r)
    r.clock.advance_us(settle_us)
    drain(r)


def test_pio_write_byte_and_read_contract():
    r = pio_rig(False)
    assert r.rx.read() == codec.NONE
    accepted = [r.tx.write_byte(i) for i in range(12)]
    assert accepted[:8] == [True] * 8 and False in accepted     # 8-deep FIFO, full = False
    assert r.tx.pending() >= 7
    r.clock.advance_us(12000)
    assert r.tx.pending() == 0
    drain(r)
    n = sum(accepted)
    assert r.got[:n] == [i for i, ok in enumerate(accepted) if ok]
    assert r.got[n:] == [codec.GAP]
    assert r.rx.read() == codec.NONE                              # one GAP per idle period
    r.clock.advance_us(10000)
    assert r.rx.read() == codec.NONE


def test_pio_gap_needs_30_idle_bit_times():
    r = pio_rig(True)
    r.rx.set_handler(None)
    r.tx.write(b"\x12", 1)
    r.clock.advance_us(1100)
    assert r.rx.read() == 0x12
    r.clock.advance_us(GAP_US - 200)
    assert r.rx.read() == codec.NONE
    r.clock.advance_us(300)
    assert r.rx.read() == codec.GAP


def test_cross_backends_soft_and_pio():
    data = bytes(range(0, 256, 7))
    for invert in (False, True):
        r = pio_rig(invert, tx_backend="soft")
        send(r, data)
        assert r.got == list(data) + [codec.GAP], ("soft->pio", invert)
        r = pio_rig(invert, rx_backend="soft")
        send(r, data)
        assert r.got == list(data) + [codec.GAP], ("pio->soft", invert)


def test_pio_58_byte_bursts_back_to_back_nothing_between():
    invert = pico_w.EXTOUT_INVERT
    r = pio_rig(invert)
    burst = bytes((i * 53 + 7) & 0xFF for i in range(58))
    pin = r.m.pins[0]
    cyc = NS / (8 * BAUD)
    for _burst in range(2):
        start = len(pin.history)
        r.tx.write(burst, 58)                     # blocks while the FIFO is full, as on a board
        r.clock.advance_us(70000)
        hist = pin.history[start:]
        t0 = hist[0][0]
        last = hist[-1][0]
        assert round((last - t0) / cyc) <= 58 * 80            # no idle inside the burst
        r.clock.advance_us(200000)
        assert pin.history[-1][0] == last                     # nothing between bursts
        drain(r)
    assert r.got == (list(burst) + [codec.GAP]) * 2



def _idle_reports(r, pin, step_us, until_us):
    """(first time pending() said 0, time of the line's last edge) over until_us."""
    first_idle = None
    t_end = r.clock.ns + until_us * 1000
    while r.clock.ns < t_end:
        if first_idle is None and r.tx.pending() == 0:
            first_idle = r.clock.ns
        r.clock.advance_us(step_us)
    return first_idle, pin.history[-1][0]


def test_pio_pending_counts_the_character_in_the_shift_register():
    """Issue 19: light sleep gated the PIO clock with the last character (CRC_B) half sent,
    because pending() counted the FIFO only. Now "idle" is reported only once every character
    has left the pin, and soon after (within a character time and a bit)."""
    for invert in (False, True):
        for n in (1, 3, 9):
            r = pio_rig(invert)
            r.tx = link_pio.PioTx(2, r.m.Pin(5, r.m.Pin.OUT), invert, BAUD, rp2=r.rp2,
                                  ticks_us=r.clock.ticks_us, ticks_diff=r.clock.ticks_diff)
            pin = r.m.pins[5]
            pin.record = True
            sm = r.rp2.machines[2]
            sent = [r.tx.write_byte(0x00) for _ in range(n)]     # 0x00: the last edge is late
            t0 = r.clock.ns
            fifo_empty = None
            first_idle = None
            while r.clock.ns < t0 + 15000000:
                if fifo_empty is None and sm.tx_fifo() == 0:
                    fifo_empty = r.clock.ns
                if first_idle is None and r.tx.pending() == 0:
                    first_idle = r.clock.ns
                r.clock.advance_us(20)
            last_edge = pin.history[-1][0]
            k = sum(sent)
            assert fifo_empty < last_edge                     # the FIFO empties long before
            assert first_idle >= last_edge, (invert, n, first_idle, last_edge)
            char_ns = 10 * NS // BAUD
            assert first_idle - t0 <= (k + 1) * char_ns + 100000  # and idle is seen soon after
            assert r.tx.pending() == 0


def test_pio_pending_after_a_burst_write():
    r = pio_rig(False)
    r.tx = link_pio.PioTx(2, r.m.Pin(5, r.m.Pin.OUT), False, BAUD, rp2=r.rp2,
                          ticks_us=r.clock.ticks_us, ticks_diff=r.clock.ticks_diff)
    pin = r.m.pins[5]
    pin.record = True
    r.tx.write(bytes(20), 20)
    first_idle, last_edge = _idle_reports(r, pin, 20, 20000)
    assert last_edge <= first_idle <= last_edge + 2 * 10 * NS // BAUD


# ---- UART ---------------------------------------------------------------------------------------

def uart_rig():
    clock = Clock()
    m = make_machine(clock)
    tx = link_uart.UartTx(link_uart.make_uart(m, 1, BAUD, tx=21, rx=35, invert=True))
    rx = link_uart.UartRx(link_uart.make_uart(m, 2, BAUD, tx=26, rx=27, invert=True), BAUD, 30,
                          ticks_us=clock.ticks_us, ticks_diff=clock.ticks_diff)
    clock.advance_us(5000)     # the line idle a gap long since the start (hal/link.py "Start-up")
    return clock, m, tx, rx


def test_make_uart_settings():
    clock, m, tx, rx = uart_rig()
    u_tx, u_rx = m.uarts
    assert (u_tx.id, u_tx.baudrate, u_tx.bits, u_tx.parity, u_tx.stop) == (1, BAUD, 8, None, 1)
    both = m.UART.INV_TX | m.UART.INV_RX
    assert u_tx.tx == 21 and u_tx.rx == 35 and u_tx.invert == both
    assert u_rx.rx == 27 and u_rx.tx == 26 and u_rx.invert == both
    u = link_uart.make_uart(m, 0, 19200, tx=1, rx=2)
    assert u.invert == 0 and (u.tx, u.rx) == (1, 2)
    # issue 13: a missing pin would be the port's default (UART1 RX = GPIO9, a flash pin)
    for tx_pin, rx_pin in ((21, None), (None, 27)):
        try:
            link_uart.make_uart(m, 1, BAUD, tx=tx_pin, rx=rx_pin)
        except ValueError as e:
            assert "both tx and rx" in str(e)
        else:
            raise AssertionError("a UART with one pin was built")


def test_uart_write_and_pending():
    clock, m, tx, rx = uart_rig()
    u = m.uarts[0]
    assert tx.pending() == 0
    assert tx.write_byte(0x1C5) is True
    assert u.sent == bytearray([0xC5]) and tx.pending() == 1
    clock.advance_us(1100)
    assert tx.pending() == 0



def test_uart_pending_outlasts_a_fifo_only_txdone():
    """rp2's UART.txdone() is True once the FIFO is empty, with the last character still in
    the shift register: pending() keeps counting it until it has left the pin."""
    clock = Clock()
    m = make_machine(clock)
    u = link_uart.make_uart(m, 1, BAUD, tx=21, rx=35, invert=True)
    u.txdone = lambda: not u.starts or clock.ns >= u.starts[-1]    # FIFO empty: last one started
    tx = link_uart.UartTx(u, BAUD, ticks_us=clock.ticks_us, ticks_diff=clock.ticks_diff,
                          ticks_add=clock.ticks_add)
    for burst in (1, 5):
        for i in range(burst):
            assert tx.write_byte(0x55 + i)
        end_ns = u.starts[-1] + u.char_ns()
        seen_idle = None
        while clock.ns < end_ns + 3000000:
            if seen_idle is None and tx.pending() == 0:
                seen_idle = clock.ns
            clock.advance_us(20)
        assert end_ns <= seen_idle <= end_ns + 200000, (burst, seen_idle, end_ns)

def test_uart_58_byte_burst_back_to_back():
    clock, m, tx, rx = uart_rig()
    u = m.uarts[0]
    burst = bytes(range(100, 158))
    tx.write(burst, 58)
    clock.advance_us(200000)
    tx.write(burst, 58)
    assert bytes(u.sent) == burst * 2
    gaps = [u.starts[i + 1] - u.starts[i] for i in range(len(u.starts) - 1)]
    assert gaps[:57] == [u.char_ns()] * 57 and gaps[58:] == [u.char_ns()] * 57
    assert gaps[57] > 100 * u.char_ns()


def test_uart_read_and_gap():
    clock, m, tx, rx = uart_rig()
    u = m.uarts[1]
    assert rx.read() == codec.NONE
    clock.advance_us(GAP_US * 3)
    assert rx.read() == codec.NONE               # no GAP before any character
    u.receive(b"\x01\x02")
    assert [rx.read(), rx.read(), rx.read()] == [1, 2, codec.NONE]
    clock.advance_us(GAP_US - 10)
    assert rx.read() == codec.NONE
    clock.advance_us(20)
    assert rx.read() == codec.GAP
    clock.advance_us(GAP_US * 2)
    assert rx.read() == codec.NONE               # one GAP per idle period
    assert rx.interrupt_driven is False


def test_uart_bad_byte_is_caught_by_the_frame_crc():
    """MicroPython's UART hides framing errors: a damaged character arrives as a byte. The
    receiver passes it on; the frame's CRC rejects the section."""
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 4, 9, 0x40, 1, 1)
    up = frame.Forwarder()
    up.set_own(3300, 250, 0)
    good = bytearray()
    for i in range(n):
        o = up.byte(buf[i])
        if o >= 0:
            good.append(o)
    for damaged_at in (5, 40):
        clock, m, tx, rx = uart_rig()
        data = bytearray(good)
        data[damaged_at] ^= 0x10                     # what a mis-sampled character looks like
        m.uarts[1].receive(data)
        fw = frame.Forwarder()
        fw.set_own(3300, 250, 0)
        results = {}
        while True:
            v = rx.read()
            if v == codec.NONE:
                break
            assert 0 <= v <= 255                     # never FRAMING from the UART backend
            fw.byte(v)
            if fw.event == frame.EV_A:
                results["a"] = fw.a_result
            if fw.event == frame.EV_B:
                results["b"] = fw.b_result
        if damaged_at < frame.A_LEN:
            assert results["a"] == frame.BAD
        else:
            assert results["a"] == frame.OK and results["b"] == frame.BAD


# ---- factory: make_tx / make_rx from the board definitions ---------------------------------------

class SoftBoard:
    LINK_BACKEND = "soft"
    LINK_IN_PIN = 4
    LINK_OUT_PIN = 5
    LINK_BAUD = 2400
    LINK_INVERT = False
    LINK_SOFT_TIMER_ID = 3
    EXTOUT_PIN = 6


def test_factory_pio_boards():
    for bd in (pico, pico_w):
        clock = Clock()
        m = make_machine(clock)
        rp2 = make_rp2(clock)
        tx = link.make_tx(bd, bd.LINK_OUT_PIN, bd.LINK_INVERT, bd.LINK_BAUD, machine=m, rp2=rp2)
        rx = link.make_rx(bd, machine=m, rp2=rp2, time=clock)
        assert isinstance(tx, link_pio.PioTx) and isinstance(rx, link_pio.PioRx)
        assert rp2.machines[bd.LINK_PIO_SM_TX].out_base is m.pins[bd.LINK_OUT_PIN]
        assert rp2.machines[bd.LINK_PIO_SM_TX].freq == 8 * bd.LINK_BAUD
        assert rp2.machines[bd.LINK_PIO_SM_RX].freq == 16 * bd.LINK_BAUD
        assert rp2.machines[bd.LINK_PIO_SM_RX].in_base is m.pins[bd.LINK_IN_PIN]
        assert rp2.machines[bd.LINK_PIO_SM_RX].jmp_pin is m.pins[bd.LINK_IN_PIN]
        assert m.pins[bd.LINK_OUT_PIN].level == codec.idle_level(bd.LINK_INVERT)
    ext = link.make_tx(pico_w, pico_w.EXTOUT_PIN, pico_w.EXTOUT_INVERT, pico_w.EXTOUT_BAUD,
                       machine=m, rp2=rp2)
    assert isinstance(ext, link_pio.PioTx)
    assert rp2.machines[pico_w.EXTOUT_PIO_SM].sideset_base is m.pins[pico_w.EXTOUT_PIN]
    assert link.make_tx(pico, pico.EXTOUT_PIN, True, 9600, machine=m, rp2=rp2) is None
    words = sum(len(link_pio.program(rp2, n).words) for n in ("tx_inverted", "rx_inverted"))
    assert words <= 32                           # one PIO block's instruction memory


def test_factory_uart_boards():
    for bd in (esp32_devkitc, esp32c3_devkitm):
        clock = Clock()
        m = make_machine(clock)
        tx = link.make_tx(bd, bd.LINK_OUT_PIN, bd.LINK_INVERT, bd.LINK_BAUD, machine=m)
        rx = link.make_rx(bd, machine=m, time=clock)
        assert isinstance(tx, link_uart.UartTx) and isinstance(rx, link_uart.UartRx)
        # both constructions of the link UART: the same two pins and the same polarity pair
        # (TX inverted for the opto LED, RX not: the opto inverted back)
        for u in (tx.uart, rx.uart):
            assert u.id == bd.LINK_UART_ID and (u.tx, u.rx) == (bd.LINK_OUT_PIN, bd.LINK_IN_PIN)
            assert u.invert == m.UART.INV_TX, bd.NAME
    m = make_machine(Clock())
    ext = link.make_tx(esp32_devkitc, esp32_devkitc.EXTOUT_PIN, True, 9600, machine=m)
    assert isinstance(ext, link_uart.UartTx) and ext.uart.id == esp32_devkitc.EXTOUT_UART_ID
    assert (ext.uart.tx, ext.uart.rx) == (esp32_devkitc.EXTOUT_PIN, esp32_devkitc.EXTOUT_UART_RX_PIN)


# ---- the documented opto stage between two boards (docs/wiring.md) ------------------------------

ALL_BOARDS = (pico, pico_w, esp32_devkitc, esp32c3_devkitm)


class OptoStage:
    """LINK_OUT -> 330 R -> opto LED; opto transistor pulls LINK_IN low against its pull-up:
    LINK_IN = NOT LINK_OUT (the one inversion docs/wiring.md describes)."""

    def __init__(self, out_pin, in_pin):
        self.in_pin = in_pin
        out_pin.sinks.append(self)
        in_pin.level = 1 - out_pin.level

    def drive(self, v):
        self.in_pin.drive(1 - v)


def _tx_idle_level(bd, tx):
    if isinstance(tx, link_uart.UartTx):
        return codec.idle_level(bool(tx.uart.invert & 1))
    return None


def _rx_inverted(rx):
    if isinstance(rx, link_uart.UartRx):
        return bool(rx.uart.invert & 2)
    return rx._xor == 0xFF if isinstance(rx, link_pio.PioRx) else rx.dec.invert


def test_every_board_pair_idles_at_the_receivers_mark_through_the_opto():
    """For every (upstream, downstream) board pair: the level LINK_IN rests at through the opto
    stage is the idle (mark) level the downstream receiver is configured for, and the polarity
    the sender uses for a start bit arrives as the receiver's start bit."""
    for up in ALL_BOARDS:
        for down in ALL_BOARDS:
            clock = Clock()
            m = make_machine(clock)
            rp2 = make_rp2(clock)
            tx = link.make_tx(up, up.LINK_OUT_PIN, up.LINK_INVERT, up.LINK_BAUD, machine=m, rp2=rp2)
            idle_out = _tx_idle_level(up, tx)
            if idle_out is None:
                idle_out = m.pins[up.LINK_OUT_PIN].level
            assert idle_out == codec.idle_level(up.LINK_INVERT)
            assert idle_out == 0, up.NAME          # opto LED off while idle (docs/wiring.md)
            clock2 = Clock()
            m2 = make_machine(clock2)
            rx = link.make_rx(down, machine=m2, rp2=make_rp2(clock2), time=clock2)
            line_idle = 1 - idle_out               # through the opto stage
            assert codec.idle_level(_rx_inverted(rx)) == line_idle, (up.NAME, down.NAME)
            assert link.rx_invert(down) is False


def test_frame_through_the_opto_stage_between_pio_boards():
    """Begin-style PIO transmitter -> opto stage -> PIO receiver, both built by the factory from
    the board definitions: a whole frame arrives (the inverting receiver gave framing errors)."""
    for up, down in ((pico, pico), (pico, pico_w), (pico_w, pico)):
        clock = Clock()
        m = make_machine(clock)
        rp2 = make_rp2(clock)
        out_pin = up.LINK_OUT_PIN
        in_pin = 40 + down.LINK_IN_PIN               # separate pin ids: two boards, one machine
        tx = link.make_tx(up, out_pin, up.LINK_INVERT, up.LINK_BAUD, machine=m, rp2=rp2)

        class Down:
            pass

        for k in dir(down):
            if k.isupper():
                setattr(Down, k, getattr(down, k))
        Down.LINK_IN_PIN = in_pin
        Down.LINK_PIO_SM_RX = 5
        rx = link.make_rx(Down, machine=m, rp2=rp2, time=clock)
        OptoStage(m.pins[out_pin], m.pins[in_pin])
        buf = bytearray(frame.MAX_FRAME)
        n = frame.build_empty(buf, 16, 7, 0x80, 0, 1)
        got = []

        def handler(rx=rx, got=got):
            while True:
                v = rx.read()
                if v == codec.NONE:
                    return
                got.append(v)

        rx.set_handler(handler)
        tx.write(buf, n)
        clock.advance_us(n * 1100 + 500)
        handler()
        clock.advance_us(5000)
        handler()
        assert got == list(buf[:n]) + [codec.GAP], (up.NAME, down.NAME, got[:5])
        assert rx.framing_errors == 0


def test_factory_soft_board():
    clock = Clock()
    m = make_machine(clock)
    tx = link.make_tx(SoftBoard, SoftBoard.LINK_OUT_PIN, False, 2400, machine=m)
    ext = link.make_tx(SoftBoard, SoftBoard.EXTOUT_PIN, True, 9600, machine=m)
    assert isinstance(tx, link_soft.SoftTx) and isinstance(ext, link_soft.SoftTx)
    assert m.timers[0].id == 3 and m.timers[0].freq == 2400 and m.timers[1].freq == 9600
    assert m.pins[SoftBoard.EXTOUT_PIN].level == 0           # inverted: idle low
    rx = link.make_rx(SoftBoard, machine=m, time=clock)
    assert isinstance(rx, link_soft.SoftRx)
    assert m.pins[SoftBoard.LINK_IN_PIN].handler is not None


def test_backends_import_without_hardware():
    """No machine / rp2 import at module level: the modules load on the host."""
    import importlib
    for mod in (link, link_soft, link_pio, link_uart):
        importlib.reload(mod)


def test_pio_receiver_started_mid_frame_drops_the_tail_and_takes_the_next_frame():
    """Issue 19 (emulated chip): the End's receiver ran while the End loaded its settings, the FIFO
    filled with the tail of a frame and the role then counted a cut and a bad frame. What piled
    up before set_handler, and what follows it by less than a gap, is dropped unseen; the next
    frame after a gap of idle line arrives whole."""
    clock = Clock()
    m = make_machine(clock)
    rp2 = make_rp2(clock)
    tx_pin = m.Pin(0, m.Pin.OUT, value=1)
    tx = link_pio.PioTx(0, tx_pin, False, BAUD, rp2=rp2)
    rx_pin = m.Pin(1, m.Pin.IN)
    m.connect(0, 1)
    rx = link_pio.PioRx(1, rx_pin, False, BAUD, 30, rp2=rp2, ticks_us=clock.ticks_us,
                        ticks_diff=clock.ticks_diff)
    first = bytes(range(0x40, 0x40 + 20))
    tx.write(first, 12)                       # a frame passing while the role is not listening
    clock.advance_us(12 * 1100)               # the FIFO fills (8) and the state machine stalls
    got = []

    def handler():
        while True:
            v = rx.read()
            if v == codec.NONE:
                return
            got.append(v)
    rx.set_handler(handler)
    assert rx.dropped >= 8
    tx.write(first[12:], 8)                   # the rest of that frame
    clock.advance_us(8 * 1100)
    handler()
    assert got == [] and rx.framing_errors == 0
    clock.advance_us(5000)                    # the gap after it
    second = bytes(range(0x80, 0x80 + 10))
    tx.write(second, 10)
    clock.advance_us(10 * 1100 + 500)
    handler()
    clock.advance_us(5000)
    handler()
    assert got == list(second) + [codec.GAP]
