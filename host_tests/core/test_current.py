"""Current sensing: dual-range blend, zero calibration, loop count, dead band, one sensor."""
from core import current, store
from core.current import PackCurrent, SensorPair, battery_current, scale
from core.snapshot import SensorFlags
from support import no_alloc, tmpdir

OK = SensorFlags.PRESENT


class Board:
    CURRENT_LOW_RANGE_A = 20
    CURRENT_HIGH_RANGE_A = 500
    CURRENT_LOW_UV_PER_A = 75000
    CURRENT_HIGH_UV_PER_A = 3000
    CURRENT_LOW_ZERO_UV = 1650000
    CURRENT_HIGH_ZERO_UV = 1650000


class FakeHw:
    """Two Hall sensors behind a 0..3.3 V ADC: the low channel rails at +-22 A; the high channel
    has its own gain error and offset (channels never agree exactly on real hardware)."""

    def __init__(self):
        self.ma = [0, 0]
        self.high_gain_permille = 1000
        self.low_offset_uv = [0, 0]
        self.high_offset_uv = [0, 0]
        self.missing = [False, False]

    def read_current_uv(self, sensor, high_range):
        i = sensor - 1
        if self.missing[i]:
            return 0          # pulled down: the input reads 0 V
        ma = self.ma[i]
        if high_range:
            uv = 1650000 + ma * 3 * self.high_gain_permille // 1000 + self.high_offset_uv[i]
        else:
            uv = 1650000 + ma * 75 + self.low_offset_uv[i]
        if uv < 0:
            uv = 0
        if uv > 3300000:
            uv = 3300000
        return uv


def test_low_range_reading_is_exact():
    hw = FakeHw()
    sp = SensorPair(Board)
    hw.ma = [12345, -800]
    sp.update(hw)
    assert sp.s1_ma == 12345 and sp.s1_flags == OK
    assert sp.s2_ma == -800 and sp.s2_flags == OK


def test_high_range_above_low_range():
    hw = FakeHw()
    sp = SensorPair(Board)
    for ma in (25000, -25000, 150000, 479000, -479000):
        hw.ma = [ma, 0]
        sp.update(hw)
        assert sp.s1_flags == SensorFlags.PRESENT | SensorFlags.HIGH_RANGE
        assert abs(sp.s1_ma - ma) <= 1


def test_reading_at_the_high_range_rail_is_a_fault():
    """A sensor stuck at 490 A ran the SoC to 0 % in 4 minutes: a reading beyond 96 % of the
    high range is at a rail, not a current."""
    hw = FakeHw()
    sp = SensorPair(Board)
    for ma in (481000, 490000, -490000, 500000):
        hw.ma = [0, ma]
        sp.update(hw)
        assert sp.s2_flags == SensorFlags.FAULT and sp.s2_ma == 0, ma
        assert sp.s1_flags == SensorFlags.PRESENT


def test_switch_over_has_no_step():
    hw = FakeHw()
    hw.high_gain_permille = 1020    # high range reads 2 % high: a hard switch would jump ~380 mA
    sp = SensorPair(Board)
    step = 50
    for sign in (1, -1):
        prev = None
        worst = 0
        seen_high = False
        for k in range(0, 30000 // step):
            hw.ma = [sign * k * step, 0]
            sp.update(hw)
            if prev is not None:
                d = abs(sp.s1_ma - prev)
                if d > worst:
                    worst = d
            prev = sp.s1_ma
            if sp.s1_flags & SensorFlags.HIGH_RANGE:
                seen_high = True
        assert seen_high
        assert worst <= step + 15, worst   # the slope changes a little inside the blend, no step


def test_missing_sensor_is_flagged_not_zero_current():
    hw = FakeHw()
    hw.missing = [False, True]
    sp = SensorPair(Board)
    hw.ma = [1000, 0]
    sp.update(hw)
    assert sp.s1_flags == OK and sp.s1_ma == 1000
    assert sp.s2_flags == SensorFlags.FAULT and sp.s2_ma == 0


def test_no_current_hardware():
    sp = SensorPair(None)

    class NoSensors:
        pass
    sp.update(NoSensors())
    assert sp.s1_flags == 0 and sp.s2_flags == 0


def test_ranges_that_disagree_are_a_sensor_fault():
    hw = FakeHw()
    hw.low_offset_uv = [1500000, 0]   # low channel railed while only 1 A flows
    sp = SensorPair(Board)
    hw.ma = [1000, 0]
    sp.update(hw)
    assert sp.s1_flags == SensorFlags.FAULT and sp.s1_ma == 0
    # a low range stuck at zero during a 30 A discharge used to read 0 A
    hw = FakeHw()
    hw.low_offset_uv = [0, -30000 * 75]
    hw.ma = [0, 30000]
    sp.update(hw)
    assert sp.s2_flags == SensorFlags.FAULT and sp.s2_ma == 0
    hw.low_offset_uv = [0, 0]         # both ranges agree again: data again
    sp.update(hw)
    assert sp.s2_flags & SensorFlags.PRESENT and abs(sp.s2_ma - 30000) <= 1


def test_zero_calibration_and_file_round_trip():
    hw = FakeHw()
    hw.low_offset_uv = [3000, -1500]       # 40 mA / -20 mA of offset
    hw.high_offset_uv = [600, 0]           # 200 mA
    sp = SensorPair(Board)
    sp.update(hw)
    assert sp.s1_ma == 40 and sp.s2_ma == -20
    values = sp.zero()
    assert sp.zero_ok
    assert values["s1_low_uv"] == 1653000 and values["s1_high_uv"] == 1650600
    sp.update(hw)
    assert sp.s1_ma == 0 and sp.s2_ma == 0
    hw.ma = [5000, 30000]
    sp.update(hw)
    assert sp.s1_ma == 5000 and abs(sp.s2_ma - 30000) <= 1
    d = tmpdir()
    path = current.zero_path(d)
    assert path.endswith("/current_zero.json")
    store.save(path, current.ZERO_KIND, current.ZERO_VERSION, sp.zero_values())
    fresh = SensorPair(Board)
    assert fresh.load_zero_file(path) == store.OK
    assert fresh.zero_uv == sp.zero_uv
    fresh.update(hw)
    assert fresh.s1_ma == 5000


def test_zero_refused_with_current_flowing_or_missing_sensor():
    hw = FakeHw()
    sp = SensorPair(Board)
    hw.ma = [5000, 0]            # 375 mV on the low channel: beyond the 10 % tolerance
    hw.missing = [False, True]
    sp.update(hw)
    before = list(sp.zero_uv)
    sp.zero()
    assert not sp.zero_ok
    assert sp.zero_uv[0] == before[0] and sp.zero_uv[2] == before[2]


def test_zero_file_missing_or_corrupt_keeps_nominal():
    d = tmpdir()
    sp = SensorPair(Board)
    assert sp.load_zero_file(d + "/nothing.json") == store.MISSING
    with open(d + "/bad.json", "wb") as f:
        f.write(b"garbage")
    assert sp.load_zero_file(d + "/bad.json") == store.CORRUPT
    store.save(d + "/wild.json", current.ZERO_KIND, current.ZERO_VERSION,
               {"s1_low_uv": 10, "s1_high_uv": "x", "s2_low_uv": 1650000, "s2_high_uv": 1650000})
    assert sp.load_zero_file(d + "/wild.json") == store.CORRUPT
    assert sp.zero_uv[0] == 1650000 and sp.zero_uv[1] == 1650000


def test_dead_band_table_from_manual():
    assert current.dead_band_ma(1) == 150
    assert current.dead_band_ma(2) == 75
    assert current.dead_band_ma(4) == 38
    rows = (
        # one-turn reading, loops, real current after dead band
        (150, 1, 0), (151, 1, 151), (-150, 1, 0), (-151, 1, -151),
        (150, 2, 0), (152, 2, 76), (-152, 2, -76),
        (152, 4, 0), (156, 4, 39), (-156, 4, -39),
        (40000, 2, 20000), (-400000, 4, -100000),
    )
    for raw, loops, want in rows:
        assert scale(raw, loops) == want, (raw, loops)


def test_two_sensors_charger_minus_consumers():
    pc = PackCurrent()
    pc.update(10000, OK, 4000, OK, 1, 2)
    assert (pc.charge_ma, pc.discharge_ma, pc.current_ma, pc.fault) == (10000, 4000, 6000, False)
    pc.update(2000, OK, 9000, OK, 2, 2)
    assert (pc.charge_ma, pc.discharge_ma, pc.current_ma) == (1000, 4500, -3500)
    assert battery_current(2000, OK, 9000, OK, 2, 2) == -3500


def test_one_sensor_setup_uses_sensor_1_alone():
    pc = PackCurrent()
    # sensor 2 not connected (FAULT) must neither count nor raise a fault with sensors=1
    pc.update(-5000, OK, 0, SensorFlags.FAULT, 1, 1)
    assert (pc.current_ma, pc.charge_ma, pc.discharge_ma, pc.fault) == (-5000, 0, 5000, False)
    pc.update(8000, OK, 123456, OK, 4, 1)
    assert (pc.current_ma, pc.charge_ma, pc.discharge_ma) == (2000, 2000, 0)
    assert battery_current(-5000, OK, 999, OK, 1, 1) == -5000


def test_faulty_sensor_counts_zero_and_reports():
    pc = PackCurrent()
    pc.update(10000, OK, 4000, SensorFlags.FAULT, 1, 2)
    assert pc.fault and pc.current_ma == 10000
    pc.update(10000, 0, 4000, OK, 1, 2)
    assert pc.fault and pc.current_ma == -4000
    pc.update(10000, SensorFlags.PRESENT | SensorFlags.FAULT, 0, OK, 1, 1)
    assert pc.fault and pc.current_ma == 0


def test_current_paths_allocate_nothing():
    hw = FakeHw()
    hw.ma = [17500, 300000]
    sp = SensorPair(Board)
    pc = PackCurrent()

    def cycle():
        sp.update(hw)
        pc.update(sp.s1_ma, sp.s1_flags, sp.s2_ma, sp.s2_flags, 2, 2)
        battery_current(sp.s1_ma, sp.s1_flags, sp.s2_ma, sp.s2_flags, 4, 2)
    assert no_alloc(cycle)
