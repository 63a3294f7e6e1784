"""The layering of docs/architecture.md, enforced by parsing every module's imports (ast).

* firmware/core imports nothing but core and the MicroPython built-ins it is allowed (no hal,
  roles, time, machine, rp2, esp32, bluetooth); file I/O (``open``, ``os``) stays in the one
  module that has it today (core/store.py; ``os.urandom`` in core/password.py);
* only hal/ (and boot.py, which sets the outputs safe before anything else) imports the
  hardware modules machine / rp2 / esp32 / bluetooth;
* nothing in firmware/ imports the host side (sim, bench, tools, cellchain, host_tests);
* the host tools (sim/, bench/, tools/, cellchain/, chip_tier/) do not import firmware's ``core`` as a
  top-level package: they ask sim/fw.py (``fw.core("codec")``), the one place that knows;
* board_defs/ are data: they import nothing but ``micropython``.

Each failure names the file and line of the import.
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CORE_ALLOWED = {"core", "micropython", "array", "struct", "json", "os", "gc", "sys", "hashlib", "binascii",
                "math", "typing"}
CORE_FORBIDDEN_WHY = {
    "hal": "core is hardware-free: the role or hal passes values in",
    "roles": "core does not know the roles (roles -> core, never back)",
    "time": "core is clock-free: it takes dt_ms (docs/architecture.md, Time)",
    "utime": "core is clock-free: it takes dt_ms (docs/architecture.md, Time)",
    "machine": "core is hardware-free (hal/ is the only importer of machine)",
    "rp2": "core is hardware-free (hal/ is the only importer of rp2)",
    "esp32": "core is hardware-free (hal/ is the only importer of esp32)",
    "bluetooth": "core is hardware-free (hal/ble.py owns the radio)",
    "board": "board definitions reach core as values, never as an import",
}
# file I/O in core: only where it is today, until it moves to hal/ (shared/design: hal/storage.py)
CORE_OPEN_OK = {"firmware/core/store.py"}
CORE_OS_OK = {"firmware/core/store.py", "firmware/core/password.py"}
HARDWARE = {"machine", "rp2", "esp32", "bluetooth"}
HARDWARE_OK_OUTSIDE_HAL = {"firmware/boot.py"}
HOST = {"sim", "bench", "tools", "cellchain", "host_tests", "host_shims", "numpy", "pytest"}
HOST_DIRS = ("sim", "bench", "tools", "cellchain", "chip_tier")
FW_DOOR = "sim/fw.py"
# stands in for main.py inside a built image on the Unix port: it imports what the image imports
HOST_CORE_OK = {"tools/role_heap.py"}


def _files(top):
    out = []
    for d, dirs, names in os.walk(os.path.join(ROOT, top)):
        dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", "node_modules"))
        for n in sorted(names):
            if n.endswith(".py"):
                out.append(os.path.relpath(os.path.join(d, n), ROOT).replace(os.sep, "/"))
    return out


def imports(rel):
    """[(line, top-level module, what)] of every import in the file: import statements,
    ``from`` imports (relative ones count as the file's own package) and ``__import__("x")``
    calls with a literal name."""
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        tree = ast.parse(f.read(), rel)
    own = rel.split("/")[1] if rel.startswith("firmware/") and rel.count("/") > 1 else None
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append((node.lineno, a.name.split(".")[0], "import " + a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append((node.lineno, own or ".", "from %s%s import" % ("." * node.level, node.module or "")))
            else:
                out.append((node.lineno, node.module.split(".")[0], "from %s import" % node.module))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            out.append((node.lineno, node.args[0].value.split(".")[0], "__import__(%r)" % node.args[0].value))
    return out


def calls(rel, name):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        tree = ast.parse(f.read(), rel)
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def _report(bad, rule):
    assert not bad, rule + ":\n  " + "\n  ".join(bad)


def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch):
    (tmp_path / "firmware" / "core").mkdir(parents=True)
    (tmp_path / "firmware" / "core" / "x.py").write_text(
        "import time\nfrom hal.board import DATA_DIR\nfrom . import codec\n"
        "def f():\n    import machine\n    return __import__('roles.begin'), open('a')\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", str(tmp_path))
    got = imports("firmware/core/x.py")
    assert [(ln, m) for ln, m, _ in got] == [(1, "time"), (2, "hal"), (3, "core"), (5, "machine"), (6, "roles")]
    assert calls("firmware/core/x.py", "open") == [6]


def test_core_imports_only_core_and_builtins_and_keeps_file_io_where_it_is():
    files = _files("firmware/core")
    assert len(files) > 10
    bad = []
    for rel in files:
        for line, mod, what in imports(rel):
            if mod in CORE_FORBIDDEN_WHY:
                bad.append("%s:%d %s - %s" % (rel, line, what, CORE_FORBIDDEN_WHY[mod]))
            elif mod not in CORE_ALLOWED:
                bad.append("%s:%d %s - core imports only core and %s" % (rel, line, what,
                                                                       ", ".join(sorted(CORE_ALLOWED - {"core"}))))
            elif mod == "os" and rel not in CORE_OS_OK:
                bad.append("%s:%d %s - file system access in core only in %s" % (rel, line, what,
                                                                                ", ".join(sorted(CORE_OS_OK))))
        if rel not in CORE_OPEN_OK:
            for line in calls(rel, "open"):
                bad.append("%s:%d open() - file I/O in core only in %s (the roles write, at the frame's edge)"
                           % (rel, line, ", ".join(sorted(CORE_OPEN_OK))))
    _report(bad, "firmware/core must stay hardware-free, clock-free and I/O-free (docs/architecture.md)")


def test_only_hal_imports_the_hardware_modules():
    bad = []
    for rel in _files("firmware"):
        if rel.startswith("firmware/hal/") or rel in HARDWARE_OK_OUTSIDE_HAL:
            continue
        for line, mod, what in imports(rel):
            if mod in HARDWARE:
                bad.append("%s:%d %s - only hal/ (and boot.py) import %s" % (rel, line, what, ", ".join(sorted(HARDWARE))))
    _report(bad, "hardware access goes through hal/")


def test_firmware_imports_nothing_from_the_host_side():
    bad = []
    for rel in _files("firmware"):
        for line, mod, what in imports(rel):
            if mod in HOST:
                bad.append("%s:%d %s - firmware runs on a board: no %s there" % (rel, line, what, mod))
    _report(bad, "nothing in firmware/ imports sim, bench, tools, cellchain or test code")


def test_host_tools_reach_core_only_through_sim_fw():
    bad = []
    for top in HOST_DIRS:
        for rel in _files(top):
            if rel == FW_DOOR or rel in HOST_CORE_OK:
                continue
            for line, mod, what in imports(rel):
                if mod == "core":
                    bad.append("%s:%d %s - host code asks sim/fw.py: fw.core(\"name\")" % (rel, line, what))
    _report(bad, "host tools do not import firmware's core as a top-level package")


def test_no_firmware_left_in_the_host_side_and_no_host_code_in_firmware():
    """The micropython engine's board layer lives in sim/ (sim/mp_board.py), not in firmware/hal/."""
    assert not os.path.exists(os.path.join(ROOT, "firmware", "hal", "virtual.py"))
    assert os.path.exists(os.path.join(ROOT, "sim", "mp_board.py"))


def test_board_definitions_are_data():
    bad = []
    files = [r for r in _files("board_defs")]
    assert files
    for rel in files:
        for line, mod, what in imports(rel):
            if mod != "micropython":
                bad.append("%s:%d %s - a board definition imports nothing but micropython" % (rel, line, what))
    _report(bad, "board_defs/ are data")
