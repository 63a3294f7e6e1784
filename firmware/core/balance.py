"""Cell balancing decision: hysteresis, stale-link off, thermal derating (PWM duty), hard stop.

``Balancer.update(cell_mv, cell_ok, vbal_mv, link_ok, temp_dc, temp_ok, dt_ms)`` returns the duty
for the balance resistor in permille (0 = off, 1000 = fully on). Rules, in order:

* off when balancing is disabled (``vbal_mv`` 0: option switches 4-8 all off), when the link is
  stale (``link_ok`` False), when the cell reading is not data (``cell_ok`` False) or when the
  board temperature is unknown (``temp_ok`` False): off on doubt;
* hysteresis ABOVE V-balance: switches on when the cell reaches V-balance plus a margin
  (``cell_mv >= vbal_mv + hyst_mv``), off again as soon as it falls below V-balance
  (``cell_mv < vbal_mv``). A balancing cell is therefore always at or above V-balance: the
  resistor never holds a cell just under V-balance, where the pack's "all cells >= V-balance"
  (full, SoC recalibration, charge off) could never be reached while the CV charger tapers to
  about the balance current. The ``hyst_mv`` band (10 mV) keeps the resistor from chattering on
  ADC noise; the reading is always taken with the resistor off (see below), so switching does not
  move the reading by I x R;
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
HYST_MV = const(10)       # on at V-balance + 10 mV, off below V-balance
DERATE_DC = const(600)     # derating starts at 60.0 degC board temperature
STOP_DC = const(750)       # hard stop at 75.0 degC
RESUME_DC = const(650)     # after a hard stop, resume below 65.0 degC
MIN_DUTY = const(200)      # duty just below the hard stop


class Balancer:
    def __init__(self, hyst_mv=HYST_MV, derate_dc=DERATE_DC, stop_dc=STOP_DC, resume_dc=RESUME_DC,
                 min_duty=MIN_DUTY, settle_reads=4):
        if not derate_dc < stop_dc or resume_dc >= stop_dc or not 0 < min_duty <= FULL_DUTY or hyst_mv < 0:
            raise ValueError("balance limits: derate < stop, resume < stop, 0 < min_duty <= 1000")
        self.hyst_mv = hyst_mv
        self.derate_dc = derate_dc
        self.stop_dc = stop_dc
        self.resume_dc = resume_dc
        self.min_duty = min_duty
        self.settle_reads = settle_reads
        self.reset()

    def reset(self):
        """Everything off (boot, safe state)."""
        self.wanted = False      # voltage rule says balance
        self.hot_stop = False    # thermal hard stop latched
        self.derated = False     # duty reduced or stopped by temperature
        self.duty = 0
        self.on_ms = 0
        self.on_s = 0

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

    def update(self, cell_mv, cell_ok, vbal_mv, link_ok, temp_dc, temp_ok, dt_ms):
        if vbal_mv <= 0 or not link_ok or not cell_ok:
            self.wanted = False
        elif self.wanted:
            if cell_mv < vbal_mv:
                self.wanted = False
        elif cell_mv >= vbal_mv + self.hyst_mv:
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
