"""A register-level MCP2515 behind a fake SPI bus and chip-select pin (both interpreters).

It decodes the SPI instructions the way the chip does (RESET, READ, WRITE, BIT MODIFY,
READ STATUS, LOAD TX BUFFER, RTS), keeps the register file, follows CANCTRL's mode requests in
CANSTAT, aborts on ABAT, and plays the bus: a requested frame is acknowledged and recorded
(``frames``: (id, bytes)) when ``ack`` is True, otherwise the transmit error counter climbs
8 per attempt to error-passive (TEC 128, EFLG.TXEP) and the frame stays pending;
``force_bus_off()`` / ``recover()`` put the controller off the bus and back. ``record = False``
only counts delivered frames (no allocation: for heap-locked tests)."""

_MODE_MASK = 0xE0


class FakeMcp2515:
    def __init__(self):
        self.regs = bytearray(128)
        self.ack = True
        self.record = True
        self.frames = []
        self.delivered = 0
        self.selected = False
        self.stuck = False              # True: CANSTAT never follows CANCTRL (a dead chip)
        self.present = True             # False: MISO floats high (0xFF), nothing answers
        self._pos = 0
        self._ins = 0
        self._addr = 0
        self._mask = 0
        self.bus_is_off = False
        self.reset()

    # --- chip ------------------------------------------------------------------------------
    def reset(self):
        r = self.regs
        for i in range(128):
            r[i] = 0
        r[0x0E] = 0x80
        r[0x0F] = 0x87
        self.bus_is_off = False

    def _mode(self):
        return self.regs[0x0E] & _MODE_MASK

    def _reg_write(self, addr, value):
        r = self.regs
        if addr == 0x0F:
            r[0x0F] = value
            if not self.stuck:
                r[0x0E] = (r[0x0E] & ~_MODE_MASK & 0xFF) | (value & _MODE_MASK)
            if value & 0x10:             # ABAT: abort every pending transmission
                for k in range(3):
                    c = 0x30 + 0x10 * k
                    if r[c] & 0x08:
                        r[c] = (r[c] & ~0x08 & 0xFF) | 0x40
            return
        if addr in (0x0E, 0x1C, 0x1D, 0x2D):   # read-only here (status, counters, EFLG)
            return
        r[addr & 0x7F] = value
        if addr in (0x30, 0x40, 0x50) and value & 0x08:
            self._request(addr)

    def _request(self, ctrl):
        if self._mode() != 0x00:
            self.regs[ctrl] &= ~0x08 & 0xFF   # not in normal mode: nothing goes out
            return
        self.regs[ctrl] |= 0x08
        self.bus()

    def bus(self):
        """One bus attempt for every pending buffer (TXB0 first)."""
        r = self.regs
        for k in range(3):
            c = 0x30 + 0x10 * k
            if not r[c] & 0x08:
                continue
            if self.bus_is_off:
                continue
            if self.ack:
                if self.record:
                    sid = (r[c + 1] << 3) | (r[c + 2] >> 5)
                    n = r[c + 5] & 0x0F
                    self.frames.append((sid, bytes(r[c + 6:c + 6 + n])))
                self.delivered += 1
                r[c] &= ~0x08 & 0xFF
                r[0x2C] |= 0x04 << k
                if r[0x1C] > 0:
                    r[0x1C] -= 1
            else:
                t = r[0x1C] + 8
                r[0x1C] = t if t < 128 else 128       # no-ACK errors stop at error-passive
            self._eflg()

    def _eflg(self):
        r = self.regs
        tec = r[0x1C]
        e = 0
        if tec >= 96:
            e |= 0x04 | 0x01
        if tec >= 128:
            e |= 0x10
        if self.bus_is_off:
            e |= 0x20
        r[0x2D] = e

    def force_bus_off(self):
        self.bus_is_off = True
        self.regs[0x1C] = 255
        self._eflg()

    def recover(self):
        self.bus_is_off = False
        self.regs[0x1C] = 0
        self._eflg()

    def status(self):
        r = self.regs
        s = 0
        for k in range(3):
            c = 0x30 + 0x10 * k
            if r[c] & 0x08:
                s |= 0x04 << (2 * k)
            if r[0x2C] & (0x04 << k):
                s |= 0x08 << (2 * k)
        return s

    def pending(self):
        return sum(1 for k in range(3) if self.regs[0x30 + 0x10 * k] & 0x08)

    # --- SPI -------------------------------------------------------------------------------
    def select(self, on):
        if on and not self.selected:
            self._pos = 0
        self.selected = on

    def xfer(self, b):
        if not self.selected:
            raise AssertionError("SPI transfer with CS high")
        if not self.present:
            return 0xFF
        pos = self._pos
        self._pos = pos + 1
        r = self.regs
        if pos == 0:
            self._ins = b
            if b == 0xC0:
                self.reset()
            elif b & 0xF8 == 0x80 and b != 0x80:      # RTS
                for k in range(3):
                    if b & (1 << k):
                        self._request(0x30 + 0x10 * k)
            elif b & 0xF8 == 0x40:                     # LOAD TX BUFFER
                self._addr = 0x31 + 0x10 * ((b >> 1) & 0x03) if not b & 0x01 else 0x36 + 0x10 * ((b >> 1) & 0x03)
            return 0
        ins = self._ins
        if ins == 0x03:                                # READ
            if pos == 1:
                self._addr = b
                return 0
            a = self._addr
            self._addr = a + 1
            return r[a & 0x7F]
        if ins == 0x02:                                # WRITE
            if pos == 1:
                self._addr = b
                return 0
            a = self._addr
            self._addr = a + 1
            self._reg_write(a & 0x7F, b)
            return 0
        if ins == 0x05:                                # BIT MODIFY
            if pos == 1:
                self._addr = b
            elif pos == 2:
                self._mask = b
            elif pos == 3:
                a = self._addr & 0x7F
                self._reg_write(a, (r[a] & ~self._mask & 0xFF) | (b & self._mask))
            return 0
        if ins == 0xA0:                                # READ STATUS
            return self.status()
        if ins & 0xF8 == 0x40:                         # LOAD TX BUFFER data
            a = self._addr
            self._addr = a + 1
            r[a & 0x7F] = b
            return 0
        return 0


class FakeCs:
    def __init__(self, chip):
        self.chip = chip
        self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        self.chip.select(v == 0)


class FakeSpi:
    def __init__(self, chip):
        self.chip = chip

    def write(self, buf):
        chip = self.chip                   # (a bound method or a for-in iterator would allocate)
        for i in range(len(buf)):
            chip.xfer(buf[i])

    def write_readinto(self, tx, rx):
        chip = self.chip
        for i in range(len(tx)):
            rx[i] = chip.xfer(tx[i])


def make():
    """(chip, spi, cs)"""
    chip = FakeMcp2515()
    return chip, FakeSpi(chip), FakeCs(chip)
