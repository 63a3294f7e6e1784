"""Board-speed figures (issue 12): the virtual pack with board time (sim/board_time.py, mode
"counted": every role call costs its firmware's bytecode instructions x the RP2040's ns per
instruction, NS_PER_INSTR, from the chip's own figures; docs/benchmarks.md section 7).

* ``calibration``: the cost model - ns per instruction and where it comes from, and the
  host-time factor of mode "measured" (a fixed reference workload, for comparison).
* ``ramp``: V-max crossing on a rising cell -> charge relay open, 16 and 255 cells. A LiFePO4
  pack of 40 Ah cells at 50 % charges at 1 C (40 A, critical mode: the charger runs while the
  relays are closed). At a random instant after the relays closed, one cell (random position) is
  put a random 2-12 mV below V-max (its SoC set so), and the 1 C charge carries it up through
  V-max (about 4 mV/s there). Crossing = the start of the first 1 ms model step with the cell's
  terminal voltage >= V-max; until the End board's ``set_charge_relay(False)``.
* ``awake``: board time per second in the loop's wake-ups on a 16-cell pack, per role (each
  one hal.loop.Loop.step with the role's calls in it, counted as the virtual pack runs them) and
  the wake-ups out of light sleep; the share of the second in light sleep (hal/sleep.py, as
  the virtual pack models it); an estimated current per role from the three (POWER_MA) beside
  the 123\\SmartBMS's ~1.9 mA per board; ``awake_high``: the same at the highest per-role ns
  per instruction (how robust the figure is).
* ``drops``: comm drops and relay openings over ``DROP_HOURS`` of virtual time (environment
  CELLCHAIN_BENCH_DROP_HOURS, default 24) on a 16-cell pack: every board's clock off by a random
  amount within +-2 %, byte error rate 1e-5, the PC817 opto stage in every hop; again with an
  ideal opto (no edge times) to separate the wire from the firmware.
"""
import os
import random
import statistics
import time

from sim import paths  # noqa: F401
from sim import board_time, chemistry
from sim import scenario as scenario_mod
from sim.engine import Simulation
from bench import reaction

BOARD_TIME = {"mode": "counted"}
BOARD_TIME_HIGH = {"mode": "counted", "ns_per_instr": max(board_time.NS_PER_INSTR_PER_ROLE.values())}
RAMP_SIZES = (16, 255)
RAMP_TRIALS = {16: 20, 255: 10}
CAPACITY_AH = 40
ONE_C_A = 40.0
AWAKE_CELLS = 16
AWAKE_S = 20
DROP_HOURS = float(os.environ.get("CELLCHAIN_BENCH_DROP_HOURS", "24"))
DROP_CELLS = 16
# currents per target, mA: (running, idle in time.sleep_ms, machine.lightsleep) - docs/benchmarks.md
POWER_MA = {
    "rp2040": (20.0, 20.0, 1.5),   # Pico board: MicroPython at 125 MHz ~20 mA (WFE idle saves
    #                                little); lightsleep 1.5 mA (MicroPython rp2 lightsleep commit;
    #                                micropython/micropython#8832: 0.99 mA measured at VSYS 5 V)
    "esp32": (30.0, 30.0, 0.8),    # ESP32 datasheet v3.5 table 6: modem-sleep 240 MHz 30-68 mA
    #                                (CPU on, radio off; low end used), light-sleep 0.8 mA
}
NOT_CLOSED = -1.0                  # ramp_trial: the charge relay never closed before the event
SMARTBMS_MA = 1.9                  # 123SmartBMS gen3 manual: ~1.9 mA per board


def _ramp_scenario(n, bt=None):
    pack = {"cells": n, "chemistry": "lifepo4", "capacity_ah": CAPACITY_AH, "soc_pct": 50,
            "soc_spread_pct": 0.0, "capacity_spread_pct": 0.0}
    return scenario_mod.load({"name": "bench_ramp", "duration_s": 3600, "mode": "critical", "pack": pack,
                              "charger": {"max_a": ONE_C_A}, "load": {"a": 0.0},
                              "board_time": BOARD_TIME if bt is None else bt})


def ramp_trial(n, seed, timeout_s=15.0, board_time_cfg=None):
    """One trial: ms from the crossing to the charge relay opening (0: it opened before the true
    cell crossed, on a reading within the ADC noise of V-max; None: not within timeout;
    NOT_CLOSED: the relay had not closed before the event - the link was not up)."""
    rng = random.Random(seed * 7919 + n * 31)
    settle = reaction.SETTLE_S.get(n, 8.0 + n / 16.0)
    t_on_ms = int(settle * 1000) + rng.randrange(2000)
    cell = rng.randrange(n)
    margin_v = (2.0 + 10.0 * rng.random()) / 1000.0
    sim = Simulation(_ramp_scenario(n, board_time_cfg), engine="cpython", seed=seed)
    try:
        clock = reaction._RelayClock(sim.end, sim.fw.chain.sched)
        vmax = sim.settings.vmax_mv / 1000.0
        while sim.t_ms + reaction.COARSE_MS <= t_on_ms:
            reaction._advance(sim, reaction.COARSE_MS)
        if not sim.end.charge_relay:
            return NOT_CLOSED              # the link never came up: nothing to measure
        p = sim.pack
        i_cell = p.current_a - p.balance_a[cell]
        ocv = vmax - margin_v - p.vrc[cell] - i_cell * p.r0()[cell]
        soc = p.soc.copy()
        soc[cell] = float(chemistry.soc_for_ocv("lifepo4", ocv))
        p.set_soc(soc)
        t_cross_ns = None
        end_ms = sim.t_ms + int(timeout_s * 1000)
        while sim.t_ms < end_ms:
            t0 = sim.t_ms
            reaction._advance(sim, reaction.FINE_MS)
            if t_cross_ns is None and float(p.v_true[cell]) >= vmax:
                t_cross_ns = t0 * 1000000
            if clock.off_ns["charge"] is not None:
                if t_cross_ns is None:
                    return 0.0     # opened on a reading at V-max before the true cell got there
                return max(0, clock.off_ns["charge"] - t_cross_ns) / 1e6
        return None
    finally:
        sim.close()


def _ramp_args(a):
    return ramp_trial(*a)


def _ramp_summary(got):
    ok = [t for t in got if t is not None and t != NOT_CLOSED]
    return {"median_ms": round(statistics.median(ok), 1) if ok else None,
            "worst_ms": round(max(ok), 1) if ok else None, "trials": len(got),
            "missed": sum(1 for t in got if t is None),
            "relay_never_closed": sum(1 for t in got if t == NOT_CLOSED)}


def _drops_args(a):
    return drops(*a)


def loop_step_ms(factor, board="pico", steps=2000, ns_per_instr=None):
    """Board ms of one hal/loop.py Loop.step() itself (its ticks, checks and sleep call; the
    role's calls are charged apart): the real Loop around a role whose calls do nothing, on a
    clock whose sleep returns at once; its firmware instructions x ``ns_per_instr`` (counted
    board time), else host CPU time x factor."""
    from hal import loop as hal_loop
    from sim.engine import load_board_def

    class Clock:
        ms = 0

        def ticks_ms(self):
            return self.ms

        def ticks_us(self):
            return self.ms * 1000

        def ticks_diff(self, a, b):
            return a - b

        def ticks_add(self, a, b):
            return a + b

        def sleep_ms(self, ms):
            self.ms += ms

    class Idle:
        cycle_ms = 1000

        def poll(self):
            return 0

        def tick(self, dt):
            pass

        def cycle(self, dt):
            pass

        def wake_in_ms(self):
            return 5

    class Hw:
        def feed_watchdog(self):
            pass
    lp = hal_loop.Loop(Idle(), load_board_def(board), Hw(), None, Clock())
    if ns_per_instr:
        from sim import opcount
        c = opcount.Counter([board_time._firmware_dir()])

        def run():
            for _ in range(steps // 10):
                lp.once()
        return c.run(run) / (steps // 10) * ns_per_instr / 1e6
    t0 = board_time.BoardTime.now_ns()
    for _ in range(steps):
        lp.once()
    return (board_time.BoardTime.now_ns() - t0) / steps * factor / 1e6


def awake(cells=AWAKE_CELLS, seconds=AWAKE_S, board="pico", light_sleep=True, bt=None):
    """Board time awake per role in a 1 s period, the share in light sleep (when the board
    definition allows it and ``light_sleep``), and the estimated current."""
    sc = scenario_mod.load({"pack": {"cells": cells, "soc_pct": 50}, "mode": "critical", "duration_s": seconds,
                            "board": board, "board_time": BOARD_TIME if bt is None else bt,
                            "link": {"light_sleep": light_sleep}})
    sim = Simulation(sc, seed=1)
    chain = sim.fw.chain
    bd = sim.board_def
    t0 = [0] * cells
    w0 = [0] * cells
    a0 = [0] * cells
    l0 = [0] * cells
    c0 = [0] * cells

    def mark(s, rec):
        if s.t_ms == 5000:             # boot and first frames left out
            t0[:] = list(chain.awake_ns)
            w0[:] = list(chain.wakes)
            a0[:] = list(chain.asleep_ns)
            l0[:] = list(chain.light_sleeps)
            c0[:] = list(chain.sleep_wake_ns)
    sim.run(on_second=mark)
    span_s = (seconds - 5)
    cpu = getattr(bd, "CPU", "rp2040")
    tm = chain.time
    loop_ms = loop_step_ms(tm.factor, board, ns_per_instr=tm.ns_per_instr if tm.counted else None)
    ma = POWER_MA.get(cpu)
    out = {}
    for name, idx in (("begin", [0]), ("between", list(range(1, cells - 1))), ("end", [cells - 1])):
        calls = [(chain.awake_ns[k] - t0[k]) / (span_s * 1e9) for k in idx]
        # the virtual pack runs this role's loop (hal.loop.Loop.step) wake-up by wake-up: count them
        wakes = statistics.median([(chain.wakes[k] - w0[k]) / span_s for k in idx])
        # each wake-up's own cost: counted / measured board time charges the whole Loop.step
        # (the loop's own instructions with the role's calls, issue 19); a fixed cost model
        # charges the role's work only, so the loop's own step is added
        wake_ms = loop_ms if tm.mode == "fixed" else 0.0
        wake_frac = wakes * wake_ms / 1000.0
        # light sleep (hal/sleep.py): its share of the second, and the wake-ups out of it
        asleep = statistics.median([(chain.asleep_ns[k] - a0[k]) / (span_s * 1e9) for k in idx])
        light_wakes = statistics.median([(chain.light_sleeps[k] - l0[k]) / span_s for k in idx])
        wake_cost = statistics.median([(chain.sleep_wake_ns[k] - c0[k]) / (span_s * 1e9) for k in idx])
        frac = min(1.0, statistics.median(calls) + wake_frac + wake_cost)
        idle_frac = max(0.0, 1.0 - frac - asleep)
        row = {"calls_fraction": round(statistics.median(calls), 4), "calls_fraction_max": round(max(calls), 4),
               "wakes_per_s": round(wakes, 1), "wake_ms": round(wake_ms, 3), "awake_fraction": round(frac, 4),
               "asleep_fraction": round(asleep, 4), "idle_fraction": round(idle_frac, 4),
               "light_sleeps_per_s": round(light_wakes, 1)}
        if ma is not None:
            row["est_ma"] = round(frac * ma[0] + idle_frac * ma[1] + asleep * ma[2], 2)
        out[name] = row
    sim.close()
    return {"board": board, "cpu": cpu, "cells": cells, "seconds": span_s, "roles": out,
            "ns_per_instr": tm.ns_per_instr if tm.counted else None, "factor": None if tm.counted else tm.factor,
            "smartbms123_ma": SMARTBMS_MA, "loop_mode": chain.loop_mode, "loop_step_ms": round(loop_ms, 3),
            "light_sleep": chain.light_sleep, "wake_up_ms": getattr(bd, "SLEEP_WAKE_MS", None),
            "lost_asleep": sum(chain.lost_asleep)}


def cycle_ms(cells=16, seconds=12, board="pico"):
    """Board ms of one cycle() per role (counted board time): the median and the largest of the
    instruction-count medians of every kind of cycle call the roles made, x ns per instruction
    (issue 12: every Between cycle under 5 ms, an End cycle at 255 cells under 100 ms)."""
    sc = scenario_mod.load({"pack": {"cells": cells, "soc_pct": 50}, "mode": "critical", "duration_s": seconds,
                            "board": board, "board_time": BOARD_TIME})
    sim = Simulation(sc, seed=1)
    try:
        sim.run()
        tm = sim.fw.chain.time
        out = {"cells": cells, "ns_per_instr": tm.ns_per_instr}
        for role in ("begin", "between", "end"):
            got = [v[len(v) // 2] * tm.ns_per_instr / 1e6
                   for k, v in tm._samples.items() if v and k[:2] == (role, "cycle")]
            out[role] = {"max_ms": round(max(got), 2) if got else None,
                         "median_ms": round(statistics.median(got), 2) if got else None, "kinds": len(got)}
        return out
    finally:
        sim.close()


def drops(hours=DROP_HOURS, cells=DROP_CELLS, seed=1, opto=True):
    """Comm drops (End's comm_ok True -> False) and relay openings in ``hours`` of virtual time."""
    duration = int(hours * 3600)
    sc = scenario_mod.load({"pack": {"cells": cells, "soc_pct": 50}, "mode": "critical", "duration_s": duration,
                            "charger": {"max_a": 0.0}, "load": {"a": 0.0},
                            "link": {"clock_spread_pct": 2.0, "byte_error_rate": 1e-5, "opto": opto},
                            "board_time": BOARD_TIME})
    sim = Simulation(sc, seed=seed)
    sim.keep_history = False
    chain = sim.fw.chain
    st = {"drops": 0, "ok_s": 0, "closed_s": 0, "prev": None, "openings": 0, "prev_closed": None}

    def on_second(s, rec):
        ok = bool(rec["comm_ok"])
        closed = bool(rec["charge_allowed"] and rec["load_allowed"])
        if st["prev"] is True and not ok:
            st["drops"] += 1
        if st["prev_closed"] is True and not closed:
            st["openings"] += 1
        st["prev"] = ok
        st["prev_closed"] = closed
        st["ok_s"] += ok
        st["closed_s"] += closed
    wall = time.monotonic()
    sim.run(on_second=on_second)
    rates = chain.rates
    lines = [ln for ln in chain.lines if ln is not None]
    return {"hours": hours, "cells": cells, "seed": seed, "opto": opto, "comm_drops": st["drops"],
            "relay_openings": st["openings"], "comm_ok_fraction": round(st["ok_s"] / max(1, duration), 4),
            "relays_closed_fraction": round(st["closed_s"] / max(1, duration), 4),
            "byte_errors": sum(ln.errors for ln in lines),
            "hops_not_clean": sum(1 for ln in lines if not ln.clean),
            "clock_ppm": [int(round((r - 1.0) * 1e6)) for r in rates],
            "wall_s": round(time.monotonic() - wall, 1)}


def run(results, ramp_sizes=RAMP_SIZES, trials=None, hours=None, workers=2, cycle_sizes=(16, 255)):
    from bench import table
    factor = board_time.calibrate()
    cal = board_time.calibration()
    res = {"calibration": {"mode": BOARD_TIME["mode"], "ns_per_instr": board_time.NS_PER_INSTR["rp2040"],
                           "ns_per_instr_per_role": board_time.NS_PER_INSTR_PER_ROLE,
                           "instr_per_cycle": board_time.INSTR_PER_CYCLE,
                           "chip_ms_per_cycle": board_time.CHIP_MS_PER_CYCLE,
                           "source": "tools/board_factor.py (bench/mp_probe.py, firmware 5c2a00c)",
                           "factor": round(factor, 2), "reference_ns": cal.get("reference_ns"),
                           "ref_board_ns": cal.get("ref_board_ns")}}
    plan = []
    for n in ramp_sizes:
        k = trials.get(n, 4) if isinstance(trials, dict) else (trials or RAMP_TRIALS.get(n, 4))
        plan += [(n, 1 + j) for j in range(k)]
    if workers > 1 and len(plan) > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            times = pool.map(_ramp_args, plan, chunksize=1)
    else:
        times = [ramp_trial(*a) for a in plan]
    ramp = {}
    for n in ramp_sizes:
        ramp[str(n)] = _ramp_summary([t for a, t in zip(plan, times, strict=True) if a[0] == n])
    res["ramp"] = ramp
    # the same at 16 cells without board time (calls take no time), for comparison
    res["ramp_zero_board_time_16"] = _ramp_summary([ramp_trial(16, 1 + j, board_time_cfg={})
                                                    for j in range(min(len(plan), 10))])
    table("V-max crossing on a 1 C ramp -> charge relay open (board time: %s, %.0f ns per instruction)"
          % (BOARD_TIME["mode"], board_time.NS_PER_INSTR["rp2040"]),
          ["cells", "median ms", "worst ms", "trials", "missed", "link never up"],
          [[n, r["median_ms"], r["worst_ms"], r["trials"], r["missed"], r["relay_never_closed"]]
           for n, r in list(ramp.items()) + [("16, zero board time", res["ramp_zero_board_time_16"])]])
    res["awake"] = awake()
    res["awake_high"] = awake(bt=BOARD_TIME_HIGH)
    res["awake_esp32"] = awake(board="esp32_devkitc")
    res["awake_no_sleep"] = awake(light_sleep=False)
    for aw in (res["awake"], res["awake_high"], res["awake_esp32"], res["awake_no_sleep"]):
        table("awake per role at board speed (16 cells, %s, %s ns per instruction, light sleep %s)"
              % (aw["board"], aw["ns_per_instr"], "on" if aw["light_sleep"] else "off"),
              ["role", "in calls", "wakes/s", "awake", "asleep", "light sleeps/s", "est. mA", "123SmartBMS mA"],
              [[r, v["calls_fraction"], v["wakes_per_s"], v["awake_fraction"], v["asleep_fraction"],
                v["light_sleeps_per_s"], v.get("est_ma"), SMARTBMS_MA]
               for r, v in aw["roles"].items()])
    res["cycle_ms"] = {str(n): cycle_ms(n, 12 if n < 100 else 25) for n in cycle_sizes}
    table("board ms per cycle() (counted board time; targets: Between < 5 ms, End at 255 cells < 100 ms)",
          ["cells", "begin max", "between max", "end max", "end median"],
          [[n, c["begin"]["max_ms"], c["between"]["max_ms"], c["end"]["max_ms"], c["end"]["median_ms"]]
           for n, c in res["cycle_ms"].items()])
    h = DROP_HOURS if hours is None else hours
    jobs = [(h, DROP_CELLS, 1, True), (h, DROP_CELLS, 1, False)]
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            res["drops"] = pool.map(_drops_args, jobs, chunksize=1)
    else:
        res["drops"] = [drops(*j) for j in jobs]
    table("comm drops in %g h (16 cells, clocks +-2 %%, byte error rate 1e-5)" % h,
          ["opto edges", "comm drops", "relay openings", "comm ok", "relays closed", "hops not clean"],
          [[d["opto"], d["comm_drops"], d["relay_openings"], d["comm_ok_fraction"], d["relays_closed_fraction"],
            d["hops_not_clean"]] for d in res["drops"]])
    results["board_time"] = res
    return results
