"""tools/role_heap.py on a real built End image, plain and --romfs: the ROM run imports every
firmware module from /rom and needs far less heap (the bytecode stays in the ROM). The issue 12
target (End heap at boot <= 90 KiB with BLE buffers) on the 32-bit build of tools/mp32 (skipped
when it is not built: tools/mp32/build.sh), and a 64-bit upper bound that must not grow."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
sys.path.insert(0, ROOT)
from bench import images  # noqa: E402

END_HEAP_64_MAX = 129000     # 64-bit romfs figure of the End (115.6 kB when set; 124.2 kB with issue
#                              20's input self-tests, sensor hold-off, empty decision, link quality and issue 22's event log in flash;
#                              128.6 kB with the pack brain split into view, rules and follow check, issue 20 item 8:
#                              +2.0 kB on the 32-bit build, 77.0 of 90 KiB; the 32-bit target below is the one that counts)


def _heap(image, role, data, *flags, binary=MICROPYTHON):
    r = subprocess.run([binary, os.path.join(ROOT, "tools", "role_heap.py"), image, role, data] + list(flags),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def end_image(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_images.py"), "--board", "pico_w",
                        "--role", "end", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = tmp_path_factory.mktemp("data")
    return str(out / "pico_w" / "end"), str(data)


def test_romfs_boot_takes_the_bytecode_out_of_the_heap(end_image):
    image, data = end_image
    plain = _heap(image, "end", data)
    rom = _heap(image, "end", data, "--romfs")
    assert plain["romfs"] is False and plain["rom_modules"] == 0 and plain["loader"] == "plain"
    assert rom["romfs"] is True and rom["module_names"] == plain["module_names"] and rom["loader"] == "vfsrom"
    assert rom["rom_modules"] == rom["modules"] - 1          # all but board.py (on the filesystem)
    assert rom["rom_bytes"] == os.path.getsize(os.path.join(image, "romfs.img"))
    assert rom["role_type"] == plain["role_type"] == "End"
    # the role's own objects are the same; loading the modules costs far less
    assert abs(rom["objects_bytes"] - plain["objects_bytes"]) < 2048
    assert rom["import_bytes"] < plain["import_bytes"] - 50000
    assert rom["heap_bytes"] == rom["import_bytes"] + rom["objects_bytes"]
    assert rom["word_bits"] == 64 and rom["heap_bytes"] <= END_HEAP_64_MAX
    # the app protocol is built at its first use (a client), not at boot
    assert "core.app_protocol" not in rom["module_names"] and "core.password" not in rom["module_names"]
    assert "hal.ble" in rom["module_names"]                  # the BLE transport and its rings are


def test_end_heap_at_boot_fits_90_kib_on_a_32_bit_build(end_image):
    binary = images.micropython32()
    if binary is None:
        pytest.skip("no 32-bit build (tools/mp32/build.sh, needs gcc-multilib)")
    image, data = end_image
    h32 = _heap(image, "end", data, "--in-place", binary=binary)
    h64 = _heap(image, "end", data, "--romfs")
    assert h32["word_bits"] == 32 and h32["loader"] == "in-place" and h32["romfs"] is True
    assert h32["module_names"] == h64["module_names"] and h32["rom_modules"] == h32["modules"] - 1
    assert h32["role_type"] == "End"
    assert h32["heap_bytes"] <= images.END_HEAP_LIMIT_BYTES
    assert h32["heap_bytes"] < h64["heap_bytes"] * 0.75      # 4-byte pointers: every object smaller


def test_end_heap_target_check_reads_ok_and_fail():
    per = {"armv6m": {"end": {"heap": {"romfs": {"heap_bytes": 100000}, "romfs32": {"heap_bytes": 70000}}}},
           "rv32imc": {"between": {"heap": {}}}}
    t = images.end_heap_target(per)
    assert list(t) == ["armv6m"]
    assert t["armv6m"]["romfs32_ok"] is True and t["armv6m"]["romfs64_ok"] is False
    assert t["armv6m"]["limit_bytes"] == 90 * 1024
