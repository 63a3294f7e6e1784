"""Packets for the gateway tests (both interpreters): the End board's real encoder
(core.extout) fills them, so the gateway reads exactly what an End board sends."""
from core import extout, settings
from core.snapshot import PackSnapshot
from fakes import Brain
from test_extout import fill


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
        fill(self.snap, cells_mv, temps_dc)

    def packet(self):
        return bytes(self.enc.encode(self.snap, self.brain, self.settings))


def feed(dec, pkt):
    """Bytes then the idle gap, as a hal receiver reports them."""
    ok = False
    for x in pkt:
        ok = dec.feed(x) or ok
    dec.gap()
    return ok
