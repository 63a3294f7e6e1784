"""NTC thermistor: pin voltage -> temperature in 0.1 degC, with open/short detection.

The divider: a series resistor from the NTC supply to the ADC pin and the NTC from the pin to GND
(``high_side=False``, the board definitions' wiring), or the NTC on top and the resistor to GND
(``high_side=True``). The curve is either the Beta equation (``beta``, ``r25_ohm``) or
Steinhart-Hart (``sh_abc`` = (A, B, C), 1/T = A + B ln R + C ln^3 R).

Floats and ``math.log`` allocate on MicroPython, so the curve is evaluated once, at construction,
into a table of pin voltages every 5 degC from -55 to +150 degC; a conversion is then an integer
binary search and a linear interpolation (error well under 0.1 degC for common NTCs).

Out of range is "at least that hot / cold", not a fault: a reading beyond the table's hot end
gives +150.0 degC, beyond its cold end -55.0 degC (a 145 degC cell is hot, not broken: it opens
both relays). Only a pin within ``RAIL_DIV`` (1/400 = 0.25 %) of GND or of the supply is an
open or shorted sensor (for a 10 kOhm B3950 NTC on 10 kOhm: beyond about -70 / +240 degC):
``temp_dc()`` returns None, and the pack brain treats that cell as too hot AND too cold.
"""
import math
from array import array

from micropython import const

TABLE_MIN_DC = const(-550)
_TABLE_STEP_DC = const(50)
_TABLE_POINTS = const(42)          # -55.0 .. +150.0 degC
TABLE_MAX_DC = const(1500)        # beyond the table: "at least" +150.0 / "at most" -55.0 degC
RAIL_DIV = const(400)             # pin within supply / 400 of GND or the supply: open / short
_K0 = 273.15


def beta_resistance(t_c, beta, r25_ohm):
    """NTC resistance at t_c degC by the Beta equation (float; set-up and tests only)."""
    return r25_ohm * math.exp(beta * (1.0 / (t_c + _K0) - 1.0 / (25.0 + _K0)))


def sh_resistance(t_c, a, b, c):
    """NTC resistance at t_c degC by Steinhart-Hart (solves the cubic; set-up and tests only)."""
    inv_t = 1.0 / (t_c + _K0)
    if c == 0:
        return math.exp((inv_t - a) / b)
    x = (a - inv_t) / c
    y = math.sqrt((b / (3.0 * c)) ** 3 + (x / 2.0) ** 2)
    return math.exp(_cbrt(y - x / 2.0) - _cbrt(y + x / 2.0))


def _cbrt(v):
    return math.pow(v, 1.0 / 3.0) if v >= 0 else -math.pow(-v, 1.0 / 3.0)


class Ntc:
    """Converter for one NTC divider. Construct once; ``temp_dc(pin_uv)`` allocates nothing."""

    def __init__(self, series_ohm, supply_uv, beta=3950, r25_ohm=10000, sh_abc=None, high_side=False):
        if series_ohm <= 0 or supply_uv <= 0:
            raise ValueError("NTC series resistor and supply must be > 0")
        if sh_abc is None and (beta <= 0 or r25_ohm <= 0):
            raise ValueError("NTC beta and R25 must be > 0")
        self.supply_uv = int(supply_uv)
        self.high_side = bool(high_side)
        table = array("i", [0] * _TABLE_POINTS)
        for i in range(_TABLE_POINTS):
            t_c = (TABLE_MIN_DC + _TABLE_STEP_DC * i) / 10.0
            if sh_abc is None:
                r = beta_resistance(t_c, beta, r25_ohm)
            else:
                r = sh_resistance(t_c, sh_abc[0], sh_abc[1], sh_abc[2])
            if high_side:
                v = supply_uv * series_ohm / (series_ohm + r)
            else:
                v = supply_uv * r / (series_ohm + r)
            table[i] = int(v + 0.5)
        # Stored so that the voltage always rises with the index: reversed for the low-side NTC.
        if not high_side:
            for i in range(_TABLE_POINTS // 2):
                j = _TABLE_POINTS - 1 - i
                table[i], table[j] = table[j], table[i]
        for i in range(1, _TABLE_POINTS):
            if table[i] <= table[i - 1]:
                raise ValueError("NTC constants give a flat curve: check the board definition")
        self.table = table
        self.rail_uv = self.supply_uv // RAIL_DIV

    def temp_dc(self, pin_uv):
        """Temperature in 0.1 degC ("at least" the table's end beyond it), or None when the
        sensor is open or shorted (pin at a rail)."""
        table = self.table
        if pin_uv <= self.rail_uv or pin_uv >= self.supply_uv - self.rail_uv:
            return None
        if pin_uv <= table[0]:
            return TABLE_MIN_DC if self.high_side else TABLE_MAX_DC
        if pin_uv >= table[_TABLE_POINTS - 1]:
            return TABLE_MAX_DC if self.high_side else TABLE_MIN_DC
        lo = 0
        hi = _TABLE_POINTS - 1
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if table[mid] <= pin_uv:
                lo = mid
            else:
                hi = mid
        span = table[hi] - table[lo]
        frac_dc = ((pin_uv - table[lo]) * _TABLE_STEP_DC + span // 2) // span
        if self.high_side:
            t = TABLE_MIN_DC + _TABLE_STEP_DC * lo + frac_dc
        else:
            # index lo counts from the hot end
            t = TABLE_MIN_DC + _TABLE_STEP_DC * (_TABLE_POINTS - 1 - lo) - frac_dc
        return t


def from_board(board_def):
    """Ntc for a board definition, or None when it has no NTC (NTC_ADC_PIN None -> chip sensor)."""
    if getattr(board_def, "NTC_ADC_PIN", None) is None:
        return None
    return Ntc(
        getattr(board_def, "NTC_SERIES_OHM", 10000),
        getattr(board_def, "NTC_SUPPLY_UV", 3300000),
        beta=getattr(board_def, "NTC_BETA", 3950),
        r25_ohm=getattr(board_def, "NTC_R25_OHM", 10000),
        sh_abc=getattr(board_def, "NTC_SH_ABC", None),
        high_side=getattr(board_def, "NTC_HIGH_SIDE", False),
    )
