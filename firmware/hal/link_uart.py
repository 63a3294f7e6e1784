"""Hardware-UART link backend (ESP32, or any board definition naming a free UART).

The UART does the bit timing; MicroPython does not report framing errors, so a damaged
character reaches core.frame as a wrong byte and is caught by the CRC. GAP comes from the time
since the last character (ticks).
"""
from machine import UART
from time import ticks_diff, ticks_us

from core import codec

_BUF = 512


def _uart(uart_id, baud, tx=None, rx=None, invert=False):
    inv = 0
    if invert:
        inv = (UART.INV_TX if tx is not None else 0) | (UART.INV_RX if rx is not None else 0)
    if tx is not None and rx is not None:
        return UART(uart_id, baudrate=baud, bits=8, parity=None, stop=1, tx=tx, rx=rx, invert=inv,
                    txbuf=_BUF, rxbuf=_BUF)
    if tx is not None:
        return UART(uart_id, baudrate=baud, bits=8, parity=None, stop=1, tx=tx, invert=inv, txbuf=_BUF)
    return UART(uart_id, baudrate=baud, bits=8, parity=None, stop=1, rx=rx, invert=inv, rxbuf=_BUF)


class UartTx:
    def __init__(self, uart_id, pin_no, invert, baud):
        self.uart = _uart(uart_id, baud, tx=pin_no, invert=invert)
        self._one = bytearray(1)

    def write_byte(self, b):
        self._one[0] = b & 0xFF
        return self.uart.write(self._one) == 1

    def write(self, buf, n):
        one = self._one
        u = self.uart
        for i in range(n):
            one[0] = buf[i]
            u.write(one)

    def pending(self):
        return 0 if self.uart.txdone() else 1


class UartRx:
    interrupt_driven = False     # the role's loop polls it (roles.LinkPort.wake_in_ms)

    def __init__(self, uart_id, pin_no, invert, baud, gap_bits):
        self.uart = _uart(uart_id, baud, rx=pin_no, invert=invert)
        self._one = bytearray(1)
        self.gap_us = gap_bits * 1000000 // baud
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
                self._last = ticks_us()
                self._armed = True
                return self._one[0]
            return codec.NONE
        if self._armed and ticks_diff(ticks_us(), self._last) >= self.gap_us:
            self._armed = False
            return codec.GAP
        return codec.NONE
