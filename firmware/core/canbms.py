"""Inverter CAN profiles: the BMS frames a Victron, Pylontech-speaking (Deye, Growatt, Sofar,
GoodWe, MidNite) or SMA/Solis inverter expects, filled from a ``core.extin.PackView`` and a
``core.chargelaw.ChargeLaw``.

Bus: 500 kbit/s, 11-bit identifiers, little-endian, the whole set once a second with 0x351
first. Byte layouts: docs/gateway.md and the DBC file docs/can/cellchain-bms.dbc (the host
tests decode every frame with cantools from it).

  profile   frames (in sending order)
  victron   0x351 0x355 0x356 0x35A 0x35E 0x35F 0x370 0x371 0x372 0x373 0x374 0x375 0x376 0x377
  pylon     0x351 0x355 0x356 0x359 0x35C 0x35E   (Pylontech LV protocol v1.2)
  pylon13   0x351 0x355 0x356 0x35A 0x35E 0x35F   (v1.3: 0x35A/0x35F instead of 0x359/0x35C)
  sma       0x351 0x355 0x356 0x35A 0x35E 0x35F   (SMA Sunny Island, Solis "SMA" setting)

``CanBms.fill(view, law, stopping)`` writes every frame into preallocated 8-byte buffers
(``bufs[i]`` for ``ids[i]``, ``dlc[i]`` bytes) and allocates nothing. ``stopping`` gives the
last set before silence: CCL 0, DCL 0, CVL at the pack voltage (``law.stop``), every alarm
that makes the inverter stop at once (Victron/SMA/Pylon 1.3: general alarm and BMS internal
error in 0x35A; Pylon 1.2: system error in 0x359 and no charge/discharge enable in 0x35C).

Rules every profile keeps (tests in host_tests/core/test_canbms.py): CVL is never 0 (Victron
reads it as over-voltage) and never below the discharge voltage limit; Pylon's module count
(0x359 byte 4) is the pack's Ah in 74 Ah modules, rounded up (the inverter sets its current
per module from it); Pylon's name is exactly "PYLON" padded with spaces.
"""
from micropython import const

from core import extin
from core.version import FIRMWARE_VERSION

VICTRON = const(0)
PYLON = const(1)
PYLON13 = const(2)
SMA = const(3)
PROFILE_NAMES = ("victron", "pylon", "pylon13", "sma")

_IDS = (
    (0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F, 0x370, 0x371, 0x372, 0x373, 0x374, 0x375, 0x376, 0x377),
    (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E),
    (0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F),
    (0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F),
)
_DLC = {0x351: 8, 0x355: 6, 0x356: 6, 0x359: 7, 0x35A: 8, 0x35C: 2, 0x35E: 8, 0x35F: 8,
        0x370: 8, 0x371: 8, 0x372: 8, 0x373: 8, 0x374: 8, 0x375: 8, 0x376: 8, 0x377: 8}

_NAME_CELLCHAIN = b"cellchai"       # 0x35E (8 bytes); 0x370/0x371: the 16-byte product name
_NAME_PYLON = b"PYLON   "
_PRODUCT = b"cellchain BMS   "
_MODULE_AH = const(74)              # Pylontech US3000: the inverter's current per module
_KELVIN_DC = const(2732)

# 0x35A: 2-bit pairs, 01 = active, 10 = inactive (bytes 0-3 alarms, 4-7 warnings)
_ACTIVE = const(1)
_OK = const(2)
# (byte, shift) of each condition in the alarm half (warnings: byte + 4)
_GENERAL = const(0x00)
_HIGH_V = const(0x02)
_LOW_V = const(0x04)
_HIGH_T = const(0x06)
_LOW_T = const(0x10)
_HIGH_T_CHG = const(0x12)
_LOW_T_CHG = const(0x14)
_HIGH_I_DIS = const(0x16)
_HIGH_I_CHG = const(0x20)
_CONTACTOR = const(0x22)
_SHORT = const(0x24)
_INTERNAL = const(0x26)
_IMBALANCE = const(0x30)

IMBALANCE_WARN_MV = const(100)     # 0x35A cell imbalance warning above this spread


def profile_of(name) -> int:
    """Profile number from its name ("victron", "pylon", "pylon13", "sma"); -1 if unknown."""
    for i in range(len(PROFILE_NAMES)):
        if PROFILE_NAMES[i] == name:
            return i
    return -1


def _u16(b, o, v):
    if v < 0:
        v = 0
    elif v > 0xFFFF:
        v = 0xFFFF
    b[o] = v & 0xFF
    b[o + 1] = v >> 8


def _s16(b, o, v):
    if v < -32768:
        v = -32768
    elif v > 32767:
        v = 32767
    v &= 0xFFFF
    b[o] = v & 0xFF
    b[o + 1] = v >> 8


def _copy(b, src):
    for i in range(8):
        b[i] = src[i] if i < len(src) else 0x20


def _pairs(b, off, code, active):
    """Set one 2-bit pair: code = (byte << 4) | shift, byte 0..3 (+ off 4 for warnings)."""
    i = off + (code >> 4)
    s = code & 0x0F
    b[i] = (b[i] & ~(3 << s)) | ((_ACTIVE if active else _OK) << s)


def _cell_id(b, prefix, cell):
    """ASCII "C<n>" (or "T<n>") padded with spaces into 8 bytes; "-" without a cell."""
    for i in range(8):
        b[i] = 0x20
    if cell <= 0:
        b[0] = 0x2D
        return
    b[0] = prefix
    i = 1
    d = 100
    started = False
    while d > 0:
        q = (cell // d) % 10
        if q or started or d == 1:
            b[i] = 0x30 + q
            i += 1
            started = True
        d //= 10


class CanBms:
    def __init__(self, profile: int):
        if profile < 0 or profile >= len(_IDS):
            raise ValueError("unknown CAN profile")
        self.profile = profile
        self.ids = _IDS[profile]
        self.dlc = tuple(_DLC[i] for i in self.ids)
        self.bufs = tuple(bytearray(8) for _ in self.ids)
        self.count = len(self.ids)

    def fill(self, v, law, stopping: bool = False) -> None:
        for k in range(self.count):
            self._frame(self.ids[k], self.bufs[k], v, law, stopping)

    def _frame(self, fid, b, v, law, stopping):
        p = self.profile
        if fid == 0x351:
            dvl = law.dvl_mv // 100
            cvl = law.cvl_mv // 100          # floored to 0.1 V: never above the law's CVL
            if cvl < dvl:
                cvl = dvl
            if cvl < 1:
                cvl = 1                      # never 0 (Victron: over-voltage); the role sends nothing before a law exists
            _u16(b, 0, cvl)
            _s16(b, 2, 0 if stopping else law.ccl_da)
            _s16(b, 4, 0 if stopping else law.dcl_da)
            _u16(b, 6, dvl)
        elif fid == 0x355:
            _u16(b, 0, v.soc_pct)
            _u16(b, 2, v.soh_pct)
            _u16(b, 4, v.soc_pct * 100)
            b[6] = 0
            b[7] = 0
        elif fid == 0x356:
            _s16(b, 0, v.pack_mv // 10)
            _s16(b, 2, v.current_ma // 100 if v.current_ok else 0)
            _s16(b, 4, v.max_t_dc if v.max_t_cell else 0)
            b[6] = 0
            b[7] = 0
        elif fid == 0x35A:
            self._alarms(b, v, law, stopping)
        elif fid == 0x359:
            self._pylon_flags(b, v, law, stopping)
        elif fid == 0x35C:
            e = 0
            if not stopping:
                if law.ccl_da > 0:
                    e |= 0x80                # charge enable
                if law.dcl_da > 0:
                    e |= 0x40                # discharge enable
            b[0] = e
            b[1] = 0
        elif fid == 0x35E:
            _copy(b, _NAME_PYLON if p == PYLON or p == PYLON13 else _NAME_CELLCHAIN)
        elif fid == 0x35F:
            b[0] = 0x4C                      # battery model tag "LI" (lithium)
            b[1] = 0x49
            b[2] = FIRMWARE_VERSION[0] & 0xFF
            b[3] = FIRMWARE_VERSION[1] & 0xFF
            _u16(b, 4, v.capacity_ah())
            b[6] = 0
            b[7] = 0
        elif fid == 0x370 or fid == 0x371:
            o = 0 if fid == 0x370 else 8
            for i in range(8):
                b[i] = _PRODUCT[o + i]
        elif fid == 0x372:
            n = v.cells
            _u16(b, 0, n)                                   # modules (cells) ok
            _u16(b, 2, n if stopping or law.ccl_da == 0 else 0)   # blocking charge
            _u16(b, 4, n if stopping or law.dcl_da == 0 else 0)   # blocking discharge
            _u16(b, 6, 0)                                   # offline
        elif fid == 0x373:
            _u16(b, 0, v.min_mv)
            _u16(b, 2, v.max_mv)
            _u16(b, 4, (v.min_t_dc + _KELVIN_DC + 5) // 10 if v.min_t_cell else 0)   # K
            _u16(b, 6, (v.max_t_dc + _KELVIN_DC + 5) // 10 if v.max_t_cell else 0)
        elif fid == 0x374:
            _cell_id(b, 0x43, v.min_cell)
        elif fid == 0x375:
            _cell_id(b, 0x43, v.max_cell)
        elif fid == 0x376:
            _cell_id(b, 0x43, v.min_t_cell)
        elif fid == 0x377:
            _cell_id(b, 0x43, v.max_t_cell)

    def _alarms(self, b, v, law, stopping):
        f = v.flags
        s2 = v.status2
        for i in range(8):
            b[i] = 0
        ov = bool(f & extin.F_OVER_VOLTAGE)
        uv = bool(f & extin.F_UNDER_VOLTAGE)
        ot = bool(f & extin.F_OVER_TEMP)
        ut = bool(f & extin.F_UNDER_TEMP)
        comm = stopping or bool(f & extin.F_COMM_ERROR)
        # alarms: what opened a relay (the inverter stops what the brain stopped)
        _pairs(b, 0, _GENERAL, comm or ov or uv or ot or ut)
        _pairs(b, 0, _HIGH_V, ov)
        _pairs(b, 0, _LOW_V, uv)
        _pairs(b, 0, _HIGH_T, ot)
        _pairs(b, 0, _LOW_T, ut)
        _pairs(b, 0, _HIGH_T_CHG, ot)
        _pairs(b, 0, _LOW_T_CHG, bool(s2 & extin.S2_BELOW_TMIN_CHARGE))
        _pairs(b, 0, _HIGH_I_DIS, False)
        _pairs(b, 0, _HIGH_I_CHG, False)
        _pairs(b, 0, _CONTACTOR, False)
        _pairs(b, 0, _SHORT, False)
        _pairs(b, 0, _INTERNAL, comm)
        _pairs(b, 0, _IMBALANCE, False)
        # warnings: the closed loop at work
        spread = v.max_mv - v.min_mv
        _pairs(b, 4, _GENERAL, False)
        _pairs(b, 4, _HIGH_V, law.target_mv > 0 and v.max_mv >= law.target_mv)
        _pairs(b, 4, _LOW_V, bool(s2 & extin.S2_EARLY_WARNING))
        _pairs(b, 4, _HIGH_T, False)
        _pairs(b, 4, _LOW_T, False)
        _pairs(b, 4, _HIGH_T_CHG, False)
        _pairs(b, 4, _LOW_T_CHG, False)
        _pairs(b, 4, _HIGH_I_DIS, False)
        _pairs(b, 4, _HIGH_I_CHG, False)
        _pairs(b, 4, _CONTACTOR, False)
        _pairs(b, 4, _SHORT, False)
        _pairs(b, 4, _INTERNAL, False)
        _pairs(b, 4, _IMBALANCE, spread > IMBALANCE_WARN_MV)

    def _pylon_flags(self, b, v, law, stopping):
        f = v.flags
        p = 0
        if f & extin.F_OVER_VOLTAGE:
            p |= 0x02
        if f & extin.F_UNDER_VOLTAGE:
            p |= 0x04
        if f & extin.F_OVER_TEMP:
            p |= 0x08
        if f & extin.F_UNDER_TEMP:
            p |= 0x10
        b[0] = p
        b[1] = 0x08 if stopping or f & extin.F_COMM_ERROR else 0     # system error
        w = 0
        if law.target_mv > 0 and v.max_mv >= law.target_mv:
            w |= 0x02
        if v.status2 & extin.S2_EARLY_WARNING:
            w |= 0x04
        b[2] = w
        b[3] = 0x08 if stopping else 0                               # internal communication fail
        b[4] = modules(v.capacity_ah())
        b[5] = 0x50                                                  # "P"
        b[6] = 0x4E                                                  # "N"
        b[7] = 0


def modules(capacity_ah: int) -> int:
    """Pylontech module count for 0x359 byte 4: the pack in 74 Ah modules, rounded up, 1..255."""
    m = (capacity_ah + _MODULE_AH - 1) // _MODULE_AH
    if m < 1:
        return 1
    return m if m < 255 else 255
