"""Safety reaction on the virtual pack (issue 9, figure 2): V-max crossing -> charge relay open,
V-min crossing -> load relay open, link break -> both relays open, for 16 and 255 cells.

Each trial is a fresh ``sim.engine.Simulation`` (cpython engine: the real role objects of every
board on the virtual wire, RolesChain) of a LiFePO4 pack of 40 Ah cells at 50 % SoC. The bench
steps it itself instead of ``Simulation.run`` so that the model moves finer than a cycle:
100 ms model steps while the pack settles, then 1 ms steps from just before the event. Every
board keeps its own cycle phase; the boards' firmware runs in the engine's scheduler at
nanosecond resolution between the model steps.

* vmax: one cell (random position) rests 30 mV below V-max; the charger (40 A, enabled by the
  charge relay) switches on at a random instant. I x R0 lifts that cell above V-max: the crossing
  time is the start of the first 1 ms model step in which the model's terminal voltage of that
  cell is >= V-max.
* vmin: one cell (random position) rests 30 mV above V-min; a 40 A load (enabled by the load
  relay) switches on at a random instant and pulls it below V-min.
* link: the wire after a random board breaks at a random instant (``Simulation.fw.link_break``).
* vmax_ramp / vmin_ramp (issue 13): the same, but the cell rests RAMP_MARGIN_MV from the limit,
  so the I x R0 step of the 40 A charger / load stays below it and the cell then drifts over the
  limit at 1 C (a few mV per second in the LiFePO4 knee, the RC pair charging): the case a
  smoothing filter in the path delays by several cycles and a step hides.

The relay change is taken from the virtual End board's ``set_charge_relay`` / ``set_load_relay``
call (wrapped, timestamped with the scheduler's clock), so the resolution is better than 1 ms.
The event instant is uniform over 2 s, i.e. over two 1 s cycles of every board, and the random
seed changes the ADC noise, so the trials sample every phase of the chain's cycle. Reported:
median and worst of the trials, in ms.
"""
import random
import statistics

from sim import chemistry, fw, power
from sim import scenario as scenario_mod
from sim.engine import Simulation

cs = fw.core("settings")

SIZES = (16, 255)
TRIALS = {16: 30, 255: 10}  # 255 cells: ~4 s of CPU per trial (boot, settle, event)
WORKERS = 2
KINDS = ("vmax", "vmin", "link", "vmax_ramp", "vmin_ramp")
KEYS = {"vmax": "vmax_to_charge_off_ms", "vmin": "vmin_to_load_off_ms", "link": "link_break_to_both_off_ms",
        "vmax_ramp": "vmax_ramp_to_charge_off_ms", "vmin_ramp": "vmin_ramp_to_load_off_ms"}
RAMP_MARGIN_MV = {"vmax_ramp": 170, "vmin_ramp": 150}
RAMP_TIMEOUT_S = 60.0
RAMP_STEP_MS = 10       # model step while a ramp crosses (a few mV/s: 10 ms is < 0.1 mV)
CAPACITY_AH = 40
STEP_A = 40.0
MARGIN_MV = 30
SETTLE_S = {16: 8.0, 255: 14.0}   # relays close some cycles after boot (255 cells: 8 windows)
SPREAD_S = 2.0          # event instant uniform in [SETTLE_S, SETTLE_S + SPREAD_S)
TIMEOUT_S = 15.0
COARSE_MS = 100
FINE_MS = 1
EARLY = -1.0            # trial result: the relay opened before the true crossing (a reading at
#                         the limit within the ADC noise); it never crossed after that


def _scenario(n, kind, cell, t_on):
    preset = cs.preset(cs.LIFEPO4)
    pack = {"cells": n, "chemistry": "lifepo4", "capacity_ah": CAPACITY_AH, "soc_pct": 50,
            "soc_spread_pct": 0.0, "capacity_spread_pct": 0.0}
    off_on = [[0, False], [t_on, True]]
    charger = {"max_a": 0.0}
    load = {"a": 0.0}
    if kind in ("vmax", "vmax_ramp"):
        margin = RAMP_MARGIN_MV.get(kind, MARGIN_MV)
        soc = chemistry.soc_for_ocv("lifepo4", (preset.vmax_mv - margin) / 1000.0)
        pack["cell_soc_pct"] = {str(cell + 1): round(100.0 * float(soc), 4)}
        charger = {"max_a": STEP_A, "schedule": off_on}
        if kind == "vmax_ramp":
            charger["bulk_mv_per_cell"] = 4000     # no constant-voltage phase before V-max
    elif kind in ("vmin", "vmin_ramp"):
        margin = RAMP_MARGIN_MV.get(kind, MARGIN_MV)
        soc = chemistry.soc_for_ocv("lifepo4", (preset.vmin_mv + margin) / 1000.0)
        pack["cell_soc_pct"] = {str(cell + 1): round(100.0 * float(soc), 4)}
        load = {"a": STEP_A, "schedule": off_on}
    return scenario_mod.load({"name": "bench_reaction_" + kind, "duration_s": t_on + RAMP_TIMEOUT_S,
                              "mode": "critical",
                              "pack": pack, "charger": charger, "load": load})


class _RelayClock:
    """Wraps the End hw's relay setters: the scheduler time (ns) each relay last opened."""

    def __init__(self, end_hw, sched):
        self.sched = sched
        self.off_ns = {"charge": None, "load": None}
        self._orig = {"charge": end_hw.set_charge_relay, "load": end_hw.set_load_relay}
        self.hw = end_hw
        end_hw.set_charge_relay = lambda on: self._set("charge", on)
        end_hw.set_load_relay = lambda on: self._set("load", on)

    def _set(self, which, on):
        was = self.hw.charge_relay if which == "charge" else self.hw.load_relay
        self._orig[which](on)
        if was and not on:
            self.off_ns[which] = self.sched.now
        elif on:
            self.off_ns[which] = None


def _advance(sim, dt_ms):
    """One model step of dt_ms, then the firmware of every board up to the new time."""
    t_s = sim.t_ms / 1000.0
    charger_on, load_on = sim.wiring.enabled(*sim.relays())
    sim.ic, sim.il = power.currents(sim.pack, sim.charger, sim.load, charger_on, load_on, t_s)
    sim.pack.step(sim.ic - sim.il, dt_ms / 1000.0)
    sim.t_ms += dt_ms
    sim.fw.chain.sched.run_until(sim.t_ms * 1000000)


def trial(n, kind, seed, settle_s=None, timeout_s=None):
    """One trial; returns the reaction time in ms (None: the relay did not open in time;
    EARLY: it opened after the event began but before the true crossing, which then never came)."""
    if timeout_s is None:
        timeout_s = RAMP_TIMEOUT_S if kind in RAMP_MARGIN_MV else TIMEOUT_S
    if settle_s is None:
        settle_s = SETTLE_S.get(n, 8.0 + n / 16.0)
    rng = random.Random(seed * 7919 + n * 31 + KINDS.index(kind))
    t_on_ms = int(settle_s * 1000) + rng.randrange(int(SPREAD_S * 1000))
    cell = rng.randrange(n)
    sim = Simulation(_scenario(n, kind, cell, t_on_ms / 1000.0), engine="cpython", seed=seed)
    try:
        if getattr(sim.fw, "link", None) != "wire":
            raise RuntimeError("reaction bench needs the roles chain (real link), got %r" % sim.fw.link)
        sched = sim.fw.chain.sched
        clock = _RelayClock(sim.end, sched)
        up = kind in ("vmax", "vmax_ramp")
        limit_v = sim.settings.vmax_mv / 1000.0 if up else sim.settings.vmin_mv / 1000.0
        while sim.t_ms + COARSE_MS <= t_on_ms - COARSE_MS:
            _advance(sim, COARSE_MS)
        while sim.t_ms < t_on_ms - 1:
            _advance(sim, FINE_MS)
        need = {"vmax": ("charge",), "vmin": ("load",), "link": ("charge", "load"),
                "vmax_ramp": ("charge",), "vmin_ramp": ("load",)}[kind]
        if not all((sim.end.charge_relay if w == "charge" else sim.end.load_relay) for w in need):
            raise RuntimeError("%s trial n=%d seed=%d: relay not closed before the event" % (kind, n, seed))
        t_event_ns = None
        if kind == "link":
            sim.fw.link_break(1 + rng.randrange(n - 1), True)
            t_event_ns = sim.t_ms * 1000000
        end_ms = sim.t_ms + int(timeout_s * 1000)
        step_ms = RAMP_STEP_MS if kind in RAMP_MARGIN_MV else FINE_MS
        while sim.t_ms < end_ms:
            t0 = sim.t_ms
            _advance(sim, step_ms)
            if t_event_ns is None:
                v = float(sim.pack.v_true[cell])
                if (v >= limit_v) if up else (v <= limit_v):
                    t_event_ns = t0 * 1000000
            if t_event_ns is not None and all(clock.off_ns[w] is not None for w in need):
                done = max(clock.off_ns[w] for w in need)
                return max(0, done - t_event_ns) / 1e6
        if t_event_ns is None and all(clock.off_ns[w] is not None for w in need):
            return EARLY
        return None
    finally:
        sim.close()


def _trial_args(args):
    return trial(*args)


def _summary(times):
    ok = [t for t in times if t is not None and t != EARLY]
    early = sum(1 for t in times if t == EARLY)
    return {"median": round(statistics.median(ok), 1) if ok else None,
            "worst": round(max(ok), 1) if ok else None,
            "trials": len(times), "missed": len(times) - len(ok) - early, "early": early}


def measure(n, kind, trials, seed0=1):
    return _summary([trial(n, kind, seed0 + k) for k in range(trials)])


def run(results, sizes=SIZES, trials=None, workers=WORKERS):
    """trials: {cells: count} (default TRIALS) or one count for every size."""
    plan = []
    for n in sizes:
        k = trials.get(n, 10) if isinstance(trials, dict) else (trials or TRIALS.get(n, 10))
        for kind in KINDS:
            plan += [(n, kind, 1 + j) for j in range(k)]
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            times = pool.map(_trial_args, plan, chunksize=1)
    else:
        times = [trial(*a) for a in plan]
    cells = {}
    rows = []
    for n in sizes:
        per = {}
        for kind in KINDS:
            per[KEYS[kind]] = m = _summary([t for a, t in zip(plan, times, strict=True) if a[0] == n and a[1] == kind])
            rows.append([n, KEYS[kind], m["median"], m["worst"], m["trials"], m["missed"], m["early"]])
        cells[str(n)] = per
    results["reaction"] = {"cells": cells, "step_a": STEP_A, "margin_mv": MARGIN_MV, "capacity_ah": CAPACITY_AH,
                           "model_step_ms": FINE_MS, "event_spread_s": SPREAD_S}
    from bench import table
    table("safety reaction (virtual pack, cpython engine, real link; event at a random instant over 2 cycles)",
          ["cells", "event -> relay open", "median ms", "worst ms", "trials", "missed", "early"], rows)
    return results
