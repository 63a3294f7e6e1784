"""Charger, load and the End board's relay wiring (host side).

Charger: CC/CV. It supplies at most ``available_a(t)`` (constant, or a solar day: a half sine
between sunrise and sunset) and holds the pack at ``bulk_v`` (manual installation step 6:
V-balance x cells + 0.03 V per cell unless the scenario says otherwise). It feeds the load first
(it sits on the same bus), the rest goes into the pack.

Load: a current demand (constant, a day/night pattern, or a CSV of ``t_s,load_a`` rows
interpolated and repeated).

Wiring (manual, "Controlling external components" and appendix c): in the ``separate`` wiring the
CHARGE relay drives the charger's enable input and the LOAD relay the inverter's; in the
``combined`` wiring (critical mode, one charger/inverter, one current sensor) the two relay
contacts are in series and switch the one device: it runs only while both are closed.
"""
import csv
import math

import numpy as np

DAY_S = 86400.0


class Schedule:
    """On/off by time: a list of [t_s, on] pairs (sorted); before the first entry ``default``."""

    def __init__(self, points=None, default=True):
        self.points = sorted((float(t), bool(on)) for t, on in (points or []))
        self.default = bool(default)

    def on(self, t_s):
        state = self.default
        for t, on in self.points:
            if t_s >= t:
                state = on
            else:
                break
        return state


class Charger:
    def __init__(self, bulk_v, max_a, profile="constant", schedule=None, sunrise_h=6.0, sunset_h=18.0,
                 day_s=DAY_S):
        self.bulk_v = float(bulk_v)
        self.max_a = float(max_a)
        if profile not in ("constant", "solar"):
            raise ValueError("charger profile must be constant or solar, not %r" % (profile,))
        self.profile = profile
        self.schedule = schedule or Schedule()
        self.sunrise = sunrise_h / 24.0
        self.sunset = sunset_h / 24.0
        self.day_s = float(day_s)

    def available_a(self, t_s):
        """Most current the charger (or solar array) can deliver at time t_s while enabled."""
        if not self.schedule.on(t_s):
            return 0.0
        if self.profile == "constant":
            return self.max_a
        phase = (t_s % self.day_s) / self.day_s
        if not self.sunrise < phase < self.sunset:
            return 0.0
        x = (phase - self.sunrise) / (self.sunset - self.sunrise)
        return self.max_a * math.sin(math.pi * x)


class Load:
    def __init__(self, profile="constant", amps=0.0, schedule=None, evening_a=None, csv_path=None, day_s=DAY_S):
        if profile not in ("constant", "daynight", "csv"):
            raise ValueError("load profile must be constant, daynight or csv, not %r" % (profile,))
        self.profile = profile
        self.amps = float(amps)
        self.evening_a = float(evening_a if evening_a is not None else 3 * amps)
        self.schedule = schedule or Schedule()
        self.day_s = float(day_s)
        self.table_t = self.table_a = None
        if profile == "csv":
            self.table_t, self.table_a = read_csv(csv_path)

    def demand_a(self, t_s):
        """Current the consumers draw at t_s while enabled (A, >= 0)."""
        if not self.schedule.on(t_s):
            return 0.0
        if self.profile == "constant":
            return self.amps
        if self.profile == "daynight":
            hour = 24.0 * (t_s % self.day_s) / self.day_s
            return self.evening_a if 17.0 <= hour < 23.0 else self.amps
        period = self.table_t[-1] if self.table_t[-1] > 0 else 1.0
        return max(0.0, float(np.interp(t_s % period, self.table_t, self.table_a)))


def read_csv(path):
    """(times, amps) from a CSV with a header row holding ``t_s`` and ``load_a`` columns."""
    ts, amps = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            ts.append(float(row["t_s"]))
            amps.append(float(row["load_a"]))
    if not ts:
        raise ValueError("%s: no rows" % path)
    return np.array(ts), np.array(amps)


def bulk_voltage(vbal_mv, cells, per_cell_mv=30):
    """Charger bulk/absorption voltage (V) from manual step 6."""
    return cells * (vbal_mv + per_cell_mv) / 1000.0


class Wiring:
    """Which devices run for given relay states."""

    def __init__(self, kind="separate"):
        if kind not in ("separate", "combined"):
            raise ValueError("wiring must be separate or combined")
        self.kind = kind

    def enabled(self, charge_relay, load_relay):
        """(charger runs, load runs)."""
        if self.kind == "combined":
            both = bool(charge_relay and load_relay)
            return both, both
        return bool(charge_relay), bool(load_relay)


def currents(pack, charger, load, charger_on, load_on, t_s):
    """(charger_a, load_a): what flows in each line this step. The pack current is the
    difference. The charger feeds the load first and holds the pack at its bulk voltage."""
    il = load.demand_a(t_s) if load_on else 0.0
    ic = 0.0
    if charger_on:
        avail = charger.available_a(t_s)
        if avail > 0.0:
            ic = min(avail, max(0.0, il + pack.cv_current(charger.bulk_v)))
    return ic, il
