"""Heap a role needs at boot, measured on the MicroPython Unix port from a BUILT image, each role
alone in its own process, with what the image's main.py really imports (run from the repo root):

    python tools/build_images.py --board pico_w
    .venv/bin/micropython tools/role_heap.py build/pico_w/end end

Imports main.py's modules (board, roles.<role>, hal.loop) from the image's .mpy files, then
what hal.board.make_hw imports on that board (hal.board, hal.link and its backend, hal.ble
with its TX/RX rings on BLE End boards), builds the role with ``roles.<role>.make(hw, board)``
on allocation-free fake hardware (this script's, not counted: created before the baseline) and
prints one JSON line: ``heap_bytes`` = gc.mem_alloc() after boot and a gc.collect(), minus the
same before the first import; ``import_bytes`` = the part taken by loading the modules (the
bytecode a frozen build keeps in flash, plus module and class objects), ``objects_bytes`` =
what building the role adds (buffers, snapshot, settings, rings); ``modules`` = firmware
modules loaded. The Unix port is 64-bit:
objects there are up to twice their size on a 32-bit board (bytecode and bytearrays the same).

    .venv/bin/micropython tools/role_heap.py build/pico_w/end end --romfs

``--romfs``: the same boot with the modules imported from the image's romfs.img (written by
tools/build_images.py) mounted with ``vfs.VfsRom`` at /rom, first on sys.path (board.py still
from the image folder, as on the board's filesystem). The image file is read into a bytes
object and mounted BEFORE the baseline: on a board the ROM partition is memory-mapped flash,
not heap, and the firmware mounts it before anything runs. Bytecode then runs in place from the
ROM; what is still counted is what the loader builds in RAM (function/raw-code objects, interned
names, module dicts, classes). Every firmware module must come from /rom (``rom_modules`` =
``modules``), otherwise the run stops with an error.

    tools/mp32/build/micropython32 tools/role_heap.py build/pico_w/end end --in-place

``--in-place``: for the 32-bit measurement build of tools/mp32 (``make -C tools/mp32``, the
MicroPython core compiled with -m32, no VfsRom): that binary loads every module file in place,
outside the heap, as a board loads them from a ROMFS partition, so the plain image folder gives
the romfs figure (reported with ``romfs`` true, ``loader`` "in-place"). ``word_bits`` says
whether the figure is a 32-bit or a 64-bit one.
"""
import gc
import sys

try:
    import json
except ImportError:  # the tools/mp32 build has no extmod: its stand-ins
    sys.path.insert(0, (sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".") + "/mp32/shims")
    import json

_ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
IN_PLACE = "--in-place" in sys.argv[1:]
ROMFS = "--romfs" in sys.argv[1:] or IN_PLACE
IMAGE = _ARGS[0]
ROLE = _ARGS[1]
DATA = _ARGS[2] if len(_ARGS) > 2 else "/tmp/cellchain-heap"
ROM = "/rom"


class FakeBle:
    """bluetooth.BLE stand-in: hal.ble.NusTransport allocates its real rings around it."""

    def active(self, *a):
        return True

    def irq(self, *a):
        pass

    def config(self, *a, **k):
        return 0

    def gatts_register_services(self, services):
        return ((1, 2),)

    def gatts_set_buffer(self, *a):
        pass

    def gap_advertise(self, *a, **k):
        pass


class FakeTx:
    def write_byte(self, b):
        return True

    def write(self, buf, n=None):
        return n

    def pending(self):
        return 0

    def busy(self):
        return False


class FakeRx:
    interrupt_driven = False

    def read(self):
        return -1


class Hw:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.link_rx = None
        self.link_tx = None
        self.extout_tx = None
        self.ble = None

    def read_cell_uv(self):
        return 1650000

    def read_temp_uv(self):
        return 1650000

    def set_balance_duty(self, p):
        pass

    def set_led(self, on):
        pass

    def button_down(self):
        return False

    def reset_cause(self):
        return "power"

    def feed_watchdog(self):
        pass

    def read_switches(self):
        return 0x50

    def read_current_uv(self, sensor, high_range):
        return 1650000

    def set_charge_relay(self, on):
        pass

    def set_load_relay(self, on):
        pass

    def set_charge_led(self, on):
        pass

    def set_load_led(self, on):
        pass

    def safe(self):
        pass


def _mkdir(path):
    import os
    try:
        os.mkdir(path)
    except OSError:
        pass


def _mount_romfs():
    """Mount IMAGE/romfs.img at /rom, ahead of the image folder on sys.path (as the firmware's
    own mount puts /rom and /rom/lib on sys.path). Returns the image bytes (kept alive)."""
    import vfs
    with open(IMAGE + "/romfs.img", "rb") as f:
        data = f.read()
    vfs.mount(vfs.VfsRom(data), ROM)
    sys.path.insert(0, ROM + "/lib")
    sys.path.insert(0, ROM)
    return data


def main():
    sys.path.insert(0, IMAGE)
    rom = _mount_romfs() if ROMFS and not IN_PLACE else None
    _mkdir(DATA)
    hw = Hw(DATA)
    ble = FakeBle()
    tx = FakeTx()
    rx = FakeRx()
    class _Module:
        BLE = FakeBle
        UUID = str
        FLAG_READ = 2
        FLAG_WRITE = 8
        FLAG_NOTIFY = 16
        FLAG_WRITE_NO_RESPONSE = 4

    for name in ("bluetooth",):
        if name not in sys.modules:
            sys.modules[name] = _Module
    if IN_PLACE:
        # what a board has built in and the tools/mp32 build lacks: its stand-ins, loaded before
        # the baseline, so a firmware import of them costs nothing (as on the board)
        for name in ("os", "binascii", "hashlib"):
            try:
                __import__(name)
            except ImportError:
                pass
    before_mods = set(sys.modules)
    gc.collect()
    base = gc.mem_alloc()
    # --- what main.py imports
    import board
    mod = __import__("roles." + ROLE).__dict__[ROLE]
    from hal import loop  # noqa: F401
    # --- what hal.board.make_hw imports on this board
    from hal import board as hal_board  # noqa: F401
    from hal import link  # noqa: F401
    backend = getattr(board, "LINK_BACKEND", "soft")
    __import__("hal.link_" + backend)
    if ROLE != "end":
        hw.link_tx = tx
    if ROLE != "begin":
        hw.link_rx = rx
    if ROLE == "end":
        hw.extout_tx = tx
        if getattr(board, "HAS_BLE", False):
            from hal import ble as hal_ble
            hw.ble = hal_ble.make(board, ble=ble)
    from roles import cell_board  # noqa: F401  (make imports it; counted with the modules)
    if ROLE == "end":
        from roles import end_app  # noqa: F401
        from core import brain  # noqa: F401
    elif ROLE == "begin":
        from core import current  # noqa: F401
    gc.collect()
    imports = gc.mem_alloc() - base
    role = mod.make(hw, board)
    gc.collect()
    heap = gc.mem_alloc() - base
    mods = sorted(m for m in sys.modules if m not in before_mods)
    if IN_PLACE:
        from_rom = [m for m in mods if m != "board"]
    else:
        from_rom = [m for m in mods if getattr(sys.modules[m], "__file__", "").startswith(ROM + "/")]
    if ROMFS:
        missed = [m for m in mods if m not in from_rom and m != "board"]
        if missed:
            raise SystemExit("role_heap: not imported from %s: %s" % (ROM, " ".join(missed)))
    loader = "in-place" if IN_PLACE else ("vfsrom" if ROMFS else "plain")
    print(json.dumps({"role": ROLE, "image": IMAGE, "romfs": ROMFS, "loader": loader,
                      "word_bits": 32 if sys.maxsize < 2 ** 32 else 64, "rom_bytes": len(rom) if rom else 0,
                      "rom_modules": len(from_rom), "heap_bytes": heap, "import_bytes": imports,
                      "objects_bytes": heap - imports, "free_bytes": gc.mem_free(),
                      "modules": len(mods), "module_names": mods, "role_type": type(role).__name__}))


main()
