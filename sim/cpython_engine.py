"""cpython engine: the firmware's own code runs in this process on the virtual hardware.

With the link layer present (firmware/roles/{begin,between,end}.py and sim/wire.py) every board
runs its real role object: ``make(hw, board_def)``, ``cycle(dt_ms)``, ``poll()``, joined by the
virtual wire (``RolesChain``). Without them it falls back to ``DirectChain``: the same per-board
code (roles.cell_board.CellBoard, core.current.SensorPair, core.brain.PackBrain,
core.extout.ExtOutSender) with the snapshot filled straight from the boards instead of over the
wire, so the model, the pack brain and the trace stay testable. The trace header's ``link``
field says which one ran.
"""
import os

from sim import paths  # noqa: F401
from core import settings as cs
from core.snapshot import CellStatus, PackSnapshot


def roles_available():
    base = os.path.join(paths.FIRMWARE, "roles")
    need = [os.path.join(base, n + ".py") for n in ("begin", "between", "end")]
    need.append(os.path.join(paths.ROOT, "sim", "wire.py"))
    return all(os.path.exists(p) for p in need)


class DirectChain:
    """Per-board firmware code, snapshot filled directly (no link bytes)."""

    link = "direct"

    def __init__(self, sim):
        from core.brain import PackBrain
        from core.current import SensorPair
        from core.extout import ExtOutSender
        from roles.cell_board import CellBoard
        self._CellBoard = CellBoard
        self._PackBrain = PackBrain
        self._ExtOutSender = ExtOutSender
        self._SensorPair = SensorPair
        self.sim = sim
        self.n = len(sim.boards)
        self.cells = [None] * self.n
        self.on = [True] * self.n
        self.broken_after = set()     # link wire broken after these positions (1-based)
        self.snap = PackSnapshot()
        self.brain = None
        self.settings = None
        self.sender = None
        self.pair = None
        self.seq = 0
        self.since_frame = 0

    # --- boot ---------------------------------------------------------------------------
    def boot(self):
        for i in range(self.n):
            self._boot_board(i)

    def _boot_board(self, i):
        hw = self.sim.boards[i]
        self.cells[i] = self._CellBoard(hw, self.sim.board_def)
        if i == 0:
            self.pair = self._SensorPair(self.sim.board_def)
            from core import current
            self.pair.load_zero_file(current.zero_path(hw.data_dir))
        if i == self.n - 1:
            self.settings, status = cs.load(os.path.join(hw.data_dir, "settings.json"))
            self.brain = self._PackBrain(self.settings, status == cs.LOADED, os.path.join(hw.data_dir, "soc.json"))
            self.sender = self._ExtOutSender(hw.extout_tx)
            self.snap.clear()
            self.since_frame = 0

    def power(self, i, on):
        if not on and self.on[i]:
            self.sim.boards[i].power_off()
            self.cells[i] = None
        elif on and not self.on[i]:
            self.sim.boards[i].cause = "power"
            self.on[i] = True
            self._boot_board(i)
        self.on[i] = on

    def link_break(self, position, broken):
        if broken:
            self.broken_after.add(position)
        else:
            self.broken_after.discard(position)

    # --- one cycle ---------------------------------------------------------------------------
    def cycle(self, dt_ms):
        n = self.n
        for i in range(n):
            if self.on[i]:
                self.cells[i].tick(dt_ms)
                self.cells[i].measure(dt_ms)
        # How far does a frame from the Begin board get? Board k+1 gets it when k is powered
        # and the wire after k is intact.
        reach = 0
        if self.on[0]:
            reach = 1
            while reach < n and self.on[reach] and reach not in self.broken_after:
                reach += 1
        begin_hw = self.sim.boards[0]
        switch_vbal = 0
        if self.on[0]:
            from core import options
            self.pair.update(begin_hw)
            switch_vbal = options.balance_mv(begin_hw.read_switches())
        for i in range(n):
            if self.on[i]:
                self.cells[i].balance(switch_vbal, i < reach, dt_ms)
                if i < reach:
                    self.cells[i].frame_seen()
        if not self.on[n - 1]:
            return
        snap = self.snap
        complete = reach == n
        if complete:
            self.since_frame = 0
            self._fill(snap, switch_vbal)
        else:
            self.since_frame += 1
            # the first board whose input failed originates an UPSTREAM_LOST frame
            first_fail = reach + 1 if reach < n else 0
            if first_fail:
                snap.break_position = first_fail
            if self.since_frame >= self.settings.comm_timeout_cycles or first_fail:
                snap.comm_ok = False
        self.brain.update(snap, dt_ms)
        end_hw = self.sim.boards[n - 1]
        end_hw.set_charge_relay(self.brain.charge_allowed)
        end_hw.set_load_relay(self.brain.load_allowed)
        end_hw.set_charge_led(getattr(self.brain, "charge_led", self.brain.charge_allowed))
        end_hw.set_load_led(getattr(self.brain, "load_led", self.brain.load_allowed))
        self.sender.cycle(dt_ms, snap, self.brain, self.settings)
        if self.brain.should_save:
            self.brain.save_state()

    def _fill(self, snap, switch_vbal):
        from core import options
        n = self.n
        word = self.sim.boards[0].read_switches()
        snap.valid = True
        snap.comm_ok = True
        self.seq = (self.seq + 1) & 0xFF
        snap.seq = self.seq
        snap.cell_count = n
        snap.cells_min, snap.cells_max = options.cell_range(word)
        snap.switch_vbal_mv = switch_vbal
        lo = hi = None
        tlo = thi = None
        total = 0
        any_bal = any_err = False
        for i in range(n):
            c = self.cells[i]
            snap.cell_mv[i] = c.cell_mv
            snap.cell_temp_dc[i] = c.temp_dc
            snap.cell_status[i] = c.status
            snap.cell_age[i] = 0
            total += c.cell_mv
            if lo is None or c.cell_mv < snap.cell_mv[lo]:
                lo = i
            if hi is None or c.cell_mv > snap.cell_mv[hi]:
                hi = i
            if not c.status & CellStatus.TEMP_SENSOR_FAULT:
                if tlo is None or c.temp_dc < snap.cell_temp_dc[tlo]:
                    tlo = i
                if thi is None or c.temp_dc > snap.cell_temp_dc[thi]:
                    thi = i
            any_bal = any_bal or bool(c.status & CellStatus.BALANCING)
            any_err = any_err or bool(c.status & (CellStatus.TEMP_SENSOR_FAULT | CellStatus.VOLT_SENSOR_FAULT))
        snap.min_mv, snap.min_mv_cell = snap.cell_mv[lo], lo + 1
        snap.max_mv, snap.max_mv_cell = snap.cell_mv[hi], hi + 1
        if tlo is None:
            snap.min_temp_dc = snap.max_temp_dc = 0
            snap.min_temp_cell = snap.max_temp_cell = 0
        else:
            snap.min_temp_dc, snap.min_temp_cell = snap.cell_temp_dc[tlo], tlo + 1
            snap.max_temp_dc, snap.max_temp_cell = snap.cell_temp_dc[thi], thi + 1
        snap.pack_mv = total
        snap.any_balancing = any_bal
        snap.any_error = any_err
        snap.break_position = 0
        p = self.pair
        snap.s1_ma, snap.s1_flags, snap.s2_ma, snap.s2_flags = p.s1_ma, p.s1_flags, p.s2_ma, p.s2_flags

    # --- settings and state --------------------------------------------------------------------
    def apply_setting(self, name, value):
        if not self.on[-1]:
            return "End board has no power"
        if name == "preset":
            msg = cs.apply_preset(self.settings, value)
        else:
            msg = cs.apply(self.settings, name, value)
        if msg is None:
            cs.save(os.path.join(self.sim.boards[-1].data_dir, "settings.json"), self.settings)
            self.brain.set_settings(self.settings, True)
        return msg

    def end_objects(self):
        """(snapshot, brain, settings) of the End board, or Nones while it is off."""
        if not self.on[-1]:
            return None, None, None
        return self.snap, self.brain, self.settings


class CpythonFirmware:
    """Engine front: picks the chain implementation and reports state for the trace."""

    def __init__(self, sim, chain=None):
        self.sim = sim
        if chain is None:
            if roles_available():
                from sim.roles_chain import RolesChain
                chain = RolesChain(sim)  # the real link
            else:
                chain = DirectChain(sim)
        self.chain = chain
        self.link = chain.link

    def boot(self):
        self.chain.boot()

    def cycle(self, dt_ms):
        self.chain.cycle(dt_ms)

    def power(self, i, on):
        self.chain.power(i, on)

    def powered(self):
        return list(self.chain.on)

    def link_break(self, position, broken):
        self.chain.link_break(position, broken)

    def apply_setting(self, name, value):
        return self.chain.apply_setting(name, value)

    def state(self):
        snap, brain, settings = self.chain.end_objects()
        n = len(self.sim.boards)
        if brain is None:
            return {"settings": self.sim.settings.to_dict(), "cell_mv": [0] * n, "soc_c": None,
                    "alarms": None, "comm_ok": None, "current_ma": None, "soc_calibrated": None,
                    "break_position": None}
        fresh = snap.valid and snap.comm_ok
        return {
            "settings": settings.to_dict(),
            "cell_mv": [int(snap.cell_mv[i]) if fresh else 0 for i in range(n)],
            "soc_c": brain.soc_c,
            "soc_calibrated": brain.soc_calibrated,
            "alarms": brain.alarms,
            "comm_ok": bool(snap.comm_ok),
            "current_ma": brain.current_ma,
            "break_position": brain.break_position,
        }

    def close(self):
        pass
