"""A fixed piece of byte-path work that never changes: the host-speed yardstick of board time.

sim/board_time.py turns host CPU time into board time with a factor. The factor is not taken
from the firmware under test (that would hand part of every saving back, docs/benchmarks.md
section 7): it is ``REF_BOARD_NS / (host ns of this workload)``, and REF_BOARD_NS was found once
by running the firmware the chip figures were measured on through the same host
(tools/board_factor.py). Keep this module free of imports from the firmware and do not change
``work``: any change invalidates REF_BOARD_NS (re-run tools/board_factor.py then).
"""
import time

_N = 118            # a 16-cell frame
_REPEAT = 4


def _table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


class _Fwd:
    """A streaming byte transformer of the firmware's kind (frozen copy of its shape)."""

    def __init__(self):
        self.table = _table()
        self.out = bytearray(256)
        self.own = [3300, 3300, 250, 250]
        self.i = -1
        self.cin = 0xFFFF
        self.cout = 0xFFFF
        self.carry = 0
        self.event = 0

    def byte(self, b):
        self.event = 0
        i = self.i + 1
        self.i = i
        o = b
        if 17 <= i < 29:
            k = (i - 17) // 3
            ov = self.own[k]
            if (ov >> 8) < b:
                o = ov >> 8
        elif 29 <= i < 32:
            s = b + ((3300 >> (8 * (i - 29))) & 0xFF) + self.carry
            o = s & 0xFF
            self.carry = s >> 8
        elif i == 33 or i == _N - 1:
            self.event = 2
        t = self.table
        c = self.cin
        self.cin = ((c << 8) & 0xFFFF) ^ t[((c >> 8) ^ b) & 0xFF]
        c = self.cout
        self.cout = ((c << 8) & 0xFFFF) ^ t[((c >> 8) ^ o) & 0xFF]
        self.out[i] = o
        return o


def work():
    """Host CPU ns of the fixed workload (4 frames of 118 bytes through _Fwd, one call per byte
    through a small port loop)."""
    data = bytearray(_N)
    for i in range(_N):
        data[i] = (i * 37 + 11) & 0xFF
    fw = _Fwd()
    sent = bytearray(_N)
    t0 = time.thread_time_ns()
    for _ in range(_REPEAT):
        fw.i = -1
        fw.carry = 0
        j = 0
        while j < _N:
            o = fw.byte(data[j])
            if o >= 0:
                sent[j] = o
            if fw.event:
                fw.cin = 0xFFFF
            j += 1
    return time.thread_time_ns() - t0


def reference_ns(repeat=9):
    """The median of ``repeat`` runs of ``work`` (host CPU ns): how fast the host is now."""
    work()
    got = sorted(work() for _ in range(repeat))
    return got[len(got) // 2]
