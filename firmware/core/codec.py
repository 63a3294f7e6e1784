"""Bit-level codec for the daisy-chain link (8N1, optional inversion), hardware- and clock-free.

The line carries asynchronous serial characters: idle = mark (logical 1), one start bit
(space, logical 0), 8 data bits least significant first, one stop bit (mark). The opto stage
may invert, so "line level" = logical level XOR invert.

* ``char_levels(byte, invert)`` gives the 10 line levels of one character (bit 0 = start bit
  first on the wire) - the simulator and the soft TX backend use it.
* ``TxBits`` is a preallocated byte FIFO that hands out one line level per bit period
  (``next_level()``); a timer interrupt at the baud rate drives the pin from it.
* ``Decoder`` turns edges into bytes: it is fed ``(dt, level)`` pairs - the time the line
  spent at its previous level, then the new level - and samples each bit at its nominal
  middle counted from the start-bit edge, so every character resynchronises on its own start
  edge. That tolerates +-3 % clock error (the last data bit's middle moves 0.26 bit) together
  with +-0.08 bit of edge jitter, or +-0.25 bit of jitter at nominal clock. A stop bit read as space is reported as FRAMING instead of a
  byte; a start bit that is gone by its middle is treated as noise. After a character the
  decoder reports one GAP once the line has stayed idle for ``gap_bits`` bit times (frame
  boundary for core.frame).

Nothing here allocates after construction; ``feed`` and ``next_level`` are per-edge/per-bit
paths (interrupt-safe: ints and preallocated buffers only).
"""
from array import array

from micropython import const

NONE = const(-1)      # feed(): nothing completed
FRAMING = const(-2)   # feed(): a character whose stop bit was space (its value is lost)
GAP = const(-3)       # used by link receivers: the line has been idle >= gap_bits after a byte

BITS_PER_CHAR = const(10)

_IDLE = const(0)
_IN_CHAR = const(1)
_WAIT_MARK = const(2)


def char_levels(byte, invert=False):
    """The 10 line levels of one 8N1 character as an int: bit k = level during bit period k
    (k = 0 start bit, 1..8 data LSB first, 9 stop bit)."""
    bits = ((byte & 0xFF) << 1) | 0x200   # start 0, data, stop 1
    if invert:
        bits ^= 0x3FF
    return bits


def idle_level(invert=False):
    """Line level while nothing is sent."""
    return 0 if invert else 1


class TxBits:
    """FIFO of bytes turned into one line level per bit period (soft TX backend, simulator)."""

    def __init__(self, size=256, invert=False):
        self.buf = bytearray(size)
        self.size = size
        self.head = 0       # next byte to send
        self.count = 0      # bytes waiting
        self.invert = 1 if invert else 0
        self.idle = idle_level(invert)
        self._cur = 0       # levels of the character being sent
        self._left = 0      # bit periods left of it
        self.overruns = 0

    def put(self, byte):
        """Queue one byte; False (and counted) when the FIFO is full."""
        if self.count >= self.size:
            self.overruns += 1
            return False
        self.buf[(self.head + self.count) % self.size] = byte & 0xFF
        self.count += 1
        return True

    def pending(self):
        """Bytes not yet completely on the wire (queued + the one being sent)."""
        return self.count + (1 if self._left else 0)

    def next_level(self):
        """Line level for the next bit period (call once per bit time)."""
        if self._left == 0:
            if self.count == 0:
                return self.idle
            b = self.buf[self.head]
            self.head = (self.head + 1) % self.size
            self.count -= 1
            self._cur = char_levels(b, self.invert)
            self._left = BITS_PER_CHAR
        level = self._cur & 1
        self._cur >>= 1
        self._left -= 1
        return level


class Decoder:
    """Edge timestamps -> bytes. Times are in ticks of ``tick_hz`` (default microseconds)."""

    def __init__(self, baud=9600, invert=False, gap_bits=30, tick_hz=1000000):
        self.invert = 1 if invert else 0
        # middle of bit k counted from the start edge, in ticks, rounded
        self.mid = array("i", [((2 * k + 1) * tick_hz + baud) // (2 * baud) for k in range(BITS_PER_CHAR)])
        self.gap_ticks = (gap_bits * tick_hz + baud - 1) // baud
        self.level = idle_level(invert)
        self.framing_errors = 0
        self.noise = 0
        self.gap = False          # set when an idle gap completed; the caller clears it
        self.reset()

    def reset(self):
        self._state = _IDLE
        self._t = 0
        self._bit = 0
        self._acc = 0
        self._gap_done = True     # no gap to report until a character has been seen

    def feed(self, dt, level):
        """The line stayed at its previous level for ``dt`` ticks and is now at ``level``
        (pass the same level to let time pass without an edge). Returns a byte 0..255,
        FRAMING or NONE. Sets ``self.gap`` when an idle gap has just completed."""
        t = self._t + dt
        result = NONE
        old = self.level ^ self.invert          # logical level during the elapsed time
        if self._state == _IN_CHAR:
            mid = self.mid
            bit = self._bit
            while bit < BITS_PER_CHAR and mid[bit] <= t:
                if bit == 0:
                    if old:                     # start bit vanished: a glitch, not a char
                        self.noise += 1
                        self._state = _IDLE
                        break
                elif bit < 9:
                    if old:
                        self._acc |= 1 << (bit - 1)
                elif old:
                    result = self._acc
                    self._state = _IDLE
                    self._gap_done = False
                else:
                    result = FRAMING
                    self.framing_errors += 1
                    self._state = _WAIT_MARK
                bit += 1
            self._bit = bit
            if self._state == _IDLE:
                t = t - mid[bit - 1] if bit else 0   # idle time counts from the last sample
        if self._state == _IDLE and not self._gap_done and old and t >= self.gap_ticks:
            self._gap_done = True
            self.gap = True
        self.level = level
        new = level ^ self.invert
        if new != old:
            if self._state == _IDLE and not new:
                self._state = _IN_CHAR
                self._bit = 0
                self._acc = 0
                t = 0
            elif self._state == _WAIT_MARK and new:
                self._state = _IDLE
                self._gap_done = False
                t = 0
        self._t = t
        return result
