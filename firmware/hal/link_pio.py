"""RP2040 PIO link backend: one state machine sends (8 cycles per bit), one receives (16).
# mypy-targets: rp2

Hardware is injected: ``PioTx(sm_id, pin, invert, baud, rp2=None)``, ``PioRx(sm_id, pin,
invert, baud, gap_bits, rp2=None, ...)`` take Pin objects and (for tests) an rp2 module; the
programs below are plain functions assembled with ``rp2.asm_pio`` when the first state machine
is made, so importing this module touches no hardware (and needs no rp2 module).

TX (8 cycles per bit, side-set optional on the one pin): ``pull`` holds the line at mark
(side-set, also the stop bit), ``set x`` asserts the start bit, then ``out`` + ``jmp x--``
shift 8 data bits LSB first. A byte waiting in the FIFO follows after exactly one stop bit, so
a burst goes out back to back. The inverted program swaps the side-set levels; the CPU inverts
the data bits.

RX (16 cycles per bit): ``wait`` for the start edge (seen 0..1 cycle late), sample the 8 data
bits at 1.5 .. 8.5 bits and test the stop bit (``jmp pin``) at 9.25 bits, then push, raise the
IRQ flag and wait for the next start edge from 9.44 bits on: before a fast sender's next start
edge (9.52 bits at +5 %). A stop bit still at space at 9.25 bits gets a second look at 9.625
bits (then waiting again from 9.81 / 9.88 bits): behind the opto stage the rising edge into the
stop bit comes about 20 us (0.19 bit) late (PC817 storage + pull-up), so a receiver faster than
its sender samples it before it got there; a receiver that fast sees the sender's next start
edge after 10 of its own bits and more, so the later wait costs nothing. Through the opto this
holds a receiver up to 4.2 % faster than its sender (then the data bits' late rising edges
fail) and a sender up to 5 % faster (one sample at 9.375 bits, before issue 12: 2.5 % / 3.9 %;
host_tests/test_pio_emulator.py); at 8 cycles per bit the push and IRQ after the stop bit would
not fit. A good character is pushed as 8 bits (bits
31..24, bit 23 = 0); a framing error (stop bit = space) pushes all ones and waits for the line
to return to mark, so a break is one FRAMING and no invented bytes. The IRQ flag's (soft)
handler runs the receiver's handler (roles.LinkPort.poll) after each push. ``read`` takes
``sm.get(None, 23)`` (<= 511, no big int): bit 0 set = FRAMING.
"""
from micropython import const

from core import codec

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from rp2 import label, wait, pin, set, x, in_, pins, jmp, x_dec, push, block
    from rp2 import irq, rel, out, pull, nop, mov, isr, invert, null, wrap_target, wrap  # noqa: F401

_FIFO_MAX = const(8)      # joined FIFO depth
TX_CYCLES_PER_BIT = const(8)
RX_CYCLES_PER_BIT = const(16)


def _tx_normal():
    pull().side(1)[7]                 # mark: idle, and the stop bit (8 cycles with the delay)
    set(x, 7).side(0)[7]              # start bit, 8 cycles
    label("bits")
    out(pins, 1)                      # data bit, LSB first
    jmp(x_dec, "bits")[6]             # 1 + 7 = 8 cycles per bit


def _tx_inverted():
    pull().side(0)[7]                 # mark is low behind an inverting opto stage
    set(x, 7).side(1)[7]              # start bit high
    label("bits")
    out(pins, 1)                      # the CPU sends the data bits already inverted
    jmp(x_dec, "bits")[6]


def _rx_normal():
    wrap_target()
    label("start")
    wait(0, pin, 0)                   # start edge: cycle W (seen 0..1 cycle = 1/16 bit late)
    set(x, 7)[8]                      # W+1 .. W+9
    label("bits")
    nop()[13]                         # W+10+16k .. W+23+16k
    in_(pins, 1)                      # W+24+16k: middle of data bit k
    jmp(x_dec, "bits")                # the last one at W+137
    nop()[9]                          # W+138 .. W+147
    jmp(pin, "good")                  # W+148: the stop bit (9.25 bits) must be mark (high)
    nop()[4]                          # W+149 .. W+153
    jmp(pin, "good")                  # W+154: a second look at 9.625 bits (slow rising edge)
    mov(isr, invert(null))            # framing error: all ones
    push(block)
    irq(rel(0))
    wait(1, pin, 0)                   # back to mark before looking for a start edge
    jmp("start")
    label("good")
    push(block)                       # W+149 (W+155 after the second look)
    irq(rel(0))                       # W+150; waiting for the next start edge from W+151 (W+157)
    wrap()


def _rx_inverted():
    wrap_target()
    label("start")
    wait(1, pin, 0)                   # start edge (high behind an inverting opto stage)
    set(x, 7)[8]
    label("bits")
    nop()[13]
    in_(pins, 1)
    jmp(x_dec, "bits")
    nop()[9]
    jmp(pin, "late")                  # W+148: the stop bit must be low here
    label("good")
    push(block)                       # W+149 (W+156 after the second look)
    irq(rel(0))                       # W+150
    wrap()
    label("late")
    nop()[4]                          # W+149 .. W+153
    jmp(pin, "bad")                   # W+154: a second look at 9.625 bits
    jmp("good")                       # W+155
    label("bad")
    mov(isr, invert(null))
    push(block)
    irq(rel(0))
    wait(0, pin, 0)                   # back to mark (low)
    jmp("start")


_ASSEMBLED: dict = {}     # name -> (rp2 module, program): each program assembled once


def program(rp2, name):
    """The assembled program ``name`` ("tx_normal", "tx_inverted", "rx_normal",
    "rx_inverted") for this rp2 module."""
    got = _ASSEMBLED.get(name)
    if got is not None and got[0] is rp2:
        return got[1]
    PIO = rp2.PIO
    if name == "tx_normal":
        prog = rp2.asm_pio(sideset_init=PIO.OUT_HIGH, out_init=PIO.OUT_HIGH,
                           out_shiftdir=PIO.SHIFT_RIGHT, fifo_join=PIO.JOIN_TX)(_tx_normal)
    elif name == "tx_inverted":
        prog = rp2.asm_pio(sideset_init=PIO.OUT_LOW, out_init=PIO.OUT_LOW,
                           out_shiftdir=PIO.SHIFT_RIGHT, fifo_join=PIO.JOIN_TX)(_tx_inverted)
    elif name == "rx_normal":
        prog = rp2.asm_pio(in_shiftdir=PIO.SHIFT_RIGHT, fifo_join=PIO.JOIN_RX)(_rx_normal)
    elif name == "rx_inverted":
        prog = rp2.asm_pio(in_shiftdir=PIO.SHIFT_RIGHT, fifo_join=PIO.JOIN_RX)(_rx_inverted)
    else:
        raise ValueError(name)
    _ASSEMBLED[name] = (rp2, prog)
    return prog


def _rp2(rp2):
    if rp2 is None:
        import rp2 as _rp2mod
        return _rp2mod
    return rp2


class PioTx:
    """``write_byte(b)`` -> bool, ``write(buf, n)``, ``pending()``: characters not yet on the
    wire, counting the one the state machine is still shifting out (``ticks_us`` of the last
    put and the FIFO level then bound when the line is idle again: at most (level + 1)
    character times later). ``char_us``: for pacing a queue into the FIFO."""

    def __init__(self, sm_id, pin, invert, baud, rp2=None, ticks_us=None, ticks_diff=None):
        rp2 = _rp2(rp2)
        if ticks_us is None or ticks_diff is None:
            import time
            # CPython has no ticks: int() (0) stands in, and pending() is the FIFO level only
            ticks_diff = getattr(time, "ticks_diff", None)
            ticks_us = getattr(time, "ticks_us", int) if ticks_diff is not None else int
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self.char_us = (10000000 + baud - 1) // baud
        self._last = 0            # ticks_us of the last put
        self._lvl = 0             # FIFO level right after it (0: the line is known idle)
        pin.value(0 if invert else 1)
        prog = program(rp2, "tx_inverted" if invert else "tx_normal")
        self._xor = 0xFF if invert else 0
        self.sm = rp2.StateMachine(sm_id, prog, freq=TX_CYCLES_PER_BIT * baud, sideset_base=pin,
                                   out_base=pin)
        self.sm.active(1)

    def write_byte(self, b):
        sm = self.sm
        n = sm.tx_fifo()
        if n >= _FIFO_MAX:
            return False
        sm.put((b ^ self._xor) & 0xFF)
        self._last = self._ticks_us()
        self._lvl = n + 1
        return True

    def write(self, buf, n):
        """Burst: blocks while the 8-deep FIFO is full (a 198-byte frame: about 200 ms)."""
        sm = self.sm
        x = self._xor
        for i in range(n):
            sm.put((buf[i] ^ x) & 0xFF)
        if n > 0:
            self._last = self._ticks_us()
            lvl = sm.tx_fifo()
            self._lvl = lvl if lvl else 1

    def pending(self):
        n = self.sm.tx_fifo()
        if n:
            return n
        lvl = self._lvl
        if lvl and self._ticks_diff is not None:
            # the last put found lvl - 1 characters queued and maybe one in the shift register
            d = self._ticks_diff(self._ticks_us(), self._last)
            c = self.char_us
            if 0 <= d < (lvl + 1) * c + (c >> 5):
                return 1
            self._lvl = 0
        return 0


class PioRx:
    """``read()`` -> byte, codec.FRAMING, codec.GAP or codec.NONE; ``set_handler(fn)``.

    Start-up (hal/link.py): when ``set_handler`` finds characters piled up in the FIFO (the
    state machine ran before anyone read it, a frame was passing), it drops them and hunts:
    characters that follow by less than a gap are that frame's tail, dropped unseen; the first
    character after a gap of idle line starts a frame."""

    def __init__(self, sm_id, pin, invert, baud, gap_bits, rp2=None, ticks_us=None,
                 ticks_diff=None):
        rp2 = _rp2(rp2)
        if ticks_us is None or ticks_diff is None:
            import time
            ticks_us = time.ticks_us
            ticks_diff = time.ticks_diff
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        prog = program(rp2, "rx_inverted" if invert else "rx_normal")
        self._xor = 0xFF if invert else 0
        self.gap_us = (gap_bits * 1000000 + baud - 1) // baud
        self._last = ticks_us()
        self._armed = False
        self._hunt = False             # set_handler found a frame passing: until a gap
        self.dropped = 0               # characters dropped while hunting (diag)
        self._handler = None
        self.framing_errors = 0
        self._irq_ref = self._irq      # bound method made once
        self.sm = rp2.StateMachine(sm_id, prog, freq=RX_CYCLES_PER_BIT * baud, in_base=pin,
                                   jmp_pin=pin)
        self.sm.irq(self._irq_ref)     # soft IRQ: MicroPython schedules the call
        self.sm.active(1)

    def set_handler(self, fn):
        """Read from now on (scheduled per character; None: reading stops). Characters the FIFO
        piled up before are dropped, and the receiver hunts for the next frame's start."""
        if fn is not None and self._handler is None:
            sm = self.sm
            if sm.rx_fifo():
                while sm.rx_fifo():
                    sm.get()
                    self.dropped += 1
                self._last = self._ticks_us()
                self._armed = False
                self._hunt = True
        self._handler = fn

    def _irq(self, _sm):
        h = self._handler
        if h is not None:
            h()

    def read(self):
        sm = self.sm
        while sm.rx_fifo():
            v = sm.get(None, 23)           # bits 31..23: 8 data bits, then bit 23 (0 = good)
            now = self._ticks_us()
            if self._hunt:
                if self._ticks_diff(now, self._last) < self.gap_us:
                    self._last = now       # mid-frame since the start: not ours to judge
                    self.dropped += 1
                    continue
                self._hunt = False
            self._last = now
            self._armed = True
            if v & 1:
                self.framing_errors += 1
                return codec.FRAMING
            return ((v >> 1) ^ self._xor) & 0xFF
        if self._armed and self._ticks_diff(self._ticks_us(), self._last) >= self.gap_us:
            self._armed = False
            return codec.GAP
        return codec.NONE

