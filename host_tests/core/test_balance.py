"""Balancing: hysteresis, stale link, disabled, thermal derating and hard stop over simulated time."""
from core.balance import CHARGE_MIN_MA, FLOOR_MV, FULL_DUTY, REST_WINDOW_MS, Balancer

import support


def _run(b, cell_mv, vbal=3400, link=True, temp=250, temp_ok=True, cell_ok=True, dt=1000, charging=True):
    return b.update(cell_mv, cell_ok, vbal, link, temp, temp_ok, dt, charging)


def test_hysteresis_sits_above_v_balance_no_chatter():
    b = Balancer(hyst_mv=10, dwell_ms=60000)
    assert _run(b, 3399) == 0            # below V-balance: never
    assert _run(b, 3400) == FULL_DUTY    # at V-balance (resistor off long enough since boot)
    assert _run(b, 3400) == FULL_DUTY
    assert _run(b, 3399) == 0            # below V-balance: off at once
    # noise around V-balance: on at most once per dwell
    ons = 0
    last = 0
    for i in range(600):
        d = _run(b, 3399 + i % 2)          # 3399, 3400, 3399, ...
        if d:
            assert (3399 + i % 2) >= 3400
            if not last:
                ons += 1
        last = d
    assert 9 <= ons <= 10, ons           # ten minutes: one on-switch a minute
    # a margin above V-balance switches on at once, whatever the dwell
    b = Balancer(hyst_mv=10, dwell_ms=60000)
    _run(b, 3400)
    _run(b, 3399)
    assert _run(b, 3409) == 0
    assert _run(b, 3410) == FULL_DUTY
    for _ in range(100):
        assert _run(b, 3400) == FULL_DUTY  # stays on down to V-balance


def test_balancing_cell_is_never_below_v_balance():
    # the invariant the pack's "all cells >= V-balance" needs: whatever the voltage path, a
    # cell read below V-balance is never balanced in that cycle
    b = Balancer()
    mv = 3380
    step = 1
    for _ in range(3000):
        d = _run(b, mv)
        if d:
            assert mv >= 3400, mv
        mv += step
        if mv > 3440 or mv < 3370:
            step = -step


def _lcg(x):
    return (x * 1103515245 + 12345) & 0x3FFFFFFF


def test_cv_taper_does_not_stall_below_v_balance():
    """One cell on a CV charger that tapers toward the 1 A balance current. The charger pushes
    (V-bulk - V) / 40 mOhm into the cell (1 A at V-balance - 10 mV, bulk V-balance + 30 mV), the
    resistor takes 1 A out, the cell moves 0.05 mV per A*s, the reading has +-2 mV noise.
    The old rule (on above V-balance, off 20 mV below it) parked the cell at V-balance - 10 mV
    with the resistor on for ever: "all cells >= V-balance" never came, the charge never ended.
    Ten simulated hours at one cycle per second."""
    b = Balancer()
    vbal = 3400
    v_uv = 3380000
    bulk_uv = (vbal + 30) * 1000
    seed = 7
    ons = 0
    last = 0
    off_run_s = 0
    shortest_off_s = 1 << 20
    above = 0
    below_while_on = 0
    hours = 10
    for t in range(hours * 3600):
        seed = _lcg(seed)
        noise = (seed >> 10) % 5 - 2
        mv = v_uv // 1000 + noise
        d = _run(b, mv, vbal=vbal)
        if d and mv < vbal:
            below_while_on += 1
        if d and not last:
            ons += 1
            if ons > 1 and mv < vbal + 10 and off_run_s < shortest_off_s:
                shortest_off_s = off_run_s
        off_run_s = 0 if d else off_run_s + 1
        last = d
        charge_ma = (bulk_uv - v_uv) // 40 if v_uv < bulk_uv else 0
        bal_ma = 1000 if d else 0
        v_uv += (charge_ma - bal_ma) // 20     # 0.05 mV per A*s
        if t >= (hours - 1) * 3600 and mv >= vbal:
            above += 1
    assert below_while_on == 0
    assert above >= 3600 * 90 // 100, above     # last hour: the cell reads >= V-balance
    # chatter-free: back on at V-balance only after the 60 s dwell, one on-switch a minute at most
    assert shortest_off_s >= 60, shortest_off_s
    assert 0 < ons <= hours * 60, ons


def test_resting_cell_between_v_balance_and_margin_is_drained():
    # a cell at rest just above V-balance (below the margin) blocks the charge relay in normal
    # mode ("all cells < V-balance"); after the dwell it is balanced down below V-balance. The
    # cell relaxes back up a little each time: one switch per dwell at most, until it stays down.
    b = Balancer(hyst_mv=10, dwell_ms=60000)
    ocv = 3407000               # uV; the resistor takes 0.2 mV/s, relaxation gives back 0.1 mV/s
    v = ocv
    ons = 0
    last = 0
    for _ in range(3600):
        mv = v // 1000
        d = _run(b, mv)
        if d:
            assert mv >= 3400
            if not last:
                ons += 1
            v -= 200
            ocv -= 20
        elif v < ocv:
            v += 100 if ocv - v > 100 else ocv - v
        last = d
    assert ocv // 1000 < 3400 and v // 1000 < 3400 and b.duty == 0
    assert 1 <= ons <= 3600 // 60


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


def test_balancing_needs_the_ends_consent_any_chemistry():
    """Issue 20, item 2: a 3.0 V floor let an idle NMC pack (V-min 3.49 V) with its switches at
    3.0 V be drained to 2.998 V, and kept LTO (V-balance 2.6 V) from balancing at all. Now a cell
    balances only while the pack charges (>= CHARGE_MIN_MA: the End's charge relay is closed,
    which the End refuses with a switch below its window) or within REST_WINDOW_MS after: from
    boot at rest nothing balances whatever the switch and the chemistry; every chemistry's
    V-balance works (LTO included); the rest window ends."""
    b = Balancer(dwell_ms=0)
    assert b.floor_mv == FLOOR_MV < 1900                    # below every switch value
    # (cell mV, switch mV) for LiFePO4, LTO, NMC and NCA cells, and a too-low switch on NMC
    for mv, vbal in ((3450, 3400), (2650, 2600), (4050, 4000), (4050, 4000), (3700, 3000)):
        b.reset()
        for _ in range(100):
            assert _run(b, mv, vbal=vbal, charging=False) == 0, (mv, vbal)   # never consented
        assert _run(b, mv, vbal=vbal, charging=True) == FULL_DUTY, (mv, vbal)
        assert _run(b, mv, vbal=vbal, charging=False, dt=REST_WINDOW_MS - 1000) == FULL_DUTY
        assert _run(b, mv, vbal=vbal, charging=False, dt=2000) == 0, (mv, vbal)  # window over
    assert 150 < CHARGE_MIN_MA <= 500                       # beyond the 1-turn dead band
    assert support.no_alloc(lambda: _run(b, 2650, vbal=2600, charging=True))
