"""The fault-injection matrix (issue 20): every sensor input x every fault kind x current profile
x chemistry x pack size, run on the virtual pack and judged on the TRUE cell state.

A case is (input, kind, profile, chemistry, cells). ``scenario(case)`` builds a scenario dict
(sim/scenario.py format) in which the fault strikes the board of the cell most at risk - the one
ahead of its neighbours, so its true voltage or temperature is the first to cross a limit - 20 s
after the relays closed, while the profile drives the pack towards that limit. ``judge(header,
states)`` applies the rules of issue 20 to the trace, against the model's true values:

* ``over_s``: longest time a charge relay stayed closed while a cell was truly above V-max +
  20 mV (rule: <= 5 s); ``under_s``: the load relay while a cell was truly below V-min - 20 mV;
  ``hot_s``: either relay while a cell was truly above T-max + 2 degC;
* ``drained``: seconds in which a cell was balanced while truly below V-min (rule: 0 - the BMS
  never takes a cell below V-min itself);
* ``closings``: relay closings after the fault struck (rule: <= MAX_CLOSINGS; a run lasts
  minutes, so this is the "no more than 6 switchings an hour" rule at the scale of one run).

``PAIRS`` maps each (input, kind) to the injected faults; kinds that make no sense for an input
(a switch word does not drift) are not in it, and ``NOT_MODELLED`` names what the model cannot
inject yet. ``quick_cases()`` is the subset ``make test`` runs (every pair once, the profiles
and chemistries in turn, 4 cells); ``slow_cases()`` the slow tier's (every pair under a profile
of the other direction, 16 cells, plus two 255-cell cases); ``all_cases()`` the whole product
(``.venv/bin/python -m sim.fault_matrix --set all``: about 500 runs, hours); ``random_cases(n,
seed)`` a wider random search than the slow tier's hypothesis run (``--random N --seed S``: any
pair, profile and chemistry at 4, 8 or 16 cells, the fault striking at 8-120 s with 0.25-2x its
documented magnitude; about 2 s a case on 2 cores).
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

from sim import chemistry, engine, scenario, trace

INPUTS = ("cell_v", "ntc", "current1", "current2", "switches", "link")
KINDS = ("frozen", "drift", "offset", "open", "short", "out_of_range", "intermittent", "reboot")
PROFILES = ("cc_charge", "solar", "steady_load", "idle_then_charge", "discharge")
CHEMISTRIES = ("lifepo4", "lto", "nmc", "nca")
SIZES = (16, 255)

T0 = 20                 # the fault strikes here (s); the relays closed before
QUICK_CELLS = 4         # make test's cases: small packs, short runs (the MicroPython engine
QUICK_S = 100           # runs every board's image)
MAX_UNSAFE_S = 5
MARGIN_V = 0.020
MARGIN_C = 2.0
MAX_CLOSINGS = 2

# presets (core/settings.py PRESETS): V-min, V-max (V), T-max (degC), V-balance (V)
LIMITS = {"lifepo4": (2.90, 3.70, 55.0, 3.40), "lto": (2.15, 2.80, 60.0, 2.60),
          "nmc": (3.49, 4.15, 55.0, 4.00), "nca": (3.40, 4.15, 55.0, 4.00)}
CHARGING = ("cc_charge", "solar", "idle_then_charge")

# what a cell input's offset or drift may be and stay inside the judge's 20 mV margin: a larger
# calibration error is what no plausibility check can tell from an unbalanced cell (docs)
CELL_OFFSET_MV = 15.0


def _cell_faults(kind, cell, profile, t0=T0, scale=1.0):
    up = profile in CHARGING
    if kind == "frozen":
        return [{"t": t0, "kind": "frozen_adc", "cell": cell}]
    if kind == "drift":        # the reading lags the truth by up to CELL_OFFSET_MV within the run
        return [{"t": t0, "kind": "cell_offset", "cell": cell, "mv": 0.0,
                 "mv_per_h": (-CELL_OFFSET_MV if up else CELL_OFFSET_MV) * 12 * scale}]
    if kind == "offset":
        return [{"t": t0, "kind": "cell_offset", "cell": cell,
                 "mv": (-CELL_OFFSET_MV if up else CELL_OFFSET_MV) * scale}]
    if kind == "open":
        return [{"t": t0, "kind": "stuck_adc", "cell": cell, "mv": 0}]
    if kind == "short":
        return [{"t": t0, "kind": "stuck_adc", "cell": cell, "mv": 6000}]
    if kind == "out_of_range":
        return [{"t": t0, "kind": "stuck_adc", "cell": cell, "mv": 900}]
    if kind == "intermittent":
        return [{"t": t0, "kind": "frozen_adc", "cell": cell, "every_s": 7}]
    if kind == "reboot":       # a board in a reset loop
        return [{"t": t0 + 10 * k, "kind": "watchdog_reset", "cell": cell} for k in range(12)]
    raise ValueError(kind)


def _ntc_faults(kind, cell, tmax, t0=T0, scale=1.0):
    hot = {"t": t0 + 10, "kind": "hot_cell", "cell": cell, "temp_c": tmax + 15.0 * scale}
    if kind == "frozen":
        return [{"t": t0, "kind": "frozen_ntc", "cell": cell}, hot]
    if kind == "open":
        return [{"t": t0, "kind": "open_ntc", "cell": cell}, hot]
    if kind == "short":
        return [{"t": t0, "kind": "short_ntc", "cell": cell}, hot]
    if kind == "intermittent":
        return [{"t": t0, "kind": "frozen_ntc", "cell": cell, "every_s": 7}, hot]
    if kind == "reboot":
        return [{"t": t0 + 10 * k, "kind": "watchdog_reset", "cell": cell} for k in range(12)] + [hot]
    raise ValueError(kind)


def _current_faults(kind, sensor, t0=T0, scale=1.0):
    if kind == "frozen":
        return [{"t": t0, "kind": "current_stuck", "sensor": sensor, "a": 3.0}]
    if kind == "drift":
        return [{"t": t0, "kind": "current_offset", "sensor": sensor, "a": 0.0, "a_per_h": 60.0 * scale}]
    if kind == "offset":
        return [{"t": t0, "kind": "current_offset", "sensor": sensor, "a": 5.0 * scale}]
    if kind == "open":
        return [{"t": t0, "kind": "sensor_unplugged", "sensor": sensor}]
    if kind == "short":
        return [{"t": t0, "kind": "current_stuck", "sensor": sensor, "a": 490.0}]
    if kind == "out_of_range":
        return [{"t": t0, "kind": "low_range_stuck", "sensor": sensor, "a": 0.0}]
    if kind == "intermittent":
        return [{"t": t0, "kind": "sensor_unplugged", "sensor": sensor, "every_s": 7}]
    raise ValueError(kind)


def _link_faults(kind, cell, t0=T0, scale=1.0):
    if kind == "open":
        return [{"t": t0, "kind": "link_break", "position": cell}]
    if kind == "intermittent":
        return [{"t": t0, "kind": "link_break", "position": cell, "every_s": 7}]
    if kind == "reboot":       # a board losing power and coming back, again and again
        return [{"t": t0 + 20 * k, "until": t0 + 20 * k + 5, "kind": "board_power_loss", "cell": cell}
                for k in range(6)]
    raise ValueError(kind)


PAIRS = (
    [("cell_v", k) for k in KINDS]
    + [("ntc", k) for k in ("frozen", "open", "short", "intermittent", "reboot")]
    + [(s, k) for s in ("current1", "current2")
       for k in ("frozen", "drift", "offset", "open", "short", "out_of_range", "intermittent")]
    + [("switches", "out_of_range")]
    + [("link", k) for k in ("open", "intermittent", "reboot")]
)
NOT_MODELLED = (("ntc", "drift"), ("ntc", "offset"), ("ntc", "out_of_range"))


class Case:
    """One cell of the matrix; ``t0`` when the fault strikes (s), ``scale`` its magnitude (1.0:
    the documented one; the randomised search varies both)."""

    def __init__(self, inp, kind, profile, chem, cells, seconds=None, t0=T0, scale=1.0):
        self.t0 = t0
        self.scale = scale
        self.input = inp
        self.kind = kind
        self.profile = profile
        self.chemistry = chem
        self.cells = cells
        self.seconds = seconds or (240 if cells <= 16 else 150)

    @property
    def name(self):
        name = "%s-%s-%s-%s-%d" % (self.input, self.kind, self.profile, self.chemistry, self.cells)
        if self.t0 != T0 or self.scale != 1.0:
            name += "-t%g-x%g" % (self.t0, self.scale)
        return name

    def __repr__(self):
        return self.name


def leader(cells):
    """The cell (1-based) the fault strikes: ahead of its neighbours, mid-chain (a link fault
    there cuts the boards after it off), behind the first detail window at 255 cells."""
    return 3 if cells <= 16 else 200


def scenario_dict(case):
    """The scenario (sim/scenario.py dict) of one case."""
    chem = case.chemistry
    vmin, vmax, tmax, vbal = LIMITS[chem]
    n = case.cells
    lead = leader(n)
    cap = 100
    up = case.profile in CHARGING
    if up:
        # normal mode charges while every cell reads below V-balance: the leader starts just
        # under it, so a 1 C charge takes its true voltage past V-max within a minute or two
        lead_soc = float(chemistry.soc_for_ocv(chem, vbal - 0.03)) * 100
        others = lead_soc - 3.0
    else:
        # the leader starts just above the load's restart threshold (V-min + 2 %: the load
        # closes at the start) and the load takes its true voltage past V-min within a minute
        lead_soc = float(chemistry.soc_for_ocv(chem, vmin * 1.02 + 0.01)) * 100
        others = max(lead_soc + 4.0, 20.0)   # the SoC the pack starts with: above the discharge restart
    d = {"name": case.name, "duration_s": case.seconds,
         "pack": {"cells": n, "chemistry": chem, "capacity_ah": cap, "soc_pct": others,
                  "soc_spread_pct": 0.0, "cell_soc_pct": {str(lead): lead_soc}},
         "charger": {"max_a": 0.0}, "load": {"a": 0.0}, "faults": []}
    if up:
        ch = {"max_a": 100.0, "bulk_mv_per_cell": int(vmax * 1000) + 300}
        if case.profile == "solar":
            ch.update({"profile": "solar", "max_a": 150.0, "sunrise_h": 0.0, "sunset_h": 24.0,
                       "day_s": 4 * case.seconds})
        elif case.profile == "idle_then_charge":
            ch["schedule"] = [[0, False], [case.t0 + 30, True]]
        d["charger"] = ch
    else:
        d["load"] = {"a": 50.0 if case.profile == "steady_load" else 60.0}
    inp, kind = case.input, case.kind
    t0, x = case.t0, case.scale
    if inp == "cell_v":
        d["faults"] = _cell_faults(kind, lead, case.profile, t0, x)
    elif inp == "ntc":
        d["faults"] = _ntc_faults(kind, lead, tmax, t0, x)
    elif inp in ("current1", "current2"):
        d["faults"] = _current_faults(kind, 1 if inp == "current1" else 2, t0, x)
    elif inp == "switches":
        # the switch word set below V-min (the nearest 0.1 V step under it)
        d["balance_mv"] = int(vmin * 10) * 100
    elif inp == "link":
        d["faults"] = _link_faults(kind, lead, t0, x)
    return d


def _run_len(flags):
    best = cur = 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    return best


def judge(header, states, chem, t0=T0):
    """The issue's rules on a trace (header, states from sim.trace.read): a dict of figures and
    ``ok``. Limits from the settings the run used. ``reaction_s``: from the fault (``t0``) to the
    first state with a relay open that was closed before it (None: none opened; many faults
    call for no relay action - the judge's rules, not this figure, say whether that was safe)."""
    s = header["settings"]
    vmax = s["vmax_mv"] / 1000.0
    vmin = s["vmin_mv"] / 1000.0
    tmax = s["tmax_dc"] / 10.0
    over = _run_len(r["charge_allowed"] and max(r["v_true"]) > vmax + MARGIN_V for r in states)
    under = _run_len(r["load_allowed"] and min(r["v_true"]) < vmin - MARGIN_V for r in states)
    hot = _run_len((r["charge_allowed"] or r["load_allowed"]) and max(r["temp"]) > tmax + MARGIN_C
                   for r in states)
    drained = sum(1 for r in states
                  if any(b and v < vmin for b, v in zip(r["balancing"], r["v_true"], strict=False)))
    closings = 0
    for a, b in zip(states, states[1:], strict=False):
        if b["t"] <= T0:
            continue
        closings += (b["charge_allowed"] and not a["charge_allowed"]) + (b["load_allowed"] and not a["load_allowed"])
    reaction = None
    before = [r for r in states if r["t"] <= t0]
    if before:
        was_c, was_l = before[-1]["charge_allowed"], before[-1]["load_allowed"]
        for r in states:
            if r["t"] > t0 and ((was_c and not r["charge_allowed"]) or (was_l and not r["load_allowed"])):
                reaction = round(r["t"] - t0, 1)
                break
    res = {"over_s": over, "under_s": under, "hot_s": hot, "drained_s": drained, "closings": closings,
           "reaction_s": reaction,
           "peak_v": round(max(max(r["v_true"]) for r in states), 4),
           "low_v": round(min(min(r["v_true"]) for r in states), 4),
           "peak_c": round(max(max(r["temp"]) for r in states), 1)}
    res["ok"] = (over <= MAX_UNSAFE_S and under <= MAX_UNSAFE_S and hot <= MAX_UNSAFE_S and drained == 0
                 and closings <= MAX_CLOSINGS)
    return res


def run_case(case, engine_name="micropython", workdir=None, seed=0):
    """Run one case; returns the judge's dict (plus the case name and the wall time)."""
    own = workdir is None
    wd = workdir or tempfile.mkdtemp(prefix="cellchain-matrix-")
    try:
        sc = scenario.load(scenario_dict(case))
        path = os.path.join(wd, "trace.jsonl")
        t0 = time.time()
        engine.Simulation(sc, engine=engine_name, trace=path, workdir=os.path.join(wd, "boards"),
                          seed=seed).run()
        header, states, _ = trace.read(path)
        res = judge(header, states, case.chemistry, case.t0)
        res["case"] = case.name
        res["wall_s"] = round(time.time() - t0, 1)
        return res
    finally:
        if own:
            import shutil
            shutil.rmtree(wd, ignore_errors=True)


def quick_cases():
    """Every (input, kind) pair once; profiles and chemistries in turn (pairwise-style), 16
    cells, short runs: the part ``make test`` runs."""
    out = []
    for i, (inp, kind) in enumerate(PAIRS):
        profile = PROFILES[i % len(PROFILES)]
        chem = CHEMISTRIES[(i // len(PROFILES) + i) % len(CHEMISTRIES)]
        out.append(Case(inp, kind, profile, chem, QUICK_CELLS, seconds=QUICK_S))
    return out


def slow_cases():
    """Every pair at 16 cells under a profile of the other direction than its quick case
    (charging where the quick case discharges and the reverse: with the quick set, every pair
    under one charging and one discharging profile), chemistries in turn; and a frozen cell
    input and a broken wire at 255 cells (board 200, behind the first detail window): the slow
    tier's part (about 4 minutes on 2 cores)."""
    out = []
    ups = [p for p in PROFILES if p in CHARGING]
    downs = [p for p in PROFILES if p not in CHARGING]
    for i, q in enumerate(quick_cases()):
        other = downs if q.profile in CHARGING else ups
        out.append(Case(q.input, q.kind, other[i % len(other)], CHEMISTRIES[(i + 1) % len(CHEMISTRIES)], 16,
                        seconds=100))
    out.append(Case("cell_v", "frozen", "cc_charge", "lifepo4", 255, seconds=70))
    out.append(Case("link", "open", "discharge", "nmc", 255, seconds=70))
    return out


RANDOM_CELLS = (4, 8, 16)
RANDOM_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def random_cases(n, seed=0):
    """``n`` cases drawn at random (reproducible for a seed): any pair, profile and chemistry,
    4/8/16 cells, the fault at 8-120 s, 0.25-2x its magnitude, each run 150 s past the fault."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        inp, kind = rnd.choice(PAIRS)
        t0 = rnd.randint(8, 120)
        out.append(Case(inp, kind, rnd.choice(PROFILES), rnd.choice(CHEMISTRIES), rnd.choice(RANDOM_CELLS),
                        seconds=t0 + 150, t0=t0, scale=rnd.choice(RANDOM_SCALES)))
    return out


def run_cases(cases, engine_name="micropython", jobs=2):
    """Run cases on ``jobs`` processes; yields (case, result) in the cases' order."""
    if jobs <= 1:
        for c in cases:
            yield c, run_case(c, engine_name)
        return
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from zip(cases, pool.map(run_case, cases, [engine_name] * len(cases)), strict=True)


def all_cases():
    return [Case(i, k, p, c, n) for (i, k) in PAIRS for p in PROFILES for c in CHEMISTRIES for n in SIZES]


def summary(results):
    """Rows per input: cases, failures, the worst over/under/hot time and closings, the cases in
    which a relay opened and the longest time from the fault to that."""
    rows = {}
    for r in results:
        inp = r["case"].split("-")[0]
        row = rows.setdefault(inp, {"cases": 0, "unsafe": 0, "over_s": 0, "under_s": 0, "hot_s": 0,
                                    "drained_s": 0, "closings": 0, "opened": 0, "worst_reaction_s": None})
        row["cases"] += 1
        if r.get("reaction_s") is not None:
            row["opened"] += 1
            w = row["worst_reaction_s"]
            row["worst_reaction_s"] = r["reaction_s"] if w is None else max(w, r["reaction_s"])
        row["unsafe"] += 0 if r["ok"] else 1
        for k in ("over_s", "under_s", "hot_s", "drained_s", "closings"):
            row[k] = max(row[k], r[k])
    return rows


def table(rows):
    """The summary as a markdown table (docs/pack-brain.md, make bench)."""
    out = ["| input | cases | unsafe | worst over / under / hot (s) | balanced below V-min (s) | "
           "most closings | relay opened in | worst reaction (s) |", "|---|---|---|---|---|---|---|---|"]
    for inp in INPUTS:
        row = rows.get(inp)
        if row is None:
            continue
        out.append("| %s | %d | %d | %d / %d / %d | %d | %d | %d | %s |" % (
            inp, row["cases"], row["unsafe"], row["over_s"], row["under_s"], row["hot_s"], row["drained_s"],
            row["closings"], row["opened"], "-" if row["worst_reaction_s"] is None else row["worst_reaction_s"]))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.fault_matrix", description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=("quick", "slow", "all"), default="quick")
    ap.add_argument("--engine", choices=("micropython", "cpython"), default="micropython")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="run N random cases (random_cases) instead of --set")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    ap.add_argument("--jobs", type=int, default=2, help="cases at once (default 2)")
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args(argv)
    if args.random:
        cases = random_cases(args.random, args.seed)
    else:
        cases = {"quick": quick_cases, "slow": slow_cases, "all": all_cases}[args.set]()
    cases = [c for c in cases if args.only in c.name]
    results = []
    for k, (c, r) in enumerate(run_cases(cases, args.engine, args.jobs)):
        results.append(r)
        print("[%d/%d] %-50s %s over %ds under %ds hot %ds drained %ds closings %d (%.0f s)"
              % (k + 1, len(cases), c.name, "ok    " if r["ok"] else "UNSAFE", r["over_s"], r["under_s"],
                 r["hot_s"], r["drained_s"], r["closings"], r["wall_s"]), flush=True)
    print(table(summary(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
