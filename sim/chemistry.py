"""Cell chemistries for the virtual pack: open-circuit-voltage curves and default parameters.

OCV tables are (SoC fraction, volts) pairs, interpolated linearly (numpy.interp). They follow the
usual shapes: LiFePO4 a long flat plateau around 3.3 V with steep knees below 10 % and above
98 %; LTO a gentle slope around 2.3 V; NMC and NCA a steady slope from 3.0 V to 4.2 V. Beyond
100 % (over-charge) the voltage climbs steeply, below 0 % it falls steeply, so a charger or load
left running past the BMS limits shows the BMS's job as it would on a real pack.
"""
import numpy as np

# SoC points shared by all tables (fractions; outside 0..1 = over-charged / over-discharged).
_SOC = np.array([-0.05, 0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80,
                 0.90, 0.95, 0.98, 0.99, 1.00, 1.02, 1.05])

OCV = {
    "lifepo4": [2.00, 2.50, 2.90, 3.05, 3.20, 3.25, 3.275, 3.29, 3.30, 3.31, 3.32, 3.33,
                3.34, 3.35, 3.37, 3.40, 3.45, 3.80, 4.20],
    "lto": [1.50, 1.80, 2.00, 2.10, 2.18, 2.24, 2.27, 2.30, 2.32, 2.34, 2.37, 2.40,
            2.45, 2.50, 2.57, 2.62, 2.70, 2.85, 3.00],
    "nmc": [2.60, 3.00, 3.20, 3.35, 3.45, 3.55, 3.61, 3.66, 3.71, 3.78, 3.86, 3.94,
            4.03, 4.08, 4.12, 4.14, 4.18, 4.30, 4.45],
    "nca": [2.50, 2.90, 3.10, 3.25, 3.36, 3.48, 3.56, 3.62, 3.68, 3.76, 3.85, 3.93,
            4.02, 4.07, 4.11, 4.13, 4.18, 4.30, 4.45],
}

# Per chemistry defaults: series resistance (ohm, for a 100 Ah cell; scaled by 100/capacity),
# RC pair (ohm, seconds), self-discharge (fraction per 30 days), specific thermal mass
# (J/K per Ah), balance resistor (ohm: about 1 A at the balance voltage, manual: 1 A).
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
