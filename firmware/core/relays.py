"""Charge and load relay decisions: the manual's two tables (Algorithm chapter), debounced.

Normal mode                                     Critical mode
 charge on : all cells < V-balance               charge on : all cells < V-max
             AND SoC < charge restart                        AND T-min charge < T < T-max
             AND T-min charge < T < T-max                    AND cell communication
             AND cell communication              charge off: a cell >= V-max, T < T-min charge,
 charge off: a cell >= V-max                                 T > T-max, no communication
             OR all cells >= V-balance AND
                charge rate <= 5 % of capacity
             OR T < T-min charge OR T > T-max
             OR no cell communication
 load on   : all cells > V-min                   load on   : all cells > V-min
             AND SoC >= discharge restart                    AND T-min discharge < T < T-max
             AND T-min discharge < T < T-max                 AND cell communication
             AND cell communication              load off  : as normal mode
 load off  : a cell <= V-min OR T < T-min disch.
             OR T > T-max OR no communication

Neither on- nor off-condition: the relay keeps its state (that gap is the hysteresis).

Empty (normal mode, beyond the manual's table): a V-min trip opens the load (``vmin_hold``); the
pack brain decides whether the pack is EMPTY (the manual: "below V-min for a longer time while
discharging"): the lowest cell stays within the restart hysteresis of V-min at rest, or a second
V-min trip follows soon after the load came back (core/rules.py ``EmptyRule``). Then it
recalibrates the SoC to 0 % and calls ``set_empty``: the load relay stays off until the SoC has reached
``Limits.empty_restart_c`` (the discharge-restart SoC, at least 1 %), i.e. charge counted back in.
A surge that sags the cells below V-min for a moment is not empty: the load comes back once
every cell has been above V-min + 2 % for the dwell (``vmin_hold``). Critical mode keeps the manual's table (no SoC condition): with the combined
wiring the charger runs only while the load relay is closed too, so an SoC latch could never clear.
Timing (beyond the manual): no communication and invalid settings switch off in the same cycle.
V-max and V-min act on the unfiltered cell readings (no smoothing filter) with a count-based
debounce that lives in the cell board's measurement burst: the value a board sends is the
trimmed mean of a burst of ADC reads (16 reads, the 4 lowest and 4 highest dropped,
core.sampling.Oversampler), so up to 4 wild reads of a burst never move it, and a corrupted
frame is caught by the link's CRCs. So ``LIMIT_SAMPLES`` (1) sample at or beyond the limit opens
the relay: the first frame that carries the crossing trips it (issue 12: at most one frame
period plus the link latency after the cell crosses; two samples in the pack brain made it two
frame periods). Temperature and "full" need ``TRIP_SAMPLES``
consecutive samples; switching on needs ``ENABLE_SAMPLES`` consecutive samples with every
on-condition true, and after a voltage or temperature trip the relay stays off at least
``RETRY_MS``. Missing data never switches a relay on: no valid temperature in the chain, or a
temperature sensor fault anywhere (``temp_fault``), counts as too hot AND too cold for both
relays (worst case), with its own alarm in the pack brain.

Protection latches (restart thresholds with a voltage hysteresis and a dwell, so a relay cannot
chatter around a limit; the pack brain saves them and restores them at boot):
- ``vmax_hold``: set by a V-max trip; the charge relay stays off until every cell has been at or
  below V-max - ``Limits.restart_hyst_mv`` (2 % of V-max) for ``RESTART_DWELL_MS`` (5 min) without
  a break. Critical mode used to re-close 30 s after each trip (a switching every ~33 s).
- ``vmin_hold``: set by a V-min trip; the load relay stays off until every cell has been at or
  above V-min + ``Limits.restart_hyst_mv_min`` (2 % of V-min) for ``RESTART_DWELL_MS``.
- ``empty`` (normal mode, see above) and ``deep``: a cell at or below the chemistry's absolute
  minimum (``Limits.deep_mv``, e.g. 2.0 V for LiFePO4) for ``LIMIT_SAMPLES`` samples; the load
  stays off until every cell is above V-min again (charging stays allowed so the pack can
  recover); the pack brain raises DEEP_DISCHARGE while it is set.

Limits come from the settings, clamped to absolute limits per chemistry (``Limits``).
"""
from micropython import const

from core import settings as _settings

TRIP_SAMPLES = const(3)
ENABLE_SAMPLES = const(3)
RETRY_MS = const(30000)
LIMIT_SAMPLES = const(1)          # samples beyond V-max / V-min before a trip (the burst debounces)
RESTART_DWELL_MS = const(300000)  # after a V-max / V-min trip: back inside the hysteresis this long
_LED_PERIOD_MS = const(5000)   # relay LEDs flash once every 5 s while their relay is on
_LED_ON_MS = const(100)

ABS_TMAX_DC = const(700)      # no lithium cell is operated above 70 degC
ABS_TMIN_DC = const(-400)
ABS_TMIN_CHARGE_DC = const(0)  # no charging below 0 degC except LTO

# chemistry -> how far above V-min a cell resting after a V-min trip still counts as empty (mV):
# about the open-circuit voltage of 5-15 % charge (LiFePO4: 3.1 V at V-min 2.9 V; the steeper
# NMC/NCA/LTO curves need less). Higher at rest: a surge sagged the cells, not an empty pack.
EMPTY_REST_MV = {
    _settings.LIFEPO4: 200,
    _settings.LTO: 60,
    _settings.NMC: 60,
    _settings.NCA: 60,
}

# chemistry -> (lowest V-min, highest V-max) in mV
ABS_CELL_MV = {
    _settings.LIFEPO4: (2000, 4000),
    _settings.LTO: (1500, 2900),
    _settings.NMC: (2500, 4250),
    _settings.NCA: (2500, 4250),
}


def _clamp(v, lo, hi):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


class Limits:
    """Effective thresholds from settings, clamped to the absolute limits (made at settings
    time, not per cycle)."""

    def __init__(self, s=None):
        if s is None:
            s = _settings.Settings()
        lo, hi = ABS_CELL_MV.get(s.chemistry, (_settings.CELL_MV_LOW, _settings.CELL_MV_HIGH))
        self.vmax_mv = _clamp(s.vmax_mv, lo + 20, hi)
        self.vmin_mv = _clamp(s.vmin_mv, lo, self.vmax_mv - 20)
        self.vbal_mv = _clamp(s.vbal_mv, self.vmin_mv + 10, self.vmax_mv - 10)
        tmin_c_floor = ABS_TMIN_DC if s.chemistry == _settings.LTO else ABS_TMIN_CHARGE_DC
        self.tmax_dc = _clamp(s.tmax_dc, ABS_TMIN_DC, ABS_TMAX_DC)
        self.tmin_charge_dc = _clamp(s.tmin_charge_dc, tmin_c_floor, ABS_TMAX_DC)
        self.tmin_discharge_dc = _clamp(s.tmin_discharge_dc, ABS_TMIN_DC, ABS_TMAX_DC)
        self.charge_restart_c = _clamp(s.charge_restart_pct, 1, 100) * 100
        self.discharge_restart_c = _clamp(s.discharge_restart_pct, 0, 99) * 100
        # V-min (empty): SoC capped 1 % below the discharge restart; load back at >= max(restart, 1 %)
        self.empty_cap_c = self.discharge_restart_c - 100 if self.discharge_restart_c >= 100 else 0
        self.empty_restart_c = self.discharge_restart_c if self.discharge_restart_c >= 100 else 100
        cap = _clamp(s.capacity_ah, 1, 20000)
        self.full_ma = cap * 50        # 5 % of capacity per hour (0.05 C) in mA
        self.critical = s.mode == _settings.CRITICAL
        self.restart_hyst_mv = self.vmax_mv // 50       # 2 % below V-max before charging again
        self.restart_hyst_mv_min = self.vmin_mv // 50   # 2 % above V-min before loading again
        self.deep_mv = lo                                # deep discharge: the chemistry's floor
        self.empty_rest_mv = self.vmin_mv + EMPTY_REST_MV.get(s.chemistry, 100)   # core/rules.py EmptyRule


class _Relay:
    """One relay's debounce state."""

    def __init__(self):
        self.on = False
        self.soft_n = 0
        self.en_n = 0
        self.holdoff_ms = 0

    def force_off(self):
        changed = self.on
        self.on = False
        self.soft_n = 0
        self.en_n = 0
        return changed

    def step(self, hard_off, soft_off, soft_holdoff, enable, dt_ms):
        """Returns True when the relay changed state."""
        if self.holdoff_ms > 0:
            self.holdoff_ms = self.holdoff_ms - dt_ms if self.holdoff_ms > dt_ms else 0
        if hard_off:
            self.en_n = 0
            self.soft_n = 0
            if self.on:
                self.on = False
                self.holdoff_ms = RETRY_MS
                return True
            return False
        if soft_off:
            self.en_n = 0
            if self.on:
                self.soft_n += 1
                if self.soft_n >= TRIP_SAMPLES:
                    self.on = False
                    self.soft_n = 0
                    if soft_holdoff:
                        self.holdoff_ms = RETRY_MS
                    return True
            return False
        self.soft_n = 0
        if self.on:
            return False
        if not enable:
            self.en_n = 0
            return False
        if self.en_n < ENABLE_SAMPLES:
            self.en_n += 1
        if self.en_n >= ENABLE_SAMPLES and self.holdoff_ms == 0:
            self.on = True
            self.en_n = 0
            return True
        return False


class Relays:
    """Both relays. ``update(...)`` once per cycle; then ``charge_on``, ``load_on`` and
    ``changed`` (either relay switched this cycle) are valid. ``latch_changed`` is True in the
    cycle a protection latch (``vmax_hold``, ``vmin_hold``, ``empty``, ``deep``) changed: the
    pack brain saves them then (``latches()`` / ``set_latches()``)."""

    def __init__(self):
        self._charge = _Relay()
        self._load = _Relay()
        self.charge_on = False
        self.load_on = False
        self.changed = False
        self.latch_changed = False
        self.empty = False        # normal mode: a cell reached V-min; load off until SoC >= empty_restart_c
        self.vmax_hold = False    # a V-max trip: charge off until below V-max - hysteresis for the dwell
        self.vmin_hold = False    # a V-min trip: load off until above V-min + hysteresis for the dwell
        self.deep = False         # a cell at the chemistry's floor: load off until all > V-min
        self.over_n = 0           # consecutive samples at/over V-max, at/under V-min, at the floor
        self.under_n = 0
        self.deep_n = 0
        self.vmax_ok_ms = 0       # time inside the restart hysteresis since the last trip
        self.vmin_ok_ms = 0

    def latches(self):
        """The protection latches as one small int (bit 0 vmax_hold, 1 vmin_hold, 2 empty, 3 deep)."""
        return ((1 if self.vmax_hold else 0) | (2 if self.vmin_hold else 0)
                | (4 if self.empty else 0) | (8 if self.deep else 0))

    def set_latches(self, bits):
        """Restore the latches saved by ``latches()`` (at boot; the dwell starts afresh)."""
        self.vmax_hold = bool(bits & 1)
        self.vmin_hold = bool(bits & 2)
        self.empty = bool(bits & 4)
        self.deep = bool(bits & 8)
        self.vmax_ok_ms = 0
        self.vmin_ok_ms = 0

    def set_empty(self):
        """The pack brain's empty recalibration (normal mode): the load stays off until the SoC
        has reached ``Limits.empty_restart_c``."""
        if not self.empty:
            self.empty = True
            self.latch_changed = True

    def force_off(self):
        """Both off now (no data, invalid settings). No hold-off: on again once data is good.
        The latches and the limit debounce counts are kept."""
        c = self._charge.force_off()
        c = self._load.force_off() or c
        self.charge_on = False
        self.load_on = False
        self.changed = c
        self.latch_changed = False
        return c

    def update(self, lim, min_mv, max_mv, temp_ok, min_t, max_t, soc_c, current_ma, dt_ms,
               temp_fault=False, charge_block=False):
        """One cycle with good data (cell communication and valid settings; otherwise call
        ``force_off``). min_mv/max_mv: lowest/highest cell; min_t/max_t: lowest/highest valid
        temperature (temp_ok False: none valid); soc_c 0..10000; current_ma + = charging;
        temp_fault: some cell's temperature cannot be trusted (worst case for both relays);
        charge_block: the charge relay must stay open (a balance switch below the settings'
        window: charging would make every board balance, core/balance.py)."""
        before = self.latches()
        # count-based debounce of the voltage limits (fast path: unfiltered readings)
        self.over_n = self.over_n + 1 if max_mv >= lim.vmax_mv else 0
        self.under_n = self.under_n + 1 if min_mv <= lim.vmin_mv else 0
        self.deep_n = self.deep_n + 1 if min_mv <= lim.deep_mv else 0
        if self.over_n > LIMIT_SAMPLES:
            self.over_n = LIMIT_SAMPLES
        if self.under_n > LIMIT_SAMPLES:
            self.under_n = LIMIT_SAMPLES
        if self.deep_n > LIMIT_SAMPLES:
            self.deep_n = LIMIT_SAMPLES
        v_over = self.over_n >= LIMIT_SAMPLES
        v_under = self.under_n >= LIMIT_SAMPLES
        # restart latches: hysteresis + dwell
        if v_over:
            self.vmax_hold = True
            self.vmax_ok_ms = 0
        elif self.vmax_hold:
            if max_mv <= lim.vmax_mv - lim.restart_hyst_mv:
                self.vmax_ok_ms += dt_ms
                if self.vmax_ok_ms >= RESTART_DWELL_MS:
                    self.vmax_hold = False
                    self.vmax_ok_ms = 0
            else:
                self.vmax_ok_ms = 0
        if v_under:
            self.vmin_hold = True
            self.vmin_ok_ms = 0
        elif self.vmin_hold:
            if min_mv >= lim.vmin_mv + lim.restart_hyst_mv_min:
                self.vmin_ok_ms += dt_ms
                if self.vmin_ok_ms >= RESTART_DWELL_MS:
                    self.vmin_hold = False
                    self.vmin_ok_ms = 0
            else:
                self.vmin_ok_ms = 0
        if self.deep_n >= LIMIT_SAMPLES:
            self.deep = True
        elif self.deep and min_mv > lim.vmin_mv:
            self.deep = False
        t_hot = temp_fault or not temp_ok or max_t > lim.tmax_dc
        t_cold_c = temp_fault or not temp_ok or min_t < lim.tmin_charge_dc
        t_cold_d = temp_fault or not temp_ok or min_t < lim.tmin_discharge_dc
        t_fine = temp_ok and not temp_fault and max_t < lim.tmax_dc
        # charge relay
        full = False
        if lim.critical:
            c_enable = max_mv < lim.vmax_mv
        else:
            full = min_mv >= lim.vbal_mv and current_ma <= lim.full_ma
            c_enable = max_mv < lim.vbal_mv and soc_c < lim.charge_restart_c
        c_enable = (c_enable and t_fine and min_t > lim.tmin_charge_dc and not self.vmax_hold
                    and not charge_block)
        ch = self._charge.step(v_over, full or t_hot or t_cold_c or charge_block,
                               t_hot or t_cold_c, c_enable, dt_ms)
        # load relay
        l_enable = (min_mv > lim.vmin_mv and t_fine and min_t > lim.tmin_discharge_dc
                    and not self.vmin_hold and not self.deep)
        if not lim.critical:
            # set by the pack brain's empty recalibration (set_empty), not by a V-min trip: a
            # surge that sags the cells below V-min is not an empty pack (issue 20, item 4)
            if self.empty and soc_c >= lim.empty_restart_c:
                self.empty = False
            l_enable = l_enable and soc_c >= lim.discharge_restart_c and not self.empty
        else:
            self.empty = False
        lc = self._load.step(v_under or self.deep, t_hot or t_cold_d, True, l_enable, dt_ms)
        self.charge_on = self._charge.on
        self.load_on = self._load.on
        self.changed = ch or lc
        self.latch_changed = self.latches() != before
        return self.changed


class RelayLeds:
    """Charge/load LEDs: one short flash every 5 s while the relay is on (manual, End board)."""

    def __init__(self):
        self.phase_ms = 0
        self.charge_led = False
        self.load_led = False

    def update(self, charge_on, load_on, dt_ms):
        p = self.phase_ms + dt_ms
        while p >= _LED_PERIOD_MS:
            p -= _LED_PERIOD_MS
        self.phase_ms = p
        lit = p < _LED_ON_MS
        self.charge_led = charge_on and lit
        self.load_led = load_on and lit
