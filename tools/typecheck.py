"""`make typecheck`: mypy over firmware/ and board_defs/ once per MicroPython target.

    python tools/typecheck.py                      # every target, the whole tree
    python tools/typecheck.py --target rp2         # one target
    python tools/typecheck.py --target esp32 --paths some/file.py other/dir

For each target the MicroPython stubs are pip-installed once into build/typings/<target>/ and
given to mypy as both mypy_path and custom_typeshed_dir (stubs pip-installed into the venv are not
used by mypy, and the sets overwrite each other in one folder). Errors inside the stubs themselves
are silenced per stub module; never for firmware/ or board_defs/.

Target-specific modules: a file whose first 10 lines contain ``# mypy-targets: rp2`` (a comma
separated list) is checked only on those targets; elsewhere imports of it are skipped (Any).
Files named ``*_pio.py`` / ``*_rp2.py`` default to rp2, ``*_esp32.py`` to esp32.
The generated image's ``board`` module is stood in for by a real board definition per target.
Exit status: 0 when every target passes, 1 on type errors, 2 on a set-up failure.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPINGS = os.path.join(ROOT, "build", "typings")
WORK = os.path.join(ROOT, "build", "typecheck")
BASE_INI = os.path.join(ROOT, "tools", "mypy.ini")

# target -> (stub requirement, board definition standing in for `import board`)
TARGETS = {
    "rp2": ("micropython-rp2-rpi-pico-w-stubs==1.29.0.post1", "pico_w"),
    "esp32": ("micropython-esp32-stubs==1.29.0.post1", "esp32_devkitc"),
}
DEFAULT_PATHS = ("firmware", "board_defs")
_MARK = re.compile(r"#\s*mypy-targets:\s*([\w ,]+)")
_SUFFIX_TARGETS = (("_pio.py", ("rp2",)), ("_rp2.py", ("rp2",)), ("_esp32.py", ("esp32",)))


def stub_dir(target):
    return os.path.join(TYPINGS, target)


def ensure_stubs(target):
    """pip install --target build/typings/<target> on first use; skipped when present."""
    req = TARGETS[target][0]
    folder = stub_dir(target)
    stamp = os.path.join(folder, ".installed")
    if os.path.exists(stamp) and open(stamp).read().strip() == req:
        return folder
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    print("typecheck: installing %s into %s" % (req, os.path.relpath(folder, ROOT)), flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--target", folder, req]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit("typecheck: could not install %s (exit %d)" % (req, res.returncode))
    with open(stamp, "w") as f:
        f.write(req + "\n")
    return folder


def stub_modules(folder):
    """Top-level module names the stub folder provides (their errors are silenced)."""
    names = set()
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if entry.endswith(".pyi"):
            names.add(entry[:-4])
        elif os.path.isdir(path) and not entry.endswith((".dist-info", "__pycache__")) \
                and entry not in ("stdlib", "stubs"):
            if any(f.endswith(".pyi") for f in os.listdir(path)):
                names.add(entry)
    stdlib = os.path.join(folder, "stdlib")
    if os.path.isdir(stdlib):
        for entry in os.listdir(stdlib):
            if entry.endswith(".pyi"):
                names.add(entry[:-4])
            elif os.path.isdir(os.path.join(stdlib, entry)):
                names.add(entry)
    return sorted(n for n in names if n.isidentifier())


def file_targets(path):
    """Targets a firmware file runs on (None = all)."""
    try:
        with open(path) as f:
            head = [next(f, "") for _ in range(10)]
    except OSError:
        return None
    for line in head:
        m = _MARK.search(line)
        if m:
            return tuple(t.strip() for t in m.group(1).split(",") if t.strip())
    for suffix, targets in _SUFFIX_TARGETS:
        if path.endswith(suffix):
            return targets
    return None


def collect(paths):
    files = []
    for p in paths:
        p = os.path.join(ROOT, p) if not os.path.isabs(p) else p
        if os.path.isfile(p):
            files.append(p)
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return files


def module_name(path):
    """Module name as the image sees it (firmware/hal/board.py -> hal.board)."""
    rel = os.path.relpath(path, ROOT)
    if rel.startswith("firmware" + os.sep):
        rel = rel[len("firmware") + 1:]
    mod = rel[:-3].replace(os.sep, ".")
    return mod[:-9] if mod.endswith(".__init__") else mod


def write_config(target, skipped):
    folder = stub_dir(target)
    work = os.path.join(WORK, target)
    os.makedirs(work, exist_ok=True)
    stand_in = TARGETS[target][1]
    shutil.copy(os.path.join(ROOT, "board_defs", stand_in + ".py"), os.path.join(work, "board.py"))
    with open(BASE_INI) as f:
        base = f.read()
    lines = [base.rstrip(), ""]
    lines.append("mypy_path = %s" % os.pathsep.join((folder, os.path.join(ROOT, "firmware"), work, ROOT)))
    lines.append("custom_typeshed_dir = %s" % folder)
    # no incremental cache: with files appearing while others write them, a stale cache gave
    # false "module has no attribute" errors; a full run takes a few seconds
    lines.append("incremental = False")
    lines.append("cache_dir = %s" % os.path.join(ROOT, ".mypy_cache", target))
    lines.append("")
    stubs = stub_modules(folder)
    lines.append("# errors inside the MicroPython stubs themselves (never firmware/)")
    lines.append("[mypy-%s]" % ",".join(m for n in stubs for m in (n, n + ".*")))
    lines.append("ignore_errors = True")
    lines.append("")
    if skipped:
        lines.append("# modules for other targets: imports of them are Any here")
        lines.append("[mypy-%s]" % ",".join(sorted(skipped)))
        lines.append("follow_imports = skip")
        lines.append("")
    ini = os.path.join(work, "mypy.ini")
    with open(ini, "w") as f:
        f.write("\n".join(lines))
    return ini


def run_target(target, paths):
    ensure_stubs(target)
    files = collect(paths)
    check, skipped = [], set()
    for f in files:
        targets = file_targets(f)
        if targets is None or target in targets:
            check.append(f)
        else:
            skipped.add(module_name(f))
    ini = write_config(target, skipped)
    if not check:
        print("typecheck %-6s nothing to check" % target)
        return 0
    cmd = [sys.executable, "-m", "mypy", "--config-file", ini] + check
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    out = (res.stdout + res.stderr).strip()
    errors = [ln for ln in out.splitlines() if ": error:" in ln]
    if res.returncode == 0:
        print("typecheck %-6s ok      %d files (%s)" % (target, len(check), TARGETS[target][0]))
    else:
        print(out)
        print("typecheck %-6s FAILED  %d errors in %d files checked" % (target, len(errors), len(check)))
    return 0 if res.returncode == 0 else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", action="append", choices=sorted(TARGETS),
                    help="target to check (repeatable; default all)")
    ap.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS),
                    help="files or folders to check (default firmware board_defs)")
    args = ap.parse_args(argv)
    worst = 0
    for target in args.target or sorted(TARGETS, key=lambda t: t != "rp2"):
        worst = max(worst, run_target(target, args.paths))
    return worst


if __name__ == "__main__":
    sys.exit(main())
