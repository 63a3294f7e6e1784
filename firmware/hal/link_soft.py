"""Portable software link backend: timer-driven TX, pin-edge IRQ RX (low baud rates only;
ESP32 pin IRQs are soft, use the UART there).

Hardware is injected (hal/link.py builds it from the board definition; tests pass fakes):

    tx = SoftTx(pin, timer, invert, baud)      # pin: output Pin, timer: machine.Timer
    rx = SoftRx(pin, invert, baud, gap_bits)   # pin: input Pin

TX: the timer runs at the baud rate and its callback puts one line level per tick on the pin,
taken from core.codec.TxBits (a preallocated FIFO; back to back while bytes are queued, idle
level otherwise).

RX: the pin IRQ (both edges) stores ``(time since the previous edge << 1) | new level`` in a
preallocated array - ints only, nothing allocated - and, when a handler is set, schedules it
(micropython.schedule with a bound method stored at init). ``read`` (called by that handler or by
the board loop) is the only consumer: it feeds the edges to core.codec.Decoder until a result
is ready and, with no edge pending, lets the time since the last edge pass in the decoder (that
completes the last character and finds the idle gap). Keeping the decoder on one side means a
scheduled call can never interrupt a half-done decode.

Time comes from ``ticks_us`` / ``ticks_diff`` (time module by default, injectable).
"""
import micropython
from array import array
from micropython import const

from core import codec

_EDGES = const(256)      # edge ring (power of two): 25 characters of 0x55 at worst
_OUT = const(4)          # decoded results ready for read() (power of two; a feed gives <= 2)
_DT_MAX = const(0x1FFFFFF)   # longest interval stored (33 s): keeps (dt << 1) in 32 bits
_FED_MAX = const(0xFFFFFF)   # idle time fed per interval, bounded (small ints on the boards)


class SoftTx:
    """Timer-driven transmitter. ``write_byte(b)`` -> bool, ``write(buf, n)``, ``pending()``."""

    def __init__(self, pin, timer, invert, baud, hard=True, size=512):
        self.bits = codec.TxBits(size, invert)
        self.pin = pin
        pin.value(self.bits.idle)
        self.baud = baud
        self._tick_ref = self._tick          # bound method made once
        self.timer = timer
        timer.init(freq=baud, mode=timer.PERIODIC, callback=self._tick_ref, hard=hard)

    def _tick(self, _t):
        self.pin.value(self.bits.next_level())

    def write_byte(self, b):
        return self.bits.put(b)

    def write(self, buf, n):
        """Queue a burst; it goes out back to back (bytes beyond the FIFO are dropped and
        counted in ``bits.overruns``)."""
        put = self.bits.put
        for i in range(n):
            put(buf[i])

    def pending(self):
        return self.bits.pending()

    def deinit(self):
        self.timer.deinit()
        self.pin.value(self.bits.idle)


class SoftRx:
    """Pin-edge receiver. ``read()`` -> byte, codec.FRAMING, codec.GAP or codec.NONE."""

    def __init__(self, pin, invert, baud, gap_bits, ticks_us=None, ticks_diff=None,
                 schedule=None, hard=True):
        if ticks_us is None or ticks_diff is None:
            import time
            ticks_us = time.ticks_us
            ticks_diff = time.ticks_diff
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self._schedule = micropython.schedule if schedule is None else schedule
        self.pin = pin
        self.dec = codec.Decoder(baud, invert, gap_bits)
        self.dec.level = pin.value()
        self.edges = array("i", bytes(4 * _EDGES))
        self.e_head = 0            # written by the IRQ only
        self.e_tail = 0            # written by read only
        self.out = array("h", bytes(2 * _OUT))
        self.o_head = 0
        self.o_tail = 0
        self.overruns = 0          # edges lost because the ring was full
        self._t_edge = ticks_us()  # IRQ: time of the previous edge
        self._fed = 0              # idle time already fed to the decoder since that edge
        self._pending = False
        self._handler = None
        self._run_ref = self._run  # bound method made once: schedule() must not allocate
        pin.irq(handler=self._edge, trigger=pin.IRQ_RISING | pin.IRQ_FALLING, hard=hard)

    def set_handler(self, fn):
        self._handler = fn

    def _edge(self, p):
        """Pin IRQ (hard where the port allows): ints and the preallocated ring only."""
        now = self._ticks_us()
        dt = self._ticks_diff(now, self._t_edge)
        if dt > _DT_MAX:
            dt = _DT_MAX
        h = self.e_head
        if ((h + 1) & (_EDGES - 1)) != self.e_tail:
            self.edges[h] = (dt << 1) | p.value()
            self.e_head = (h + 1) & (_EDGES - 1)
        else:
            self.overruns += 1
        self._t_edge = now
        if self._handler is not None and not self._pending:
            self._pending = True
            try:
                self._schedule(self._run_ref, 0)
            except RuntimeError:       # schedule queue full: the board loop's poll reads
                self._pending = False

    def _run(self, _arg):
        self._pending = False
        h = self._handler
        if h is not None:
            h()

    def _feed(self, dt, level):
        dec = self.dec
        r = dec.feed(dt, level)
        if r != codec.NONE:
            self._push(r)
        if dec.gap:
            dec.gap = False
            self._push(codec.GAP)

    def _push(self, v):
        h = self.o_head
        if ((h + 1) & (_OUT - 1)) != self.o_tail:
            self.out[h] = v
            self.o_head = (h + 1) & (_OUT - 1)
        else:
            self.overruns += 1

    def read(self):
        if self.o_tail == self.o_head:
            # a consistent view of (ring head, time of the newest edge): the IRQ updates both
            t_edge = self._t_edge
            head = self.e_head
            same = t_edge == self._t_edge
            edges = self.edges
            while self.e_tail != head and self.o_tail == self.o_head:
                v = edges[self.e_tail]
                self.e_tail = (self.e_tail + 1) & (_EDGES - 1)
                dt = (v >> 1) - self._fed
                self._fed = 0
                self._feed(dt if dt > 0 else 0, v & 1)
            if same and self.o_tail == self.o_head and self.e_tail == head and self._fed < _FED_MAX:
                # no edge waiting: let the time since the last one pass in the decoder
                dt = self._ticks_diff(self._ticks_us(), t_edge) - self._fed
                if dt > 0:
                    self._fed += dt
                    self._feed(dt, self.dec.level)
            if self.o_tail == self.o_head:
                return codec.NONE
        v = self.out[self.o_tail]
        self.o_tail = (self.o_tail + 1) & (_OUT - 1)
        return v
