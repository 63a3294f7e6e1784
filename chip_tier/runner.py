"""Build and run the chip tier's chains (scenarios.RUNS) on emulated RP2040s.

    run(names, out_dir, jobs=2) -> {name: path of result.json}

For each run: the images (tools/build_images.py, as ``make images``), one littlefs image per board
with exactly the files ``./flash.sh ROLE BOARD --dry-run`` copies plus ``data/`` (the End's
settings file and the stand-in ``bluetooth`` module added), then ``node chip_tier/emu/
run_chain.js``. A run whose firmware, board definitions, harness and scenario are unchanged is
not run again (``meta.json`` beside its result holds their hash). Needs node with the npm package
rp2040js 1.4.1 (installed on first use into build/chip_tier/npm), the PyPI package
littlefs-python, and the MicroPython rp2 firmware files of ../shared/rp2emu/firmware (or
``CELLCHAIN_RP2EMU_FIRMWARE``).
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from chip_tier import scenarios
from sim import cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU = os.path.join(ROOT, "chip_tier", "emu")
RP2040JS = "rp2040js@1.4.1"
LFS_BLOCKS = 352           # RPI_PICO filesystem: 352 x 4 KiB at flash offset 0xA0000
BOARD_OF_ROLE = {"begin": "pico", "between": "pico", "end": "pico_w"}


class ChipTierError(Exception):
    """The chip tier cannot run here (no firmware files, no node, a failed build or run)."""


def firmware_root():
    """The folder holding RPI_PICO/ and RPI_PICO_ROMFS/ (firmware.bin, firmware.sym, bootrom.bin)."""
    cands = [os.environ.get("CELLCHAIN_RP2EMU_FIRMWARE", "")]
    up = ROOT
    for _ in range(3):
        up = os.path.dirname(up)
        cands.append(os.path.join(up, "shared", "rp2emu", "firmware"))
    cands.append(os.path.join(os.path.dirname(ROOT), "shared", "rp2emu", "firmware"))
    cands.append("/work/shared/rp2emu/firmware")     # where the project's machines keep shared/
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "RPI_PICO", "firmware.bin")):
            return c
    raise ChipTierError("no MicroPython rp2 firmware for the emulator: looked in %s "
                        "(set CELLCHAIN_RP2EMU_FIRMWARE)" % ", ".join(c for c in cands if c))


def node_path(build):
    """node_modules with rp2040js, installed into build/chip_tier/npm on first use."""
    prefix = os.path.join(build, "npm")
    mods = os.path.join(prefix, "node_modules")
    if not os.path.isdir(os.path.join(mods, "rp2040js")):
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise ChipTierError("the chip tier needs node and npm (Debian: nodejs npm)")
        os.makedirs(prefix, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund",
                        RP2040JS], check=True, capture_output=True)
    return mods


def firmware_hash():
    """sha256 (16 hex) of firmware/ and board_defs/ (sim.cost.firmware_hash)."""
    return cost.firmware_hash()


def run_hash(name):
    h = hashlib.sha256(firmware_hash().encode())
    cost.hash_tree(h, EMU, (".js", ".py"))
    h.update(json.dumps(scenarios.RUNS[name], sort_keys=True).encode())
    h.update(json.dumps([scenarios.FLASH_STALL, scenarios.PC817_US]).encode())
    return h.hexdigest()[:16]


def build_images(roles):
    """The images into build/, taking turns with the virtual pack's builds (sim.mp_engine's lock
    file: CI runs the chip tier beside the tests)."""
    import fcntl
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", ".image.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _build_images(roles)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_images(roles):
    for role in sorted(set(roles)):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_images.py"),
                            "--board", BOARD_OF_ROLE[role], "--role", role],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise ChipTierError("image %s failed:\n%s%s" % (role, r.stdout, r.stderr))


def make_settings(path):
    """A valid End settings file from the project's own core.settings: LiFePO4 preset
    (V-max 3.70 V), critical mode (the relays close on a healthy pack without a calibrated SoC)."""
    from sim import fw      # the host tools' one door into firmware's core
    settings = fw.core("settings")
    s = settings.preset(1)
    s.mode = 1
    if s.vmax_mv != int(round(scenarios.RAMP_VMAX_V * 1000)):
        raise ChipTierError("the LiFePO4 preset's V-max is %d mV, the ramp expects %.2f V"
                            % (s.vmax_mv, scenarios.RAMP_VMAX_V))
    settings.save(path, s)


def fs_image(role, out, romfs=False, extra=()):
    """A littlefs2 image (RPI_PICO layout) of the files flash.sh copies for ``role``, plus
    data/ and ``extra`` (src, dst) pairs. With ``romfs``: the files ``flash.sh --romfs`` copies;
    returns the ROMFS image's path then (else None)."""
    import littlefs
    board = BOARD_OF_ROLE[role]
    cmd = ["./flash.sh", role, board, "--dry-run"] + (["--romfs"] if romfs else [])
    dry = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    pairs = re.findall(r"fs cp (\S+) :(\S+)", dry)
    if not pairs:
        raise ChipTierError("no 'fs cp' lines in %s:\n%s" % (" ".join(cmd), dry))
    rom = re.findall(r"romfs deploy (\S+)", dry)
    fs = littlefs.LittleFS(block_size=4096, block_count=LFS_BLOCKS, prog_size=256, read_size=32,
                           lookahead_size=32, disk_version=0x00020000)
    made = set()
    for src, dst in list(pairs) + list(extra):
        parts = dst.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                fs.mkdir(d)
                made.add(d)
        with open(src if os.path.isabs(src) else os.path.join(ROOT, src), "rb") as f:
            data = f.read()
        with fs.open(dst, "wb") as f:
            f.write(data)
    if "data" not in made:
        fs.mkdir("data")
    with open(out, "wb") as f:
        f.write(fs.context.buffer)
    return os.path.join(ROOT, rom[0]) if rom else None


def _chain_arg(run, work):
    romfs = run.get("firmware") == "RPI_PICO_ROMFS"
    parts = []
    settings = os.path.join(work, "settings.json")
    for i, role in enumerate(run["chain"]):
        extra = []
        if role == "end":
            make_settings(settings)
            extra = [(os.path.join(EMU, "bluetooth_standin.py"), "bluetooth.py"),
                     (settings, "data/settings.json")]
        img = os.path.join(work, "%d_%s.img" % (i, role))
        rom = fs_image(role, img, romfs=romfs, extra=extra)
        parts.append("%s:%s" % (role, img) + (":" + rom if rom else ""))
    return ",".join(parts)


def command(name, work, fw_root, out):
    """The node command line of run ``name`` (images already built)."""
    run = scenarios.RUNS[name]
    cmd = ["node", os.path.join(EMU, "run_chain.js"),
           "--fw", os.path.join(fw_root, run.get("firmware", "RPI_PICO")),
           "--out", out, "--seconds", str(run["seconds"]), "--switch", hex(run["switch"]),
           "--chain", _chain_arg(run, work), "--opto", "pc817",
           "--ton-us", str(scenarios.PC817_US[0]), "--toff-us", str(scenarios.PC817_US[1]),
           "--flash-stall", "%g:%g" % scenarios.FLASH_STALL]
    if run.get("speeds"):
        cmd += ["--speeds", ",".join("%g" % s for s in run["speeds"][:len(run["chain"])])]
    if run.get("cellv"):
        cmd += ["--cellv", ",".join("%g" % v for v in run["cellv"])]
    if run.get("ramp"):
        cmd += ["--ramp", ":".join("%g" % v for v in run["ramp"])]
    if run.get("diag"):
        cmd += ["--diag"]
    if run.get("alive"):
        cmd += ["--alive", str(run["alive"])]
    return cmd


def up_to_date(name, out_dir):
    """The result.json of ``name`` when it ran on this firmware, harness and scenario, else None."""
    d = os.path.join(out_dir, name)
    res = os.path.join(d, "result.json")
    meta_p = os.path.join(d, "meta.json")
    if os.path.isfile(res) and os.path.isfile(meta_p):
        with open(meta_p) as f:
            if json.load(f).get("run_hash") == run_hash(name):
                return res
    return None


def run_one(name, out_dir, cmd, nodemods, log=print):
    """Run ``name`` (its node command line ``cmd``) into out_dir/name; its result.json."""
    d = os.path.join(out_dir, name)
    res = os.path.join(d, "result.json")
    meta_p = os.path.join(d, "meta.json")
    key = run_hash(name)
    env = dict(os.environ, NODE_PATH=nodemods)
    t0 = time.time()
    log("chip tier %s: running %s emulated s on %d boards" % (name, scenarios.RUNS[name]["seconds"],
                                                            len(scenarios.RUNS[name]["chain"])))
    with open(os.path.join(d, "node.log"), "w") as lf:
        r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0 or not os.path.isfile(res):
        with open(os.path.join(d, "node.log")) as f:
            tail = f.read()[-2000:]
        raise ChipTierError("chip tier run %s failed (exit %d):\n%s" % (name, r.returncode, tail))
    with open(meta_p, "w") as f:
        json.dump({"run_hash": key, "firmware_hash": firmware_hash(), "commit": git_commit(),
                   "scenario": scenarios.RUNS[name], "wall_s": round(time.time() - t0, 1)}, f,
                  indent=1, default=list)
    log("chip tier %s: done in %.0f s wall" % (name, time.time() - t0))
    return res


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run(names=scenarios.DEFAULT, out_dir=None, jobs=2, force=False, log=print):
    """Run the named chains (``jobs`` at a time); {name: result.json path}."""
    out_dir = out_dir or os.path.join(ROOT, "build", "chip_tier")
    fw_root = firmware_root()
    nodemods = node_path(out_dir)
    done = {}
    todo = []
    for n in names:
        got = None if force else up_to_date(n, out_dir)
        if got:
            log("chip tier %s: up to date" % n)
            done[n] = got
        else:
            todo.append(n)
    if todo:
        build_images([r for n in todo for r in scenarios.RUNS[n]["chain"]])
        cmds = {}
        for n in todo:       # images and settings one run at a time, then the emulators in parallel
            d = os.path.join(out_dir, n)
            if os.path.isdir(d):
                shutil.rmtree(d)
            os.makedirs(d)
            cmds[n] = command(n, d, fw_root, d)
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = {n: ex.submit(run_one, n, out_dir, cmds[n], nodemods, log) for n in todo}
            for n, f in futs.items():
                done[n] = f.result()
    return {n: done[n] for n in names}
