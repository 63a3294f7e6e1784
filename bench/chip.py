"""Model and chip side by side (issue 19): every board-speed figure from the virtual pack's model
(counted board time, sim/cost/rp2040.json) and from the chip tier (the built images on emulated
RP2040 chains: "emulated RP2040 (zero-wait flash)", never "measured on the chip"), with the ratio.

* ``kinds``: cost per kind of call (sim.cost.KINDS) at 16- and 255-cell frames, model / chip;
* ``roles``: per role, awake and light-sleep fractions and the estimated average current from
  them (bench.board_time.POWER_MA data-sheet currents: running, idle, light sleep) beside the
  123\\SmartBMS's ~1.9 mA, model and chip; the End's cycle (max) and heap;
* ``ramp``: the chip's V-max ramp (a Between's ADC rising 5 mV/s through V-max) to the End's
  charge-relay pin;
* ``frames``: per chip run, frames good / bad / cut at every board.
Needs the chip tier (node, ../shared/rp2emu firmware); its runs are cached under build/chip_tier.
"""
from bench import board_time as bt
from chip_tier import calibrate, report, runner, scenarios
from sim import cost

RUNS = ("c16", "c255", "c16_skew", "c255_skew", "ramp", "end10", "heap_romfs")


def _est_ma(awake, asleep, cpu="rp2040"):
    ma = bt.POWER_MA[cpu]
    idle = max(0.0, 1.0 - awake - asleep)
    return round(awake * ma[0] + idle * ma[1] + asleep * ma[2], 2)


def chip_roles(rep):
    out = {}
    for role in ("begin", "between", "end"):
        bs = [b for b in rep["boards"] if b["role"] == role and "awake_fraction" in b]
        if not bs:
            continue
        aw = max(b["awake_fraction"] for b in bs)
        sl = min(b.get("asleep_fraction", 0.0) for b in bs)
        row = {"awake_fraction": aw, "asleep_fraction": sl, "est_ma": _est_ma(aw, sl)}
        loops = [b["loop"] for b in bs if b.get("loop")]
        if loops:
            row["max_cycle_ms"] = max(x["max_cycle_us"] for x in loops) / 1000.0
            row["last_cycle_ms"] = max(x["last_cycle_us"] for x in loops) / 1000.0
        heaps = [b["heap_alloc"] for b in bs if b.get("heap_alloc")]
        if heaps:
            row["heap_bytes"] = max(heaps)
        out[role] = row
    return out


def run(results):
    paths = runner.run(RUNS)
    reps = {n: report.analyse(p) for n, p in paths.items()}
    rec = cost.load()
    res = {"label": cost.LABEL, "calibration": {k: rec.get(k) for k in ("commit", "firmware_hash", "date", "source")}
           if rec else None, "calibration_fresh": bool(rec) and rec["firmware_hash"] == cost.firmware_hash()}
    res["kinds"] = {run: {k: {"model_ms": m, "chip_ms": c, "ratio": r} for k, (m, c, r) in rows.items()}
                    for run, rows in calibrate.compare(record=rec).items()} if rec else {}
    model = bt.awake(cells=16, seconds=20)["roles"]
    chip = chip_roles(reps["c16"])
    roles = {}
    for role in ("begin", "between", "end"):
        m, c = model.get(role, {}), chip.get(role, {})
        roles[role] = {"model": {k: m.get(k) for k in ("awake_fraction", "asleep_fraction", "est_ma")},
                       "chip": c, "awake_ratio": round(m["awake_fraction"] / c["awake_fraction"], 2)
                       if m.get("awake_fraction") and c.get("awake_fraction") else None}
    res["roles"] = roles
    res["smartbms123_ma"] = bt.SMARTBMS_MA
    res["roles_255"] = chip_roles(reps["c255"])
    res["end_heap"] = {"romfs_firmware_bytes": chip_roles(reps["heap_romfs"])["end"].get("heap_bytes"),
                       "stock_firmware_bytes": chip_roles(reps["c16"])["end"].get("heap_bytes")}
    d, cross = report.ramp_delay_s(reps["ramp"], scenarios.RAMP_VMAX_V)
    res["ramp"] = {"crossing_s": round(cross, 3), "charge_open_after_s": None if d is None else round(d, 3)}
    res["frames"] = {n: [{"board": b["name"], "sent": b["sent"], "counted": {k: (b.get("cnt") or {}).get(k) for k in
                                                                              ("good_frames", "bad_frames", "cut_frames")},
                          "led_pulses": b["led_pulses"], "gc": len(b["gc"]), "resets": len(b["resets"])}
                         for b in rep["boards"]] for n, rep in reps.items()}
    results["chip"] = res
    _print(res)


def _print(res):
    print("model vs chip (%s); calibration %s" % (res["label"], res["calibration"]))
    print("%-9s %-16s %9s %9s %6s" % ("frames", "kind", "model ms", "chip ms", "ratio"))
    for run, rows in res["kinds"].items():
        for k, r in rows.items():
            print("%-9s %-16s %9.3f %9.3f %6.2f" % (run, k, r["model_ms"], r["chip_ms"], r["ratio"]))
    print("%-8s %-28s %-28s %s" % ("role", "model awake/asleep/mA", "chip awake/asleep/mA", "123SmartBMS"))
    for role, r in res["roles"].items():
        m, c = r["model"], r["chip"]
        print("%-8s %5.1f %% %5.1f %% %5s mA       %5.1f %% %5.1f %% %5s mA       ~%s mA" % (
            role, 100 * (m["awake_fraction"] or 0), 100 * (m["asleep_fraction"] or 0), m["est_ma"],
            100 * c.get("awake_fraction", 0), 100 * c.get("asleep_fraction", 0), c.get("est_ma"), res["smartbms123_ma"]))
    print("End heap: %s B (ROMFS firmware), %s B (stock firmware)" % (
        res["end_heap"]["romfs_firmware_bytes"], res["end_heap"]["stock_firmware_bytes"]))
    print("V-max ramp on the chip: charge relay open %s s after the crossing" % res["ramp"]["charge_open_after_s"])
