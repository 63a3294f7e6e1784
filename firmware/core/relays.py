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

Empty (normal mode, beyond the manual's table): a cell at V-min means the pack is empty whatever
the coulomb counter says. The pack brain then caps the SoC at ``Limits.empty_cap_c`` (1 % below
the discharge-restart SoC, at least 0 %), and the load relay here stays off after a V-min trip
until the SoC has reached ``Limits.empty_restart_c`` (the discharge-restart SoC, at least 1 %):
the cells recovering above V-min once the load is off never re-close it, only charge counted back
into the pack does. Critical mode keeps the manual's table (no SoC condition): with the combined
wiring the charger runs only while the load relay is closed too, so an SoC latch could never clear.
Timing (beyond the manual): V-max, V-min, no communication and invalid settings switch off in the
same cycle; temperature and "full" need ``TRIP_SAMPLES`` consecutive samples; switching on needs
``ENABLE_SAMPLES`` consecutive samples with every on-condition true, and after a voltage or
temperature trip the relay stays off at least ``RETRY_MS`` (no chatter around a limit).
Missing data never switches a relay on: no valid temperature in the chain blocks both relays.

Limits come from the settings, clamped to absolute limits per chemistry (``Limits``).
"""
from micropython import const

from core import settings as _settings

TRIP_SAMPLES = const(3)
ENABLE_SAMPLES = const(3)
RETRY_MS = const(30000)
LED_PERIOD_MS = const(5000)   # relay LEDs flash once every 5 s while their relay is on
LED_ON_MS = const(100)

ABS_TMAX_DC = const(700)      # no lithium cell is operated above 70 degC
ABS_TMIN_DC = const(-400)
ABS_TMIN_CHARGE_DC = const(0)  # no charging below 0 degC except LTO

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
    ``changed`` (either relay switched this cycle) are valid."""

    def __init__(self):
        self._charge = _Relay()
        self._load = _Relay()
        self.charge_on = False
        self.load_on = False
        self.changed = False
        self.empty = False        # normal mode: a cell reached V-min; load off until SoC >= empty_restart_c

    def force_off(self):
        """Both off now (no data, invalid settings). No hold-off: on again once data is good."""
        c = self._charge.force_off()
        c = self._load.force_off() or c
        self.charge_on = False
        self.load_on = False
        self.changed = c
        return c

    def update(self, lim, min_mv, max_mv, temp_ok, min_t, max_t, soc_c, current_ma, dt_ms):
        """One cycle with good data (cell communication and valid settings; otherwise call
        ``force_off``). min_mv/max_mv: lowest/highest cell; min_t/max_t: lowest/highest valid
        temperature (temp_ok False: none valid); soc_c 0..10000; current_ma + = charging."""
        t_hot = not temp_ok or max_t > lim.tmax_dc
        t_cold_c = not temp_ok or min_t < lim.tmin_charge_dc
        t_cold_d = not temp_ok or min_t < lim.tmin_discharge_dc
        t_fine = temp_ok and max_t < lim.tmax_dc
        # charge relay
        full = False
        if lim.critical:
            c_enable = max_mv < lim.vmax_mv
        else:
            full = min_mv >= lim.vbal_mv and current_ma <= lim.full_ma
            c_enable = max_mv < lim.vbal_mv and soc_c < lim.charge_restart_c
        c_enable = c_enable and t_fine and min_t > lim.tmin_charge_dc
        ch = self._charge.step(max_mv >= lim.vmax_mv, full or t_hot or t_cold_c,
                               t_hot or t_cold_c, c_enable, dt_ms)
        # load relay
        l_enable = min_mv > lim.vmin_mv and t_fine and min_t > lim.tmin_discharge_dc
        if not lim.critical:
            if min_mv <= lim.vmin_mv:
                self.empty = True
            elif self.empty and soc_c >= lim.empty_restart_c:
                self.empty = False
            l_enable = l_enable and soc_c >= lim.discharge_restart_c and not self.empty
        else:
            self.empty = False
        lc = self._load.step(min_mv <= lim.vmin_mv, t_hot or t_cold_d, True, l_enable, dt_ms)
        self.charge_on = self._charge.on
        self.load_on = self._load.on
        self.changed = ch or lc
        return self.changed


class RelayLeds:
    """Charge/load LEDs: one short flash every 5 s while the relay is on (manual, End board)."""

    def __init__(self):
        self.phase_ms = 0
        self.charge_led = False
        self.load_led = False

    def update(self, charge_on, load_on, dt_ms):
        p = self.phase_ms + dt_ms
        while p >= LED_PERIOD_MS:
            p -= LED_PERIOD_MS
        self.phase_ms = p
        lit = p < LED_ON_MS
        self.charge_led = charge_on and lit
        self.load_led = load_on and lit
