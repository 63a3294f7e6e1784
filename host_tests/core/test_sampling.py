"""Cell-voltage sampling and calibration against synthetic ADC streams (CPython and MicroPython)."""
from core import sampling
from core.sampling import CalibrationError, CellChannel, LightFilter, Oversampler, solve_two_point

import support


class Lcg:
    """Deterministic pseudo-random numbers, identical on both interpreters."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x

    def uniform(self, span):
        """Integer in -span..span."""
        return self.next() % (2 * span + 1) - span

    def noise(self, sigma):
        """Roughly Gaussian integer noise (sum of 4 uniforms), standard deviation ~sigma."""
        return sum(self.uniform(sigma * 17 // 10) for _ in range(4)) // 2


class Adc:
    """A realistic cell ADC: divider, gain/offset error, slight bow, noise, spikes, 12-bit codes."""

    def __init__(self, num, den, seed=1, gain_ppm=1030000, offset_uv=12000, bow_uv=3000,
                 noise_uv=4000, spike_every=7, spike_uv=400000, lsb_uv=806):
        self.num = num
        self.den = den
        self.rng = Lcg(seed)
        self.gain_ppm = gain_ppm
        self.offset_uv = offset_uv
        self.bow_uv = bow_uv
        self.noise_uv = noise_uv
        self.spike_every = spike_every
        self.spike_uv = spike_uv
        self.lsb_uv = lsb_uv
        self.cell_mv = 3300
        self.n = 0

    def read(self):
        self.n += 1
        pin = self.cell_mv * 1000 * self.den // self.num
        x = pin * self.gain_ppm // 1000000 + self.offset_uv
        # bow: 0 at both ends of 0..2.5 V, +bow_uv in the middle
        x += self.bow_uv * 4 * pin // 2500000 * (2500000 - pin) // 2500000
        x += self.rng.noise(self.noise_uv)
        if self.spike_every and self.n % self.spike_every == 0:
            x += self.spike_uv if self.rng.next() & 1 else -self.spike_uv
        x = (x // self.lsb_uv) * self.lsb_uv
        return max(0, x)


def _measure(ch, adc, cycles=1):
    for _ in range(cycles):
        ch.begin()
        for _ in range(ch.samples):
            ch.add(adc.read())
        ch.finish()
    return ch.cell_mv


def _calibrate(ch, adc, mv1, mv2):
    adc.cell_mv = mv1
    ch.filter.reset()
    _measure(ch, adc, 8)
    n1 = ch.nominal_01mv
    adc.cell_mv = mv2
    _measure(ch, adc, 8)
    n2 = ch.nominal_01mv
    ch.cal = solve_two_point(n1, mv1, n2, mv2)
    return ch.cal


def test_oversampler_trimmed_mean_drops_outliers():
    o = Oversampler(8, 2)
    for v in (100, 101, 99, 100, 5000, -3000, 100, 102):
        o.add(v)
    assert o.result() == 100
    assert list(o.buf) == sorted(o.buf)
    o.reset()
    assert o.result() == 0
    o.add(7)
    assert o.result() == 7
    o.add(9)
    assert o.result() == 8   # too few to trim 2+2: middle two


def test_oversampler_ignores_extra_readings():
    o = Oversampler(4, 1)
    for v in (10, 20, 30, 40, 1000000):
        o.add(v)
    assert o.count == 4
    assert o.result() == 25


def test_light_filter_smooths_and_follows_steps():
    f = LightFilter(shift=2, step=15000)
    assert f.update(1000000) == 1000000
    assert f.update(1004000) == 1001000
    for _ in range(40):
        out = f.update(1004000)
    assert abs(out - 1004000) <= 4
    assert f.update(1100000) == 1100000   # a real step is taken at once


def test_divider_reduction_keeps_small_ints():
    assert sampling.reduce_divider(200, 100) == (2, 1)
    num, den = sampling.reduce_divider(147000, 47000)
    assert num <= 3000 and abs(num / den - 147 / 47) < 0.002
    for bad in ((1, 2), (2, 0), (50, 2)):
        support.raises(ValueError, sampling.reduce_divider, bad[0], bad[1])


def test_uncalibrated_nominal_divider():
    ch = CellChannel(2, 1, filter_shift=0)
    ch.begin()
    for _ in range(16):
        ch.add(1650000)
    assert ch.finish() == 3300
    assert ch.ok and not ch.cal.calibrated


def test_accuracy_after_calibration_pico_like():
    # RP2040-like: 12-bit codes over 3.3 V, 2:1 divider, 3 % gain error, 12 mV offset, bow, spikes
    ch = CellChannel(2, 1)
    adc = Adc(2, 1, seed=7)
    _calibrate(ch, adc, 2000, 4500)
    worst = 0
    for mv in range(1500, 5001, 50):
        adc.cell_mv = mv
        got = _measure(ch, adc, 3)
        err = abs(got - mv)
        worst = max(worst, err)
        assert err <= 20, (mv, got)
    assert worst <= 15   # some margin under the manual's +-20 mV


def test_accuracy_after_calibration_esp32_like():
    # ESP32 read_uv(): finer steps, worse offset and bow, 5:2 divider, frequent spikes
    ch = CellChannel(5, 2, full_scale_uv=3100000)
    adc = Adc(5, 2, seed=3, gain_ppm=970000, offset_uv=-40000, bow_uv=5000, noise_uv=6000,
              spike_every=5, spike_uv=800000, lsb_uv=1)
    _calibrate(ch, adc, 1800, 4600)
    for mv in range(1500, 5001, 100):
        adc.cell_mv = mv
        got = _measure(ch, adc, 3)
        assert abs(got - mv) <= 20, (mv, got)


def test_uncalibrated_is_off_but_calibration_fixes_it():
    ch = CellChannel(2, 1)
    adc = Adc(2, 1, seed=11, gain_ppm=1050000)
    adc.cell_mv = 4000
    assert abs(_measure(ch, adc, 4) - 4000) > 100
    _calibrate(ch, adc, 2500, 4200)
    adc.cell_mv = 4000
    assert abs(_measure(ch, adc, 4) - 4000) <= 20


def test_calibration_refuses_nonsense():
    e = support.raises(CalibrationError, solve_two_point, 33000, 3300, 33100, 3310)
    assert "closer" in str(e)
    e = support.raises(CalibrationError, solve_two_point, 20000, 2000, 40000, 5000)   # gain 1.5
    assert "gain" in str(e)
    e = support.raises(CalibrationError, solve_two_point, 20000, 2500, 40000, 4500)   # offset 500 mV
    assert "offset" in str(e)
    e = support.raises(CalibrationError, solve_two_point, 20000, 200, 40000, 4000)
    assert "outside" in str(e)
    e = support.raises(CalibrationError, solve_two_point, 30000, 2000, 30000, 4000)
    assert "did not change" in str(e)


def test_calibration_round_trip_and_limits():
    cal = solve_two_point(20000, 2060, 40000, 4100)
    assert cal.calibrated
    assert 1019000 <= cal.gain_ppm() <= 1021000
    again = sampling.Calibration.from_dict(cal.to_dict())
    assert again.calibrated and again.delta_q16 == cal.delta_q16 and again.offset_01mv == cal.offset_01mv
    assert not sampling.Calibration.from_dict({}).calibrated
    assert not sampling.Calibration.from_dict({"cell_delta_q16": 60000, "cell_offset_01mv": 0}).calibrated
    assert not sampling.Calibration.from_dict({"cell_delta_q16": "x", "cell_offset_01mv": 0}).calibrated


def test_saturated_or_missing_reading_is_a_fault():
    ch = CellChannel(2, 1, full_scale_uv=3300000)
    ch.begin()
    for _ in range(16):
        ch.add(3299000)
    ch.finish()
    assert not ch.ok
    ch.begin()
    for _ in range(16):
        ch.add(0)
    ch.finish()
    assert not ch.ok
    ch.begin()
    ch.finish()
    assert not ch.ok
    ch.begin()
    for _ in range(16):
        ch.add(-5)
    ch.finish()
    assert not ch.ok and ch.cell_mv == 0


def test_sampling_path_allocates_nothing():
    ch = CellChannel(5, 2)
    ch.cal = solve_two_point(20000, 2030, 40000, 4050)
    vals = [1000000 + 37 * i for i in range(16)]

    def cycle():
        ch.begin()
        for v in vals:
            ch.add(v)
        ch.finish()

    assert support.no_alloc(cycle)


def _burst(ch, pin_uv):
    ch.begin()
    for _ in range(ch.samples):
        ch.add(pin_uv)
    return ch.finish()


def test_implausible_cell_voltage_is_a_fault():
    # 2:1 divider, ADC full scale 3.3 V: a stuck-high ADC at 5.5 V (2.75 V at the pin) is far from
    # the rail, but no board works above 5.0 V: not a cell voltage (was believed up to 5.6 V)
    ch = CellChannel(2, 1, full_scale_uv=3300000)
    assert _burst(ch, 2750000) == 5500 and not ch.ok and ch.adc_ok
    assert _burst(ch, 2560000) == 5120 and not ch.ok
    assert _burst(ch, 2550000) == 5100 and ch.ok          # top of the plausible range
    assert _burst(ch, 2500000) == 5000 and ch.ok          # the boards' working range ends here
    assert _burst(ch, 750000) == 1500 and ch.ok           # LTO at its lowest
    assert _burst(ch, 500000) == 1000 and ch.ok
    assert _burst(ch, 450000) == 900 and not ch.ok
    # back in range: plausible again at once (no smearing from the rejected value)
    assert _burst(ch, 1650000) == 3300 and ch.ok
    assert sampling.CELL_MIN_MV == 1000 and sampling.CELL_MAX_MV == 5100


def test_flat_bursts_mark_a_frozen_converter():
    from core.sampling import CellChannel
    ch = CellChannel(2, 1, stuck_bursts=3)
    for burst in range(5):
        ch.begin()
        for _ in range(16):
            ch.add(1650000)
        ch.finish()
        assert ch.ok == (burst < 2), burst       # the third identical burst in a row: frozen
    ch.begin()
    for i in range(16):
        ch.add(1650000 + (i % 2) * 800)           # one LSB of noise again
    ch.finish()
    assert ch.ok and not ch.stuck
    off = CellChannel(2, 1)                       # stuck_bursts 0: check off
    for _ in range(20):
        off.begin()
        for _ in range(16):
            off.add(1650000)
        off.finish()
    assert off.ok


def test_fast_value_follows_a_ramp_without_filter_lag():
    """On a steadily rising cell (1 C near the top of charge, a few mV per cycle) the filtered
    value lags 3-4 cycles; ``fast_mv`` (what the link carries, what V-max acts on) is the burst's
    own trimmed mean and stays within a millivolt of the truth."""
    ch = CellChannel(2, 1, samples=16, trim=4, filter_shift=2)
    worst_fast = 0
    worst_filtered = 0
    for k in range(60):
        cell_uv = 3500000 + 4000 * k              # +4 mV per cycle
        ch.begin()
        for j in range(16):
            ch.add(cell_uv // 2 + (j % 5) * 200 - 400)
        ch.finish()
        if k > 5:
            worst_fast = max(worst_fast, abs(ch.fast_mv - cell_uv // 1000))
            worst_filtered = max(worst_filtered, abs(ch.cell_mv - cell_uv // 1000))
    assert worst_fast <= 1, worst_fast
    assert worst_filtered >= 10                   # the lag this path no longer has


def test_wild_reads_in_a_burst_never_move_the_limit_value():
    """The limit checks' debounce (issue 12, core.relays.LIMIT_SAMPLES = 1): up to ``trim``
    wild reads at either end of a burst (ADC glitches, a spike to the rail) leave ``fast_mv``,
    the value V-max / V-min act on, where the good reads put it; ``trim + 1`` of them do not."""
    for wild in (1, 4):
        for spike_uv in (3200000, 100000):        # near the ADC's top / bottom
            ch = CellChannel(2, 1, samples=16, trim=4, filter_shift=2)
            ch.begin()
            for j in range(16):
                ch.add(spike_uv if j < wild else 1650000 + (j % 3) * 100)
            ch.finish()
            assert ch.ok and abs(ch.fast_mv - 3300) <= 1, (wild, spike_uv, ch.fast_mv)
    ch = CellChannel(2, 1, samples=16, trim=4, filter_shift=2)
    ch.begin()
    for j in range(16):
        ch.add(2000000 if j < 5 else 1650000)      # 5 reads at 4.0 V: more than the trim
    ch.finish()
    assert ch.fast_mv > 3300
