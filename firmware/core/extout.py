"""Extended data output: the 58-byte 123\\SmartBMS gen3 packet, and the sender that paces it.

Byte-exact spec: docs/extended-output.md (as the public readers decode it). Readers
(Venus OS driver behind the vendor's USB cable, SignalK, Solar Assistant, hobby displays) find
packets only by the idle gap between them, so ``ExtOutSender`` sends each packet back to back
and nothing else, ever (queued and fed to the transmitter's FIFO without blocking the loop).

What readers see is fixed here (issue 22): a cell count that never changes while the chain is
the same chain (silence until the chain has been complete once; during comm loss the last
complete chain's N and last heard values, with the communication flag), a pack voltage that is
the sum of the packet's own cells or else the last trusted one (never a partial sum, never 0 V),
a reader flag for every fault that opens the relays, and the true Ah for small packs.

``ExtOutEncoder.encode(snap, brain, settings)`` fills one preallocated bytearray in place and
allocates nothing (integer arithmetic only). Every value is clamped to its field (never
wrapped). Each call is one packet: it advances the round-robin detail cell (1..N) and the
rotating key/value pair (keys 0..18, key 0 starts a round).

Inputs: ``core.snapshot.PackSnapshot``; the pack brain state (attributes charge_allowed,
load_allowed, soc_c 0..10000, soc_calibrated, current_ma (+ = charging), charge_ma (sensor 1),
discharge_ma (sensor 2), energy_in_wh, energy_out_wh, energy_in_today_wh, energy_out_today_wh,
stored_wh, charge_cycles, soh_pct, alarms (core.alarms bits), optional charge_efficiency_pct);
``core.settings.Settings``.
"""
from micropython import const

from core import alarms
from core.snapshot import CellStatus, SensorFlags
from core.version import FIRMWARE_VERSION

PACKET_LEN = const(58)
BAUD = const(9600)
_BURST_MS = const(61)         # 58 bytes x 10 bits at 9600 baud = 60.4 ms, rounded up
MIN_GAP_MS = const(400)      # idle time readers need to find the next packet boundary
_FIFO_DEPTH = const(8)       # the smallest transmitter FIFO (PIO; a UART's buffer takes a packet)
_CHAR_US = const(1042)       # a transmitter without ``char_us``: 10 bits at 9600 baud
KEYS = const(19)             # key/value pairs 0..18 make one round
KEY_OFFSET = const(25)       # byte 47 = key + 25; a byte below 25 means "no pair"
_DEFAULT_CHARGE_EFFICIENCY_PCT = const(100)  # SoC counts charge 1:1 unless the brain says otherwise

# Offsets in the packet
_O_PACK_V = const(0)
_O_CHARGE_I = const(3)
_O_DISCHARGE_I = const(6)
_O_BATTERY_I = const(9)
_O_MIN_V = const(12)
_O_MIN_V_CELL = const(14)
_O_MAX_V = const(15)
_O_MAX_V_CELL = const(17)
O_MIN_T = const(18)
_O_MIN_T_CELL = const(20)
O_MAX_T = const(21)
_O_MAX_T_CELL = const(23)
_O_DETAIL_CELL = const(24)
_O_CELL_COUNT = const(25)
_O_DETAIL_V = const(26)
_O_DETAIL_T = const(28)
O_FLAGS = const(30)
_O_IN_TODAY_WH = const(31)
_O_STORED_WH = const(34)
_O_OUT_TODAY_WH = const(37)
_O_SOC = const(40)
_O_IN_TOTAL_KWH = const(41)
_O_OUT_TOTAL_KWH = const(44)
_O_KEY = const(47)
_O_VALUE = const(48)
_O_CAPACITY = const(49)
_O_VMIN = const(51)
_O_VMAX = const(53)
_O_VBAL = const(55)
_O_CHECKSUM = const(57)

# Status flags (offset 30)
F_CHARGE_ALLOWED = const(0x01)
F_LOAD_ALLOWED = const(0x02)
F_COMM_ERROR = const(0x04)
F_UNDER_VOLTAGE = const(0x08)
F_OVER_VOLTAGE = const(0x10)
F_UNDER_TEMP = const(0x20)
F_OVER_TEMP = const(0x40)
_F_SOC_NOT_CALIBRATED = const(0x80)

# Status byte 2 (key 16)
_S2_LOAD_RELAY = const(0x20)
_S2_CHARGE_RELAY = const(0x10)
S2_BELOW_TMIN_DISCHARGE = const(0x08)
S2_BELOW_TMIN_CHARGE = const(0x04)
_S2_EARLY_WARNING = const(0x02)

_SIGN_POSITIVE = const(0x2B)  # '+'
_SIGN_NEGATIVE = const(0x2D)  # '-'
SIGN_NONE = const(0x58)      # 'X': no value (readers show 0)

_U8 = const(0xFF)
_U16 = const(0xFFFF)
_U24 = const(0xFFFFFF)
_I_LSB_MA = const(125)       # 0.125 A
_V_LSB_MV = const(5)
_T_OFFSET_DC = const(2320)   # 232 degC in 0.1 degC
_SENSOR_OK = SensorFlags.PRESENT
_SENSOR_OK_MASK = SensorFlags.PRESENT | SensorFlags.FAULT
_ALARM_UNDER_TEMP = alarms.UNDER_TEMP_CHARGE | alarms.UNDER_TEMP_DISCHARGE
_ALARM_VOLT_UNKNOWN = alarms.VOLT_SENSOR_FAULT | alarms.SETTINGS_INVALID
_CELL_NOT_DATA = CellStatus.VOLT_SENSOR_FAULT | CellStatus.STALE


def clamp(value: int, lo: int, hi: int) -> int:
    if value < lo:
        return lo
    if value > hi:
        return hi
    return value


def v_raw(mv: int) -> int:
    """mV -> 5 mV units, rounded to nearest (field clamps are applied by the caller)."""
    if mv <= 0:
        return 0
    return (mv + 2) // _V_LSB_MV


def t_raw(dc: int) -> int:
    """0.1 degC -> T16 raw, as the vendor's readers decode it (degC = r * 0.857 - 232):
    r = round((degC + 232) / 0.857) = round((dc + 2320) * 100 / 857), clamped to 0..65535.
    Integer only; the product stays below 2^30 for any T16 value."""
    n = dc + _T_OFFSET_DC
    if n <= 0:
        return 0
    if n > 562000:           # r > 65535 from here on: clamp before the multiply can grow
        return _U16
    r = (n * 200 + 857) // 1714
    return r if r < _U16 else _U16


def i_raw(ma: int) -> int:
    """|mA| -> 0.125 A units, rounded to nearest, clamped to 0..65535."""
    if ma < 0:
        ma = -ma
    if ma >= 8191938:        # 65535.5 * 125: beyond the field
        return _U16
    return (ma + 62) // _I_LSB_MA


def capacity_raw(capacity_ah: int, vnom_mv: int, cells: int) -> int:
    """Pack capacity in 0.1 kWh: Ah x vnom x cells / 100000, rounded, clamped to 0..65535.
    Split so every intermediate stays below 2^30 (no big ints on the boards)."""
    if capacity_ah <= 0 or vnom_mv <= 0 or cells <= 0:
        return 0
    t = clamp(capacity_ah, 0, 20000) * clamp(vnom_mv, 0, 5000)  # <= 1e8
    q = t // 100000
    r = t - q * 100000
    total = q * cells + (r * cells + 50000) // 100000
    return total if total < _U16 else _U16


def reader_vnom_mv(capacity_ah: int, vnom_mv: int, cells: int) -> int:
    """The nominal cell voltage sent in keys 4/5 and used for the capacity and stored-energy
    fields. Readers derive Ah as capacity_kwh x 1000 / (vnom x N) (the Venus driver rounds it
    to whole Ah), and the capacity field has 0.1 kWh steps: a 4 x 3.2 V 40 Ah pack (512 Wh)
    reads as 39 Ah from 0.5 kWh. So the packet describes the pack at the nearest nominal voltage
    (5 mV steps, within 1/8 of the real one) at which the Ah capacity is a whole multiple of
    0.1 kWh: 3.125 V for that pack, 0.5 kWh, 40 Ah exactly. Returns vnom_mv unchanged when
    readers get the true Ah from it anyway, or when no such voltage is near enough (tiny
    packs)."""
    if capacity_ah <= 0 or vnom_mv <= 0 or cells <= 0:
        return vnom_mv
    raw = capacity_raw(capacity_ah, vnom_mv, cells)
    if raw <= 0 or raw >= _U16:
        return vnom_mv
    vn = clamp(v_raw(vnom_mv), 1, 1000) * _V_LSB_MV * cells   # reader's pack nominal, mV
    t = raw * 10000
    q = t // vn
    if 10 * q + (10 * (t - q * vn) + vn // 2) // vn == capacity_ah:
        return vnom_mv                    # readers already get the true Ah
    den = clamp(capacity_ah, 0, 20000) * cells            # <= 5.1e6
    # vnom' = raw x 100000 / den mV, rounded to 5 mV steps: raw x 20000 / den steps, split
    # so every product stays below 2^30 (raw x 10000 <= 6.6e8; the remainder < den)
    t = raw * 10000
    q = t // den
    units = 2 * q + (2 * (t - q * den) + den // 2) // den
    mv = units * _V_LSB_MV
    if mv - vnom_mv > vnom_mv // 8 or vnom_mv - mv > vnom_mv // 8:
        return vnom_mv
    return mv


def scale(value: int, num: int, den: int) -> int:
    """value x num / den rounded, for value < 2^24 and num, den <= 5625 (no big ints)."""
    if den <= 0 or num == den:
        return value
    q = value // den
    return q * num + ((value - q * den) * num + den // 2) // den


def vlow_mv(settings) -> int:
    """The V-low (early warning) threshold: V-min plus 2 %, exactly as the pack brain trips
    core.alarms.EARLY_WARNING (vmin + vmin // 50)."""
    return settings.vmin_mv + settings.vmin_mv // 50


def checksum(buf, n: int = PACKET_LEN - 1) -> int:
    """Sum of the first n bytes modulo 256."""
    s = 0
    for i in range(n):
        s += buf[i]
    return s & 0xFF


class ExtOutEncoder:
    """Builds packets into ``self.buf`` (58 bytes, preallocated). See module docstring."""

    def __init__(self):
        self.buf = bytearray(PACKET_LEN)
        self.next_cell = 0   # 0-based index of the next detailed cell
        self.next_key = 0    # key of the next pair

    def reset(self):
        """Start a new round: detail cell 1 and key 0 on the next packet."""
        self.next_cell = 0
        self.next_key = 0

    def _put(self, off: int, value: int, size: int, hi: int) -> None:
        """Big-endian unsigned, clamped to 0..hi."""
        b = self.buf
        if value < 0:
            value = 0
        elif value > hi:
            value = hi
        i = off + size - 1
        while i >= off:
            b[i] = value & 0xFF
            value >>= 8
            i -= 1

    def _put_current(self, off: int, ma: int, valid: bool) -> None:
        b = self.buf
        if not valid:
            b[off] = SIGN_NONE
            b[off + 1] = 0
            b[off + 2] = 0
            return
        r = i_raw(ma)
        b[off] = _SIGN_NEGATIVE if ma < 0 and r else _SIGN_POSITIVE
        b[off + 1] = r >> 8
        b[off + 2] = r & 0xFF

    def _key_value(self, key: int, snap, brain, settings, vnom_mv: int) -> int:
        """Value byte (0..255) of one key of the rotating pairs."""
        if key == 0:
            return clamp(brain.soh_pct, 0, 100)
        if key == 1:
            return clamp(getattr(brain, "charge_efficiency_pct", _DEFAULT_CHARGE_EFFICIENCY_PCT), 0, 100)
        if key <= 3:
            v = clamp(v_raw(vlow_mv(settings)), 0, _U16)
            return v >> 8 if key == 2 else v & 0xFF
        if key <= 5:
            v = clamp(v_raw(vnom_mv), 0, _U16)
            return v >> 8 if key == 4 else v & 0xFF
        if key == 6:
            return (clamp(FIRMWARE_VERSION[0], 0, 15) << 4) | clamp(FIRMWARE_VERSION[1], 0, 15)
        if key == 7:
            return clamp(FIRMWARE_VERSION[2], 0, _U8)
        if key <= 9:
            v = clamp(brain.charge_cycles, 0, _U16)
            return v >> 8 if key == 8 else v & 0xFF
        if key <= 15:
            if key <= 12:
                v = clamp(brain.energy_in_wh // 1000, 0, _U24)
                shift = (12 - key) * 8
            else:
                v = clamp(brain.energy_out_wh // 1000, 0, _U24)
                shift = (15 - key) * 8
            return (v >> shift) & 0xFF
        if key == 16:
            a = brain.alarms
            s = 0
            if brain.load_allowed:
                s |= _S2_LOAD_RELAY
            if brain.charge_allowed:
                s |= _S2_CHARGE_RELAY
            if a & (alarms.UNDER_TEMP_DISCHARGE | alarms.TEMP_SENSOR_FAULT):
                s |= S2_BELOW_TMIN_DISCHARGE
            if a & (alarms.UNDER_TEMP_CHARGE | alarms.TEMP_SENSOR_FAULT):
                s |= S2_BELOW_TMIN_CHARGE
            if a & alarms.EARLY_WARNING:
                s |= _S2_EARLY_WARNING
            return s
        v = clamp(v_raw(settings.vbal_mv), 0, _U16)  # keys 17, 18: "full" cell voltage
        return v >> 8 if key == 17 else v & 0xFF

    def ready(self, snap) -> bool:
        """A packet has a cell count and a pack voltage to carry: the chain has been complete
        with every cell trusted once since boot (``snap.held_pack_mv``), or is now. Before that
        the sender stays silent: a reader that saw N = 0 (or a half-formed chain's count) keeps
        a phantom cell table, and a GX takes a 0 V pack field as the system voltage (issue 22).
        A pack with a stuck cell ADC from boot on stays silent (its relays are open anyway)."""
        return (snap.held_count > 0 and snap.held_pack_mv > 0) or snap.trusted()

    def encode(self, snap, brain, settings) -> bytearray:
        """Fill and return ``self.buf`` for one packet; advances detail cell and key.

        The cell count N never changes while the chain is the same chain (issue 22: readers
        rebuild or crash on a changing N, and keep a phantom "cell 0" after N = 0). Without
        cell communication (COMM_LOST, a stale or incomplete chain) the packet keeps the last
        complete chain's N (``snap.held_count``) and its last heard values, sets the
        communication-error flag and sends the currents as 'X'. The pack voltage is the sum
        of the cells only when every cell is trusted; otherwise the last trusted pack voltage
        goes out (never a partial sum, never 0 V), with the fault flagged. Lowest/highest cell
        voltage come from the same cell values as the pack voltage (one frame, issue 22)."""
        b = self.buf
        a = brain.alarms
        live = clamp(snap.cell_count, 0, len(snap.cell_mv))
        cells_ok = (snap.valid and snap.comm_ok and live > 0 and not a & alarms.COMM_LOST)
        count = live if cells_ok else clamp(snap.held_count, 0, len(snap.cell_mv))
        if count == 0:
            count = live          # never sent (the sender waits for ready()); tests only

        # Pack voltage and lowest/highest: one pass over the cell values the detail fields
        # carry, each rounded to 5 mV as a reader receives it.
        pack = 0
        volt_bad = not cells_ok or bool(a & alarms.VOLT_SENSOR_FAULT) or snap.volt_fault_at != 0
        status = snap.cell_status
        cell_mv = snap.cell_mv
        lo = _U16
        lo_cell = 0
        hi = -1
        hi_cell = 0
        if cells_ok:
            for i in range(count):
                if status[i] & _CELL_NOT_DATA:
                    volt_bad = True
                    continue
                v = v_raw(cell_mv[i])
                pack += v
                if v < lo:
                    lo = v
                    lo_cell = i + 1
                if v > hi:
                    hi = v
                    hi_cell = i + 1
        if not volt_bad:
            self._put(_O_PACK_V, pack, 3, _U24)
        elif snap.held_pack_mv > 0:
            self._put(_O_PACK_V, v_raw(snap.held_pack_mv), 3, _U24)
        # else: the last value sent stays (the buffer keeps it)

        # A sensor that is absent or faulty has no value: sign byte 'X'.
        s1_ok = cells_ok and (snap.s1_flags & _SENSOR_OK_MASK) == _SENSOR_OK
        s2_ok = cells_ok and (snap.s2_flags & _SENSOR_OK_MASK) == _SENSOR_OK
        self._put_current(_O_CHARGE_I, brain.charge_ma, s1_ok)
        self._put_current(_O_DISCHARGE_I, brain.discharge_ma, s2_ok)
        self._put_current(_O_BATTERY_I, brain.current_ma, s1_ok or s2_ok)

        if cells_ok and hi_cell:
            self._put(_O_MIN_V, lo, 2, _U16)
            b[_O_MIN_V_CELL] = lo_cell
            self._put(_O_MAX_V, hi, 2, _U16)
            b[_O_MAX_V_CELL] = hi_cell
        if cells_ok and snap.min_temp_cell:
            self._put(O_MIN_T, t_raw(snap.min_temp_dc), 2, _U16)
            self._put(_O_MIN_T_CELL, snap.min_temp_cell, 1, _U8)
            self._put(O_MAX_T, t_raw(snap.max_temp_dc), 2, _U16)
            self._put(_O_MAX_T_CELL, snap.max_temp_cell, 1, _U8)
        # else: lowest/highest as last sent (held); cell numbers stay within 1..N
        for off in (_O_MIN_V_CELL, _O_MAX_V_CELL, _O_MIN_T_CELL, _O_MAX_T_CELL):
            if b[off] > count or b[off] == 0:
                b[off] = 1 if count else 0
        if count:
            i = self.next_cell
            if i >= count or i < 0:
                i = 0
            b[_O_DETAIL_CELL] = i + 1
            b[_O_CELL_COUNT] = clamp(count, 0, _U8)
            st = status[i]
            if cells_ok:      # a stuck ADC: 0 V with both voltage flags (a fault, not a cell)
                self._put(_O_DETAIL_V, 0 if st & _CELL_NOT_DATA else v_raw(cell_mv[i]), 2, _U16)
            else:
                self._put(_O_DETAIL_V, v_raw(snap.held_mv[i]), 2, _U16)
            if cells_ok:
                # an open/shorted NTC: raw 0 (-232 degC, plainly not a reading; flags set)
                self._put(_O_DETAIL_T, 0 if st & CellStatus.TEMP_SENSOR_FAULT
                          else t_raw(snap.cell_temp_dc[i]), 2, _U16)
            elif snap.held_t[i]:
                self._put(_O_DETAIL_T, t_raw(snap.held_t[i] * 10 - 1000), 2, _U16)
            else:
                self._put(_O_DETAIL_T, 0, 2, _U16)
            self.next_cell = i + 1 if i + 1 < count else 0
        else:
            for off in range(_O_MIN_V, _O_DETAIL_T + 2):
                b[off] = 0
            self.next_cell = 0

        b[O_FLAGS] = self.flags(a, brain, cells_ok)

        self._put(_O_IN_TODAY_WH, brain.energy_in_today_wh, 3, _U24)
        vnom = settings.vnom_mv
        vnom_r = reader_vnom_mv(settings.capacity_ah, vnom, count)
        self._put(_O_STORED_WH, scale(brain.stored_wh, vnom_r, vnom), 3, _U24)
        self._put(_O_OUT_TODAY_WH, brain.energy_out_today_wh, 3, _U24)
        soc = brain.soc_c
        self._put(_O_SOC, (soc + 50) // 100 if soc > 0 else 0, 1, 100)
        self._put(_O_IN_TOTAL_KWH, brain.energy_in_wh // 1000, 3, _U24)
        self._put(_O_OUT_TOTAL_KWH, brain.energy_out_wh // 1000, 3, _U24)

        key = self.next_key
        if key < 0 or key >= KEYS:
            key = 0
        b[_O_KEY] = key + KEY_OFFSET
        b[_O_VALUE] = self._key_value(key, snap, brain, settings, vnom_r)
        self.next_key = key + 1 if key + 1 < KEYS else 0

        self._put(_O_CAPACITY, capacity_raw(settings.capacity_ah, vnom_r, count), 2, _U16)
        self._put(_O_VMIN, v_raw(settings.vmin_mv), 2, _U16)
        self._put(_O_VMAX, v_raw(settings.vmax_mv), 2, _U16)
        self._put(_O_VBAL, v_raw(settings.vbal_mv), 2, _U16)
        b[_O_CHECKSUM] = checksum(b)
        return b

    @staticmethod
    def flags(a, brain, cells_ok) -> int:
        """Status flags (offset 30). Every fault that opens the relays shows as a flag readers
        act on (the Venus driver knows only these): a cell-voltage sensor fault or invalid
        settings as under- and over-voltage (the voltage is not known: the worst case for both
        relays), an NTC fault as under- and over-temperature, missing boards (cell count outside
        the switch range) as a communication error."""
        f = 0
        if brain.charge_allowed:
            f |= F_CHARGE_ALLOWED
        if brain.load_allowed:
            f |= F_LOAD_ALLOWED
        if not cells_ok or a & (alarms.COMM_LOST | alarms.CELL_COUNT_MISMATCH):
            f |= F_COMM_ERROR
        if a & (alarms.UNDER_VOLTAGE | _ALARM_VOLT_UNKNOWN):
            f |= F_UNDER_VOLTAGE
        if a & (alarms.OVER_VOLTAGE | _ALARM_VOLT_UNKNOWN):
            f |= F_OVER_VOLTAGE
        if a & (_ALARM_UNDER_TEMP | alarms.TEMP_SENSOR_FAULT):
            f |= F_UNDER_TEMP
        if a & (alarms.OVER_TEMP | alarms.TEMP_SENSOR_FAULT):
            f |= F_OVER_TEMP
        if not brain.soc_calibrated:
            f |= _F_SOC_NOT_CALIBRATED
        return f


class ExtOutSender:
    """Paces packets onto the extended-output transmitter.

    ``cycle(dt_ms, snap, brain, settings)`` is called once per role cycle and starts at most
    one whole packet, only when the line has been idle for at least ``MIN_GAP_MS`` since the
    previous packet ended (and, after boot, since the sender was created), so the first byte a
    reader ever sees starts a packet and nothing is ever sent between packets. Returns True
    when a packet was started. An optional ``tx.busy()`` that is True delays it a cycle.

    A transmitter with ``write_byte(b)`` -> bool (the link's classes: PIO, UART, soft) gets the
    packet without blocking: it is queued (in the encoder's ``buf``), the FIFO takes what fits
    now and ``pump()`` - at every wake-up of the loop (the End's poll) - the rest; the loop
    wakes every ``poll_ms`` while ``busy()`` (half an 8-deep FIFO's character time at
    ``tx.char_us``), so the FIFO never runs dry inside a packet. A transmitter with only
    ``tx.write(buf, n)`` gets the packet in one call (simulator captures, tests).
    """

    def __init__(self, tx, encoder=None, gap_ms: int = MIN_GAP_MS):
        self.tx = tx
        self._busy = getattr(tx, "busy", None)  # bound once: calling it later allocates nothing
        self.encoder = encoder if encoder is not None else ExtOutEncoder()
        self.gap_ms = gap_ms
        self.enabled = True
        self.packets = 0          # sent since boot (saturates at 2^30 - 1)
        self.queued = 0            # bytes of the queued packet not yet handed over
        w = 0                     # 0: no write_byte, the packet goes out in one write()
        if hasattr(tx, "write_byte"):
            w = _FIFO_DEPTH * getattr(tx, "char_us", _CHAR_US) // 2000
            w = w if w > 0 else 1
        self.poll_ms = w
        # Time since the last packet started. At boot the line counts as if a packet had just
        # ended, so the first packet waits a full gap after the pin was set idle.
        self._since_start_ms = _BURST_MS

    def cycle(self, dt_ms: int, snap, brain, settings) -> bool:
        if dt_ms > 0:
            t = self._since_start_ms + dt_ms
            self._since_start_ms = t if t < 3600000 else 3600000
        if not self.enabled or self._since_start_ms < _BURST_MS + self.gap_ms:
            return False
        if self.queued:
            return False          # the last packet is still queued: never overlap
        if self._busy is not None and self._busy():
            return False          # previous burst still going out: never overlap, try next cycle
        if not self.encoder.ready(snap):
            return False          # no chain known yet: silence, never N = 0 (issue 22)
        buf = self.encoder.encode(snap, brain, settings)
        if self.poll_ms:
            self.queued = PACKET_LEN
            self.pump()
        else:
            self.tx.write(buf, PACKET_LEN)
        self._since_start_ms = 0
        if self.packets < 0x3FFFFFFF:
            self.packets += 1
        return True

    def busy(self) -> bool:
        """Bytes of a packet still queued (not yet in the transmitter's FIFO)."""
        return self.queued > 0

    def pump(self) -> int:
        """Hand the transmitter what it takes now; returns the bytes still queued."""
        left = self.queued
        if left <= 0:
            return 0
        tx = self.tx
        buf = self.encoder.buf
        i = PACKET_LEN - left
        while i < PACKET_LEN and tx.write_byte(buf[i]):
            i += 1
        left = PACKET_LEN - i
        self.queued = left
        return left
