"""tools/role_heap.py on a real built End image, plain and --romfs: the ROM run imports every
firmware module from /rom and needs far less heap (the bytecode stays in the ROM)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def _heap(image, role, data, *flags):
    r = subprocess.run([MICROPYTHON, os.path.join(ROOT, "tools", "role_heap.py"), image, role, data] + list(flags),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_romfs_boot_takes_the_bytecode_out_of_the_heap(tmp_path):
    out = tmp_path / "build"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_images.py"), "--board", "pico_w",
                        "--role", "end", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    image = str(out / "pico_w" / "end")
    (tmp_path / "data").mkdir()
    plain = _heap(image, "end", str(tmp_path / "data"))
    rom = _heap(image, "end", str(tmp_path / "data"), "--romfs")
    assert plain["romfs"] is False and plain["rom_modules"] == 0
    assert rom["romfs"] is True and rom["module_names"] == plain["module_names"]
    assert rom["rom_modules"] == rom["modules"] - 1          # all but board.py (on the filesystem)
    assert rom["rom_bytes"] == os.path.getsize(os.path.join(image, "romfs.img"))
    assert rom["role_type"] == plain["role_type"] == "End"
    # the role's own objects are the same; loading the modules costs far less
    assert abs(rom["objects_bytes"] - plain["objects_bytes"]) < 2048
    assert rom["import_bytes"] < plain["import_bytes"] - 50000
    assert rom["heap_bytes"] == rom["import_bytes"] + rom["objects_bytes"]
