"""The cell and pack model of the virtual pack (host side, numpy, no firmware).

One ``Pack`` holds N series cells as numpy vectors. Per cell: capacity (A s) with a spread, SoC,
series resistance R0 (temperature dependent) and one RC pair (R1, tau) - the chemistry's values
for 100 Ah scaled to the capacity, or the scenario's own (``r0_ohm``, ``r1_ohm``, ``tau_s``) -,
self-discharge, optional fast ageing (capacity fade per ampere-second of throughput),
temperature with a thermal mass, heat from I^2 R, from the balance resistor the cell board puts
across the cell and from an injected fault, cooling to ambient. The balance resistor
(``balance_ohm``, default the chemistry's: ~1 A) draws from its own cell only, with the duty
cycle the firmware sets.

Sign convention: current in A, + = into the pack (charging). Units inside the model are SI
(V, A, s, degC, J); the virtual hardware converts to the firmware's integer units.
See docs/virtual-pack.md for the equations and every parameter.
"""
import numpy as np

from sim import chemistry

_MONTH_S = 30 * 86400.0


def resistances(params, scale, r0_ohm=None, r1_ohm=None):
    """(R0 at 25 degC, R1) in ohm. A resistance the scenario gives is used as given; the
    chemistry's (for 100 Ah) is scaled by ``scale`` = 100 / capacity. R1 left out while R0 is
    given keeps the chemistry's R1/R0 ratio (so a given R0 never meets a capacity-scaled R1)."""
    r0 = float(r0_ohm) if r0_ohm is not None else params["r0"] * scale
    if r1_ohm is not None:
        r1 = float(r1_ohm)
    elif r0_ohm is not None:
        r1 = r0 * params["r1"] / params["r0"]
    else:
        r1 = params["r1"] * scale
    return r0, r1


class Pack:
    """N series cells. ``step(current_a, dt_s)`` advances the state; ``v_true`` holds terminal
    voltages at the last step's current."""

    def __init__(self, cells, chem="lifepo4", capacity_ah=100.0, soc=0.5, capacity_spread=0.02,
                 soc_spread=0.02, r0_ohm=None, ambient_c=25.0, rng=None, r1_ohm=None, tau_s=None,
                 balance_ohm=None):
        if not 1 <= int(cells) <= 255:
            raise ValueError("cells must be 1..255")
        self.n = int(cells)
        self.chem = chemistry.check(chem)
        p = chemistry.PARAMS[self.chem]
        rng = rng if rng is not None else np.random.default_rng(0)
        n = self.n
        self.capacity_ah = float(capacity_ah)
        scale = 100.0 / self.capacity_ah  # resistances in PARAMS are for a 100 Ah cell
        cap = self.capacity_ah * (1.0 + capacity_spread * rng.standard_normal(n))
        self.cap_as = np.clip(cap, 0.2 * self.capacity_ah, None) * 3600.0
        self.soc = np.clip(soc + soc_spread * rng.standard_normal(n), -0.02, 1.0)
        r0, r1 = resistances(p, scale, r0_ohm, r1_ohm)
        self.r0_25 = r0 * (1.0 + 0.1 * np.abs(rng.standard_normal(n)))
        self.r1 = np.full(n, r1)
        self.tau_s = np.full(n, float(tau_s) if tau_s is not None else p["tau_s"])
        self.vrc = np.zeros(n)
        self.self_discharge_per_s = np.full(n, p["self_discharge"] / _MONTH_S)
        self.fade_per_as = np.zeros(n)          # capacity lost per A s of throughput (fraction)
        self.heat_capacity = np.full(n, p["heat_j_per_k_ah"] * self.capacity_ah)  # J/K
        self.cooling_w_per_k = np.full(n, 0.2 + 0.01 * self.capacity_ah)
        self.balance_ohm = float(balance_ohm) if balance_ohm is not None else p["balance_ohm"]
        self.ambient_c = float(ambient_c)
        self.temp_c = np.full(n, self.ambient_c)
        self.extra_heat_w = np.zeros(n)
        self.temp_pin = np.full(n, np.nan)      # NaN = free; else the temperature is held there
        self.balance_duty = np.zeros(n)         # 0..1 from each cell board
        self.balance_a = np.zeros(n)
        self.current_a = 0.0
        self.v_true = self._terminal(0.0)

    # --- electrical -------------------------------------------------------------------------
    def r0(self):
        """Series resistance at the present temperatures (higher when cold)."""
        return self.r0_25 * np.clip(1.0 + 0.02 * (25.0 - self.temp_c), 0.5, 4.0)

    def ocv(self):
        return chemistry.ocv(self.chem, self.soc)

    def _terminal(self, current_a):
        cell_i = current_a - self.balance_a
        return self.ocv() + self.vrc + cell_i * self.r0()

    def open_voltage(self):
        """Pack voltage at zero pack current (OCV + RC + balance drain), V."""
        return float(np.sum(self._terminal(0.0)))

    def pack_resistance(self):
        return float(np.sum(self.r0()))

    def pack_voltage(self):
        return float(np.sum(self.v_true))

    def step(self, current_a, dt_s):
        """Advance by dt_s seconds with pack current current_a (A, + = charging)."""
        dt = float(dt_s)
        i = float(current_a)
        v_est = self._terminal(i)
        self.balance_a = self.balance_duty * np.clip(v_est, 0.0, None) / self.balance_ohm
        cell_i = i - self.balance_a
        r0 = self.r0()
        decay = np.exp(-dt / self.tau_s)
        self.vrc = self.vrc * decay + cell_i * self.r1 * (1.0 - decay)
        throughput = np.abs(cell_i) * dt
        self.soc = self.soc + cell_i * dt / self.cap_as - self.self_discharge_per_s * dt
        self.soc = np.clip(self.soc, -0.05, 1.05)
        if np.any(self.fade_per_as):
            self.cap_as = self.cap_as * (1.0 - self.fade_per_as * throughput)
        heat = cell_i * cell_i * r0 + self.vrc * self.vrc / self.r1
        heat = heat + 0.5 * self.balance_a * self.balance_a * self.balance_ohm + self.extra_heat_w
        cool = self.cooling_w_per_k * (self.temp_c - self.ambient_c)
        self.temp_c = self.temp_c + (heat - cool) * dt / self.heat_capacity
        pinned = ~np.isnan(self.temp_pin)
        if np.any(pinned):
            self.temp_c[pinned] = self.temp_pin[pinned]
        self.current_a = i
        self.v_true = self._terminal(i)

    def cv_current(self, v_target):
        """Pack current (A) that holds the pack terminal voltage at v_target now (may be < 0)."""
        return (float(v_target) - self.open_voltage()) / self.pack_resistance()

    def set_soc(self, soc):
        self.soc = np.clip(np.asarray(soc, dtype=float) + np.zeros(self.n), -0.05, 1.05)
        self.v_true = self._terminal(self.current_a)
