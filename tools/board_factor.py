"""Where the virtual pack's RP2040 board-time factor comes from (sim/board_time.py REF_BOARD_NS):

    .venv/bin/python tools/board_factor.py [COMMIT] [CYCLES]        (repo root; default 5c2a00c)

bench/mp_probe.py ran on an RP2040 at 125 MHz (MicroPython 1.28) with the firmware of COMMIT
gave 22.1 / 19.3 / 22.8 ms per cycle for begin / between / end (issue 12). This runs the same
probe, with the same firmware (``git archive COMMIT`` into a temporary folder), on this host's
CPython: chip ms / host ms per role is the board time per host time of that code, and in the
same process the fixed workload of sim/reference_work.py is timed. REF_BOARD_NS = the mean
factor x the workload's host ns: the board time the workload stands for, whatever the host's
speed. Prints one JSON line.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHIP_MS_PER_CYCLE = {"begin": 22.1, "between": 19.3, "end": 22.8}

# run inside the archived tree: the old probe's chain, timed with thread CPU time
_DRIVER = r"""
import gc, sys, time, json
sys.path.insert(0, "host_shims")
sys.path.insert(0, %(sim)r)
gc.mem_alloc = lambda: 0
time.ticks_us = lambda: time.thread_time_ns() // 1000
time.ticks_diff = lambda a, b: a - b
sys.argv = ["mp_probe.py", %(role)r, str(%(cycles)r), %(data)r]
import runpy
ns = runpy.run_path("bench/mp_probe.py")
out = []
import builtins
orig_print = builtins.print
builtins.print = lambda s, *a, **k: out.append(s)
ns["main"]()
r = json.loads(out[-1])
import opcount                      # again, counting instructions instead of timing
c = opcount.Counter(None)
time.ticks_us = lambda: c.n
ns["CYCLES"] = %(cycles)r // 4
sys.settrace(c._global)
ns["main"]()
sys.settrace(None)
builtins.print = orig_print
r2 = json.loads(out[-1])
import reference_work
print(json.dumps({"us": r["cpu_us_per_cycle"], "ok": r["end_comm_ok"], "ref_ns": reference_work.reference_ns(),
                  "instr": r2["cpu_us_per_cycle"]}))
"""


def main():
    commit = sys.argv[1] if len(sys.argv) > 1 else "5c2a00c"
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    with tempfile.TemporaryDirectory() as tmp:
        tar = os.path.join(tmp, "tree.tar")
        subprocess.run(["git", "archive", "-o", tar, commit, "firmware", "board_defs", "host_shims",
                        "bench/mp_probe.py"], cwd=HERE, check=True)
        with tarfile.open(tar) as t:
            t.extractall(tmp)
        per = {}
        refs = []
        for role in ("begin", "between", "end"):
            code = _DRIVER % {"sim": os.path.join(HERE, "sim"), "role": role, "cycles": cycles,
                              "data": os.path.join(tmp, "data-" + role)}
            got = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True,
                                 text=True)
            if got.returncode:
                raise SystemExit(got.stderr)
            r = json.loads(got.stdout.strip().splitlines()[-1])
            per[role] = r
            refs.append(r["ref_ns"])
    ratios = {role: CHIP_MS_PER_CYCLE[role] * 1000.0 / per[role]["us"] for role in per}
    factor = sum(ratios.values()) / 3.0
    ref = sorted(refs)[1]
    ns_per = {role: CHIP_MS_PER_CYCLE[role] * 1e6 / per[role]["instr"] for role in per}
    print(json.dumps({"commit": commit, "instr_per_cycle": {k: round(v["instr"]) for k, v in per.items()},
                      "board_ns_per_instr": {k: round(v, 1) for k, v in ns_per.items()},
                      "board_ns_per_instr_mean": round(sum(ns_per.values()) / 3.0, 2), "host_us_per_cycle": {k: round(v["us"], 1) for k, v in per.items()},
                      "end_comm_ok": [v["ok"] for v in per.values()],
                      "per_role": {k: round(v, 1) for k, v in ratios.items()}, "factor": round(factor, 1),
                      "reference_ns": ref, "ref_board_ns": int(factor * ref)}))


if __name__ == "__main__":
    main()
