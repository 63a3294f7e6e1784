"""RP2040 PIO link backend: one state machine sends, one receives, 8 PIO cycles per bit.
# mypy-targets: rp2

RX pushes 9 bits per character (8 data bits then the stop bit, LSB first, shifted right) and
raises its IRQ flag; ``read`` turns a word into a byte or core.codec.FRAMING and reports
core.codec.GAP once the line has been idle for gap_bits. Inversion is handled by separate
programs (start edge / idle sense) plus an XOR of the data on the CPU side.
"""
import micropython
import rp2
from machine import Pin
from micropython import const
from time import ticks_diff, ticks_us

from core import codec

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from rp2 import label, wait, pin, set, x, in_, pins, jmp, x_dec, push, block
    from rp2 import irq, rel, out, pull, nop  # noqa: F401

_FIFO_MAX = const(8)


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_HIGH, out_init=rp2.PIO.OUT_HIGH,
             out_shiftdir=rp2.PIO.SHIFT_RIGHT, fifo_join=rp2.PIO.JOIN_TX)
def _tx_normal():
    pull().side(1)[7]                 # idle / stop bit high
    set(x, 7).side(0)[7]              # start bit low
    label("bits")
    out(pins, 1)
    jmp(x_dec, "bits")[6]


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW, out_init=rp2.PIO.OUT_LOW,
             out_shiftdir=rp2.PIO.SHIFT_RIGHT, fifo_join=rp2.PIO.JOIN_TX)
def _tx_inverted():
    pull().side(0)[7]                 # idle / stop bit low (opto off)
    set(x, 7).side(1)[7]              # start bit high
    label("bits")
    out(pins, 1)                      # the CPU sends the data bits already inverted
    jmp(x_dec, "bits")[6]


@rp2.asm_pio(in_shiftdir=rp2.PIO.SHIFT_RIGHT, fifo_join=rp2.PIO.JOIN_RX)
def _rx_normal():
    wait(0, pin, 0)                   # start edge
    set(x, 8)[10]                     # to the middle of data bit 0 (1.5 bits)
    label("bits")
    in_(pins, 1)                      # 8 data bits, then the stop bit
    jmp(x_dec, "bits")[6]
    push(block)
    irq(rel(0))
    wait(1, pin, 0)                   # after a framing error: wait for idle


@rp2.asm_pio(in_shiftdir=rp2.PIO.SHIFT_RIGHT, fifo_join=rp2.PIO.JOIN_RX)
def _rx_inverted():
    wait(1, pin, 0)
    set(x, 8)[10]
    label("bits")
    in_(pins, 1)
    jmp(x_dec, "bits")[6]
    push(block)
    irq(rel(0))
    wait(0, pin, 0)


class PioTx:
    def __init__(self, sm_id, pin_no, invert, baud):
        p = Pin(pin_no, Pin.OUT, value=0 if invert else 1)
        prog = _tx_inverted if invert else _tx_normal
        self._xor = 0xFF if invert else 0
        self.sm = rp2.StateMachine(sm_id, prog, freq=8 * baud, sideset_base=p, out_base=p)
        self.sm.active(1)

    def write_byte(self, b):
        if self.sm.tx_fifo() >= _FIFO_MAX:
            return False
        self.sm.put((b ^ self._xor) & 0xFF)
        return True

    def write(self, buf, n):
        """Burst: blocks while the 8-deep FIFO is full (a 198-byte frame: about 200 ms)."""
        sm = self.sm
        x = self._xor
        for i in range(n):
            sm.put((buf[i] ^ x) & 0xFF)

    def pending(self):
        return self.sm.tx_fifo()


class PioRx:
    def __init__(self, sm_id, pin_no, invert, baud, gap_bits):
        p = Pin(pin_no, Pin.IN)
        prog = _rx_inverted if invert else _rx_normal
        self._xor = 0x1FF if invert else 0
        self.gap_us = gap_bits * 1000000 // baud
        self._last = ticks_us()
        self._armed = False
        self._handler = None
        self._sched = self._run_handler     # bound method made once (schedule must not allocate)
        self.framing_errors = 0
        self.sm = rp2.StateMachine(sm_id, prog, freq=8 * baud, in_base=p, jmp_pin=p)
        self.sm.irq(self._irq)
        self.sm.active(1)

    def set_handler(self, fn):
        self._handler = fn

    def _irq(self, _sm):
        if self._handler is not None:
            try:
                micropython.schedule(self._sched, 0)
            except RuntimeError:      # schedule queue full: the loop's poll picks it up
                pass

    def _run_handler(self, _arg):
        h = self._handler
        if h is not None:
            h()

    def read(self):
        sm = self.sm
        if sm.rx_fifo():
            v = (sm.get(None, 23) ^ self._xor) & 0x1FF
            self._last = ticks_us()
            self._armed = True
            if v & 0x100:
                return v & 0xFF
            self.framing_errors += 1
            return codec.FRAMING
        if self._armed and ticks_diff(ticks_us(), self._last) >= self.gap_us:
            self._armed = False
            return codec.GAP
        return codec.NONE
