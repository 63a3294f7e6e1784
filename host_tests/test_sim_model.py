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


def test_ocv_follows_data_sheet_curves():
    lfp = lambda soc: float(chemistry.ocv("lifepo4", soc))  # noqa: E731
    # LiFePO4: upper plateau 3.32-3.35 V from 60 % to 98 %, the knee in the last percent
    for soc in (0.6, 0.7, 0.8, 0.9, 0.95, 0.98):
        assert 3.30 < lfp(soc) <= 3.35, soc
    assert 3.28 <= lfp(0.4) <= 3.30 and 3.18 <= lfp(0.1) <= 3.24
    # the lower knee: V-min of the preset (2.90 V) within the last 1.5 %, 2.5 V cut-off at 0 %
    assert 0.005 < chemistry.soc_for_ocv("lifepo4", 2.90) <= 0.015 and abs(lfp(0.0) - 2.5) < 1e-9
    # a cell resting at V-balance (3.40 V) or at the CV bulk voltage (3.43 V) is > 99.5 % full
    assert chemistry.soc_for_ocv("lifepo4", 3.40) > 0.995
    assert chemistry.soc_for_ocv("lifepo4", 3.43) > 0.998
    assert chemistry.soc_for_ocv("lifepo4", 3.35) <= 0.98
    # the data sheet's 3.65 V charge adds only tenths of a percent; beyond, over-charge runs away
    assert 1.0 < chemistry.soc_for_ocv("lifepo4", 3.65) <= 1.011
    assert lfp(1.05) >= 4.0
    # LTO resting at its V-balance (2.60 V) > 99 %; NMC/NCA 4.18 V at 100 %
    assert chemistry.soc_for_ocv("lto", 2.60) > 0.99
    for name in ("nmc", "nca"):
        assert abs(float(chemistry.ocv(name, 1.0)) - 4.18) < 0.005
        assert 3.6 < float(chemistry.ocv(name, 0.5)) < 3.75
    assert len(chemistry.SOC_POINTS) == len(chemistry.OCV["lifepo4"])


def test_scenario_resistances_are_not_scaled_with_capacity():
    # default: the chemistry's 100 Ah values scaled by 100 / capacity
    p = _pack(capacity_ah=10.0)
    assert np.allclose(p.r1, 10 * chemistry.PARAMS["lifepo4"]["r1"])
    assert np.all(p.r0_25 >= 10 * chemistry.PARAMS["lifepo4"]["r0"])
    # explicit R0: used as given (+ the per-cell spread), R1 keeps the chemistry's R1/R0 ratio
    p = _pack(capacity_ah=2.0, r0_ohm=0.0008)
    assert np.all((p.r0_25 >= 0.0008) & (p.r0_25 < 0.0008 * 1.5))
    assert np.allclose(p.r1, 0.0008 * 0.0006 / 0.0008)
    # explicit RC pair and balance resistor
    p = _pack(capacity_ah=2.0, r0_ohm=0.001, r1_ohm=0.002, tau_s=30.0, balance_ohm=68.0)
    assert np.allclose(p.r1, 0.002) and np.allclose(p.tau_s, 30.0) and p.balance_ohm == 68.0
    # through the scenario file keys (mOhm, s, ohm)
    from sim import scenario
    sc = scenario.load({"pack": {"capacity_ah": 2, "r0_mohm": 0.8, "r1_mohm": 0.6, "tau_s": 45, "balance_ohm": 68}})
    assert (sc.r0_ohm, sc.r1_ohm, sc.tau_s, sc.balance_ohm) == (0.0008, 0.0006, 45.0, 68.0)
    for bad in ({"r1_mohm": 0}, {"tau_s": -1}, {"balance_ohm": "x"}, {"r0_mohm": True}):
        with pytest.raises(scenario.ScenarioError) as e:
            scenario.load({"pack": bad})
        assert list(bad)[0] in str(e.value)


def test_small_cells_with_scenario_resistance_do_not_empty_falsely():
    # 2 Ah cells with the R0 of 100 Ah cells at 15 A (bench time compression): after 0.5 Ah
    # out (50 % -> 25 %) the terminal voltage is still on the plateau, above 3.2 V (with the RC
    # pair scaled by 100 / 2 it fell ~0.4 V more, below V-min 2.9 V: a quarter-full pack "empty")
    p = _pack(capacity_ah=2.0, r0_ohm=0.0008)
    p.self_discharge_per_s[:] = 0.0
    for _ in range(120):
        p.step(-15.0, 1.0)
    assert np.allclose(p.soc, 0.5 - 15.0 * 120 / 7200.0)
    assert np.all(p.v_true > 3.2)


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
