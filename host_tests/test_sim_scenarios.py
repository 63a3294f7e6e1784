"""Virtual pack scenarios on the cpython engine: the real firmware (roles, link, cell boards,
pack brain) against the pack model; every assertion is made on the trace file alone."""
import json
import os

import pytest

from sim import engine, scenario, trace

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")


def _run(tmp_path, name_or_dict, duration=None, **kw):
    sc = scenario.load(name_or_dict if isinstance(name_or_dict, dict) else os.path.join(SCEN, name_or_dict + ".json"))
    path = str(tmp_path / "trace.jsonl")
    ext = str(tmp_path / "ext.bin")
    engine.Simulation(sc, trace=path, extout=ext, **kw).run(duration_s=duration)
    header, states, changes = trace.read(path)
    return header, states, changes, ext


def _first(states, pred):
    for r in states:
        if pred(r):
            return r
    return None


def test_every_example_scenario_loads():
    names = [f for f in os.listdir(SCEN) if f.endswith(".json")]
    assert len(names) >= 6
    for f in names:
        sc = scenario.load(os.path.join(SCEN, f))
        assert sc.cells >= 2 and sc.description


def test_scenario_errors_name_the_key():
    for bad, word in (({"pack": {"cels": 4}}, "cels"), ({"faults": [{"t": 1, "kind": "meteor"}]}, "kind"),
                      ({"faults": [{"t": 1, "kind": "link_break", "position": 9}]}, "position"),
                      ({"mode": "turbo"}, "mode")):
        with pytest.raises(scenario.ScenarioError) as e:
            scenario.load(bad)
        assert word in str(e.value)


def test_trace_header_and_lines(tmp_path):
    header, states, changes, ext = _run(tmp_path, "sensor_faults", duration=300)
    assert "t" not in header and header["cells"] == 4 and header["chemistry"] == "lifepo4"
    s = header["settings"]
    for key in ("vmin_mv", "vbal_mv", "vmax_mv", "tmin_charge_dc", "tmin_discharge_dc", "tmax_dc", "capacity_ah",
                "charge_restart_pct", "discharge_restart_pct", "mode", "loop_count"):
        assert isinstance(s[key], int), key
    assert [r["t"] for r in states] == list(range(1, 301))
    for key in ("v_true", "v_meas", "temp", "balancing", "soc_true"):
        assert len(states[-1][key]) == 4
    for key in ("soc_est", "current", "charge_allowed", "load_allowed", "mode", "alarms"):
        assert key in states[-1]
    # the settings change at t=250 is in the trace, and only once
    assert len(changes) == 1 and changes[0]["t"] == 250 and changes[0]["settings"]["vmax_mv"] == 3650
    # open NTC (60..120 s): reported as a sensor fault, never as a cell temperature alarm
    during = [r for r in states if 65 <= r["t"] < 120]
    assert all("temp_sensor_fault" in r["alarms"] for r in during)
    assert not any("over_temp" in r["alarms"] or "under_temp_charge" in r["alarms"] for r in during)
    # cell ADC stuck at 0 V (150..200 s): a sensor fault, both relays open, closed again afterwards
    stuck = [r for r in states if 155 <= r["t"] < 200]
    assert stuck and not any(r["charge_allowed"] or r["load_allowed"] for r in stuck)
    assert all("volt_sensor_fault" in r["alarms"] for r in stuck)
    assert states[-1]["load_allowed"]
    assert os.path.getsize(ext) >= 58 and os.path.getsize(ext) % 58 == 0   # whole extended-output packets


def test_over_voltage_opens_the_charge_relay(tmp_path):
    header, states, _, _ = _run(tmp_path, "over_voltage", duration=900)
    vmax = header["settings"]["vmax_mv"] / 1000.0
    assert any(r["charge_allowed"] for r in states)
    trip = _first(states, lambda r: r["charge_allowed"] and max(v for v in r["v_meas"] if v) >= vmax)
    assert trip is None or not states[trip["t"]]["charge_allowed"]     # opened within one cycle
    # the first frame that carries the crossing opens it (issue 12): the true cell no longer
    # gets 5 mV past V-max
    high = [r for r in states if max(r["v_true"]) >= vmax]
    assert high and not any(r["charge_allowed"] for r in high[2:])
    assert max(max(r["v_true"]) for r in states) < vmax + 0.005
    assert any("over_voltage" in r["alarms"] for r in states if abs(r["t"] - high[0]["t"]) <= 2)
    assert max(max(r["v_true"]) for r in states) < vmax + 0.1                # the BMS stopped it
    assert all(r["load_allowed"] for r in states[5:])                        # load stays on


def test_under_voltage_opens_the_load_relay(tmp_path):
    header, states, _, _ = _run(tmp_path, "under_voltage", duration=200)
    vmin = header["settings"]["vmin_mv"] / 1000.0
    low = [r for r in states if r["t"] > 5 and min(v for v in r["v_meas"] if v) <= vmin]
    assert low
    for r in low:
        nxt = states[r["t"]] if r["t"] < len(states) else r
        assert not nxt["load_allowed"]                  # at the latest the cycle after
    assert min(min(r["v_true"]) for r in states) > vmin - 0.05
    assert all(r["charge_allowed"] for r in states[5:])


def _check_restart_rules(header, states):
    s = header["settings"]
    vmin, vbal = s["vmin_mv"] / 1000.0, s["vbal_mv"] / 1000.0
    closings = 0
    for a, b in zip(states, states[1:], strict=False):
        if b["load_allowed"] and not a["load_allowed"] and b["t"] > 5:
            closings += 1
            assert b["soc_est"] >= s["discharge_restart_pct"] and min(b["v_meas"]) > vmin
        if b["charge_allowed"] and not a["charge_allowed"] and b["t"] > 5:
            closings += 1
            assert b["soc_est"] < s["charge_restart_pct"] and max(b["v_meas"]) < vbal
    return closings


def test_full_recalibrates_soc_and_charge_restart_threshold(tmp_path):
    header, states, _, _ = _run(tmp_path, "charge_full", duration=2400)
    full = _first(states, lambda r: r["soc_calibrated"] and r["soc_est"] == 100.0)
    assert full is not None, "never recalibrated at full"
    assert states[0]["soc_est"] == 50.0 and not states[0]["soc_calibrated"]
    s = header["settings"]
    vbal = s["vbal_mv"] / 1000.0
    assert all(v >= vbal for v in full["v_meas"])          # manual: all cells >= V-balance ...
    assert full["current"] <= 0.05 * s["capacity_ah"]      # ... and charge rate <= 5 % of capacity
    assert not states[full["t"] + 2]["charge_allowed"]     # charge relay open at full
    again = _first(states[full["t"]:], lambda r: r["charge_allowed"])
    assert again is not None and again["soc_est"] < s["charge_restart_pct"]
    assert abs(again["soc_est"] - again["soc_true_pack"]) < 3.0
    assert _check_restart_rules(header, states) >= 1


def test_temperature_limits(tmp_path):
    header, states, _, _ = _run(tmp_path, "temperature")
    at = {r["t"]: r for r in states}
    assert at[99]["charge_allowed"] and at[99]["load_allowed"]
    hot = [at[t] for t in range(105, 300)]
    assert not any(r["charge_allowed"] or r["load_allowed"] for r in hot)
    assert all("over_temp" in r["alarms"] for r in hot)
    assert at[320]["charge_allowed"] and at[320]["load_allowed"]
    cold = [at[t] for t in range(505, 700)]
    assert not any(r["charge_allowed"] for r in cold) and all(r["load_allowed"] for r in cold)
    assert all("under_temp_charge" in r["alarms"] for r in cold)
    assert at[720]["charge_allowed"]
    _check_restart_rules(header, states)


def test_comm_loss_opens_both_and_reports_the_break(tmp_path):
    header, states, _, _ = _run(tmp_path, "comm_loss")
    at = {r["t"]: r for r in states}
    timeout_s = header["settings"]["comm_timeout_cycles"] * header["settings"]["cycle_ms"] // 1000
    for t0, t1 in ((100, 200), (300, 400)):
        assert at[t0 - 1]["charge_allowed"] and at[t0 - 1]["load_allowed"]
        cut = [at[t] for t in range(t0 + timeout_s + 1, t1)]
        assert not any(r["charge_allowed"] or r["load_allowed"] for r in cut)
        assert all("comm_lost" in r["alarms"] for r in cut)
    # the first loss recovers; the second within 10 minutes holds the relays open (issue 20)
    assert at[220]["charge_allowed"] and at[220]["load_allowed"]
    held = [at[t] for t in range(400 + 20, 500)]
    assert not any(r["charge_allowed"] or r["load_allowed"] for r in held)
    assert all("link_quality" in r["alarms"] and r["powered"] == [True] * 5 for r in held)
    assert at[150]["break_position"] == 3        # the first board whose input failed
    assert at[350]["powered"][2] is False and at[350]["balancing"][2] is False


def test_seed_makes_runs_reproducible(tmp_path):
    d = {"duration_s": 30, "pack": {"cells": 3, "soc_pct": 50}, "charger": {"max_a": 2}}
    a = _run(tmp_path, d, seed=3)[1]
    b = _run(tmp_path, d, seed=3)[1]
    assert json.dumps(a) == json.dumps(b)


@pytest.mark.parametrize("eng", ["cpython", "micropython"])
def test_watchdog_reset_restarts_safe_and_reports_it(tmp_path, eng):
    """A watchdog_reset fault, on both engines: the board's outputs go safe at once, its
    role is rebuilt from its image and data folder with reset_cause() "watchdog", the End board
    reports the reset at that cell (CellStatus.WATCHDOG_RESET), SoC and settings come back from
    the data files; the trace's per-cell status comes from the End board's snapshot."""
    from core import store
    from core.snapshot import CellStatus
    d = {"duration_s": 90, "pack": {"cells": 4, "capacity_ah": 40, "soc_pct": 50, "soc_spread_pct": 0.5},
         "charger": {"max_a": 5}, "load": {"a": 3},
         "events": [{"t": 5, "settings": {"vmax_mv": 3650}}],
         "faults": [{"t": 20, "kind": "watchdog_reset", "cell": 2},
                    {"t": 50, "kind": "watchdog_reset", "cell": 4}]}
    sc = scenario.load(d)
    path = str(tmp_path / "trace.jsonl")
    workdir = str(tmp_path / "boards")
    os.makedirs(os.path.join(workdir, "board004"))
    store.save(os.path.join(workdir, "board004", "soc.json"), "soc", 1, {"soc_c": 6543, "capacity_ah": 40})
    sim = engine.Simulation(sc, engine=eng, trace=path, workdir=workdir)
    sim.run()
    assert [b.reset_cause() for b in sim.boards] == ["power", "watchdog", "power", "watchdog"]
    header, states, changes = trace.read(path)
    assert header["engine"] == eng
    at = {r["t"]: r for r in states}
    for r in states:                                    # status filled on both engines
        assert len(r["status"]) == 4 and all(isinstance(x, int) and 0 <= x <= 255 for x in r["status"])
        assert r["powered"] == [True] * 4               # a reset is not a power loss
    assert at[19]["charge_allowed"] and at[19]["load_allowed"] and 65.0 < at[19]["soc_est"] < 65.5
    assert not any(x["status"][1] & CellStatus.WATCHDOG_RESET for x in states if x["t"] < 20)
    # board 2 reports its watchdog reset at its position, once (cleared after good frames)
    seen = [x["t"] for x in states if x["status"][1] & CellStatus.WATCHDOG_RESET]
    assert seen and 20 < seen[0] <= 23 and seen[-1] < 30, seen
    assert not any(x["status"][i] & CellStatus.WATCHDOG_RESET for x in states for i in (0, 2))
    # the End board: both relays open at once (outputs safe first), back once frames arrive,
    # its own reset at position 4, the saved SoC and the changed V-max back (not 50 %, not 3700)
    assert not at[51]["charge_allowed"] and not at[51]["load_allowed"]
    assert at[60]["charge_allowed"] and at[60]["load_allowed"]
    assert any(x["status"][3] & CellStatus.WATCHDOG_RESET for x in states if 50 < x["t"] <= 53)
    assert abs(at[51]["soc_est"] - at[49]["soc_est"]) < 0.5
    assert [c["t"] for c in changes] == [5] and changes[0]["settings"]["vmax_mv"] == 3650
    assert not any("settings_invalid" in x["alarms"] for x in states)
    # and no sensor fault bits from a restart
    assert not any(x["status"][i] & (CellStatus.VOLT_SENSOR_FAULT | CellStatus.TEMP_SENSOR_FAULT)
                   for x in states[5:] for i in range(4))


def test_watchdog_reset_is_instant():
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.load({"faults": [{"t": 1, "until": 5, "kind": "watchdog_reset", "cell": 1}]})
    assert "until" in str(e.value)


def _low_switch_checks(header, states):
    assert header["settings"]["vmin_mv"] == 2900 and header["settings"]["balance_switch_mv"] == 2500
    first = _first(states, lambda r: "balance_switch_invalid" in r["alarms"])
    assert first is not None and first["t"] <= 5               # from the first complete frame
    assert all("balance_switch_invalid" in r["alarms"] for r in states[first["t"]:])
    assert not any(any(r["balancing"]) for r in states)         # no board ever balances
    v0 = states[0]["v_true"]
    for r in states:
        assert all(abs(a - b) < 0.005 for a, b in zip(r["v_true"], v0, strict=True)), r["t"]
        assert "under_voltage" not in r["alarms"]


def test_low_balance_switch_never_drains_the_pack(tmp_path):
    """Issue 13, item 3 (cpython engine): switch 2.5 V on LiFePO4, V-min 2.9 V."""
    header, states, _, _ = _run(tmp_path, "low_balance_switch", duration=900)
    _low_switch_checks(header, states)


@pytest.mark.parametrize("chem,switch_mv", [("lifepo4", 2500), ("nmc", 3000), ("nca", 3000), ("lto", 1900)])
def test_a_too_low_switch_never_drains_any_chemistry_even_without_a_floor(tmp_path, monkeypatch, chem, switch_mv):
    """Issue 20, item 2: the floor was the only guard, and it fitted LiFePO4 only (an idle NMC
    pack with switches at 3.0 V ended at 2.998 V, V-min 3.49 V; NCA at 3.176 V). Now balancing
    needs the End board's consent (charge current, which the End withholds with a switch below
    its window): with the floor taken out altogether, a switch below V-min on an idle pack of
    each chemistry balances no cell, the End raises balance_switch_invalid, the cells keep
    their charge (judged on the true cell voltage)."""
    import board_defs.pico
    monkeypatch.setattr(board_defs.pico, "BALANCE_FLOOR_MV", 0)
    with open(os.path.join(SCEN, "low_balance_switch.json")) as f:
        d = json.load(f)
    d["pack"]["chemistry"] = chem
    d["pack"]["soc_pct"] = 30
    d["balance_mv"] = switch_mv
    d.pop("settings", None)
    header, states, _, _ = _run(tmp_path, d, duration=600)
    vmin = header["settings"]["vmin_mv"] / 1000.0
    assert switch_mv / 1000.0 < vmin + 0.2
    assert "balance_switch_invalid" in states[-1]["alarms"]
    assert not any(any(r["balancing"]) for r in states)
    assert min(min(r["v_true"]) for r in states) > vmin
    v0 = states[0]["v_true"]
    assert all(abs(a - b) < 0.005 for a, b in zip(states[-1]["v_true"], v0, strict=True))
