"""The pack brain's decision rules, one place each (core/brain.py wires them every cycle).

Each rule decides on a ``core.pack_view.PackView`` (and the limits of ``core.relays.Limits``),
holds at most a few ints of its own state, takes elapsed milliseconds (no clock) and allocates
nothing. Every rule has its own test table (host_tests/core/test_rules.py):

``limit_alarms(view, lim)``       UNDER/OVER_VOLTAGE, EARLY_WARNING, BALANCE_SWITCH_INVALID,
                                  UNDER_TEMP_CHARGE/DISCHARGE, OVER_TEMP
``switch_drains_cells(view, lim)`` a balance switch below V-min + 200 mV: charging stays off
``full_now(view, lim, current)``  the manual's full condition (normal / critical mode)
``EmptyRule``                     empty means empty: a V-min trip recalibrates to 0 % only when
                                  the cells stay low at rest, or on a second trip under load
``SensorDoubt``                   a sensor fault that keeps coming back holds the relays open
                                  on clean data, 15 s doubling to 1 h (SENSOR_HOLD)
``ResetLoop``                     a board that keeps restarting: BOARD_RESET_LOOP, position
"""
from micropython import const

from core import alarms as A
from core import settings as _settings

EMPTY_RETRIP_MS = const(1800000)   # a second V-min trip within 30 min of load after the first
#                                    -> empty
DOUBT_HOLD_MS = const(15000)       # a sensor fault that comes back within DOUBT_MEMORY_MS: the
DOUBT_HOLD_MAX_MS = const(3600000)  # relays wait this long on clean data, doubling each time
DOUBT_MEMORY_MS = const(3600000)    # (up to an hour): an intermittent sensor cannot make them chatter
RESET_LOOP_N = const(3)            # watchdog restarts of boards (one position) this close ...
RESET_LOOP_SLOTS = const(600)      # ... (cycles between them): BOARD_RESET_LOOP, both relays
#                                    off until this many cycles pass without one
SINCE_CAP_MS = const(0x10000000)   # elapsed-time counters stop here (a small int everywhere)


def _add_capped(t, dt_ms):
    t += dt_ms
    return t if t < SINCE_CAP_MS else SINCE_CAP_MS


def limit_alarms(view, lim):
    """The cell limit alarms of a complete view (``view.comm`` and at least one voltage; else
    0: no cell alarms from part of a pack). Temperature alarms need a valid temperature."""
    if not view.comm or view.count <= 0:
        return 0
    al = 0
    lo = view.min_mv
    hi = view.max_mv
    if lo <= lim.vmin_mv:
        al |= A.UNDER_VOLTAGE
    if hi >= lim.vmax_mv:
        al |= A.OVER_VOLTAGE
    if lo <= lim.vmin_mv + lim.vmin_mv // 50 or hi >= lim.vmax_mv - lim.vmax_mv // 50:
        al |= A.EARLY_WARNING
    if not _settings.balance_switch_ok(lim.vmin_mv, lim.vmax_mv, view.switch_vbal_mv):
        al |= A.BALANCE_SWITCH_INVALID
    if view.temp_ok:
        if view.min_t < lim.tmin_charge_dc:
            al |= A.UNDER_TEMP_CHARGE
        if view.min_t < lim.tmin_discharge_dc:
            al |= A.UNDER_TEMP_DISCHARGE
        if view.max_t > lim.tmax_dc:
            al |= A.OVER_TEMP
    return al


def switch_drains_cells(view, lim):
    """True when the balance switch (read on the Begin board) is set below V-min + 200 mV: a
    pack charged to it would have its cells balanced down below V-min - the charge relay stays
    open (the cell boards refuse such a switch themselves, core/balance.py)."""
    sw = view.switch_vbal_mv
    return 0 < sw < lim.vmin_mv + _settings.VBAL_ABOVE_VMIN_MV


def full_now(view, lim, current):
    """The manual's full condition, at a charge current at or below the full current: every
    cell at V-balance (normal mode) or the average cell at V-balance (critical mode)."""
    if current > lim.full_ma or view.count <= 0:
        return False
    if lim.critical:
        return view.total_mv >= lim.vbal_mv * view.count
    return view.min_mv >= lim.vbal_mv


class EmptyRule:
    """Empty means empty (manual: "a cell below V-min for a longer time while discharging is
    not allowed"). A V-min trip opens the load (``core.relays`` vmin hold) and makes the empty
    decision pending; the pack is EMPTY when, with the load off and nothing charging, the lowest
    cell stays below ``lim.empty_rest_mv`` (V-min plus the chemistry's rested margin; the
    duration is the FullEmptyDetector's), or when the trip is the second within EMPTY_RETRIP_MS
    of load after the first. A surge that sags the cells recovers at once: no recalibration."""

    def __init__(self):
        self.pending = False
        self.trips = 0                   # V-min trips within EMPTY_RETRIP_MS of load of each other
        self.since_trip_ms = SINCE_CAP_MS

    def empty_now(self, view, lim, current, load_on):
        """Called on trusted data only: the empty condition in this cycle."""
        if current > 0:                  # charging: whatever sagged, it was not empty
            self.pending = False
            self.trips = 0
        return (self.pending and not load_on and current <= 0
                and (view.min_mv < lim.empty_rest_mv or self.trips >= 2))

    def emptied(self):
        """The detector called the pack empty (SoC set to 0 %)."""
        self.pending = False
        self.trips = 0

    def load_ran(self, dt_ms):
        """The load relay was closed for ``dt_ms``."""
        self.since_trip_ms = _add_capped(self.since_trip_ms, dt_ms)

    def vmin_trip(self):
        """A V-min trip (the load relay just opened on a low cell)."""
        self.pending = True
        if self.since_trip_ms > EMPTY_RETRIP_MS:
            self.trips = 0
        if self.trips < 2:
            self.trips += 1
        self.since_trip_ms = 0


class SensorDoubt:
    """A sensor fault (cell voltage, temperature) that keeps coming back must not make the
    relays chatter: the first fault in DOUBT_MEMORY_MS closes again as soon as the data is
    clean; one that comes back within that time holds the relays open for DOUBT_HOLD_MS of
    clean data, doubling with each return up to DOUBT_HOLD_MAX_MS. ``update`` returns True
    while held (SENSOR_HOLD)."""

    def __init__(self):
        self.in_doubt = False            # a sensor fault in this episode
        self.hold_ms = 0                 # clean data needed before the relays may close again
        self.clean_ms = SINCE_CAP_MS
        self.since_ms = SINCE_CAP_MS     # since the last episode ended

    def update(self, fault, dt_ms):
        if fault:
            if not self.in_doubt:
                self.in_doubt = True
                if self.since_ms < DOUBT_MEMORY_MS:
                    h = self.hold_ms * 2 if self.hold_ms else DOUBT_HOLD_MS
                    self.hold_ms = h if h < DOUBT_HOLD_MAX_MS else DOUBT_HOLD_MAX_MS
                else:
                    self.hold_ms = 0     # the first fault in an hour: closes as before
            self.clean_ms = 0
        else:
            if self.in_doubt:
                self.in_doubt = False
                self.since_ms = 0
            self.clean_ms = _add_capped(self.clean_ms, dt_ms)
            self.since_ms = _add_capped(self.since_ms, dt_ms)
        return self.clean_ms < self.hold_ms


class ResetLoop:
    """A board that keeps restarting (its WATCHDOG_RESET bit shows in the detail for two frames
    after each restart): each restart costs a loss of the chain and a close again. RESET_LOOP_N
    restarts each within RESET_LOOP_SLOTS cycles of the last: ``position`` (1-based) is set and
    both relays stay off until RESET_LOOP_SLOTS cycles pass without one. One int of state."""

    def __init__(self):
        # restarts seen (bits 0-1), a WATCHDOG_RESET bit in the last cycle (bit 2), cycles since
        # the last restart (bits 3-12)
        self.state = 0
        self.position = 0

    def update(self, reset_at):
        """``reset_at``: the view's first restarted board this cycle (1-based, 0 = none).
        Returns ``position`` (0 = no reset loop)."""
        r = self.state
        k = r & 3
        quiet = r >> 3
        if reset_at and not r & 4:
            if k < RESET_LOOP_N:
                k += 1
            quiet = 0
            if k >= RESET_LOOP_N:
                self.position = reset_at
        elif k:
            quiet += 1
            if quiet >= RESET_LOOP_SLOTS:
                k = 0
                quiet = 0
                self.position = 0
        self.state = (quiet << 3) | (4 if reset_at else 0) | k
        return self.position
