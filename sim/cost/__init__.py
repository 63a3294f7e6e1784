"""What a role call costs on the board, per kind of call, calibrated from the chip tier (issue 19).

The virtual pack's counted board time (sim/board_time.py, mode "counted") charges a call its
firmware bytecode instructions x ns per instruction. MicroPython's cost per instruction differs
3-4x between the firmware's own paths (a received character vs the End's cycle), so one constant
is wrong both ways. ``rp2040.json`` holds one figure per kind of call instead, found by
``python -m chip_tier calibrate``: the chip tier's time for that kind (emulated RP2040, zero-wait
flash) over the model's instruction count for the same kind, with the firmware hash and commit it
came from. host_tests/test_model_vs_chip.py fails when the record is older than the firmware it
prices, or when the model under-estimates the chip by more than ``MAX_UNDER`` on any kind.

Kinds: ``<role>.cycle`` (the role's cycle call: Begin builds and starts its frame, Between and
End run after a frame), ``<role>.rx_char`` (one received character through the byte path: IRQ,
scheduled handler, forwarder), ``<role>.wake`` (a loop wake-up that runs no cycle: the cell
measurement, the End's service polls, Begin's transmit feeding; its chip figure is what the
board's awake time leaves per such wake-up once cycles and characters are taken off). Anything
else uses ``default``.
"""
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("begin.cycle", "between.cycle", "end.cycle", "between.rx_char", "end.rx_char",
         "begin.wake", "between.wake", "end.wake")
MAX_UNDER = 0.20            # the model may under-estimate the chip by at most 20 % on a kind
LABEL = "emulated RP2040 (zero-wait flash)"


def path(cpu="rp2040"):
    return os.path.join(HERE, cpu + ".json")


def load(cpu="rp2040"):
    """The calibration record for ``cpu`` (None: there is none)."""
    p = path(cpu)
    if not os.path.isfile(p):
        return None
    with open(p) as f:
        return json.load(f)


def save(record, cpu="rp2040"):
    tmp = path(cpu) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path(cpu))


def hash_tree(h, top, exts=(".py",)):
    """Feed the files under ``top`` ending in ``exts`` (sorted, with their paths) to ``h``."""
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if f.endswith(exts):
                p = os.path.join(d, f)
                h.update(os.path.relpath(p, ROOT).encode())
                with open(p, "rb") as fh:
                    h.update(fh.read())


def firmware_hash():
    """sha256 (16 hex) of what the boards run: firmware/ sources and board definitions."""
    h = hashlib.sha256()
    hash_tree(h, os.path.join(ROOT, "firmware"))
    hash_tree(h, os.path.join(ROOT, "board_defs"))
    return h.hexdigest()[:16]


def ns_per_instr_table(record):
    """{kind: ns per instruction} of a record, with "default" (the mean of the kinds)."""
    if not record:
        return {}
    t = {k: v["ns_per_instr"] for k, v in record["kinds"].items() if v.get("ns_per_instr")}
    if t:
        t["default"] = sum(t.values()) / len(t)
    return t


def kind_of(role, call):
    """The calibration kind of a (role, call): call "cycle" or "rx_char"."""
    k = "%s.%s" % (role, call)
    return k if k in KINDS else "default"
