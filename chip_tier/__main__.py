"""``python -m chip_tier [RUN ...] [--force] [--jobs N] [--out DIR] [--json]``: run the chip tier's
chains (all of scenarios.DEFAULT when none is named) and print each board's figures.
``python -m chip_tier calibrate``: the model's cost per kind of call from the chip (sim/cost/rp2040.json);
``python -m chip_tier compare``: model vs chip per kind of call."""
import argparse
import json
import sys

from chip_tier import report, runner, scenarios


def _calibration(what, out):
    from chip_tier import calibrate
    try:
        if what == "calibrate":
            calibrate.calibrate(out)
        rows = calibrate.compare(out_dir=out)
    except runner.ChipTierError as e:
        print("chip tier: %s" % e, file=sys.stderr)
        return 1
    print("%-9s %-16s %10s %10s %7s   (chip: emulated RP2040, zero-wait flash)" % ("run", "kind", "model ms",
                                                                                     "chip ms", "ratio"))
    for run, r in rows.items():
        for k, (m, c, ratio) in r.items():
            print("%-9s %-16s %10.3f %10.3f %7.2f" % (run, k, m, c, ratio))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("calibrate", "compare"):
        out = argv[argv.index("--out") + 1] if "--out" in argv else None
        return _calibration(argv[0], out)
    ap = argparse.ArgumentParser(prog="python -m chip_tier", description=__doc__)
    ap.add_argument("runs", nargs="*", help="run names (%s)" % ", ".join(scenarios.RUNS))
    ap.add_argument("--force", action="store_true", help="run again even when up to date")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--out", default=None, help="results folder (default build/chip_tier)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args(argv)
    names = a.runs or list(scenarios.DEFAULT)
    bad = [n for n in names if n not in scenarios.RUNS]
    if bad:
        ap.error("unknown run(s): %s" % ", ".join(bad))
    try:
        paths = runner.run(names, a.out, jobs=a.jobs, force=a.force)
    except runner.ChipTierError as e:
        print("chip tier: %s" % e, file=sys.stderr)
        return 1
    reps = {n: report.analyse(p) for n, p in paths.items()}
    if a.json:
        print(json.dumps(reps, indent=1, default=list))
        return 0
    for n, rep in reps.items():
        print("== %s (emulated RP2040, zero-wait flash) ==" % n)
        for b in rep["boards"]:
            loop = b.get("loop") or {}
            print("  %-10s sent %s  led %d  awake %.1f %% asleep %.1f %%  cycle %s/%s us  rx/char %s ms  "
                  "gc %d  resets %d  heap %s  alive %s" % (
                      b["name"], b["sent"], b["led_pulses"], 100 * b.get("awake_fraction", 0),
                      100 * b.get("asleep_fraction", 0), loop.get("last_cycle_us"), loop.get("max_cycle_us"),
                      (b["rx_char_ms"] or {}).get("median"), len(b["gc"]), len(b["resets"]),
                      b.get("heap_alloc"), b.get("alive")))
            if b.get("cnt"):
                print("             counters %s" % b["cnt"])
        if rep["run"].get("ramp"):
            d, cross = report.ramp_delay_s(rep, scenarios.RAMP_VMAX_V)
            print("  V-max ramp: crossing at %.2f s, charge relay open %s s later" % (cross, d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
