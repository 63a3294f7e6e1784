"""Coulomb counter, energy counter, recalibration detector: exact integer arithmetic at the
extremes of every accumulator (ints beyond +-2^30 would allocate on the boards)."""
from core.soc import EnergyCounter, FullEmptyDetector, SocCounter, mul_e4, mul_e5
from support import no_alloc

SMALL = 0x3FFFFFFF  # largest small int on RP2040/ESP32


def test_one_hour_at_one_c_is_full_scale():
    c = SocCounter(100, 0)
    for _ in range(3600):
        c.integrate(100000, 1000)       # 100 A for 1 h into 100 Ah
    assert c.soc_c == 10000
    c = SocCounter(100, 10000)
    for _ in range(1800):
        c.integrate(-100000, 1000)      # half an hour out
    assert c.soc_c == 5000
    assert c.cycles == 0 and c.discharged_steps == 5000


def test_real_dt_not_assumed_one_second():
    a = SocCounter(10, 5000)
    b = SocCounter(10, 5000)
    for _ in range(1000):
        a.integrate(3600, 1000)          # 1000 s
    for _ in range(2000):
        b.integrate(3600, 437)           # 874 s in odd steps
    for _ in range(2000):
        b.integrate(3600, 63)            # + 126 s = 1000 s
    assert a.soc_c == b.soc_c == 6000    # 3.6 A x 1000 s = 1 Ah = 10 % of 10 Ah
    assert a.acc_mas == b.acc_mas and a.sub_mams == b.sub_mams


def test_sub_step_currents_accumulate_exactly():
    c = SocCounter(1, 5000)              # step = 360 mAs
    for _ in range(3600):
        c.integrate(1, 1000)             # 1 mA for an hour = 3600 mAs = 10 steps
    assert c.soc_c == 5010 and c.acc_mas == 0 and c.sub_mams == 0
    for _ in range(7200):
        c.integrate(-1, 500)
    assert c.soc_c == 5000


def test_clamps_at_full_and_empty():
    c = SocCounter(1, 9999)
    c.integrate(1000000, 60000)
    assert c.soc_c == 10000 and c.acc_mas == 0
    c.integrate(-1000000, 600000)
    assert c.soc_c == 0 and c.acc_mas == 0
    c.integrate(-1000000, 600000)
    assert c.soc_c == 0


def test_extreme_values_stay_small_ints():
    # largest capacity, largest current, longest dt: every state stays below 2^30
    c = SocCounter(20000, 5000)
    assert c.step_mas == 7200000
    c.integrate(5000000, 600000)         # clamped to 1000 A; 10 minutes
    assert c.soc_c == 5000 + 600000 * 1000 // 7200000
    for v in (c.acc_mas, c.sub_mams, c.soc_c):
        assert -SMALL <= v <= SMALL
    c.integrate(-5000000, 600000)
    assert c.soc_c == 5000
    c = SocCounter(1, 5000)
    c.integrate(-1000000, 999)
    assert 0 <= c.acc_mas < c.step_mas and 0 <= c.sub_mams < 1000


def test_charge_cycles_count_discharged_capacity():
    c = SocCounter(2, 10000)
    for _ in range(3):
        c.integrate(-2000, 3600 * 1000)  # 2 Ah out: full to empty
        assert c.soc_c == 0
        c.set_soc(10000)
    assert c.cycles == 3
    c.integrate(-2000, 1800 * 1000)
    assert c.cycles == 3 and c.discharged_steps == 5000


def test_set_capacity_keeps_fraction_in_range():
    c = SocCounter(1000, 5000)
    c.integrate(1000, 300000)
    c.set_capacity(1)
    assert 0 <= c.acc_mas < c.step_mas
    c.set_capacity(0)
    assert c.step_mas == 360
    c.set_capacity(99999)
    assert c.step_mas == 7200000


def test_mul_e5_matches_exact_product():
    cases = ((0, 0), (1, 1), (150, 13000), (999, 999), (1000000, 1275000), (2000000, 1999999),
             (123456, 654321), (-5000, 52000), (5000, -52000))
    for a, b in cases:
        exact = abs(a) * abs(b) // 100000
        got = mul_e5(a, b)
        assert abs(abs(got) - exact) <= 2, (a, b, got, exact)
        assert (got < 0) == ((a < 0) != (b < 0)) or got == 0


def test_mul_e4_is_power_in_centiwatts():
    assert mul_e4(20000, 13000) == 26000             # 20 A x 13 V = 260.00 W
    assert mul_e4(1000000, 1275000) == 127500000     # extremes: 1000 A x 1275 V
    assert mul_e4(-150, 3300) == -49
    for a, b in ((123456, 654321), (999, 1), (2000000, 2000000)):
        assert abs(mul_e4(a, b) - a * b // 10000) <= 2


def test_energy_counter_whole_wh_and_extremes():
    e = EnergyCounter()
    for _ in range(3600):
        e.integrate(10000, 1000)         # 100 W for an hour
    assert e.wh == 100 and e.acc_cws == 0 and e.sub == 0
    e.integrate(0, 1000)
    e.integrate(-5, 1000)
    assert e.wh == 100
    e = EnergyCounter()
    for _ in range(7200):
        e.integrate(1, 500)              # 0.01 W for 1 h = 0.01 Wh: still 0 Wh, kept exactly
    assert e.wh == 0 and e.acc_cws == 3600   # 36 Ws = 3600 cWs
    big = EnergyCounter()
    big.integrate(127500000, 600000)     # 1.275 MW for 10 min
    assert big.wh == 212500
    assert big.acc_cws < 360000 and big.sub < 1000


def test_full_detector_needs_consecutive_samples_and_fires_once():
    d = FullEmptyDetector(3, 30000)
    seq = (True, True, False, True, True, True, True)
    fired = []
    for x in seq:
        d.update(x, False, 1000)
        fired.append(d.full)
    assert fired == [False, False, False, False, False, True, False]
    assert d.full_active
    d.update(False, False, 1000)
    assert not d.full_active


def test_empty_detector_needs_sustained_time():
    d = FullEmptyDetector(3, 30000)
    for _ in range(29):
        d.update(False, True, 1000)
        assert not d.empty
    d.update(False, True, 500)
    d.update(False, False, 500)          # one good sample restarts the wait
    for _ in range(29):
        d.update(False, True, 1000)
    assert not d.empty_active
    d.update(False, True, 1000)
    assert d.empty and d.empty_active


def test_counters_allocate_nothing():
    c = SocCounter(20000, 5000)
    e = EnergyCounter()
    d = FullEmptyDetector()

    def cycle():
        c.integrate(-1000000, 1000)
        c.integrate(1000000, 2500)
        e.integrate(127500000, 1000)
        d.update(True, False, 1000)
        mul_e5(1000000, 1275000)
    assert no_alloc(cycle)
