"""The fault matrix (issue 20, sim/fault_matrix.py) on the MicroPython engine - the built images -
judged on the true cells: per sensor input the cases, the unsafe ones (none may be), the worst
time over / under / hot with a relay closed, cells balanced below V-min, the most relay closings
in a run, and the longest time from the fault to a relay opening.

Quick (``make bench``): the quick set (every input x fault-kind pair once, 4 cells, about a
minute). Long (``make bench-long``): the slow set (every pair under a profile of the
other direction at 16 cells, two 255-cell cases, a few minutes on 2 cores)."""
from concurrent.futures import ProcessPoolExecutor

from sim import fault_matrix as fm


def run(results, which="slow"):
    cases = fm.quick_cases() if which == "quick" else fm.slow_cases()
    with ProcessPoolExecutor(max_workers=2) as pool:
        res = list(pool.map(fm.run_case, cases))
    rows = fm.summary(res)
    print(fm.table(rows))
    unsafe = [r["case"] for r in res if not r["ok"]]
    if unsafe:
        print("UNSAFE cases: %s" % ", ".join(unsafe))
    results["fault_matrix"] = {"set": which, "cases": len(res), "unsafe": unsafe, "rows": rows}
