"""Hardware-UART link backend (ESP32, or any board definition naming a free UART).

The UART object is injected (``make_uart`` builds one from a machine module; hal/link.py does
that from the board definition, tests pass a fake):

    tx = UartTx(make_uart(machine, uart_id, baud, tx=out_pin, rx=in_pin, invert=True, rx_invert=False))
    rx = UartRx(make_uart(machine, uart_id, baud, tx=out_pin, rx=in_pin, invert=True, rx_invert=False), baud, gap_bits)

Both pins are always given, also for a UART used in one direction: a pin left out is not "none"
on the ESP32 port but the UART's default pin (``UART(1, tx=21)`` routes UART1 RX to GPIO9, a
flash pin on WROOM-32 modules; UART2's defaults 16/17 are Begin switch pins). Both
constructions of one UART are identical (same pins, same TX/RX inversion pair), so building the receiver
after the transmitter does not undo the transmitter's settings.

The UART does the bit timing. MicroPython's UART does not report framing errors: a character
whose stop bit was space arrives as some byte (the ESP-IDF driver drops it or passes it on,
depending on the version), never as codec.FRAMING. core.frame's CRC-16 catches it: the section
fails and the board reports the break like any other corrupt input. GAP comes from the idle
time since the last character was read (ticks), so it can come late but never early.
"""
from core import codec

_BUF = 512


def make_uart(machine, uart_id, baud, tx, rx, invert=False, rx_invert=None):
    """machine.UART, 8N1, on both pins. ``invert`` inverts TX, ``rx_invert`` RX (default: the same
    as TX). The link's UART is built twice (transmitter, receiver): both calls must pass the same
    pair, or the second construction undoes the first one's polarity. ValueError if a pin is None."""
    if tx is None or rx is None:
        raise ValueError("UART %r needs both tx and rx pins (a missing one takes the port's default pin)" % (uart_id,))
    UART = machine.UART
    if rx_invert is None:
        rx_invert = invert
    inv = (UART.INV_TX if invert else 0) | (UART.INV_RX if rx_invert else 0)
    return UART(uart_id, baudrate=baud, bits=8, parity=None, stop=1, tx=tx, rx=rx, invert=inv,
                txbuf=_BUF, rxbuf=_BUF)


class UartTx:
    """``write_byte(b)`` -> bool, ``write(buf, n)``, ``pending()``: 1 until the UART says it is
    done and, where ``txdone()`` only means "FIFO empty" (rp2), the last character has had the
    time to leave the shift register (the characters written, back to back, from ``ticks_us``)."""

    def __init__(self, uart, baud=9600, ticks_us=None, ticks_diff=None, ticks_add=None):
        if ticks_us is None or ticks_diff is None or ticks_add is None:
            import time
            ticks_us = getattr(time, "ticks_us", None)     # None on CPython: txdone() only
            ticks_diff = getattr(time, "ticks_diff", None)
            ticks_add = getattr(time, "ticks_add", None)
        if ticks_diff is None or ticks_add is None:
            ticks_us = None
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self._ticks_add = ticks_add
        self.char_us = (10000000 + baud - 1) // baud
        self._until = 0           # ticks_us when the last character written has left the pin
        self._armed = False
        self.uart = uart
        self._one = bytearray(1)

    def _sent(self, n):
        t = self._ticks_us
        if t is None:
            return
        now = t()
        u = self._until
        if not self._armed or self._ticks_diff(u, now) < 0:
            u = now
        self._until = self._ticks_add(u, n * self.char_us)
        self._armed = True

    def write_byte(self, b):
        self._one[0] = b & 0xFF
        if self.uart.write(self._one) == 1:
            self._sent(1)
            return True
        return False

    def write(self, buf, n):
        """A burst: the UART's TX buffer (512 bytes) sends it back to back."""
        one = self._one
        u = self.uart
        for i in range(n):
            one[0] = buf[i]
            u.write(one)
        self._sent(n)

    def pending(self):
        if not self.uart.txdone():
            return 1
        if self._armed:
            d = self._ticks_diff(self._until, self._ticks_us())
            c = self.char_us
            if -(c >> 5) < d <= (_BUF + 1) * c:
                return 1
            self._armed = False
        return 0


class UartRx:
    """``read()`` -> byte, codec.GAP or codec.NONE (never FRAMING: see the module doc)."""

    interrupt_driven = False     # the role's loop polls it (roles.LinkPort.wake_in_ms)

    def __init__(self, uart, baud, gap_bits, ticks_us=None, ticks_diff=None):
        if ticks_us is None or ticks_diff is None:
            import time
            ticks_us = time.ticks_us
            ticks_diff = time.ticks_diff
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self.uart = uart
        self._one = bytearray(1)
        self.gap_us = (gap_bits * 1000000 + baud - 1) // baud
        self._last = ticks_us()
        self._armed = False
        self._handler = None

    def set_handler(self, fn):
        """UART IRQs differ between ports: the loop's poll drains this receiver."""
        self._handler = fn

    def read(self):
        u = self.uart
        if u.any():
            if u.readinto(self._one, 1) == 1:
                self._last = self._ticks_us()
                self._armed = True
                return self._one[0]
            return codec.NONE
        if self._armed and self._ticks_diff(self._ticks_us(), self._last) >= self.gap_us:
            self._armed = False
            return codec.GAP
        return codec.NONE
