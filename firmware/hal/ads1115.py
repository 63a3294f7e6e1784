"""ADS1115 16-bit I2C ADC, single-ended single-shot reads (Begin board current sensors on RP2040).

The I2C bus object and the sleep function are injected; nothing is allocated per read: the
config write is ``I2C.writeto`` of a preallocated [register, high, low] buffer
(``writeto_mem`` allocated on the rp2 port), reads go into a preallocated buffer.
"""
from micropython import const

_REG_CONVERSION = const(0)
_REG_CONFIG = const(1)
_OS_START = const(0x8000)        # write: start a conversion; read: 1 = idle (conversion done)
_MUX_SINGLE_AIN0 = const(4)      # MUX 100..111 = AIN0..AIN3 against GND
_PGA_4V096 = const(0x0200)       # +-4.096 V full scale: 125 uV per count
_MODE_SINGLE = const(0x0100)
_DR_860SPS = const(0x00E0)       # 860 samples/s: about 1.2 ms per conversion
_COMP_OFF = const(0x0003)
UV_PER_COUNT = const(125)
_FIRST_WAIT_US = const(1200)
_POLL_US = const(100)
_MAX_POLLS = const(20)           # give up 3.2 ms after the start: the chip is not answering

ERROR_UV = const(-1000000)       # returned when the ADS1115 cannot be read (-1 V: impossible at a
                                 # single-ended input, so every range check flags it)


class ADS1115:
    """Four single-ended channels; ``read_uv(channel)`` returns microvolts at that input."""

    def __init__(self, i2c, addr, sleep_us):
        self._i2c = i2c
        self._addr = addr
        self._sleep_us = sleep_us
        self._cfg = bytearray(3)     # register pointer, config high, config low
        self._cfg[0] = _REG_CONFIG
        self._buf = bytearray(2)
        self.errors = 0          # failed reads since start (I2C error or conversion timeout)

    def read_uv(self, channel):
        cfg = (_OS_START | ((_MUX_SINGLE_AIN0 + (channel & 3)) << 12) | _PGA_4V096 | _MODE_SINGLE
               | _DR_860SPS | _COMP_OFF)
        c = self._cfg
        c[1] = cfg >> 8
        c[2] = cfg & 0xFF
        b = self._buf
        try:
            self._i2c.writeto(self._addr, c)
            self._sleep_us(_FIRST_WAIT_US)
            polls = 0
            while True:
                self._i2c.readfrom_mem_into(self._addr, _REG_CONFIG, b)
                if b[0] & 0x80:
                    break
                polls += 1
                if polls >= _MAX_POLLS:
                    self.errors += 1
                    return ERROR_UV
                self._sleep_us(_POLL_US)
            self._i2c.readfrom_mem_into(self._addr, _REG_CONVERSION, b)
        except OSError:
            self.errors += 1
            return ERROR_UV
        raw = (b[0] << 8) | b[1]
        if raw & 0x8000:
            raw -= 0x10000
        return raw * UV_PER_COUNT


class Channel:
    """One ADS1115 input with the same ``uv()`` method as hal.board's ADC inputs."""

    def __init__(self, ads, channel):
        self._ads = ads
        self._ch = channel

    def uv(self):
        return self._ads.read_uv(self._ch)
