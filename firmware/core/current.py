"""Current sensing: the Begin board's two dual-range sensors and the End board's battery current.

Begin side, ``SensorPair(board_def)``: each sensor has a low range (+-20 A at one turn, accurate)
and a high range (+-500 A) on two ADC channels. ``update(hw)`` reads all four channels,
converts them to mA with the board definition's scaling and the stored zero offsets, and
blends the two ranges linearly between 80 % and 95 % of the low range's full scale, so the
reading has no step at the switch-over (the result is a continuous function of the current).
Plausibility (FAULT, no data): the high channel beyond 105 % of its span (missing) or beyond
96 % of its range (stuck at a rail), or the low channel more than 3 A away from the high one
clipped to the low range's span (stuck at zero, disagreeing ranges).
Results, one turn, + = into the pack for sensor 1 and + = to the loads for sensor 2:
``s1_ma, s1_flags, s2_ma, s2_flags`` (``core.snapshot.SensorFlags``).

Zero calibration (Begin button, no current flowing): ``zero()`` takes the last raw readings as
offsets and returns the dict the Begin role saves (roles/begin.py); ``load_zero_file`` reads it from
``hw.data_dir + "/current_zero.json"`` through ``core.store``.

End side, ``PackCurrent.update(s1_ma, s1_flags, s2_ma, s2_flags, loop_count, sensors)``: divide
by the loop count, apply the dead band (manual table: +-150 / 75 / 38 mA at 1 / 2 / 4 turns)
for the shown current and a noise band of a fifth of it for the SoC count, and combine: two sensors -> battery = sensor 1 (charger side) - sensor 2 (consumer side); one
sensor (manual appendix a/c) -> battery = sensor 1 alone. Nothing here allocates per cycle.
"""
from micropython import const

from core import store
from core.snapshot import SensorFlags

ZERO_FILE = "current_zero.json"
ZERO_KIND = "current_zero"
ZERO_VERSION = const(1)
ZERO_KEYS = ("s1_low_uv", "s1_high_uv", "s2_low_uv", "s2_high_uv")

MAX_MA = const(1000000)        # |current| is clamped here (two 500 A sensors at one turn)
_BLEND_START_PERMILLE = const(800)  # of the low range: below, the low range alone
_BLEND_END_PERMILLE = const(950)    # above, the high range alone; linear blend between
_BLEND_ONE = const(256)
_RAIL_PERMILLE = const(1050)   # high channel beyond 105 % of its span: not connected / broken
_ZERO_TOL_PERMILLE = const(100)  # a zero offset more than 10 % of span from nominal is refused
_LOW_CHECK_PERMILLE = const(500)  # below 50 % of the low range both channels must agree ...
_LOW_AGREE_MA = const(3000)       # the low channel within 3 A of the high one (clipped to the
#                                   low range's span), else the sensor is implausible: FAULT
_STUCK_RAIL_PERMILLE = const(960)  # a high-range reading beyond 96 % of its range: at a rail
_COUNT_BAND_DIV = const(5)          # SoC count: currents above dead band / 5 are counted

# Dead band in mA of real current per loop count 1, 2, 4 (manual: sensor specifications)
DEAD_BAND_MA = (150, 75, 38)


def dead_band_ma(loop_count):
    """The manual's dead band for 1, 2 or 4 turns (other values: the 1-turn band / turns)."""
    if loop_count == 1:
        return 150
    if loop_count == 2:
        return 75
    if loop_count == 4:
        return 38
    if loop_count < 1:
        return 150
    return (150 + loop_count // 2) // loop_count


def _uv_to_ma(diff_uv, uv_per_a):
    """floor(diff_uv * 1000 / uv_per_a) without an intermediate beyond +-2^30."""
    q = diff_uv // uv_per_a
    r = diff_uv - q * uv_per_a          # 0 <= r < uv_per_a
    return q * 1000 + (r * 1000) // uv_per_a


def _clamp_ma(ma):
    if ma > MAX_MA:
        return MAX_MA
    if ma < -MAX_MA:
        return -MAX_MA
    return ma


class SensorPair:
    """Begin board: both dual-range sensors. Construct once; ``update(hw)`` every cycle."""

    def __init__(self, board_def=None):
        low_a = getattr(board_def, "CURRENT_LOW_RANGE_A", 20)
        high_a = getattr(board_def, "CURRENT_HIGH_RANGE_A", 500)
        self.low_uv_per_a = getattr(board_def, "CURRENT_LOW_UV_PER_A", 75000)
        self.high_uv_per_a = getattr(board_def, "CURRENT_HIGH_UV_PER_A", 3000)
        zero = getattr(board_def, "CURRENT_ZERO_UV", 1650000)
        self.nominal_low_zero_uv = getattr(board_def, "CURRENT_LOW_ZERO_UV", zero)
        self.nominal_high_zero_uv = getattr(board_def, "CURRENT_HIGH_ZERO_UV", zero)
        self.low_max_ma = low_a * 1000
        self._blend_start_ma = low_a * _BLEND_START_PERMILLE
        self._blend_end_ma = low_a * _BLEND_END_PERMILLE
        self._blend_span_ma = self._blend_end_ma - self._blend_start_ma
        self._low_check_ma = low_a * _LOW_CHECK_PERMILLE
        self._stuck_ma = high_a * _STUCK_RAIL_PERMILLE
        # high channel plausible while |raw - zero| <= this many uV
        self._rail_uv = (high_a * self.high_uv_per_a // 1000) * _RAIL_PERMILLE
        self._low_tol_uv = (low_a * self.low_uv_per_a // 1000) * _ZERO_TOL_PERMILLE
        self._high_tol_uv = (high_a * self.high_uv_per_a // 1000) * _ZERO_TOL_PERMILLE
        # zero offsets (uV at the pin): sensor 1 low, sensor 1 high, sensor 2 low, sensor 2 high
        self.zero_uv = [self.nominal_low_zero_uv, self.nominal_high_zero_uv,
                        self.nominal_low_zero_uv, self.nominal_high_zero_uv]
        self.raw_uv = [0, 0, 0, 0]       # last readings (None when the channel gave none)
        self.zero_ok = True               # last zero() accepted every channel
        self.s1_ma = 0
        self.s1_flags = 0
        self.s2_ma = 0
        self.s2_flags = 0
        self._hw = None
        self._has_read = False
        self._ma = 0                      # result of _sensor() (avoids returning tuples)
        self._flags = 0

    # --- per cycle -------------------------------------------------------------------------
    def update(self, hw):
        """Read both sensors from ``hw.read_current_uv`` and set s1_/s2_ ma and flags."""
        if hw is not self._hw:
            # looked up once per hw object: getattr/hasattr on a method allocates a bound method
            self._hw = hw
            self._has_read = hasattr(hw, "read_current_uv")
        self._sensor(hw, 1)
        self.s1_ma = self._ma
        self.s1_flags = self._flags
        self._sensor(hw, 2)
        self.s2_ma = self._ma
        self.s2_flags = self._flags

    def _read(self, hw, sensor, high, idx):
        try:
            v = hw.read_current_uv(sensor, high)
        except OSError:
            v = None
        self.raw_uv[idx] = v
        return v

    def _sensor(self, hw, sensor):
        self._ma = 0
        if not self._has_read:
            self._flags = 0
            return
        base = (sensor - 1) * 2
        low_uv = self._read(hw, sensor, False, base)
        high_uv = self._read(hw, sensor, True, base + 1)
        if high_uv is None or low_uv is None:
            self._flags = SensorFlags.FAULT
            return
        dh = high_uv - self.zero_uv[base + 1]
        if dh > self._rail_uv or dh < -self._rail_uv:
            # high channel at a rail: sensor missing or broken - no data
            self._flags = SensorFlags.FAULT
            return
        i_high = _clamp_ma(_uv_to_ma(dh, self.high_uv_per_a))
        i_low = _clamp_ma(_uv_to_ma(low_uv - self.zero_uv[base], self.low_uv_per_a))
        a_high = i_high if i_high >= 0 else -i_high
        if a_high >= self._stuck_ma:
            # at (or next to) the high range's rail: a stuck or saturated sensor, not a current
            self._flags = SensorFlags.FAULT
            return
        # both ranges see the same current: the low one follows the high one up to its own
        # span (where it saturates). A low channel stuck at zero during a 30 A discharge, or
        # one that disagrees by more than 3 A, makes the sensor implausible (FAULT: sensor
        # alarm on the End board, the coulomb count frozen), never a silent 0 A.
        lim = self.low_max_ma
        expect = i_high if -lim <= i_high <= lim else (lim if i_high > 0 else -lim)
        d = i_low - expect
        if d > _LOW_AGREE_MA or d < -_LOW_AGREE_MA:
            self._flags = SensorFlags.FAULT
            return
        a_low = i_low if i_low >= 0 else -i_low
        if a_low <= self._blend_start_ma:
            self._ma = i_low
            self._flags = SensorFlags.PRESENT
        elif a_low >= self._blend_end_ma:
            self._ma = i_high
            self._flags = SensorFlags.PRESENT | SensorFlags.HIGH_RANGE
        else:
            w = (a_low - self._blend_start_ma) * _BLEND_ONE // self._blend_span_ma
            self._ma = (i_low * (_BLEND_ONE - w) + i_high * w) // _BLEND_ONE
            self._flags = SensorFlags.PRESENT
            if w >= _BLEND_ONE // 2:
                self._flags = SensorFlags.PRESENT | SensorFlags.HIGH_RANGE

    # --- zero calibration ------------------------------------------------------------------
    def zero(self):
        """Take the last raw readings (no current flowing) as zero offsets. A channel whose
        reading is missing or more than 10 % of its span from the nominal zero keeps its old
        offset and clears ``zero_ok``. Returns the dict to save (the Begin role stores it: roles/begin.py)."""
        ok = True
        for idx in range(4):
            v = self.raw_uv[idx]
            nominal = self.nominal_high_zero_uv if idx & 1 else self.nominal_low_zero_uv
            tol = self._high_tol_uv if idx & 1 else self._low_tol_uv
            if v is None or not -tol <= v - nominal <= tol:
                ok = False
                continue
            self.zero_uv[idx] = v
        self.zero_ok = ok
        return self.zero_values()

    def zero_values(self):
        d = {}
        for idx in range(4):
            d[ZERO_KEYS[idx]] = self.zero_uv[idx]
        return d

    def load_zero(self, values):
        """Apply saved offsets; values out of tolerance or of the wrong type are ignored.
        Returns True when all four were applied."""
        ok = True
        for idx in range(4):
            v = values.get(ZERO_KEYS[idx]) if isinstance(values, dict) else None
            nominal = self.nominal_high_zero_uv if idx & 1 else self.nominal_low_zero_uv
            tol = self._high_tol_uv if idx & 1 else self._low_tol_uv
            if not isinstance(v, int) or isinstance(v, bool) or not -tol <= v - nominal <= tol:
                ok = False
                continue
            self.zero_uv[idx] = v
        return ok

    def load_zero_file(self, path):
        """Load offsets from a ``core.store`` record; returns the store status (OK, MISSING,
        CORRUPT, ...). Never raises; on anything but OK the nominal offsets stay."""
        values, status = store.load(path, ZERO_KIND, ZERO_VERSION)
        if status == store.OK and not self.load_zero(values):
            status = store.CORRUPT
        return status


def zero_path(data_dir):
    return data_dir + "/" + ZERO_FILE


# --- End side ------------------------------------------------------------------------------
def sensor_ok(flags):
    """True when a sensor delivered data this cycle."""
    return (flags & SensorFlags.PRESENT) != 0 and (flags & SensorFlags.FAULT) == 0


def scale(ma, loop_count):
    """One-turn reading -> real current for 1, 2 or 4 turns, then the dead band."""
    if loop_count > 1:
        ma = ma // loop_count if ma >= 0 else -((-ma) // loop_count)
    band = dead_band_ma(loop_count)
    if -band <= ma <= band:
        return 0
    return _clamp_ma(ma)


def count_scale(ma, loop_count):
    """One-turn reading -> real current for the SoC count: the noise band (dead band / 5, 30 mA
    at one turn) instead of the display dead band, so standby loads inside the dead band are
    counted (they ran the SoC away by +3 %/day); sensor offsets after the zero calibration stay
    inside the noise band."""
    if loop_count > 1:
        ma = ma // loop_count if ma >= 0 else -((-ma) // loop_count)
    band = dead_band_ma(loop_count) // _COUNT_BAND_DIV
    if -band <= ma <= band:
        return 0
    return _clamp_ma(ma)


class PackCurrent:
    """End board: battery current from the two sensor readings of the snapshot.

    After ``update``: ``charge_ma`` (sensor 1, charger side), ``discharge_ma`` (sensor 2,
    consumer side), ``current_ma`` (battery, + = charging, after the dead band), ``count_ma``
    (the same with the smaller noise band: what the SoC counts) and ``fault`` (a sensor in use
    gave no data; its current counts as 0 and the pack brain freezes the SoC count). With one sensor, charge_ma / discharge_ma are the
    positive / negative part of the battery current.
    """

    def __init__(self):
        self.charge_ma = 0
        self.discharge_ma = 0
        self.current_ma = 0
        self.count_ma = 0
        self.fault = False

    def update(self, s1_ma, s1_flags, s2_ma, s2_flags, loop_count, sensors):
        fault = False
        cc = 0
        dc = 0
        if sensor_ok(s1_flags):
            c = scale(s1_ma, loop_count)
            cc = count_scale(s1_ma, loop_count)
        else:
            c = 0
            fault = True
        if sensors >= 2:
            if sensor_ok(s2_flags):
                d = scale(s2_ma, loop_count)
                dc = count_scale(s2_ma, loop_count)
            else:
                d = 0
                fault = True
            self.charge_ma = c
            self.discharge_ma = d
            self.current_ma = c - d
            self.count_ma = cc - dc
        else:
            self.count_ma = cc
            self.current_ma = c
            self.charge_ma = c if c > 0 else 0
            self.discharge_ma = -c if c < 0 else 0
        self.fault = fault
        return self.current_ma


def battery_current(s1_ma, s1_flags, s2_ma, s2_flags, loop_count, sensors):
    """Battery current in mA (+ = charging) after loop count and dead band; a faulty sensor
    counts as 0. Stateless convenience wrapper (allocation-free)."""
    c = scale(s1_ma, loop_count) if sensor_ok(s1_flags) else 0
    if sensors < 2:
        return c
    d = scale(s2_ma, loop_count) if sensor_ok(s2_flags) else 0
    return c - d
