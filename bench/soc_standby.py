"""SoC with a standby load inside the current sensors' dead band (issue 13), a compressed week.

Scenario sim/scenarios/soc_standby_week.json: 2 x LiFePO4, 100x time compression (day 864 s,
1 Ah cells, currents and the 100 Ah cell's resistances unchanged: every charge is the same
fraction of the pack as in a real day, as in bench/accuracy.py), a 0.14 A standby load (inside
the +-150 mA dead band at one turn), weak sun on days 1 and 5-7, none on days 2-4. The End
board's soc.json holds the true start SoC (known start). Before issue 13 the standby load was
never counted (+3.4 %/day of error) and the empty recalibration never fired.

Figures: max |estimated - true| over the week (% SoC), the second the empty recalibration fired
(soc_est 0 %, soc_calibrated in the trace) and the true SoC then.
"""
import os
import shutil
import tempfile

from sim import paths  # noqa: F401
from sim import scenario as scenario_mod

SCENARIO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios",
                        "soc_standby_week.json")


def standby_run(engine="cpython", overrides=None, workdir=None):
    """Run the standby scenario (``overrides``: top-level keys / ``pack.soc_pct`` replaced) from
    a known start; returns the figures dict."""
    import json

    from sim import fw
    store = fw.core("store")
    STATE_KIND, STATE_VERSION = fw.core("brain").STATE_KIND, fw.core("brain").STATE_VERSION
    from sim.engine import Simulation
    with open(SCENARIO) as f:
        d = json.load(f)
    for k, v in (overrides or {}).items():
        if k == "soc_pct":
            d["pack"]["soc_pct"] = v
        else:
            d[k] = v
    sc = scenario_mod.load(d)
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="cellchain-bench-standby-")
    try:
        end_dir = os.path.join(workdir, "board%03d" % sc.cells)
        os.makedirs(end_dir, exist_ok=True)
        store.save(os.path.join(end_dir, "soc.json"), STATE_KIND, STATE_VERSION,
                   {"soc_c": int(round(sc.soc * 10000)), "capacity_ah": int(sc.capacity_ah)})
        sim = Simulation(sc, engine=engine, workdir=workdir)
        sim.keep_history = False
        acc = {"max": 0.0, "max_t": 0, "empty_t": None, "empty_true": None, "load_off_t": None,
               "start_est": None, "start_true": None, "end_est": None, "end_true": None,
               "load_was_on": False}

        def on_second(s, rec):
            if rec["soc_est"] is None:
                return
            e = abs(rec["soc_est"] - rec["soc_true_pack"])
            if e > acc["max"]:
                acc["max"] = e
                acc["max_t"] = rec["t"]
            if acc["start_est"] is None:
                acc["start_est"], acc["start_true"] = rec["soc_est"], rec["soc_true_pack"]
            if acc["load_off_t"] is None and acc["load_was_on"] and not rec["load_allowed"]:
                acc["load_off_t"] = rec["t"]                    # the V-min trip
            acc["load_was_on"] = rec["load_allowed"]
            if acc["empty_t"] is None and rec["soc_calibrated"] and rec["soc_est"] == 0.0:
                acc["empty_t"], acc["empty_true"] = rec["t"], rec["soc_true_pack"]
            acc["end_est"], acc["end_true"] = rec["soc_est"], rec["soc_true_pack"]
        sim.run(on_second=on_second)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"max_error_pct": round(acc["max"], 2), "max_error_t": acc["max_t"],
            "empty_recal_t": acc["empty_t"], "true_soc_at_empty_pct": acc["empty_true"],
            "load_off_t": acc["load_off_t"], "start": [acc["start_est"], acc["start_true"]],
            "end": [acc["end_est"], acc["end_true"]], "duration_s": sc.duration_s, "day_s": 864}


def run(results):
    results["soc_standby"] = standby_run()
