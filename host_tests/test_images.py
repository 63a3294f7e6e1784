"""tools/build_images.py on a temporary firmware tree: only reachable modules, per role/CPU
markers, packages kept, .mpy that import on the Unix port, clear errors for missing modules."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "build_images.py")

TREE = {
    "boot.py": "import board\n",
    "core/__init__.py": "",
    "core/a.py": "from core import b\nfrom core.b import VALUE\n\ntry:\n    from typing import TYPE_CHECKING\n"
                 "except ImportError:\n    TYPE_CHECKING = False\nif TYPE_CHECKING:\n"
                 "    from core import typing_only\n\n\ndef f():\n    return b.VALUE + VALUE\n",
    "core/b.py": "from micropython import const\n\nVALUE = const(21)\n",
    "core/unused.py": "X = 1\n",
    "core/typing_only.py": "Y = 2\n",
    "hal/__init__.py": "",
    "hal/loop.py": "import time\nfrom core import a\n\n\ndef run(board, role):\n"
                   "    from hal import ble  # image: end\n"
                   "    from hal import pio_thing  # image: rp2040\n"
                   "    from . import util\n"
                   "    return a.f(), ble, pio_thing, util\n",
    "hal/util.py": "U = 3\n",
    "hal/ble.py": "import bluetooth\n\n\ndef make(bd):\n    return bluetooth.BLE()\n",
    "hal/pio_thing.py": "import rp2\n\n\n@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)\ndef prog():\n    set(pins, 1)\n",
    "roles/__init__.py": "",
    "roles/begin.py": "from roles import common\n\n\ndef make(hw, bd):\n    return common\n",
    "roles/between.py": "from .common import C\n\n\ndef make(hw, bd):\n    return C\n",
    "roles/end.py": "from roles import common\nimport core.b\n\n\ndef make(hw, bd):\n    return common\n",
    "roles/gateway.py": "from roles import common\n\n\ndef make(hw, bd):\n    return common\n",
    "roles/common.py": "C = 1\n",
}


def _tree(tmp_path, extra=None):
    fw = tmp_path / "firmware"
    for rel, src in dict(TREE, **(extra or {})).items():
        p = fw / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
    return fw


def _build(tmp_path, fw, *args):
    out = tmp_path / "build"
    res = subprocess.run([sys.executable, TOOL, "--firmware", str(fw), "--out", str(out)] + list(args),
                         capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr, out


def _files(folder, everything=False):
    """The files of an image that go onto the board's filesystem (everything=True: also
    manifest.py, package.json and romfs.img)."""
    found = set()
    for dirpath, _d, names in os.walk(folder):
        for n in names:
            found.add(os.path.relpath(os.path.join(dirpath, n), folder))
    if not everything:
        found -= {"manifest.py", "package.json", "romfs.img"}
    return found


def _manifest_modules(folder):
    """Run manifest.py the way MicroPython's manifestfile.py does (its functions as globals):
    the dotted module names it freezes, each checked to exist at its base_path."""
    found = []
    included = []

    def module(path, base_path=".", opt=None):
        src = os.path.normpath(os.path.join(folder, base_path, path))
        assert os.path.isfile(src), src
        name = path[:-3].replace("/", ".")
        found.append(name[:-9] if name.endswith(".__init__") else name)

    def include(path, **kw):
        included.append(path)

    code = (folder / "manifest.py").read_text()
    exec(compile(code, "manifest.py", "exec"), {"module": module, "include": include})
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    return sorted(found)


def test_manifest_and_package_json_list_exactly_the_image(tmp_path):
    import json
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_images
    rc, text, out = _build(tmp_path, os.path.join(ROOT, "firmware"), "--board", "pico_w", "--board", "pico")
    assert rc == 0, text
    for board, role in (("pico_w", "end"), ("pico", "between"), ("pico", "begin")):
        img = out / board / role
        assert _manifest_modules(img) == build_images.image_modules(str(img)), (board, role)
        pkg = json.loads((img / "package.json").read_text())
        assert sorted(dst for dst, _src in pkg["urls"]) == sorted(_files(img))
        assert all(dst == src for dst, src in pkg["urls"])          # relative to package.json
        assert pkg["version"] == "%d.%d.%d" % build_images_version()
        assert {"manifest.py", "package.json", "romfs.img"} <= _files(img, everything=True)


def build_images_version():
    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    from core.version import FIRMWARE_VERSION
    return FIRMWARE_VERSION


_ROMFS_LIST = """import sys, os, vfs
with open(sys.argv[1], "rb") as f:
    vfs.mount(vfs.VfsRom(f.read()), "/rom")
def walk(p):
    for n in sorted(os.listdir(p)):
        q = p + "/" + n
        if os.stat(q)[0] & 0x4000:
            walk(q)
        else:
            with open(q, "rb") as f:
                print(q[5:], len(f.read()))
walk("/rom")
sys.path.insert(0, "/rom")
import core.a
print("import", core.a.__file__, core.a.f())
"""


def test_romfs_image_holds_every_mpy_and_imports_on_the_unix_port(tmp_path):
    fw = _tree(tmp_path)
    rc, text, out = _build(tmp_path, fw, "--board", "pico_w", "--role", "end")
    assert rc == 0, text
    img = out / "pico_w" / "end"
    assert (img / "romfs.img").read_bytes()[:3] == b"\xd2\xcd\x31"      # ROMFS header
    script = tmp_path / "romfs_list.py"
    script.write_text(_ROMFS_LIST)
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    r = subprocess.run([mp, str(script), str(img / "romfs.img")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "import /rom/core/a.mpy 42"                      # runs from the ROM
    listed = dict(ln.split() for ln in lines[:-1])
    mpys = {f for f in _files(img) if f.endswith(".mpy")}
    assert set(listed) == mpys                                          # every .mpy, nothing else
    for f in mpys:
        assert int(listed[f]) == (img / f).stat().st_size, f


def test_images_hold_exactly_what_each_role_needs(tmp_path):
    fw = _tree(tmp_path)
    rc, text, out = _build(tmp_path, fw, "--board", "pico_w", "--board", "esp32_devkitc")
    assert rc == 0, text
    common = {"main.py", "boot.py", "board.py", "core/__init__.mpy", "core/a.mpy", "core/b.mpy",
              "hal/__init__.mpy", "hal/loop.mpy", "hal/util.mpy", "roles/__init__.mpy", "roles/common.mpy"}
    assert _files(out / "pico_w" / "begin") == common | {"roles/begin.mpy", "hal/pio_thing.mpy"}
    assert _files(out / "pico_w" / "between") == common | {"roles/between.mpy", "hal/pio_thing.mpy"}
    assert _files(out / "pico_w" / "end") == common | {"roles/end.mpy", "hal/pio_thing.mpy", "hal/ble.mpy"}
    assert _files(out / "esp32_devkitc" / "end") == common | {"roles/end.mpy", "hal/ble.mpy"}
    assert _files(out / "esp32_devkitc" / "begin") == common | {"roles/begin.mpy"}
    assert _files(out / "pico_w" / "gateway") == common | {"roles/gateway.mpy", "hal/pio_thing.mpy"}
    assert _files(out / "esp32_devkitc" / "gateway") == common | {"roles/gateway.mpy"}
    # main.py starts the role; board.py is the definition as source
    main = (out / "pico_w" / "end" / "main.py").read_text()
    assert "import board\nfrom roles import end as role\nfrom hal import loop\n" in main
    assert main.rstrip().endswith("loop.run(board, role)")
    assert 'if "/rom" not in sys.path:\n    sys.path.append("/rom")' in main     # flash.sh --romfs
    assert (out / "pico_w" / "end" / "board.py").read_text() == open(os.path.join(ROOT, "board_defs", "pico_w.py")).read()
    assert (out / "pico_w" / "end" / "boot.py").read_text() == TREE["boot.py"]
    head = (out / "esp32_devkitc" / "end" / "core" / "a.mpy").read_bytes()[:2]
    assert head == b"M\x06"                                   # mpy v6 from mpy-cross 1.29
    # size table: one row per image with file count and bytes
    lines = [ln for ln in text.splitlines() if ln.startswith(("pico_w ", "esp32_devkitc "))]
    assert len(lines) == 8                                   # begin, between, end, gateway x 2 boards
    for ln in lines:
        cells = ln.split()
        assert int(cells[2]) > 0 and int(cells[3]) > 0 and cells[4] == "ok"
    assert "8 image(s) built, 0 failed" in text


def test_mpy_files_import_on_the_unix_port(tmp_path):
    fw = _tree(tmp_path)
    rc, text, out = _build(tmp_path, fw, "--board", "pico_w", "--role", "end", "--check")
    assert rc == 0, text
    assert "imports on unix port (checked 11 failed 0)" in text
    # a module that raises at import time fails the check
    fw = _tree(tmp_path, {"roles/common.py": "C = 1\nraise ValueError('boom')\n"})
    rc, text, out = _build(tmp_path, fw, "--board", "pico_w", "--role", "end", "--check")
    assert rc == 1 and "CHECK FAILED" in text and "roles.common" in text and "boom" in text


def test_missing_module_is_named_and_other_images_still_build(tmp_path):
    fw = _tree(tmp_path, {"roles/end.py": "from core import missing_thing\n"})
    os.remove(fw / "roles" / "between.py")
    rc, text, out = _build(tmp_path, fw, "--board", "esp32_devkitc")
    assert rc == 1
    assert "module core.missing_thing (imported by roles.end (line 1)) is missing" in text
    assert "module roles.between (imported by main (line 7)) is missing" in text
    assert "2 image(s) built, 2 failed"           # begin and gateway in text
    assert (out / "esp32_devkitc" / "begin" / "roles" / "begin.mpy").exists()


def test_syntax_error_and_bad_arguments(tmp_path):
    fw = _tree(tmp_path, {"core/b.py": "VALUE = (\n"})
    rc, text, _ = _build(tmp_path, fw, "--board", "pico", "--role", "between")
    assert rc == 1 and "core/b.py" in text
    rc, text, _ = _build(tmp_path, fw, "--board", "nosuchboard")
    assert rc == 2 and "unknown board 'nosuchboard'" in text
    rc, text, _ = _build(tmp_path, fw, "--board", "pico", "--role", "end")
    assert rc == 2 and "cannot take the end role" in text


def test_rebuild_removes_stale_files(tmp_path):
    fw = _tree(tmp_path)
    rc, text, out = _build(tmp_path, fw, "--board", "pico", "--role", "begin")
    assert rc == 0, text
    (out / "pico" / "begin" / "stale.mpy").write_bytes(b"x")
    shutil.rmtree(fw / "core")
    fw = _tree(tmp_path, {"core/a.py": "X = 1\n"})
    rc, text, out = _build(tmp_path, fw, "--board", "pico", "--role", "begin")
    assert rc == 0, text
    files = _files(out / "pico" / "begin")
    assert "stale.mpy" not in files and "core/b.mpy" not in files
