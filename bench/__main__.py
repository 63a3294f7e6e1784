"""``.venv/bin/python -m bench [--long] [section ...]``: run the benchmark sections and write
bench/results.json.

Default (``make bench``): the quick sections with fewer trials, a few minutes on 2 cores.
``--long`` (``make bench-long``): every section at full size (the chip tier's runs, the board
speed section's 24 h comm-drop runs: hours). Each section prints when it starts and how long it
took; the summary holds only the figures of this run (results.json keeps the other sections'
figures from earlier runs, marked by ``bench_run``).
"""
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for sub in ("host_shims", "firmware", ""):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)


NOT_SECTIONS = ("mp_probe",)     # runs under the MicroPython Unix port, not a section
# the quick default: minutes on 2 cores (issue 22: `make bench` took ~40 min plus a 2 h section
# and printed nothing for 14 minutes)
QUICK = ("link", "memory", "images", "reaction", "soc_standby", "fault_matrix")
QUICK_ARGS = {"reaction": {"trials": {16: 6, 255: 2}}, "fault_matrix": {"which": "quick"}}


def sections():
    names = []
    for entry in sorted(os.listdir(HERE)):
        if entry.endswith(".py") and not entry.startswith("_") and entry[:-3] not in NOT_SECTIONS:
            names.append(entry[:-3])
    return names


def _get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _heap_verdict(check, bits):
    b = check["romfs%s_bytes" % bits]
    if b is None:
        return "-"
    if check["romfs%s_ok" % bits]:
        return "%.1f kB ok" % (b / 1000.0)
    if bits == "64":     # an upper bound only: the 32-bit figure decides
        return "%.1f kB (64-bit upper bound above the limit; the 32-bit figure decides)" % (b / 1000.0)
    return "%.1f kB over the limit" % (b / 1000.0)


def summary_rows(res):
    """(figure, value) pairs of the headline figures present in a results dict."""
    rows = []

    def add(name, value, fmt="%s"):
        if value is not None:
            rows.append((name, fmt % value if not isinstance(value, str) else value))
    for n in ("4", "16", "64", "255"):
        c = _get(res, "link", "cells", n)
        if c:
            sb = _get(c, "compare", "smartbms123", "latency_ms")
            add("link %s cells: aggregates at End" % n,
                "%s ms (%s bit times), detail in %s cycles%s" % (
                    c["aggregates_latency_ms"], c["aggregates_latency_bits"], c["detail_cycles"],
                    "; 123SmartBMS scheme %s ms, %s cycles" % (sb, n) if sb is not None else ""))
    for n in ("16", "255"):
        for key, label in (("vmax_to_charge_off_ms", "V-max -> charge relay open"),
                           ("vmin_to_load_off_ms", "V-min -> load relay open"),
                           ("link_break_to_both_off_ms", "link break -> both relays open"),
                           ("vmax_ramp_to_charge_off_ms", "V-max on a 1 C ramp -> charge relay open"),
                           ("vmin_ramp_to_load_off_ms", "V-min on a 1 C ramp -> load relay open")):
            m = _get(res, "reaction", "cells", n, key)
            if m:
                add("reaction %s cells: %s" % (n, label), "median %s ms, worst %s ms" % (m["median"], m["worst"]))
    for role in ("begin", "between", "end"):
        m = _get(res, "memory", role)
        if m:
            add("%s: heap after boot / alloc per cycle" % role,
                "%s B / %s B" % (m["heap_after_boot_bytes"], m["alloc_per_cycle_bytes"]))
            add("%s: CPU per cycle (Unix port) / awake" % role,
                "%s ms / %.1f %%" % (m["cpu_ms_per_cycle"], 100.0 * m["awake_fraction"]))
    for target, per in sorted((_get(res, "images") or {}).items()):
        add("image %s" % target, ", ".join("%s %s B" % (r, per[r]["bytes"]) for r in ("begin", "between", "end")
                                           if r in per))
        heaps = []
        for r in ("begin", "between", "end"):
            h = per.get(r, {}).get("heap") or {}
            if h.get("plain") and h.get("romfs"):
                heaps.append("%s %.1f / %.1f kB%s" % (r, h["plain"]["heap_bytes"] / 1000.0, h["romfs"]["heap_bytes"] / 1000.0,
                                                    " / %.1f kB" % (h["romfs32"]["heap_bytes"] / 1000.0)
                                                    if h.get("romfs32") else ""))
        if heaps:
            add("heap at boot %s (plain / romfs, 64-bit / romfs 32-bit)" % target, ", ".join(heaps))
    for target, c in sorted((_get(res, "images_end_heap_target") or {}).items()):
        add("End heap at boot <= 90 KiB %s (romfs 32-bit / 64-bit upper bound)" % target,
            "%s / %s" % (_heap_verdict(c, "32"), _heap_verdict(c, "64")))
    soc = _get(res, "soc")
    if soc:
        add("SoC error with recalibration", "max %s %%, RMS %s %%" % (soc.get("max_error_pct"), soc.get("rms_error_pct")))
        add("SoC error without recalibration", "max %s %%" % _get(soc, "no_recal", "max_error_pct"))
        unk = _get(soc, "unknown_start")
        if unk:
            add("SoC from an unknown start, with recalibration",
                "max on last day %s %%, under 3 %% from day %s" % (
                    unk.get("last_day_max_error_pct"), unk.get("settled_at_day")))
            add("SoC from an unknown start, without recalibration",
                "max on last day %s %%, under 3 %% from day %s" % (
                    _get(unk, "no_recal", "last_day_max_error_pct"), _get(unk, "no_recal", "settled_at_day")))
    bt = _get(res, "board_time")
    if bt:
        for n, r in sorted((bt.get("ramp") or {}).items(), key=lambda x: int(x[0])):
            add("board speed %s cells: V-max on a 1 C ramp -> charge relay open" % n,
                "median %s ms, worst %s ms (link never up in %s of %s)" % (
                    r["median_ms"], r["worst_ms"], r["relay_never_closed"], r["trials"]))
        hi = _get(bt, "awake_high", "roles", "between")
        if hi:
            add("board speed %s between at %s ns per instruction: awake" % (
                _get(bt, "awake_high", "board"), _get(bt, "awake_high", "ns_per_instr")),
                "%.1f %%" % (100.0 * hi["awake_fraction"]))
        for key in ("awake", "awake_esp32"):
            for role, r in sorted((_get(bt, key, "roles") or {}).items()):
                add("board speed %s %s: awake / light sleep / est. current" % (_get(bt, key, "board"), role),
                    "%.1f %% / %.1f %% / %s mA (123SmartBMS ~%s mA)" % (
                        100.0 * r["awake_fraction"], 100.0 * r.get("asleep_fraction", 0.0), r.get("est_ma"),
                        _get(bt, key, "smartbms123_ma")))
        for d in bt.get("drops") or []:
            add("%g h, clocks +-2 %%, BER 1e-5%s" % (d["hours"], "" if d["opto"] else ", ideal opto"),
                "%s comm drops, %s relay openings, relays closed %.1f %% of the time" % (
                    d["comm_drops"], d["relay_openings"], 100.0 * d["relays_closed_fraction"]))
    chip = _get(res, "chip")
    if chip:
        for run, per_kind in sorted((chip.get("kinds") or {}).items()):
            for kind, r in sorted(per_kind.items()):
                add("model vs chip %s %s" % (run, kind), "model %.3f ms, chip %.3f ms (x%.2f)" % (
                    r["model_ms"], r["chip_ms"], r["ratio"]))
        for role, r in sorted((chip.get("roles") or {}).items()):
            m, c = r["model"], r["chip"]
            add("%s awake / light sleep / est. mA: model | chip" % role,
                "%.1f %% / %.1f %% / %s | %.1f %% / %.1f %% / %s (123SmartBMS ~%s mA)" % (
                    100.0 * (m.get("awake_fraction") or 0), 100.0 * (m.get("asleep_fraction") or 0), m.get("est_ma"),
                    100.0 * c.get("awake_fraction", 0), 100.0 * c.get("asleep_fraction", 0), c.get("est_ma"),
                    chip.get("smartbms123_ma")))
        h = chip.get("end_heap") or {}
        add("End heap on the chip: ROMFS / stock firmware", "%s / %s B" % (h.get("romfs_firmware_bytes"),
                                                                         h.get("stock_firmware_bytes")))
        add("V-max ramp on the chip -> charge relay open", "%s s" % _get(chip, "ramp", "charge_open_after_s"))
    sec = _get(res, "security")
    if sec:
        for key, label in (("ble", "Bluetooth, reconnecting after each guess"), ("page", "through the dashboard page")):
            f = sec.get(key)
            if f:
                add("password guesses per day, %s" % label,
                    "%s (first day %s); 6 digits found in ~%s years, 4 digits in ~%s days" % (
                        f["per_day"], f["first_day"], f["pin6_expected_years"], f["pin4_expected_days"]))
        o = sec.get("owner_6h_once_a_minute")
        if o:
            add("owner's logins while an attacker guesses (6 h, once a minute)",
                "%s of %s without the button, %s of %s with a short press" % (
                    o["without_button"], o["tries"], o["with_button"], o["tries"]))
    gw = _get(res, "gateway")
    if gw:
        for key, label in (("relay_only", "relay-only"), ("closed_loop_victron", "gateway closed loop, Victron"),
                           ("closed_loop_pylon", "gateway closed loop, Pylontech/Deye")):
            r = gw.get(key)
            if r:
                add("3 %% spread charge, %s" % label, "%s V-max trips, top cell peak %s V%s, full after %s s" % (
                    r["vmax_trips"], r["top_cell_peak_v"],
                    " (target %+d mV)" % r["top_cell_over_target_mv"] if "top_cell_over_target_mv" in r else "",
                    r["full_after_s"]))
        for p, s in sorted((gw.get("end_death_to_inverter_stop_s") or {}).items()):
            add("End board dead -> %s inverter stopped" % p, "%s s" % s)
    fmx = _get(res, "fault_matrix")
    if fmx:
        for inp, row in sorted((fmx.get("rows") or {}).items()):
            add("fault matrix (%s set), %s" % (fmx["set"], inp),
                "%d cases, %d unsafe; relay opened in %d, worst %s s after the fault; most closings %d" % (
                    row["cases"], row["unsafe"], row["opened"],
                    "-" if row["worst_reaction_s"] is None else row["worst_reaction_s"], row["closings"]))
    bal = _get(res, "balance")
    if bal:
        add("top-of-charge spread after %s cycles" % bal.get("days"),
            "balancing on %s mV, off %s mV" % (bal.get("spread_mv_on"), bal.get("spread_mv_off")))
    return rows


def print_summary(res):
    rows = summary_rows(res)
    if not rows:
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        from bench import table
        table("cellchain bench summary", ["figure", "value"], rows)
        return
    t = Table(title="cellchain bench summary: this run only (docs/benchmarks.md)")
    t.add_column("figure")
    t.add_column("value")
    for name, value in rows:
        t.add_row(name, value)
    Console(width=110).print(t)


def main(argv):
    argv = list(argv)
    long_run = "--long" in argv
    argv = [a for a in argv if a != "--long"]
    if "--list" in argv:
        print("sections: %s\nquick default: %s" % (" ".join(sections()), " ".join(QUICK)))
        return 0
    wanted = argv or (sections() if long_run else [s for s in QUICK if s in sections()])
    quick = not long_run and not argv
    # CELLCHAIN_BENCH_RESULTS: another results file (tests write theirs to a temporary folder)
    path = os.environ.get("CELLCHAIN_BENCH_RESULTS") or os.path.join(HERE, "results.json")
    results = {}
    failed = []
    took = {}
    t_all = time.monotonic()
    print("cellchain bench: %s run, %d sections: %s" % ("quick" if quick else "full", len(wanted), " ".join(wanted)),
          flush=True)
    for k, name in enumerate(wanted):
        mod = importlib.import_module("bench." + name)
        if not hasattr(mod, "run"):
            continue
        print("[%d/%d] %s ..." % (k + 1, len(wanted), name), flush=True)
        t0 = time.monotonic()
        try:
            mod.run(results, **(QUICK_ARGS.get(name, {}) if quick else {}))
        except Exception as e:  # one broken section must not hide the others
            failed.append(name)
            print("bench section %s failed: %r" % (name, e))
        took[name] = round(time.monotonic() - t0, 1)
        print("[%d/%d] %s done in %.0f s (%.0f s so far)" % (k + 1, len(wanted), name, took[name],
                                                            time.monotonic() - t_all), flush=True)
    this_run = dict(results)
    results["bench_run"] = {"mode": "quick" if quick else "full", "sections": list(took),
                            "seconds": took, "failed": failed}
    if os.path.exists(path):       # keep the other sections' figures (not in this run's summary)
        with open(path) as f:
            old = json.load(f)
        old.update(results)
        results = old
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print_summary(this_run)
    print("sections: %s" % ", ".join("%s %.0f s" % (n, t) for n, t in took.items()))
    if failed:
        print("failed sections (their figures are not in the summary): %s" % ", ".join(failed))
    print("wrote %s (figures of this run; the other sections' figures are from earlier runs)"
          % os.path.relpath(path))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
