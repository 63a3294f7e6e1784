"""Memory and CPU per role on the MicroPython Unix port (issue 9, figures 3 and 4).

Each role runs in its own ``.venv/bin/micropython bench/mp_probe.py ROLE CYCLES DIR`` process
(see that file): a Begin -> Between -> End chain of the real role objects on allocation-free
fake hardware, the measured role's calls wrapped. Two runs per role:

* measure: heap after start-up, bytes allocated per steady-state cycle (after 100 warm-up
  cycles), CPU time per cycle, and ``micropython.heap_lock()`` held around the role's calls for
  the steady-state cycles (``heap_lock_steady_ok``);
* locate: ``heap_lock()`` from the very first cycle; the first call that allocates is reported
  with its traceback (``first_alloc``), e.g. the End board's state save.

Awake fraction of a 1 s cycle = (interpreter time per cycle + the time the board's link pin is
busy with the frame it must receive or send) / cycle. The link time is the frame length of the
reference pack (REF_CELLS) at the link's baud, from the link section: Begin sends the frame,
Between receives and forwards it cut-through (one frame time plus one character), End receives
it. The interpreter time is the Unix port's on this host: a board's CPU is slower (an RP2040 at
125 MHz runs MicroPython roughly 20-50x slower than a desktop core), so the CPU share is also
given scaled by BOARD_SLOWDOWN as ``awake_fraction_board_est``.
"""
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY = os.environ.get("CELLCHAIN_MICROPYTHON", os.path.join(ROOT, ".venv", "bin", "micropython"))
ROLES = ("begin", "between", "end")
CYCLES = 500
REF_CELLS = 16
BAUD = 9600
CYCLE_MS = 1000
BOARD_SLOWDOWN = 30     # assumed RP2040 / desktop interpreter speed ratio (estimate only)


def _data_dir():
    d = tempfile.mkdtemp(prefix="cellchain-bench-mem-")
    from sim import fw
    cs = fw.core("settings")
    for k in (1, 2, 3):
        os.makedirs(os.path.join(d, "board%d" % k))
    cs.save(os.path.join(d, "board3", "settings.json"), cs.preset(cs.LIFEPO4))
    return d


def probe(role, cycles=CYCLES, locate=False):
    """Run bench/mp_probe.py for one role; returns its JSON dict."""
    d = _data_dir()
    try:
        args = [MPY, os.path.join("bench", "mp_probe.py"), role, str(cycles), d]
        if locate:
            args.append("locate")
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError("mp_probe %s failed: %s %s" % (role, out.stdout[-2000:], out.stderr[-2000:]))
    return json.loads(lines[-1])


def frame_bytes(results, cells=REF_CELLS):
    try:
        return int(results["link"]["cells"][str(cells)]["frame_bytes"])
    except (KeyError, TypeError, ValueError):
        from bench import link
        return link.measure(cells)["frame_bytes"]


def wire_ms(role, nbytes, baud=BAUD):
    char_ms = 10 * 1000.0 / baud
    if role == "between":
        return (nbytes + 1) * char_ms
    return nbytes * char_ms


def run(results, cycles=CYCLES):
    mem = {}
    rows = []
    nbytes = frame_bytes(results)
    for role in ROLES:
        m = probe(role, cycles)
        loc = probe(role, min(cycles, 200), locate=True)
        cpu_ms = m["cpu_us_per_cycle"] / 1000.0
        w = wire_ms(role, nbytes)
        first = loc["heap_lock_error"]
        mem[role] = {
            "heap_after_boot_bytes": m["heap_after_boot_bytes"],
            "alloc_per_cycle_bytes": m["alloc_per_cycle_bytes"],
            "heap_lock_steady_ok": m["heap_lock_ok"],
            "alloc_events": m["alloc_events"],
            "first_alloc": first.strip().splitlines() if first else None,
            "cpu_ms_per_cycle": round(cpu_ms, 3),
            "wire_ms_per_cycle": round(w, 2),
            "awake_fraction": round((cpu_ms + w) / CYCLE_MS, 4),
            "awake_fraction_board_est": round((BOARD_SLOWDOWN * cpu_ms + w) / CYCLE_MS, 4),
            "cycles": m["cycles"],
            "relays_closed": m["end_relays"],
        }
        ev = ", ".join("%d B at %d s" % (b, c) for c, b in m["alloc_events"]) or "none"
        rows.append([role, m["heap_after_boot_bytes"], "%.1f" % m["alloc_per_cycle_bytes"],
                     "yes" if m["heap_lock_ok"] else "NO", ev, "%.3f" % cpu_ms, "%.1f" % w,
                     "%.3f" % mem[role]["awake_fraction"], "%.3f" % mem[role]["awake_fraction_board_est"]])
    mem["_method"] = {"cycles": cycles, "ref_cells": REF_CELLS, "frame_bytes": nbytes, "baud": BAUD,
                      "cycle_ms": CYCLE_MS, "board_slowdown": BOARD_SLOWDOWN,
                      "impl": "micropython unix port"}
    results["memory"] = mem
    from bench import table
    table("memory and CPU per role (MicroPython Unix port, %d steady cycles; wire time for a %d-cell frame "
          "of %d B at %d baud)" % (cycles, REF_CELLS, nbytes, BAUD),
          ["role", "heap B", "alloc B/cycle", "heap_lock", "alloc events (any cycle)", "cpu ms",
           "wire ms", "awake", "awake (board est)"], rows)
    return results
