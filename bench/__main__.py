"""``python -m bench [section ...]``: run the benchmark sections and write bench/results.json."""
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for sub in ("host_shims", "firmware", ""):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)


def sections():
    names = []
    for entry in sorted(os.listdir(HERE)):
        if entry.endswith(".py") and not entry.startswith("_"):
            names.append(entry[:-3])
    return names


def main(argv):
    wanted = argv or sections()
    path = os.path.join(HERE, "results.json")
    results = {}
    failed = []
    for name in wanted:
        mod = importlib.import_module("bench." + name)
        if not hasattr(mod, "run"):
            continue
        try:
            mod.run(results)
        except Exception as e:  # one broken section must not hide the others
            failed.append(name)
            print("bench section %s failed: %r" % (name, e))
    if argv and os.path.exists(path):       # partial run: keep the other sections' figures
        with open(path) as f:
            old = json.load(f)
        old.update(results)
        results = old
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote %s" % os.path.relpath(path))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
