"""NTC conversion against R-T tables, open/short detection (CPython and MicroPython)."""
import math

from core import ntc
from core.ntc import Ntc

import support

# A 10 kOhm B3950 NTC's datasheet-style table (R in ohm), computed by the Beta equation.
_K0 = 273.15


def _beta_r(t_c):
    return 10000.0 * math.exp(3950.0 * (1.0 / (t_c + _K0) - 1.0 / 298.15))


def _pin_uv(r, series=10000, supply=3300000, high_side=False):
    if high_side:
        return int(supply * series / (series + r) + 0.5)
    return int(supply * r / (series + r) + 0.5)


def test_beta_table_points_known_values():
    # classic table values of a 10k B3950 (Beta model): 0 degC ~ 33.6k, 50 degC ~ 3.6k, 100 degC ~ 0.68k
    assert abs(ntc.beta_resistance(25, 3950, 10000) - 10000) < 0.01
    assert 33000 < ntc.beta_resistance(0, 3950, 10000) < 34000
    assert 3500 < ntc.beta_resistance(50, 3950, 10000) < 3700
    assert 650 < ntc.beta_resistance(100, 3950, 10000) < 700


def test_beta_conversion_every_degree():
    conv = Ntc(10000, 3300000, beta=3950, r25_ohm=10000)
    assert conv.temp_dc(1650000) == 250        # R = R25 exactly: half the supply
    worst = 0
    for t in range(-40, 126):
        got = conv.temp_dc(_pin_uv(_beta_r(t)))
        assert got is not None, t
        worst = max(worst, abs(got - 10 * t))
    assert worst <= 3, worst                    # 0.3 degC, manual allows +-4 degC


def test_high_side_ntc_and_other_supply():
    conv = Ntc(4700, 2500000, beta=3950, r25_ohm=10000, high_side=True)
    for t in range(-40, 121, 5):
        got = conv.temp_dc(_pin_uv(_beta_r(t), 4700, 2500000, True))
        assert abs(got - 10 * t) <= 3, (t, got)


def test_steinhart_hart_against_its_own_equation():
    a, b, c = 1.129148e-3, 2.34125e-4, 8.76741e-8   # common 10k NTC coefficients
    conv = Ntc(10000, 3300000, sh_abc=(a, b, c))
    # the SH equation evaluated forward from R (independent of the resistance solver)
    for r in (300000.0, 100000.0, 32650.0, 10000.0, 3000.0, 1000.0, 300.0):
        ln = math.log(r)
        t_c = 1.0 / (a + b * ln + c * ln ** 3) - _K0
        got = conv.temp_dc(_pin_uv(r))
        assert got is not None
        assert abs(got - t_c * 10) <= 3, (r, t_c, got)
    # the well-known fixed point of these coefficients: 10k at 25 degC
    assert abs(conv.temp_dc(1650000) - 250) <= 2


def test_open_and_short_are_faults_not_temperatures():
    conv = Ntc(10000, 3300000)
    assert conv.temp_dc(3300000) is None        # NTC open: pin at the supply
    assert conv.temp_dc(3299000) is None
    assert conv.temp_dc(0) is None              # NTC shorted: pin at GND
    assert conv.temp_dc(2000) is None


def test_out_of_range_is_at_least_that_hot_or_cold():
    """A 145 degC cell used to read as a broken sensor (and dropped out of the limits): beyond
    the table is "at least" its end, only a pin at a rail is a fault."""
    conv = Ntc(10000, 3300000)
    assert abs(conv.temp_dc(_pin_uv(_beta_r(-49))) + 490) <= 3
    assert abs(conv.temp_dc(_pin_uv(_beta_r(-52))) + 520) <= 3
    assert abs(conv.temp_dc(_pin_uv(_beta_r(139))) - 1390) <= 3
    assert abs(conv.temp_dc(_pin_uv(_beta_r(145))) - 1450) <= 3
    assert conv.temp_dc(_pin_uv(_beta_r(160))) == ntc.TABLE_MAX_DC
    assert conv.temp_dc(_pin_uv(_beta_r(220))) == ntc.TABLE_MAX_DC
    assert conv.temp_dc(_pin_uv(_beta_r(-60))) == ntc.TABLE_MIN_DC
    hs = Ntc(10000, 3300000, high_side=True)
    assert hs.temp_dc(_pin_uv(_beta_r(170), high_side=True)) == ntc.TABLE_MAX_DC
    assert hs.temp_dc(_pin_uv(_beta_r(-60), high_side=True)) == ntc.TABLE_MIN_DC
    assert hs.temp_dc(0) is None and hs.temp_dc(3300000) is None


def test_bad_constants_refused():
    support.raises(ValueError, Ntc, 0, 3300000)
    support.raises(ValueError, Ntc, 10000, 3300000, -1, 10000)


def test_from_board():
    class WithNtc:
        NTC_ADC_PIN = 27
        NTC_BETA = 3950
        NTC_R25_OHM = 10000
        NTC_SERIES_OHM = 10000
        NTC_SUPPLY_UV = 3300000

    class NoNtc:
        NTC_ADC_PIN = None

    class Sparse:
        NTC_ADC_PIN = 5

    assert ntc.from_board(NoNtc) is None
    assert ntc.from_board(WithNtc).temp_dc(1650000) == 250
    assert ntc.from_board(Sparse).temp_dc(1650000) == 250   # defaults: 10k B3950, 10k, 3.3 V


def test_conversion_allocates_nothing():
    conv = Ntc(10000, 3300000)
    pins = [100000 + 30000 * i for i in range(100)]
    out = [0]

    def run():
        for p in pins:
            t = conv.temp_dc(p)
            if t is not None:
                out[0] = t

    assert support.no_alloc(run)
