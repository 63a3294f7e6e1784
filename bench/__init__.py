"""Benchmarks: ``python -m bench`` (make bench) runs every bench/<section>.py that has
``run(results)``; each section adds its figures to the results dict and prints its table;
everything is written to bench/results.json."""


def table(title, header, rows):
    """Print a plain aligned table (no dependencies)."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    print(title)
    for k, r in enumerate(cols):
        print("  " + "  ".join(str(c).rjust(widths[i]) for i, c in enumerate(r)))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print()
