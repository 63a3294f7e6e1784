"""SoC and balancing accuracy on the virtual pack (issue 9, figure 5).

Pack: LiFePO4 cells with the model's default 1 % capacity spread, on the solar_day profile
(solar charger, 40 A peak between 6:00 and 18:00 of the day; household load 5 A, 15 A from
17:00 to 23:00), separate wiring, two current sensors with the simulator's sensor noise, fixed
offsets within the manual's accuracy and the firmware's dead band (docs/virtual-pack.md).

Time compression (the cpython engine runs every board's real role code and the link, about
1.5-3 ms of CPU per simulated second for 2-4 cells, so a real week would take half an hour):
the day lasts DAY_S = 86400 / K seconds and the cells have 100 / K Ah, with the currents
unchanged and the series resistance and RC pair of a 100 Ah cell given in the scenario
(``r0_mohm``, ``r1_mohm``: explicit resistances are not scaled with the capacity). Every charge
that flows is then the same fraction of the capacity as in a real day on a 100 Ah pack, so
current-sensor offsets, noise and the dead band move the SoC estimate by the same percentage
per day. The simulated week is 7 such days. The balance resistors are K times the chemistry's
(scenario ``balance_ohm``), so balancing moves the same fraction of the capacity per day as 1 A
does on a 100 Ah cell. Firmware timings (1 s cycle, 3 samples to detect full, 30 s to detect
empty) are not compressed; they are short against a compressed day.
SoC runs use SOC_CELLS cells (the estimate depends on the cell count only through which cell
reaches V-balance first), the balancing runs CELLS cells.

SoC, two starts, each with and without recalibration:
- known start: the pack at START_SOC_PCT, the End board's soc.json holding that true SoC
  (written before boot with core.store, as a board finds it after a restart);
- unknown start: the pack at UNKNOWN_SOC_PCT and no saved state, so the brain starts at 50 %,
  not calibrated (a new pack, or a lost soc.json), 30 % under the truth: the full
  recalibration corrects that at the first full charge; without it only the count's 0 % floor
  does, once the pack has been run down to V-min (the estimate sits at 0 % while the pack still
  delivers).
Error = estimated - true (pack mean of the model's cell SoC), each simulated second: max |error|
and RMS over the week, max |error| over the last day (the settled figure) and ``settled_at_day``
(the end of the last second with |error| >= SETTLED_PCT).
Without recalibration: the pack brain's full/empty detector (``brain._det``) is replaced in this
bench only by one that never fires (monkeypatch; the firmware is not changed); everything else,
including the V-min cap of the SoC and the 0..100 % limits of the count, is as on a board.

Balancing: 10 such days starting from a 3 % SoC spread (normal, 1 sigma) plus the 1 %
capacity spread, with balancing on (Begin switches 4-8 at V-balance) and off (switches 4-8 all
off: ``balance_mv`` 0). Spread = highest - lowest true cell voltage at the top of charge of the
last day (the second of that day with the highest pack voltage), in mV.
"""
import os
import shutil
import tempfile

from sim import paths  # noqa: F401
from sim import chemistry
from sim import scenario as scenario_mod

K = 20                    # time compression
DAY_S = 86400 // K
CELLS = 4
SOC_CELLS = 2
SOC_DAYS = 7
BAL_DAYS = 10
START_SOC_PCT = 40        # known start (soc.json holds it)
UNKNOWN_SOC_PCT = 80      # unknown start: true SoC; the brain starts at 50 %
WORKERS = 2
SETTLED_PCT = 3.0
R0_MOHM = 1000.0 * chemistry.PARAMS["lifepo4"]["r0"]      # a 100 Ah cell's, not scaled
R1_MOHM = 1000.0 * chemistry.PARAMS["lifepo4"]["r1"]


def capacity_ah(day_s):
    """Cell capacity for a day of day_s seconds: 100 Ah compressed like the day."""
    return max(1, int(round(100.0 * day_s / 86400)))


def _scenario(days, soc_spread_pct=0.0, balance_mv=None, day_s=DAY_S, cells=CELLS, soc_pct=START_SOC_PCT):
    cap = capacity_ah(day_s)
    d = {"name": "bench_accuracy", "duration_s": days * day_s,
         "pack": {"cells": cells, "chemistry": "lifepo4", "capacity_ah": cap, "soc_pct": soc_pct,
                  "soc_spread_pct": soc_spread_pct, "r0_mohm": R0_MOHM, "r1_mohm": R1_MOHM,
                  # 1 A on 100 Ah -> the same fraction of the small cell per day
                  "balance_ohm": chemistry.PARAMS["lifepo4"]["balance_ohm"] * 100.0 / cap},
         "charger": {"max_a": 40, "profile": "solar", "day_s": day_s},
         "load": {"profile": "daynight", "a": 5, "evening_a": 15, "day_s": day_s}}
    if balance_mv is not None:
        d["balance_mv"] = balance_mv
    return scenario_mod.load(d)


class _NeverFull:
    """Stand-in for core.soc.FullEmptyDetector that never reports full or empty."""
    full = False
    empty = False
    full_active = False
    empty_active = False

    def update(self, full_now, empty_now, dt_ms):
        pass


def _simulation(sc, seed, workdir, saved_soc_pct=None):
    """The virtual pack; saved_soc_pct: written to the End board's soc.json before boot
    (None: no saved state, the brain starts at 50 %)."""
    from sim import fw
    store = fw.core("store")
    STATE_KIND, STATE_VERSION = fw.core("brain").STATE_KIND, fw.core("brain").STATE_VERSION
    from sim.engine import Simulation
    if saved_soc_pct is not None:
        end_dir = os.path.join(workdir, "board%03d" % sc.cells)
        os.makedirs(end_dir, exist_ok=True)
        store.save(os.path.join(end_dir, "soc.json"), STATE_KIND, STATE_VERSION,
                   {"soc_c": int(round(saved_soc_pct * 100)), "capacity_ah": int(sc.capacity_ah)})
    sim = Simulation(sc, engine="cpython", seed=seed, workdir=workdir)
    sim.keep_history = False
    return sim


def _brain(sim):
    return sim.fw.chain.roles[-1].brain


def soc_run(recal=True, days=SOC_DAYS, seed=1, day_s=DAY_S, cells=SOC_CELLS, known=True):
    """Max |estimated - true| and RMS in % SoC over ``days`` compressed days, from a known start
    (START_SOC_PCT, saved) or an unknown one (UNKNOWN_SOC_PCT, nothing saved)."""
    start = START_SOC_PCT if known else UNKNOWN_SOC_PCT
    sc = _scenario(days, day_s=day_s, cells=cells, soc_pct=start)
    workdir = tempfile.mkdtemp(prefix="cellchain-bench-soc-")
    try:
        sim = _simulation(sc, seed, workdir, saved_soc_pct=start if known else None)
        brain = _brain(sim)
        if not recal:
            brain._det = _NeverFull()
        last_day = (days - 1) * day_s
        acc = {"n": 0, "sq": 0.0, "max": 0.0, "max_t": 0, "last_max": 0.0, "first_cal_t": None,
               "start_est": None, "unsettled_t": 0}

        def on_second(s, rec):
            if rec["soc_est"] is None:
                return
            if acc["start_est"] is None:
                acc["start_est"] = rec["soc_est"]
            if acc["first_cal_t"] is None and rec["soc_calibrated"]:
                acc["first_cal_t"] = rec["t"]
            e = abs(rec["soc_est"] - rec["soc_true_pack"])
            acc["n"] += 1
            acc["sq"] += e * e
            if e > acc["max"]:
                acc["max"] = e
                acc["max_t"] = rec["t"]
            if rec["t"] > last_day and e > acc["last_max"]:
                acc["last_max"] = e
            if e >= SETTLED_PCT:
                acc["unsettled_t"] = rec["t"]
        sim.run(on_second=on_second)
        n = max(1, acc["n"])
        cal_t = acc["first_cal_t"]
        return {"max_error_pct": round(acc["max"], 2), "rms_error_pct": round((acc["sq"] / n) ** 0.5, 2),
                "last_day_max_error_pct": round(acc["last_max"], 2),
                "max_error_at_day": round(acc["max_t"] / float(day_s), 2),
                "first_recal_at_day": None if cal_t is None else round(cal_t / float(day_s), 2),
                "settled_at_day": round(acc["unsettled_t"] / float(day_s), 2),
                "start_true_pct": start, "start_est_pct": acc["start_est"],
                "calibrated": bool(_brain(sim).soc_calibrated), "seconds": acc["n"]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def balance_run(on=True, days=BAL_DAYS, seed=1, day_s=DAY_S, cells=CELLS, soc_spread_pct=3.0):
    """Cell-voltage spread (mV) at the top of charge of the last and the first day."""
    sc = _scenario(days, soc_spread_pct=soc_spread_pct, balance_mv=None if on else 0, day_s=day_s, cells=cells)
    workdir = tempfile.mkdtemp(prefix="cellchain-bench-bal-")
    try:
        sim = _simulation(sc, seed, workdir)
        tops = {}        # day -> (pack_v, spread_mv)

        def on_second(s, rec):
            day = int((rec["t"] - 1) // day_s)
            v = rec["v_true"]
            top = tops.get(day)
            if top is None or rec["pack_v"] > top[0]:
                tops[day] = (rec["pack_v"], round(1000.0 * (max(v) - min(v)), 1))
        sim.run(on_second=on_second)
        last = max(tops)
        return {"spread_mv": tops[last][1], "first_day_spread_mv": tops[min(tops)][1],
                "balance_switch_mv": sim.balance_mv, "days": days}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _job(args):
    what, flag, kw = args
    return soc_run(flag, **kw) if what == "soc" else balance_run(flag, **kw)


def _figures(r):
    return {k: r[k] for k in ("max_error_pct", "rms_error_pct", "last_day_max_error_pct", "settled_at_day")}


def run(results, soc_days=SOC_DAYS, bal_days=BAL_DAYS, day_s=DAY_S, cells=CELLS, workers=WORKERS,
        soc_cells=SOC_CELLS):
    soc_kw = {"days": soc_days, "day_s": day_s, "cells": soc_cells}
    # longest first (the balancing runs have twice the cells and more days)
    jobs = [("bal", True, {"days": bal_days, "day_s": day_s, "cells": cells}),
            ("bal", False, {"days": bal_days, "day_s": day_s, "cells": cells}),
            ("soc", True, dict(soc_kw, known=True)),
            ("soc", False, dict(soc_kw, known=True)),
            ("soc", True, dict(soc_kw, known=False)),
            ("soc", False, dict(soc_kw, known=False))]
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            out = pool.map(_job, jobs, chunksize=1)
    else:
        out = [_job(j) for j in jobs]
    bon, boff, rec, norec, u_rec, u_norec = out
    results["soc"] = dict(_figures(rec), recal=rec,
                          no_recal=dict(_figures(norec), detail=norec),
                          unknown_start=dict(_figures(u_rec), recal=u_rec,
                                             no_recal=dict(_figures(u_norec), detail=u_norec),
                                             true_start_pct=UNKNOWN_SOC_PCT, brain_start_pct=50),
                          known_start_pct=START_SOC_PCT,
                          days=soc_days, day_s=day_s, cells=soc_cells, capacity_ah=capacity_ah(day_s),
                          time_compression=86400 // day_s)
    results["balance"] = {"spread_mv_on": bon["spread_mv"], "spread_mv_off": boff["spread_mv"],
                          "first_day_spread_mv_on": bon["first_day_spread_mv"],
                          "first_day_spread_mv_off": boff["first_day_spread_mv"],
                          "balance_switch_mv": bon["balance_switch_mv"], "days": bal_days, "cells": cells,
                          "capacity_ah": capacity_ah(day_s), "day_s": day_s}

    def soc_row(label, r):
        return [label, "%.2f %%" % r["max_error_pct"], "%.2f %%" % r["rms_error_pct"],
                "%.2f %%" % r["last_day_max_error_pct"], "day %.2f" % r["settled_at_day"]]
    rows = [soc_row("SoC, known start, with recalibration", rec),
            soc_row("SoC, known start, recalibration disabled", norec),
            soc_row("SoC, unknown start (%d %%, brain 50 %%), with recalibration" % UNKNOWN_SOC_PCT, u_rec),
            soc_row("SoC, unknown start, recalibration disabled", u_norec),
            ["top-of-charge spread, balancing on", "%.1f mV" % bon["spread_mv"],
             "day 1: %.1f mV" % bon["first_day_spread_mv"], "", ""],
            ["top-of-charge spread, balancing off", "%.1f mV" % boff["spread_mv"],
             "day 1: %.1f mV" % boff["first_day_spread_mv"], "", ""]]
    from bench import table
    table("accuracy (virtual pack, %d Ah LiFePO4 cells, solar days of %d s: SoC %d cells x %d days, balancing "
          "%d cells x %d days)" % (capacity_ah(day_s), day_s, soc_cells, soc_days, cells, bal_days),
          ["figure", "max / last day", "RMS / first day", "max on the last day",
           "|error| < %.0f %% from" % SETTLED_PCT], rows)
    return results
