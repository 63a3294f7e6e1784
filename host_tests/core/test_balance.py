"""Balancing: hysteresis, stale link, disabled, thermal derating and hard stop over simulated time."""
from core.balance import FULL_DUTY, Balancer

import support


def _run(b, cell_mv, vbal=3400, link=True, temp=250, temp_ok=True, cell_ok=True, dt=1000):
    return b.update(cell_mv, cell_ok, vbal, link, temp, temp_ok, dt)


def test_hysteresis_no_chatter():
    b = Balancer(hyst_mv=20)
    assert _run(b, 3400) == 0            # "above" V-balance, not at it
    assert _run(b, 3401) == FULL_DUTY
    # noise around V-balance does not switch it off
    switches = 0
    last = b.duty
    for i in range(200):
        mv = 3400 + (7 if i % 2 else -15)   # 3385..3407
        d = _run(b, mv)
        if d != last:
            switches += 1
            last = d
    assert switches == 0 and b.duty == FULL_DUTY
    assert _run(b, 3381) == FULL_DUTY
    assert _run(b, 3379) == 0
    # and noise below the on-threshold does not switch it on
    for i in range(100):
        assert _run(b, 3395 - (i % 10)) == 0


def test_cell_drains_to_hysteresis_band_over_time():
    # simulated cell: balancing at 1 A drains 2 mV per minute, charger pushes 1 mV/min otherwise
    b = Balancer(hyst_mv=20)
    mv = 3450
    ons = 0
    for _minute in range(600):
        d = _run(b, mv, dt=60000)
        if d and not b.wanted:
            raise AssertionError("duty without want")
        mv += -2 if d else 1
        if d:
            ons += 1
        assert 3370 <= mv <= 3460
    # with 20 mV hysteresis it cycles in long stretches, not every minute
    assert 0 < ons < 600
    assert b.on_s == ons * 60


def test_off_when_disabled_stale_or_not_data():
    b = Balancer()
    assert _run(b, 3600) == FULL_DUTY
    assert _run(b, 3600, vbal=0) == 0
    assert _run(b, 3600) == FULL_DUTY
    assert _run(b, 3600, link=False) == 0
    assert _run(b, 3600) == FULL_DUTY
    assert _run(b, 3600, cell_ok=False) == 0
    assert _run(b, 3600) == FULL_DUTY
    assert _run(b, 3600, temp_ok=False) == 0     # board temperature unknown: off on doubt
    assert not b.derated
    assert _run(b, 3600) == FULL_DUTY


def test_thermal_derating_curve():
    b = Balancer(derate_dc=600, stop_dc=750, resume_dc=650, min_duty=200)
    assert _run(b, 3600, temp=600) == FULL_DUTY and not b.derated
    d1 = _run(b, 3600, temp=650)
    d2 = _run(b, 3600, temp=700)
    d3 = _run(b, 3600, temp=749)
    assert FULL_DUTY > d1 > d2 > d3 >= 200 and b.derated
    assert abs(d1 - (1000 - 800 * 50 // 150)) <= 1
    assert _run(b, 3600, temp=750) == 0 and b.hot_stop and b.derated
    # hard stop holds until it cools below resume
    assert _run(b, 3600, temp=700) == 0
    assert _run(b, 3600, temp=651) == 0
    d = _run(b, 3600, temp=649)
    assert d > 0 and not b.hot_stop


def test_thermal_simulation_settles_below_stop():
    # board heats 0.8 degC/s at full duty (would reach 105 degC), cools toward 25 degC, cools toward 25 degC ambient
    b = Balancer()
    temp10 = 250 * 10     # 0.01 degC
    max_t = 0
    for _ in range(3600):
        d = _run(b, 3700, temp=temp10 // 10)
        temp10 += 8 * d // 100 - (temp10 - 2500) // 100
        max_t = max(max_t, temp10 // 10)
    assert max_t < 750 + 10       # never runs away past the hard stop
    assert b.duty > 0             # still balancing, derated
    assert b.derated


def test_bad_limits_refused():
    support.raises(ValueError, Balancer, 20, 700, 600)
    support.raises(ValueError, Balancer, 20, 600, 750, 800)
    support.raises(ValueError, Balancer, 20, 600, 750, 650, 0)


def test_measure_duty_and_reset():
    b = Balancer()
    _run(b, 3600)
    assert b.active and b.measure_duty() == 0
    b.reset()
    assert b.duty == 0 and not b.wanted and not b.active


def test_update_allocates_nothing():
    b = Balancer()
    temps = [200 + 10 * i for i in range(60)]

    def run():
        for t in temps:
            b.update(3600 if t & 16 else 3300, True, 3400, True, t, True, 997)

    assert support.no_alloc(run)
