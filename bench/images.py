"""Image size per role and target (issue 9, figure 3).

Builds every (board, role) image with ``tools/build_images.py --out <temp dir>`` (mpy-cross -O2
-march=<board's MPY_ARCH>; the same command as ``make images``, into a scratch folder so a
concurrent ``make images`` is not disturbed) and sums the files of each image:
``mpy_bytes`` = the compiled firmware modules (*.mpy), ``bytes`` = everything flash.sh copies
(the .mpy files plus main.py, boot.py and board.py as source). Per target (mpy-cross arch) the
figure is that of the board named in BOARD_FOR_TARGET (the End role on the RP2040 needs the
Pico W: the plain Pico has no radio and builds no End image).

Heap at boot (``images.<target>.<role>.heap``): ``tools/role_heap.py`` on each built image, each
role alone in its own Unix-port process, twice: ``plain`` = the .mpy files loaded from the
filesystem (the bytecode goes into the heap), ``romfs`` = the same modules from the image's
romfs.img mounted with ``vfs.VfsRom`` (the bytecode runs in place; ``./flash.sh --romfs``).
Each: ``heap_bytes`` = ``import_bytes`` (loading the modules) + ``objects_bytes`` (building the
role). The Unix port is 64-bit: a 32-bit board's objects are smaller, bytecode the same.
``romfs32``: the romfs figure on a 32-bit MicroPython (tools/mp32: the same core built with -m32,
loading modules in place like a ROMFS; ``role_heap.py --in-place``), when that build exists
(``CELLCHAIN_MICROPYTHON32`` or tools/mp32/build.sh's default folder; else None and a note).

Target (issue 12): the End role's heap at boot <= 90 kB (``END_HEAP_LIMIT_BYTES``) with BLE
buffers: ``images.end_heap_target`` checks the 32-bit romfs figure (what a board needs) and the
64-bit one (an upper bound: every object is larger there), printed as ok / FAIL.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_FOR_TARGET = {"armv6m": "pico_w", "xtensawin": "esp32_devkitc", "rv32imc": "esp32c3_devkitm"}
ROLES = ("begin", "between", "end")
MPY = os.environ.get("CELLCHAIN_MICROPYTHON", os.path.join(ROOT, ".venv", "bin", "micropython"))
MPY32_DEFAULT = os.path.join(os.path.expanduser("~"), ".cache", "cellchain-mp32", "src", "ports", "m32", "build",
                             "micropython32")
END_HEAP_LIMIT_BYTES = 90 * 1024


def micropython32():
    """The 32-bit measurement build (tools/mp32/build.sh), or None when it is not built."""
    path = os.environ.get("CELLCHAIN_MICROPYTHON32", os.environ.get("MP32_DIR") and os.path.join(
        os.environ["MP32_DIR"], "src", "ports", "m32", "build", "micropython32") or MPY32_DEFAULT)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


_NOT_COPIED = ("manifest.py", "package.json", "romfs.img")


def image_sizes(folder):
    """Bytes of the files the plain flash.sh path copies (not the build artefacts)."""
    total = 0
    mpy = 0
    files = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            if dirpath == folder and name in _NOT_COPIED:
                continue
            size = os.path.getsize(os.path.join(dirpath, name))
            total += size
            files += 1
            if name.endswith(".mpy"):
                mpy += size
    return {"bytes": total, "mpy_bytes": mpy, "files": files}


def role_heap(folder, role, data_dir, romfs, binary=None):
    """tools/role_heap.py's figures for one built image (None when it fails). ``binary``: a
    tools/mp32 build (run with --in-place) instead of the .venv's Unix port."""
    flags = ["--in-place"] if binary else (["--romfs"] if romfs else [])
    # run inside the image folder: module file names ("./core/frame.mpy", strings in the heap) as
    # short as a board's ("/rom/core/frame.mpy"), whatever the temporary folder is called
    args = [binary or MPY, os.path.join(ROOT, "tools", "role_heap.py"), ".", role, os.path.abspath(data_dir)] + flags
    res = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=120)
    try:
        d = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print("note: role_heap.py failed on %s (%s): %s" % (folder, "romfs" if romfs else "plain",
                                                         (res.stdout + res.stderr)[-500:]))
        return None
    return {k: d.get(k) for k in ("heap_bytes", "import_bytes", "objects_bytes", "modules", "rom_modules", "rom_bytes",
                                  "word_bits")}


def end_heap_target(images, limit=END_HEAP_LIMIT_BYTES):
    """The issue 12 check per target with an End image: romfs heap at boot <= limit, 32-bit
    (None when not measured) and 64-bit (an upper bound)."""
    out = {}
    for target, per in sorted(images.items()):
        if "end" not in per:
            continue
        heap = per["end"].get("heap") or {}
        r32 = heap.get("romfs32")
        r64 = heap.get("romfs")
        out[target] = {"limit_bytes": limit,
                       "romfs32_bytes": r32["heap_bytes"] if r32 else None,
                       "romfs32_ok": r32["heap_bytes"] <= limit if r32 else None,
                       "romfs64_bytes": r64["heap_bytes"] if r64 else None,
                       "romfs64_ok": r64["heap_bytes"] <= limit if r64 else None}
    return out


def build(out, boards=None, roles=None):
    args = [sys.executable, os.path.join(ROOT, "tools", "build_images.py"), "--out", out]
    for b in boards or sorted(set(BOARD_FOR_TARGET.values())):
        args += ["--board", b]
    for r in roles or ():
        args += ["--role", r]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr


def _verdict(b, ok, bits):
    if ok:
        return "%.1f kB ok" % (b / 1000.0)
    if bits == "64":
        return "%.1f kB: the 64-bit upper bound is above the limit (objects are larger there); the 32-bit figure decides" % (
            b / 1000.0)
    return "%.1f kB: over the limit" % (b / 1000.0)


def run(results, boards=None, roles=None):
    mpy32 = micropython32()
    out = tempfile.mkdtemp(prefix="cellchain-bench-img-")
    try:
        rc, log = build(out, boards, roles)
        images = {}
        rows = []
        for target, board in sorted(BOARD_FOR_TARGET.items()):
            if boards and board not in boards:
                continue
            per = {}
            for role in ROLES:
                folder = os.path.join(out, board, role)
                if os.path.isdir(folder):
                    per[role] = dict(image_sizes(folder), board=board)
                    data = os.path.join(out, ".data-%s-%s" % (board, role))
                    os.makedirs(data, exist_ok=True)
                    per[role]["heap"] = {"plain": role_heap(folder, role, data, False),
                                         "romfs": role_heap(folder, role, data, True),
                                         "romfs32": role_heap(folder, role, data, True, mpy32) if mpy32 else None}
            if per:
                images[target] = per
                rows.append([target, board] + [per[r]["bytes"] if r in per else "-" for r in ROLES]
                            + [per[r]["mpy_bytes"] if r in per else "-" for r in ROLES])
        if not images:
            raise RuntimeError("build_images.py built nothing (exit %d): %s" % (rc, log[-2000:]))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    results["images"] = images
    from bench import table
    table("image size per target and role (bytes: all files copied / .mpy only; mpy-cross -O2)",
          ["target", "board", "begin", "between", "end", "begin mpy", "between mpy", "end mpy"], rows)
    hrows = []
    for target, per in sorted(images.items()):
        for role in ROLES:
            h = per.get(role, {}).get("heap") or {}
            row = [target, per[role]["board"] if role in per else "-", role]
            for mode in ("plain", "romfs", "romfs32"):
                m = h.get(mode)
                row += ["%.1f kB (%.1f + %.1f)" % (m["heap_bytes"] / 1000.0, m["import_bytes"] / 1000.0,
                                                   m["objects_bytes"] / 1000.0) if m else "-"]
            if role in per:
                hrows.append(row)
    table("heap at boot per role (tools/role_heap.py): total (modules + role objects)",
          ["target", "board", "role", "plain .mpy files (64-bit)", "romfs (64-bit)", "romfs (32-bit, tools/mp32)"], hrows)
    target = end_heap_target(images)
    results["images_end_heap_target"] = target
    for t, c in sorted(target.items()):
        for bits in ("32", "64"):
            b = c["romfs%s_bytes" % bits]
            print("End heap at boot <= %.1f kB (90 KiB, issue 12), %s, romfs %s-bit%s: %s" % (
                c["limit_bytes"] / 1000.0, t, bits, " (upper bound)" if bits == "64" else "",
                _verdict(b, c["romfs%s_ok" % bits], bits) if b is not None
                else "not measured (no 32-bit build: tools/mp32/build.sh)"))
    if rc != 0:
        print("note: build_images.py exit %d (some image failed):\n%s" % (rc, log[-1500:]))
    return results
