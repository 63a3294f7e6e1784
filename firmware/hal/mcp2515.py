"""MCP2515 stand-alone CAN controller on SPI: the gateway's CAN port (MicroPython has no CAN
on ESP32 or RP2040). Transmit only (the BMS broadcasts; nothing on the bus is read), 11-bit
identifiers, 500 kbit/s from an 8 or 16 MHz crystal (board definition ``CAN_XTAL_HZ``).

Hardware is injected: ``MCP2515(spi, cs, sleep_ms)`` with a ``machine.SPI`` (mode 0, up to
10 MHz) and the chip-select ``machine.Pin`` (an output, idle high). hal/gateway_hw.py builds
them from the board definition; host_tests/core/fake_mcp2515.py is a register-level fake.

``send(can_id, buf, dlc)`` loads a free transmit buffer (LOAD TX BUFFER: id, DLC and 8 data
bytes in one preallocated 14-byte transfer) and requests its transmission (RTS); it returns
False when all three buffers are still pending. It allocates nothing: every transfer goes
through buffers made once in ``__init__``.

Errors (``check()``, once per gateway cycle, reads EFLG and the error counters):
* error-passive (TEC >= 128, EFLG.TXEP: typically no other node acknowledges - inverter off
  or not wired) is counted in ``error_passive``; ``abort()`` drops what is pending, so no old
  limits go out when the bus comes back;
* bus-off (EFLG.TXBO) is counted in ``bus_off``; the chip rejoins by itself after 128 x 11
  recessive bits, and if it is still off after ``BUS_OFF_RESET_MS`` the driver resets and
  re-initialises it (``restarts``).
``stop()`` aborts everything pending and puts the chip in configuration mode (it sends
nothing): the gateway's safe state, so the inverter's own timeout takes over.
"""
from micropython import const

# instructions
_RESET = const(0xC0)
_READ = const(0x03)
_WRITE = const(0x02)
_BIT_MODIFY = const(0x05)
_READ_STATUS = const(0xA0)
_LOAD_TX = const(0x40)         # | 0, 2, 4: TXB0, TXB1, TXB2 from SIDH
_RTS = const(0x80)             # | 1, 2, 4

# registers
CANSTAT = const(0x0E)
CANCTRL = const(0x0F)
TEC = const(0x1C)
REC = const(0x1D)
CNF3 = const(0x28)
CNF2 = const(0x29)
CNF1 = const(0x2A)
CANINTE = const(0x2B)
CANINTF = const(0x2C)
EFLG = const(0x2D)
TXB0CTRL = const(0x30)

# CANCTRL / CANSTAT operation modes (bits 7-5)
MODE_NORMAL = const(0x00)
MODE_SLEEP = const(0x20)
MODE_LOOPBACK = const(0x40)
MODE_LISTEN = const(0x60)
MODE_CONFIG = const(0x80)
_MODE_MASK = const(0xE0)
_ABAT = const(0x10)

EFLG_TXBO = const(0x20)
EFLG_TXEP = const(0x10)
_TXREQ = const(0x08)

BUS_OFF_RESET_MS = const(2000)
_MODE_TRIES = const(10)

# CNF1, CNF2, CNF3 for 500 kbit/s (sample point 75 %)
_TIMING_500K = {8000000: (0x00, 0x90, 0x82), 16000000: (0x00, 0xF0, 0x86)}


class CanError(Exception):
    """The controller does not answer as an MCP2515 (wiring, power, crystal)."""


class MCP2515:
    def __init__(self, spi, cs, sleep_ms=None, xtal_hz: int = 8000000):
        if xtal_hz not in _TIMING_500K:
            raise CanError("MCP2515: no 500 kbit/s timing for a %d Hz crystal" % xtal_hz)
        self.spi = spi
        self.cs = cs
        self._sleep_ms = sleep_ms
        self.timing = _TIMING_500K[xtal_hz]
        self._tx = bytearray(14)           # LOAD TX: instruction, SIDH, SIDL, EID8, EID0, DLC, D0..D7
        self._cmd1 = bytearray(1)
        self._rd_tx = bytearray(3)          # READ addr, dummy
        self._rd_rx = bytearray(3)
        self._wr = bytearray(3)             # WRITE addr value
        self._bm = bytearray(4)             # BIT MODIFY addr mask value
        self._st_tx = bytearray(2)
        self._st_rx = bytearray(2)
        self._st_tx[0] = _READ_STATUS
        self.sent = 0                       # frames handed to the chip (saturates)
        self.full = 0                       # send() calls with no free buffer
        self.error_passive = 0              # checks that found TXEP
        self.bus_off = 0                    # checks that found TXBO
        self.restarts = 0
        self.tec = 0
        self.eflg = 0
        self._off_ms = 0
        self.running = False
        self.stopped = True                 # by stop() (or never started): check() leaves it so
        cs.value(1)

    # --- SPI primitives ------------------------------------------------------------------
    def _read(self, addr: int) -> int:
        t = self._rd_tx
        t[0] = _READ
        t[1] = addr
        t[2] = 0
        self.cs.value(0)
        try:
            self.spi.write_readinto(t, self._rd_rx)
        finally:
            self.cs.value(1)
        return self._rd_rx[2]

    def _write(self, addr: int, value: int) -> None:
        w = self._wr
        w[0] = _WRITE
        w[1] = addr
        w[2] = value
        self.cs.value(0)
        try:
            self.spi.write(w)
        finally:
            self.cs.value(1)

    def _modify(self, addr: int, mask: int, value: int) -> None:
        b = self._bm
        b[0] = _BIT_MODIFY
        b[1] = addr
        b[2] = mask
        b[3] = value
        self.cs.value(0)
        try:
            self.spi.write(b)
        finally:
            self.cs.value(1)

    def _command(self, c: int) -> None:
        self._cmd1[0] = c
        self.cs.value(0)
        try:
            self.spi.write(self._cmd1)
        finally:
            self.cs.value(1)

    def status(self) -> int:
        """READ STATUS: bit 2 / 4 / 6 = TXB0 / 1 / 2 TXREQ."""
        self.cs.value(0)
        try:
            self.spi.write_readinto(self._st_tx, self._st_rx)
        finally:
            self.cs.value(1)
        return self._st_rx[1]

    def _set_mode(self, mode: int) -> bool:
        self._modify(CANCTRL, _MODE_MASK, mode)
        for _ in range(_MODE_TRIES):
            if self._read(CANSTAT) & _MODE_MASK == mode:
                return True
            if self._sleep_ms is not None:
                self._sleep_ms(1)
        return False

    # --- life cycle ----------------------------------------------------------------------
    def init(self, mode: int = MODE_NORMAL) -> None:
        """Reset, bit timing for 500 kbit/s, no interrupts, then ``mode``. Raises CanError
        when the chip does not come up (wrong wiring, no power, no crystal)."""
        self.running = False
        self._command(_RESET)
        if self._sleep_ms is not None:
            self._sleep_ms(2)           # oscillator start-up after reset
        if self._read(CANSTAT) & _MODE_MASK != MODE_CONFIG:
            raise CanError("MCP2515 not in configuration mode after reset (SPI wiring?)")
        c1, c2, c3 = self.timing
        self._write(CNF1, c1)
        self._write(CNF2, c2)
        self._write(CNF3, c3)
        if self._read(CNF1) != c1 or self._read(CNF2) != c2:
            raise CanError("MCP2515 bit timing did not stick (SPI wiring?)")
        self._write(CANINTE, 0)
        self._write(CANINTF, 0)
        if not self._set_mode(mode):
            raise CanError("MCP2515 did not enter the requested mode")
        self.running = True
        self.stopped = False
        self._off_ms = 0

    def stop(self) -> None:
        """Abort everything pending and stay in configuration mode: nothing goes out."""
        self.running = False
        self.stopped = True
        self.abort()
        self._set_mode(MODE_CONFIG)

    def abort(self) -> None:
        """Drop every pending transmission (ABAT), then release the abort request."""
        self._modify(CANCTRL, _ABAT, _ABAT)
        for i in range(3):
            self._modify(TXB0CTRL + 0x10 * i, _TXREQ, 0)
        self._modify(CANCTRL, _ABAT, 0)

    # --- sending -------------------------------------------------------------------------
    def send(self, can_id: int, buf, dlc: int) -> bool:
        """Queue one standard (11-bit) frame. False when every transmit buffer is busy or
        the controller is stopped. Allocates nothing."""
        if not self.running:
            return False
        st = self.status()
        if not st & 0x04:
            k = 0
        elif not st & 0x10:
            k = 1
        elif not st & 0x40:
            k = 2
        else:
            if self.full < 0x3FFFFFFF:
                self.full += 1
            return False
        t = self._tx
        t[0] = _LOAD_TX | (k << 1)
        t[1] = (can_id >> 3) & 0xFF
        t[2] = (can_id & 0x07) << 5
        t[3] = 0
        t[4] = 0
        n = dlc if dlc < 8 else 8
        t[5] = n
        for i in range(8):
            t[6 + i] = buf[i] if i < n else 0
        self.cs.value(0)
        try:
            self.spi.write(t)
        finally:
            self.cs.value(1)
        self._command(_RTS | (1 << k))
        if self.sent < 0x3FFFFFFF:
            self.sent += 1
        return True

    def check(self, dt_ms: int) -> int:
        """Error state once per cycle: returns EFLG; counts error-passive and bus-off, resets
        the chip after BUS_OFF_RESET_MS of bus-off. Never raises (a failed re-init leaves
        ``running`` False and is retried at the next check)."""
        if self.stopped:
            return 0
        if not self.running:
            try:
                self.init()
                self.restarts += 1
            except (CanError, OSError):
                return 0
        e = self._read(EFLG)
        self.eflg = e
        self.tec = self._read(TEC)
        if e & EFLG_TXBO:
            if self.bus_off < 0x3FFFFFFF:
                self.bus_off += 1
            self._off_ms += dt_ms
            if self._off_ms >= BUS_OFF_RESET_MS:
                self.running = False
                try:
                    self.init()
                    self.restarts += 1
                except (CanError, OSError):
                    pass
        else:
            self._off_ms = 0
            if e & EFLG_TXEP:
                if self.error_passive < 0x3FFFFFFF:
                    self.error_passive += 1
        return e
