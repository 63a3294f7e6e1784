"""Packets for the gateway tests (both interpreters): the End board's real encoder
(core.extout) fills them, so the gateway reads exactly what an End board sends."""
from core import extout, settings
from core.snapshot import PackSnapshot, SensorFlags
from fakes import Brain


class Pack:
    """A settable pack state -> 58-byte extended-output packets."""

    def __init__(self, n=16, chemistry=None):
        self.snap = PackSnapshot()
        self.brain = Brain()
        self.settings = settings.preset(settings.LIFEPO4 if chemistry is None else chemistry)
        self.settings.capacity_ah = 280
        self.enc = extout.ExtOutEncoder()
        self.n = n
        b = self.brain
        b.charge_allowed = True
        b.load_allowed = True
        b.soc_c = 5000
        b.soc_calibrated = True
        b.charge_ma = 0
        b.discharge_ma = 0
        b.current_ma = 0
        b.energy_in_wh = 0
        b.energy_out_wh = 0
        b.energy_in_today_wh = 0
        b.energy_out_today_wh = 0
        b.stored_wh = 0
        b.charge_cycles = 0
        b.soh_pct = 97
        self.set_cells([3300] * n, [250] * n)

    def set_cells(self, cells_mv, temps_dc):
        s = self.snap
        n = len(cells_mv)
        s.valid = True
        s.comm_ok = True
        s.cell_count = n
        for i in range(n):
            s.cell_mv[i] = cells_mv[i]
            s.cell_temp_dc[i] = temps_dc[i]
        lo = min(range(n), key=lambda i: cells_mv[i])
        hi = max(range(n), key=lambda i: cells_mv[i])
        tlo = min(range(n), key=lambda i: temps_dc[i])
        thi = max(range(n), key=lambda i: temps_dc[i])
        s.min_mv, s.min_mv_cell = cells_mv[lo], lo + 1
        s.max_mv, s.max_mv_cell = cells_mv[hi], hi + 1
        s.min_temp_dc, s.min_temp_cell = temps_dc[tlo], tlo + 1
        s.max_temp_dc, s.max_temp_cell = temps_dc[thi], thi + 1
        s.pack_mv = sum(cells_mv)
        s.s1_flags = SensorFlags.PRESENT
        s.s2_flags = SensorFlags.PRESENT

    def packet(self):
        return bytes(self.enc.encode(self.snap, self.brain, self.settings))


def feed(dec, pkt):
    """Bytes then the idle gap, as a hal receiver reports them."""
    ok = False
    for x in pkt:
        ok = dec.feed(x) or ok
    dec.gap()
    return ok
