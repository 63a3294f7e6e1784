"""Virtual pack: the cell/pack model, charger, load and relay wiring (CPython only, numpy)."""
import numpy as np
import pytest

from sim import chemistry, power
from sim.model import Pack


def _pack(**kw):
    args = dict(cells=4, chem="lifepo4", capacity_ah=10.0, soc=0.5, capacity_spread=0.0, soc_spread=0.0,
                rng=np.random.default_rng(1))
    args.update(kw)
    return Pack(**args)


def test_ocv_tables_monotonic_with_chemistry_shapes():
    for name in chemistry.NAMES:
        v = np.array(chemistry.OCV[name])
        assert np.all(np.diff(v) > 0), name
    lfp = chemistry.ocv("lifepo4", np.array([0.2, 0.5, 0.9]))
    assert lfp[2] - lfp[0] < 0.1                      # LiFePO4: flat plateau
    assert chemistry.ocv("lifepo4", 1.0) - chemistry.ocv("lifepo4", 0.95) > 0.08  # top knee
    assert chemistry.ocv("nmc", 0.9) - chemistry.ocv("nmc", 0.2) > 0.4           # NMC: slope
    assert abs(chemistry.ocv("lto", 0.5) - 2.32) < 0.01
    assert abs(chemistry.soc_for_ocv("nca", chemistry.ocv("nca", 0.37)) - 0.37) < 1e-9
    with pytest.raises(ValueError):
        chemistry.check("lead")


def test_coulomb_counting_of_the_model():
    p = _pack()
    p.self_discharge_per_s[:] = 0.0
    for _ in range(360):
        p.step(10.0, 10.0)    # 10 A for an hour = 10 Ah = full capacity from 50 %
    assert np.allclose(p.soc, 1.05)  # clipped at the over-charge limit
    p = _pack()
    p.self_discharge_per_s[:] = 0.0
    p.step(-5.0, 720.0)       # 1 Ah out of 10 Ah
    assert np.allclose(p.soc, 0.4)


def test_series_resistance_and_rc_pair():
    p = _pack()
    v0 = p.v_true.copy()
    p.step(10.0, 0.001)
    jump = p.v_true - v0
    assert np.all(jump > 0) and np.allclose(jump, 10.0 * p.r0(), rtol=0.05)
    for _ in range(600):
        p.step(10.0, 1.0)
    assert np.allclose(p.vrc, 10.0 * p.r1, rtol=0.01)   # RC pair settled after 10 tau


def test_balance_resistor_drains_only_its_cell_and_heats_it():
    p = _pack()
    p.self_discharge_per_s[:] = 0.0
    p.balance_duty[2] = 1.0
    for _ in range(3600):
        p.step(0.0, 1.0)
    drop = 0.5 - p.soc
    assert drop[2] > 0.08 and np.allclose(drop[[0, 1, 3]], 0.0)
    assert 0.8 < p.balance_a[2] < 1.2                  # about 1 A, manual
    assert p.temp_c[2] > p.temp_c[0] + 0.3


def test_temperature_rises_with_current_and_cools_to_ambient():
    p = _pack(ambient_c=20.0)
    for _ in range(1800):
        p.step(20.0 if p.soc[0] < 0.9 else -20.0, 1.0)
    assert p.temp_c.min() > 21.0
    for _ in range(20000):
        p.step(0.0, 1.0)
    assert np.allclose(p.temp_c, 20.0, atol=0.3)


def test_self_discharge_and_fast_ageing():
    p = _pack()
    p.step(0.0, 30 * 86400.0)
    assert np.allclose(p.soc, 0.5 - 0.03)
    p = _pack()
    p.fade_per_as[1] = 2e-5
    cap0 = p.cap_as.copy()
    for _ in range(100):
        p.step(5.0, 10.0)
        p.step(-5.0, 10.0)
    assert p.cap_as[1] < 0.9 * cap0[1] and np.allclose(p.cap_as[[0, 2, 3]], cap0[[0, 2, 3]])


def test_charger_cc_then_cv_at_bulk_voltage():
    p = _pack(soc=0.3)
    bulk = power.bulk_voltage(3400, 4)
    assert bulk == pytest.approx(13.72)                  # manual step 6: 13.6 V + 0.03 V per cell
    ch = power.Charger(bulk, 5.0)
    ld = power.Load("constant", 0.0)
    seen_cc = False
    for t in range(20000):
        ic, il = power.currents(p, ch, ld, True, True, t)
        seen_cc = seen_cc or ic == 5.0
        p.step(ic - il, 1.0)
    assert seen_cc
    assert p.pack_voltage() == pytest.approx(bulk, abs=0.01)
    assert ic < 0.5                                       # tapered in CV


def test_charger_feeds_the_load_first_and_solar_day():
    p = _pack()
    ch = power.Charger(13.72, 10.0)
    ld = power.Load("constant", 4.0)
    ic, il = power.currents(p, ch, ld, True, True, 0.0)
    assert il == 4.0 and ic == 10.0
    ic, il = power.currents(p, ch, ld, False, True, 0.0)
    assert ic == 0.0
    sol = power.Charger(13.0, 10.0, profile="solar")
    assert sol.available_a(0.0) == 0.0                     # midnight
    assert sol.available_a(12 * 3600.0) == pytest.approx(10.0)
    assert 0 < sol.available_a(8 * 3600.0) < 10.0


def test_load_profiles_and_schedule(tmp_path):
    f = tmp_path / "load.csv"
    f.write_text("t_s,load_a\n0,1\n100,3\n200,1\n")
    ld = power.Load("csv", csv_path=str(f))
    assert ld.demand_a(50.0) == pytest.approx(2.0)
    assert ld.demand_a(250.0) == pytest.approx(2.0)     # repeats
    dn = power.Load("daynight", 2.0, evening_a=8.0)
    assert dn.demand_a(3 * 3600.0) == 2.0 and dn.demand_a(19 * 3600.0) == 8.0
    sch = power.Schedule([[100, False], [200, True]])
    assert sch.on(0) and not sch.on(150) and sch.on(250)


def test_wiring_separate_and_combined():
    sep = power.Wiring("separate")
    assert sep.enabled(True, False) == (True, False)
    comb = power.Wiring("combined")
    assert comb.enabled(True, False) == (False, False)
    assert comb.enabled(True, True) == (True, True)
