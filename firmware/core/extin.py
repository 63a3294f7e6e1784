"""The gateway's reader of the End board's extended data output (the 58-byte packet of
docs/extended-output.md, encoded by core.extout), and the age of what it read.

The gateway board (roles/gateway.py) sits at ground potential and hears the End board's
extended-output pin through an isolator. It needs nothing else from the pack: section A's
aggregates travel in every packet (highest / lowest cell voltage and their cells, highest /
lowest temperature), plus pack voltage, currents, SoC, the relay and fault flags, V-min /
V-max / V-balance, and one detailed cell per packet (round robin) for the cell list.

``ExtInDecoder.feed(b)`` takes one received byte, ``gap()`` an idle gap (hal receivers return
``core.codec.GAP`` after 30 idle bit times: a packet boundary). A packet is taken when 58
bytes arrived since the last gap and the checksum (sum of bytes 0..56 mod 256) matches; the
values go into ``view`` (a ``PackView``), in place, integer arithmetic only (no allocation).
Anything else (a cut packet, a checksum error, more than 58 bytes without a gap) is counted
and dropped: one bad packet is not stale data, ``STALE_MS`` without a good one is.

``tick(dt_ms)`` ages the data. ``fresh()`` is the one answer to "may the gateway tell the
inverter anything": a good packet within ``stale_ms`` that carries cell data (N > 0) and no
communication-error flag. Anything else stops the inverter (roles/gateway.py).
"""
from micropython import const

PACKET_LEN = const(58)
STALE_MS = const(1500)      # 1 s packets: one lost packet is not stale, two are
_AGE_MAX = const(0x3FFFFFFF)
MAX_CELLS = const(255)

# flags (offset 30), as core.extout sends them
F_CHARGE_ALLOWED = const(0x01)
F_LOAD_ALLOWED = const(0x02)
F_COMM_ERROR = const(0x04)
F_UNDER_VOLTAGE = const(0x08)
F_OVER_VOLTAGE = const(0x10)
F_UNDER_TEMP = const(0x20)
F_OVER_TEMP = const(0x40)
F_SOC_NOT_CALIBRATED = const(0x80)

# key 16 (status byte 2)
S2_BELOW_TMIN_DISCHARGE = const(0x08)
S2_BELOW_TMIN_CHARGE = const(0x04)
S2_EARLY_WARNING = const(0x02)

_SIGN_NEG = const(0x2D)
_SIGN_POS = const(0x2B)
_KEY_OFFSET = const(25)


def t_dc(raw: int) -> int:
    """T16 raw -> 0.1 degC (degC = raw x 0.857 - 232), rounded."""
    return (raw * 857 + 50) // 100 - 2320


class PackView:
    """What the gateway knows about the pack, from the last good packet. Units: mV, mA
    (+ = charging), 0.1 degC, %, Wh. ``cell_mv`` fills in one cell per packet."""

    def __init__(self):
        self.packets = 0            # good packets since boot (saturates)
        self.pack_mv = 0            # 0 = not known (a cell's voltage is not data)
        self.current_ma = 0         # battery current, + = charging
        self.current_ok = False
        self.charge_ma = 0
        self.discharge_ma = 0
        self.min_mv = 0
        self.min_cell = 0
        self.max_mv = 0
        self.max_cell = 0
        self.min_t_dc = 0
        self.min_t_cell = 0         # 0: no valid temperature in the chain
        self.max_t_dc = 0
        self.max_t_cell = 0
        self.cells = 0              # N (the last complete chain's during comm loss: see flags)
        self.flags = 0
        self.soc_pct = 0
        self.soh_pct = 100
        self.status2 = 0
        self.in_today_wh = 0
        self.out_today_wh = 0
        self.stored_wh = 0
        self.in_total_kwh = 0
        self.out_total_kwh = 0
        self.capacity_dkwh = 0      # 0.1 kWh
        self.vmin_mv = 0
        self.vmax_mv = 0
        self.vbal_mv = 0
        self.vnom_mv = 0            # the readers' nominal cell voltage (keys 4/5; 0 until heard)
        self._vnom_hi = -1
        self.cycles = 0
        self._cycles_hi = 0
        self.cell_mv = bytearray(2 * MAX_CELLS)   # little-endian u16 per cell (no array module needed)

    def capacity_ah(self) -> int:
        """Pack capacity in Ah as every 123 reader derives it: 0.1 kWh x 100000 / (vnom x N);
        0 until keys 4/5 brought the nominal voltage. In 0.1 V x cells so every product stays
        below 2^30 (no big ints on the boards)."""
        den = self.vnom_mv * self.cells // 100
        if den <= 0:
            return 0
        return (self.capacity_dkwh * 1000 + den // 2) // den

    def cell(self, i: int) -> int:
        """Voltage of cell i (0-based) in mV, as last detailed (0 = not yet / not data)."""
        b = self.cell_mv
        return b[2 * i] | (b[2 * i + 1] << 8)


def _u16(b, o):
    return (b[o] << 8) | b[o + 1]


def _u24(b, o):
    return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2]


def _i24(b, o):
    """The 16-bit magnitude after a current's sign byte, 0.125 A units -> mA (unsigned)."""
    return ((b[o + 1] << 8) | b[o + 2]) * 125


class ExtInDecoder:
    """Byte stream -> ``view`` (see the module docstring)."""

    def __init__(self, view=None, stale_ms: int = STALE_MS):
        self.view = view if view is not None else PackView()
        self.buf = bytearray(PACKET_LEN)
        self.n = 0
        self.stale_ms = stale_ms
        self.age_ms = _AGE_MAX      # since the last good packet (none yet: stale)
        self.bad = 0                # packets dropped (cut, checksum, overrun)
        self.new = False            # a good packet since the caller last cleared it

    def feed(self, b: int) -> bool:
        """One received byte; True when it completed a good packet."""
        n = self.n
        if n < 0:
            return False            # overrun: wait for the gap
        if n >= PACKET_LEN:
            self.n = -1
            self.bad += 1
            return False
        self.buf[n] = b
        n += 1
        self.n = n
        if n == PACKET_LEN:
            buf = self.buf
            s = 0
            for i in range(PACKET_LEN - 1):
                s += buf[i]
            if (s & 0xFF) == buf[PACKET_LEN - 1]:
                self._apply()
                self.n = PACKET_LEN + 1    # taken: anything before the gap is an overrun
                return True
            self.bad += 1
            self.n = -1
        return False

    def gap(self) -> None:
        """The line went idle: the next byte starts a packet."""
        n = self.n
        if 0 < n < PACKET_LEN:
            self.bad += 1           # a cut packet
        self.n = 0

    def error(self) -> None:
        """A character with a framing error: this packet is lost (taken again after the gap)."""
        if self.n != 0:
            self.bad += 1
        self.n = -1

    def tick(self, dt_ms: int) -> None:
        a = self.age_ms + dt_ms
        self.age_ms = a if a < _AGE_MAX else _AGE_MAX

    def fresh(self) -> bool:
        v = self.view
        return (self.age_ms <= self.stale_ms and v.cells > 0 and not v.flags & F_COMM_ERROR)

    def _apply(self) -> None:
        b = self.buf
        v = self.view
        v.pack_mv = _u24(b, 0) * 5
        s1 = b[3]
        s2 = b[6]
        s = b[9]
        v.charge_ma = _i24(b, 3) * (-1 if s1 == _SIGN_NEG else 1)
        v.discharge_ma = _i24(b, 6) * (-1 if s2 == _SIGN_NEG else 1)
        v.current_ok = s == _SIGN_POS or s == _SIGN_NEG
        v.current_ma = _i24(b, 9) * (-1 if s == _SIGN_NEG else 1) if v.current_ok else 0
        v.min_mv = _u16(b, 12) * 5
        v.min_cell = b[14]
        v.max_mv = _u16(b, 15) * 5
        v.max_cell = b[17]
        v.min_t_cell = b[20]
        v.max_t_cell = b[23]
        v.min_t_dc = t_dc(_u16(b, 18)) if v.min_t_cell else 0
        v.max_t_dc = t_dc(_u16(b, 21)) if v.max_t_cell else 0
        n = b[25]
        v.cells = n
        d = b[24]
        if 0 < d <= n:
            mv = _u16(b, 26) * 5
            c = v.cell_mv
            c[2 * (d - 1)] = mv & 0xFF
            c[2 * (d - 1) + 1] = mv >> 8
        v.flags = b[30]
        v.in_today_wh = _u24(b, 31)
        v.stored_wh = _u24(b, 34)
        v.out_today_wh = _u24(b, 37)
        v.soc_pct = b[40]
        v.in_total_kwh = _u24(b, 41)
        v.out_total_kwh = _u24(b, 44)
        key = b[47] - _KEY_OFFSET
        val = b[48]
        if key == 0:
            v.soh_pct = val
        elif key == 4:
            v._vnom_hi = val
        elif key == 5 and v._vnom_hi >= 0:
            v.vnom_mv = ((v._vnom_hi << 8) | val) * 5
        elif key == 8:
            v._cycles_hi = val
        elif key == 9:
            v.cycles = (v._cycles_hi << 8) | val
        elif key == 16:
            v.status2 = val
        v.capacity_dkwh = _u16(b, 49)
        v.vmin_mv = _u16(b, 51) * 5
        v.vmax_mv = _u16(b, 53) * 5
        v.vbal_mv = _u16(b, 55) * 5
        if v.packets < _AGE_MAX:
            v.packets += 1
        self.age_ms = 0
        self.new = True
