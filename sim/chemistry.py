"""Cell chemistries for the virtual pack: open-circuit-voltage curves and default parameters.

OCV tables are (SoC fraction, volts) pairs, interpolated linearly (numpy.interp), drawn after
published data-sheet / test-report curves of the rested cell (docs/virtual-pack.md lists the
anchor points and what they mean). SoC 1.0 (100 %) is the cell rested after a CV charge at the
usual full-charge voltage tapered to 0.05 C (LiFePO4 3.45 V, LTO 2.7 V, NMC/NCA 4.2 V); the
tenths of a percent above it are what a charge to the data sheet's maximum (LiFePO4 3.65 V)
still adds, and beyond that the voltage runs away steeply (over-charge), so a charger or load
left running past the BMS limits shows the BMS's job as it would on a real pack.

- LiFePO4: two flat plateaus, 3.28-3.30 V (30-50 %) and 3.32-3.345 V (60-95 %), the lower knee
  below 10 % (3.0 V at 2 %, 2.9 V at 1 %, 2.5 V at 0 %: the data sheet's cut-off at a low rate)
  and the upper knee in the last percent: 3.35 V at 98 %, 3.36 V at 99 %, 3.38 V at
  99.5 %, 3.45 V at 100 %. A cell that sits at 3.40 V (V-balance) while the current tapers to
  0.05 C is therefore > 99.5 % full, as on a real cell.
- LTO: a gentle slope around 2.3 V (2.16 V at 10 %, 2.45 V at 90 %), 2.61 V at 99.5 %, 2.66 V at 100 %.
- NMC / NCA: a steady slope from about 3.4 V (5 %) to 4.18 V (100 %).
"""
import numpy as np

# SoC points shared by all tables (fractions; outside 0..1 = over-charged / over-discharged).
_SOC = np.array([-0.05, 0.0, 0.005, 0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80,
                 0.90, 0.95, 0.98, 0.99, 0.995, 1.00, 1.005, 1.01, 1.02, 1.05])
SOC_POINTS = tuple(float(x) for x in _SOC)

OCV = {
    "lifepo4": [2.00, 2.50, 2.75, 2.90, 3.00, 3.12, 3.21, 3.26, 3.285, 3.295, 3.30, 3.31, 3.325, 3.33,
                3.335, 3.34, 3.35, 3.36, 3.38, 3.45, 3.55, 3.65, 3.80, 4.20],
    "lto": [1.50, 1.80, 1.85, 1.90, 2.00, 2.10, 2.16, 2.21, 2.25, 2.29, 2.32, 2.34, 2.37, 2.40,
            2.45, 2.50, 2.55, 2.58, 2.61, 2.66, 2.71, 2.76, 2.85, 3.00],
    "nmc": [2.60, 3.00, 3.06, 3.13, 3.25, 3.40, 3.50, 3.58, 3.63, 3.67, 3.72, 3.79, 3.87, 3.95,
            4.04, 4.09, 4.13, 4.15, 4.165, 4.18, 4.22, 4.26, 4.30, 4.45],
    "nca": [2.50, 2.90, 2.95, 3.00, 3.10, 3.25, 3.36, 3.48, 3.56, 3.62, 3.68, 3.76, 3.85, 3.93,
            4.02, 4.07, 4.11, 4.13, 4.155, 4.18, 4.22, 4.26, 4.30, 4.45],
}

# Per chemistry defaults: series resistance r0 and RC pair r1 (ohm, for a 100 Ah cell; scaled by
# 100/capacity unless the scenario gives them: sim.model.Pack), RC time constant (s),
# self-discharge (fraction per 30 days), specific thermal mass (J/K per Ah), balance resistor
# (ohm: about 1 A at the balance voltage, manual: 1 A).
PARAMS = {
    "lifepo4": {"r0": 0.0008, "r1": 0.0006, "tau_s": 60.0, "self_discharge": 0.03, "heat_j_per_k_ah": 20.0,
                "balance_ohm": 3.4},
    "lto": {"r0": 0.0005, "r1": 0.0004, "tau_s": 40.0, "self_discharge": 0.02, "heat_j_per_k_ah": 25.0,
            "balance_ohm": 2.6},
    "nmc": {"r0": 0.0010, "r1": 0.0008, "tau_s": 50.0, "self_discharge": 0.03, "heat_j_per_k_ah": 15.0,
            "balance_ohm": 4.0},
    "nca": {"r0": 0.0012, "r1": 0.0009, "tau_s": 50.0, "self_discharge": 0.03, "heat_j_per_k_ah": 15.0,
            "balance_ohm": 4.0},
}

NAMES = tuple(OCV)


def check(name):
    """The chemistry name in lower case, or ValueError naming the choices."""
    key = str(name).lower()
    if key not in OCV:
        raise ValueError("chemistry must be one of %s, not %r" % (", ".join(NAMES), name))
    return key


def ocv(name, soc):
    """Open-circuit voltage (V) for a SoC fraction (scalar or array)."""
    return np.interp(soc, _SOC, OCV[name])


def soc_for_ocv(name, volts):
    """Inverse of ocv() on the monotonic table (for setting up a pack at a given voltage)."""
    return np.interp(volts, OCV[name], _SOC)
