"""The virtual pack's cost per kind of call, from the chip tier (issue 19: the model answers to the chip).

    python -m chip_tier calibrate     # c16 on the chip -> sim/cost/rp2040.json
    python -m chip_tier compare       # model vs chip per kind, at 16 and 255 cells

Chip side (emulated RP2040, zero-wait flash), per kind (sim.cost.KINDS): ``<role>.cycle`` = the
role's cycle call as the firmware's loop times it (``LoopStats.last_cycle_us`` at the REPL, the
median over boards of the role), ``<role>.rx_char`` = the awake burst one received character
starts (median), ``<role>.wake`` = the awake time left per wake-up that ran no cycle. Model side: the virtual pack in counted board time on a pack of the same frame
size, the median instruction count of the same kind (a loop wake-up that ran the cycle; a byte-path
call that handled one character; for ``wake`` the mean over every such wake-up of the run), times
that kind's ns per instruction. ``calibrate`` sets each
kind's ns per instruction to chip time over model instructions, the larger of the 16- and 255-cell
runs (the model then never under-prices a kind at either size, and over-prices the other), and
records the firmware hash and commit; ``compare`` prices both runs with it.
"""
import datetime
import statistics

from chip_tier import report, runner
from sim import cost

CAL_RUN = "c16"
CHECK_RUNS = {"c16": 16, "c255": 255}
MODEL_SECONDS = {16: 12, 255: 20}


def chip_kinds(rep):
    """{kind: ms} of one chip-tier run."""
    out = {}
    for role in ("begin", "between", "end"):
        bs = [b for b in rep["boards"] if b["role"] == role]
        cyc = [b["loop"]["last_cycle_us"] / 1000.0 for b in bs if b.get("loop")]
        if cyc:
            out[role + ".cycle"] = round(statistics.median(cyc), 3)
        rx = [b["rx_char_ms"]["median"] for b in bs if b.get("rx_char_ms")]
        if rx and role != "begin":
            out[role + ".rx_char"] = round(statistics.median(rx), 3)
        wake = [w for w in (_wake_ms(b, rep["run"]["seconds"]) for b in bs) if w is not None]
        if wake:
            out[role + ".wake"] = round(statistics.median(wake), 3)
    return out


def _wake_ms(b, seconds):
    """ms per loop wake-up that ran no cycle: the board's awake ms per second less its cycles
    and received characters, over those wake-ups (LoopStats.sleeps: one wake-up per sleep)."""
    loop = b.get("loop")
    if not loop or "awake_fraction" not in b:
        return None
    cycles = loop["cycles"] / float(seconds)
    others = loop["sleeps"] / float(seconds) - cycles
    if others <= 0:
        return None
    chars = (b.get("cnt") or {}).get("rx_chars", 0) / float(seconds)
    per_char = (b.get("rx_char_ms") or {}).get("median", 0.0)
    left = b["awake_fraction"] * 1000.0 - cycles * loop["last_cycle_us"] / 1000.0 - chars * per_char
    return max(0.0, left) / others


def model_instr(cells, seconds=None):
    """{kind: median instruction count} of the virtual pack (counted board time) at ``cells``."""
    from sim import paths  # noqa: F401
    from sim import scenario as scenario_mod
    from sim.engine import Simulation
    seconds = seconds or MODEL_SECONDS.get(cells, 12)
    sc = scenario_mod.load({"pack": {"cells": cells, "soc_pct": 50}, "mode": "critical", "duration_s": seconds,
                            "board": "pico", "board_time": {"mode": "counted", "ns_per_instr": 1.0}})
    sim = Simulation(sc, seed=1)
    try:
        sim.run()
        samples = sim.fw.chain.time._samples
        charged = sim.fw.chain.time.charged
    finally:
        sim.close()
    got = {}
    for key, v in samples.items():
        if not v:
            continue
        med = v[len(v) // 2]
        if key[1] == "cycle" and key[-1] is True:
            got.setdefault(key[0] + ".cycle", []).append(med)
        elif key[0] == "poll" and key[1] == 1:
            got.setdefault(key[2] + ".rx_char", []).append(med)
    out = {k: statistics.median(v) for k, v in got.items() if k in cost.KINDS}
    for (role, call), (ns, n) in charged.items():      # ns_per_instr 1: ns charged = instructions
        if call == "wake" and n:
            out[role + ".wake"] = ns / float(n)
    return out


def calibrate(out_dir=None, log=print):
    """Run (or reuse) the chip tier's CHECK_RUNS, count the model at the same frame sizes, write
    sim/cost/rp2040.json: per kind the larger of the runs' chip time / model instructions, so the
    model prices every kind at the frame size where it costs the chip most per instruction (it
    over-estimates the other: a conservative model for timing claims)."""
    paths = runner.run(tuple(CHECK_RUNS), out_dir, log=log)
    reps = {name: report.analyse(p) for name, p in paths.items()}
    chip = {name: chip_kinds(rep) for name, rep in reps.items()}
    instr = {name: model_instr(cells) for name, cells in CHECK_RUNS.items()}
    kinds = {}
    for k in cost.KINDS:
        fits = [(chip[n][k] * 1e6 / instr[n][k], n) for n in CHECK_RUNS if k in chip[n] and instr[n].get(k)]
        if fits:
            nspi, n = max(fits)
            kinds[k] = {"chip_ms": chip[n][k], "model_instr": instr[n][k], "ns_per_instr": round(nspi, 1),
                        "from": n}
    rep = reps[CAL_RUN]
    rec = {"source": "chip tier runs %s: %s" % (", ".join(CHECK_RUNS), cost.LABEL), "label": cost.LABEL,
           "firmware_hash": rep["meta"].get("firmware_hash") or cost.firmware_hash(),
           "commit": rep["meta"].get("commit") or runner.git_commit(),
           "date": datetime.date.today().isoformat(), "kinds": kinds, "chip": chip}
    cost.save(rec)
    log("calibration written: %s" % cost.path())
    return rec


def compare(record=None, out_dir=None, log=print, runs=None):
    """Rows {run: {kind: (model ms, chip ms, model / chip)}} with the record's ns per instruction;
    chip figures from the record (the runs it was made from), else from the chip tier."""
    rec = record or cost.load()
    if rec is None:
        raise runner.ChipTierError("no calibration record: python -m chip_tier calibrate")
    nspi = cost.ns_per_instr_table(rec)
    chip_runs = rec.get("chip") or {}
    rows = {}
    for run, cells in CHECK_RUNS.items():
        if runs is not None and run not in runs:
            continue
        chip = chip_runs.get(run)
        if chip is None:
            chip = chip_kinds(report.analyse(runner.run((run,), out_dir, log=log)[run]))
        instr = model_instr(cells)
        r = {}
        for k in cost.KINDS:
            if k in chip and k in instr:
                m = instr[k] * nspi.get(k, nspi.get("default", 0)) / 1e6
                r[k] = (round(m, 3), chip[k], round(m / chip[k], 3) if chip[k] else None)
        rows[run] = r
    return rows
