"""Portable software link backend: timer-driven TX, pin-edge IRQ RX (low baud rates only;
ESP32 pin IRQs are soft, use the UART there).

TX: a machine.Timer at the baud rate takes one level per tick from core.codec.TxBits.
RX: the pin IRQ stores (time since the previous edge << 1 | new level) in a preallocated
array - ints only, nothing allocated in the handler - and schedules the decoding
(micropython.schedule with a bound method stored at init), which runs core.codec.Decoder and
fills a byte ring that ``read`` drains.
"""
import micropython
from array import array
from machine import Pin, Timer
from micropython import const
from time import ticks_diff, ticks_us

from core import codec

_EDGES = const(256)      # edge ring (power of two)
_BYTES = const(256)      # decoded-character ring (power of two)


class SoftTx:
    def __init__(self, pin_no, invert, baud, timer_id=-1):
        self.bits = codec.TxBits(512, invert)
        self.pin = Pin(pin_no, Pin.OUT, value=self.bits.idle)
        self._tick_ref = self._tick
        self.timer = Timer(timer_id)
        self.timer.init(freq=baud, mode=Timer.PERIODIC, callback=self._tick_ref)

    def _tick(self, _t):
        self.pin.value(self.bits.next_level())

    def write_byte(self, b):
        return self.bits.put(b)

    def write(self, buf, n):
        put = self.bits.put
        for i in range(n):
            put(buf[i])

    def pending(self):
        return self.bits.pending()


class SoftRx:
    def __init__(self, pin_no, invert, baud, gap_bits):
        self.pin = Pin(pin_no, Pin.IN)
        self.dec = codec.Decoder(baud, invert, gap_bits)
        self.dec.level = self.pin.value()
        self.edges = array("i", bytes(4 * _EDGES))
        self.e_head = 0            # written by the IRQ
        self.e_tail = 0
        self.out = array("h", bytes(2 * _BYTES))
        self.o_head = 0
        self.o_tail = 0
        self.overruns = 0
        self._t_edge = ticks_us()  # IRQ: time of the previous edge
        self._fed = 0              # idle time already fed to the decoder since that edge
        self._pending = False
        self._handler = None
        self._decode_ref = self._decode
        self.pin.irq(handler=self._edge, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING)

    def set_handler(self, fn):
        self._handler = fn

    def _edge(self, p):
        now = ticks_us()
        h = self.e_head
        if ((h + 1) & (_EDGES - 1)) != self.e_tail:
            self.edges[h] = (ticks_diff(now, self._t_edge) << 1) | p.value()
            self.e_head = (h + 1) & (_EDGES - 1)
        else:
            self.overruns += 1
        self._t_edge = now
        if not self._pending:
            self._pending = True
            try:
                micropython.schedule(self._decode_ref, 0)
            except RuntimeError:
                self._pending = False

    def _push(self, v):
        h = self.o_head
        if ((h + 1) & (_BYTES - 1)) != self.o_tail:
            self.out[h] = v
            self.o_head = (h + 1) & (_BYTES - 1)
        else:
            self.overruns += 1

    def _decode(self, _arg):
        self._pending = False
        dec = self.dec
        while self.e_tail != self.e_head:
            v = self.edges[self.e_tail]
            self.e_tail = (self.e_tail + 1) & (_EDGES - 1)
            dt = (v >> 1) - self._fed
            self._fed = 0
            r = dec.feed(dt if dt > 0 else 0, v & 1)
            if r != codec.NONE:
                self._push(r)
            if dec.gap:
                dec.gap = False
                self._push(codec.GAP)
        h = self._handler
        if h is not None:
            h()

    def read(self):
        if self.o_tail == self.o_head:
            if self.e_tail == self.e_head:
                # let time pass in the decoder: completes a trailing character, finds the gap
                dt = ticks_diff(ticks_us(), self._t_edge) - self._fed
                if dt > 0:
                    dec = self.dec
                    self._fed += dt
                    r = dec.feed(dt, dec.level)
                    if r != codec.NONE:
                        self._push(r)
                    if dec.gap:
                        dec.gap = False
                        self._push(codec.GAP)
            if self.o_tail == self.o_head:
                return codec.NONE
        v = self.out[self.o_tail]
        self.o_tail = (self.o_tail + 1) & (_BYTES - 1)
        return v
