"""The gateway's closed loop against relay-only control (issue 23), on the virtual pack.

A 16 x 40 Ah LiFePO4 pack with a 3 % cell spread (cell 5 starts 3 % of capacity ahead of the
others) charged at 20 A from 90 %:

* relay-only: the charger holds 3.55 V per cell (56.8 V) and only the End board's charge relay
  protects the cells (what a charger without a BMS link does);
* closed loop: the gateway (roles/gateway.py) reads the End's extended output and sends the
  Victron profile to a virtual Victron MPPT that obeys CVL only (sim/inverter.py; feed-in on, so
  CCL is ignored), and the same with the Pylontech profile to a virtual Deye.

Reported per run: V-max relay trips (rising edges of the over_voltage alarm), the highest true
cell voltage, the top cell's highest excursion over the law's target, time to full (the End's
SoC recalibrated to 100 %). Then the End board is switched off while the inverter runs, and
the time until the inverter stops is measured (gateway stop set, else its own 0x351 timeout).
Writes docs/img/gateway-closed-loop.png.
"""
import os

from sim import scenario
from sim.engine import Simulation

HERE = os.path.dirname(os.path.abspath(__file__))
FIG = os.path.join(os.path.dirname(HERE), "docs", "img", "gateway-closed-loop.png")
CELLS = 16
SPREAD = {"name": "gateway_bench", "duration_s": 3 * 3600,
          "pack": {"cells": CELLS, "chemistry": "lifepo4", "capacity_ah": 40, "soc_pct": 90, "soc_spread_pct": 0.2,
                   "capacity_spread_pct": 0.5, "cell_soc_pct": {5: 93}},
          "charger": {"max_a": 20, "bulk_mv_per_cell": 3550},
          "load": {"a": 10, "schedule": [[0, False]]}}


def charge(gateway, duration_s=None):
    sim = Simulation(scenario.load(dict(SPREAD)), gateway=gateway, seed=3)
    st = {"trips": 0, "ov": False, "vmax": 0.0, "full_t": None, "t": [], "top": [], "cvl": []}

    def on(s, rec):
        top = max(rec["v_true"])
        st["vmax"] = max(st["vmax"], top)
        ov = "over_voltage" in rec["alarms"]
        st["trips"] += ov and not st["ov"]
        st["ov"] = ov
        st["t"].append(rec["t"])
        st["top"].append(top)
        g = rec.get("gw")
        st["cvl"].append(g["cvl_v"] / CELLS if g and g["fresh"] else None)
        if st["full_t"] is None and rec.get("soc_calibrated") and (rec["soc_est"] or 0) >= 99.9:
            st["full_t"] = rec["t"]

    def stop(s, rec):
        return st["full_t"] is not None and rec["t"] >= st["full_t"] + 120

    sim.keep_history = False
    sim.run(duration_s=duration_s, on_second=on, stop=stop)
    out = {"vmax_trips": st["trips"], "top_cell_peak_v": round(st["vmax"], 4), "full_after_s": st["full_t"]}
    if sim.gateway is not None:
        out["top_cell_over_target_mv"] = sim.gateway.top_over_target_mv
        out["target_v"] = sim.gateway.role.law.target_mv / 1000.0
    return out, st


def end_death(profile):
    sc = dict(SPREAD, duration_s=200, faults=[{"t": 100, "kind": "board_power_loss", "cell": CELLS}])
    sc["pack"] = dict(SPREAD["pack"], soc_pct=60, cell_soc_pct={})
    sc["load"] = {"a": 10}
    sim = Simulation(scenario.load(sc), gateway=profile)
    sim.keep_history = False
    sim.run()
    return sim.gateway.stop_after_end_death_s


def figure(runs, path=FIG):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 5))
    for label, st in runs:
        t = [x / 60.0 for x in st["t"]]
        ax.plot(t, st["top"], label="highest cell, " + label)
        if any(c is not None for c in st["cvl"]):
            ax.plot(t, [float("nan") if c is None else c for c in st["cvl"]], linestyle="--", linewidth=0.8,
                    label="CVL / %d cells, %s" % (CELLS, label))
    ax.axhline(3.70, color="red", linewidth=1.0, label="V-max 3.70 V (charge relay trips)")
    ax.axhline(3.60, color="black", linestyle=":", linewidth=1.0, label="closed-loop target 3.60 V")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("V")
    ax.set_ylim(3.35, 3.75)
    ax.set_title("16 x 40 Ah LiFePO4, one cell 3 % ahead, 20 A: relay-only vs gateway closed loop")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(results, figure_path=FIG):
    relay, st_relay = charge(None, duration_s=2 * 3600)
    victron, st_v = charge("victron")
    pylon, _ = charge("pylon")
    res = {"cells": CELLS, "spread_pct": 3, "charge_a": 20,
           "relay_only": relay, "closed_loop_victron": victron, "closed_loop_pylon": pylon,
           "end_death_to_inverter_stop_s": {p: end_death(p) for p in ("victron", "pylon")}}
    if figure_path:
        res["figure"] = os.path.relpath(figure(
            [("relay-only (charger 3.55 V/cell)", st_relay), ("gateway, Victron profile", st_v)], figure_path),
            os.path.dirname(HERE))
    results["gateway"] = res
    return res
