"""Cell balancing decision: hysteresis, stale-link off, thermal derating (PWM duty), hard stop.

``Balancer.update(cell_mv, cell_ok, vbal_mv, link_ok, temp_dc, temp_ok, dt_ms)`` returns the duty
for the balance resistor in permille (0 = off, 1000 = fully on). Rules, in order:

* off when balancing is disabled (``vbal_mv`` 0: option switches 4-8 all off), when the link is
  stale (``link_ok`` False), when the cell reading is not data (``cell_ok`` False) or when the
  board temperature is unknown (``temp_ok`` False): off on doubt;
* only while the pack charges or rested after a charge (``charging``: the battery current the
  frame carries from the Begin board's sensors is at least ``CHARGE_MIN_MA``, 0.3 A; the rest
  window: ``REST_WINDOW_MS``, 1 h, after the last cycle that charged). The charge current is the
  End board's consent: it flows only while the End's charge relay is closed, and the End keeps
  that relay open when the balance switch lies below its settings' window (V-min + 200 mV,
  BALANCE_SWITCH_INVALID). So a switch that would drain the cells below V-min never balances a
  cell after the boards start, whatever the chemistry (issue 20: a fixed 3.0 V floor let an idle
  NMC pack, V-min 3.49 V, be drained to 2.998 V through switches set to 3.0 V, and kept LTO packs,
  V-balance 2.6 V, from balancing at all); a valid switch balances down to V-balance, at least
  200 mV above V-min. The rest window lets balancing bring an over-charged cell back under the
  V-max restart threshold after a trip (core/relays.py ``vmax_hold``). A switch changed to a
  wrong value on a running pack can drain at most 1 A for the rest of the window. No current
  data (sensor fault, chain broken): no new consent;
* floor: never below ``floor_mv`` (board definition ``BALANCE_FLOOR_MV``, default 1800 mV, below
  every switch value: a board definition may set a higher one);
* hysteresis ABOVE V-balance with a dwell: on when the cell is at or above V-balance
  (``cell_mv >= vbal_mv``) and the resistor has been off for at least ``dwell_ms`` (60 s), or at
  once when the cell is a margin above it (``cell_mv >= vbal_mv + hyst_mv``, 10 mV); off as soon
  as the cell falls below V-balance (``cell_mv < vbal_mv``). A balancing cell is therefore always
  at or above V-balance: the resistor never holds a cell just under V-balance, where the pack's
  "all cells >= V-balance" (full, SoC recalibration, charge off) could never be reached while
  the CV charger tapers to about the balance current. ADC noise around V-balance switches the
  resistor on at most once per dwell (no chatter), and a cell resting at V-balance is still
  drained below it in short bites, which the charge relay needs (normal mode switches charging on
  only when all cells are below V-balance). The reading is always taken with the resistor off
  (see below), so switching does not move the reading by I x R;
* thermal: full duty up to ``derate_dc``, then linearly less down to ``min_duty`` at ``stop_dc``;
  at or above ``stop_dc`` a hard stop that holds until the board cools below ``resume_dc``.

Measure-with-resistor-off: the cell board switches the resistor off for its ADC burst (the 1 A
through the sense wires would otherwise lower the reading by I x R) and restores the duty
afterwards; ``measure_duty()`` gives the duty to hold during the burst (always 0) and
``settle_reads`` how many readings to discard first so the divider's filter settles. The
hysteresis therefore always sees an unloaded cell voltage.

Integers only, no allocation per call. ``on_ms`` counts balancing time (ms, wraps into
``on_s`` every second; on_s stays a small int for 34 years).
"""
from micropython import const

FULL_DUTY = const(1000)

# Defaults (board definitions may override with BALANCE_* constants).
_HYST_MV = const(10)       # on at once at V-balance + 10 mV; off below V-balance
_DWELL_MS = const(60000)   # on at V-balance once the resistor has been off this long
_DWELL_CAP_MS = const(0x10000000)
_DERATE_DC = const(600)     # derating starts at 60.0 degC board temperature
_STOP_DC = const(750)       # hard stop at 75.0 degC
_RESUME_DC = const(650)     # after a hard stop, resume below 65.0 degC
_MIN_DUTY = const(200)      # duty just below the hard stop
FLOOR_MV = const(1800)     # below every balance switch value (1.9 V): the charging rule protects
CHARGE_MIN_MA = const(300)   # the pack takes at least this: charging (the End's consent)
REST_WINDOW_MS = const(3600000)  # balancing may go on this long after the last charging cycle


class Balancer:
    def __init__(self, hyst_mv=_HYST_MV, derate_dc=_DERATE_DC, stop_dc=_STOP_DC, resume_dc=_RESUME_DC,
                 min_duty=_MIN_DUTY, settle_reads=4, dwell_ms=_DWELL_MS, floor_mv=FLOOR_MV):
        if not derate_dc < stop_dc or resume_dc >= stop_dc or not 0 < min_duty <= FULL_DUTY or hyst_mv < 0:
            raise ValueError("balance limits: derate < stop, resume < stop, 0 < min_duty <= 1000")
        self.hyst_mv = hyst_mv
        self.dwell_ms = dwell_ms
        self.derate_dc = derate_dc
        self.stop_dc = stop_dc
        self.resume_dc = resume_dc
        self.min_duty = min_duty
        self.settle_reads = settle_reads
        self.floor_mv = floor_mv
        self.reset()

    def reset(self):
        """Everything off (boot, safe state)."""
        self.since_charge_ms = _DWELL_CAP_MS   # since the last charging cycle (boot: no consent)
        self.wanted = False      # voltage rule says balance
        self.off_ms = self.dwell_ms  # time since the voltage rule last switched off
        self.hot_stop = False    # thermal hard stop latched
        self.derated = False     # duty reduced or stopped by temperature
        self.duty = 0
        self.on_ms = 0
        self.on_s = 0

    def switch_below_floor(self, vbal_mv):
        """True when a balance voltage is refused because it is below the floor."""
        return 0 < vbal_mv < self.floor_mv

    @property
    def active(self):
        return self.duty > 0

    def thermal_duty(self, temp_dc):
        """Maximum duty at this board temperature (updates the hard-stop latch)."""
        if temp_dc >= self.stop_dc:
            self.hot_stop = True
        elif self.hot_stop and temp_dc < self.resume_dc:
            self.hot_stop = False
        if self.hot_stop:
            return 0
        if temp_dc <= self.derate_dc:
            return FULL_DUTY
        span = self.stop_dc - self.derate_dc
        d = FULL_DUTY - ((temp_dc - self.derate_dc) * (FULL_DUTY - self.min_duty)) // span
        return d if d > self.min_duty else self.min_duty

    def update(self, cell_mv, cell_ok, vbal_mv, link_ok, temp_dc, temp_ok, dt_ms, charging=True):
        """The duty for this cycle. ``charging``: the pack takes at least ``CHARGE_MIN_MA``
        (the roles always pass it; see the module docstring)."""
        if charging:
            self.since_charge_ms = 0
        elif self.since_charge_ms < _DWELL_CAP_MS and dt_ms > 0:
            self.since_charge_ms += dt_ms
        consent = self.since_charge_ms <= REST_WINDOW_MS
        if not self.wanted:
            a = self.off_ms
            if dt_ms > 0 and a < _DWELL_CAP_MS:
                self.off_ms = a + dt_ms
        if (vbal_mv <= 0 or vbal_mv < self.floor_mv or not link_ok or not cell_ok or not consent
                or cell_mv < vbal_mv or cell_mv < self.floor_mv):
            if self.wanted:
                self.wanted = False
                self.off_ms = 0
        elif not self.wanted:
            if self.off_ms >= self.dwell_ms or cell_mv >= vbal_mv + self.hyst_mv:
                self.wanted = True
        if temp_ok:
            limit = self.thermal_duty(temp_dc)
        else:
            limit = 0
        self.derated = self.wanted and temp_ok and limit < FULL_DUTY
        duty = limit if self.wanted else 0
        self.duty = duty
        if duty > 0 and dt_ms > 0:
            ms = self.on_ms + dt_ms
            if ms >= 1000:
                self.on_s += ms // 1000
                ms %= 1000
            self.on_ms = ms
        return duty

    def measure_duty(self):
        """Duty to hold during the ADC burst: the resistor is always off while measuring."""
        return 0
