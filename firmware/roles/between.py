"""Between board: checks, updates and forwards each frame as it flows (cut-through), adds its
own cell; originates frames marked UPSTREAM_LOST when nothing arrives from upstream."""
from micropython import const

from core import frame, options
from core.snapshot import CellStatus
from roles import LinkPort, cycle_ms_of, send_frame

_MAX_MS = const(0x3FFFFFFF >> 2)


class Between:
    def __init__(self, hw, board_def, cell, comm_timeout_cycles=3):
        self.hw = hw
        self.cell = cell
        self.tx = hw.link_tx
        self.cycle_ms = cycle_ms_of(board_def)
        self.port = LinkPort(hw.link_rx, hw.link_tx, self._on_event)
        self.fw = self.port.fw
        self.buf = bytearray(frame.MAX_FRAME)
        self.link_timeout_ms = comm_timeout_cycles * self.cycle_ms
        self.lost_after_ms = 2 * self.cycle_ms      # no frame start for this long: originate
        self.since_frame_ms = 0                     # since a frame started arriving (at power-up:
        #                                             give upstream lost_after_ms to show up)
        self.since_good_ms = self.link_timeout_ms   # since a frame checked OK (both sections)
        self.since_origin_ms = 0
        self.lost = False
        self.switches = 0
        self.vbal_mv = 0
        self.seq = 0
        self.window = 0
        self.originated = 0
        self._own_due = True
        self.safe()
        # measure now: the first frame we forward (before our first cycle) carries our real
        # cell, not an empty slot (frame.NOT_MEASURED would mark it, docs/link-protocol.md)
        cell.measure(0)
        self._set_own()

    @property
    def link_ok(self):
        return self.since_good_ms < self.link_timeout_ms

    def _on_event(self, ev):
        fw = self.fw
        if ev == frame.EV_START:
            self.since_frame_ms = 0
        elif ev == frame.EV_A:
            if fw.a_result == frame.OK:
                self.switches = fw.out[frame.O_SWITCH]
                self.seq = fw.out[frame.O_SEQ]
        elif ev == frame.EV_B:
            if fw.a_result == frame.OK and fw.b_result == frame.OK:
                self.since_good_ms = 0
                self.vbal_mv = options.balance_mv(self.switches)
                self.cell.frame_seen()
            if self._own_due:
                self._set_own()

    def _set_own(self):
        cell = self.cell
        st = cell.status | (CellStatus.UPSTREAM_LOST if self.lost else 0)
        self.fw.set_own(cell.cell_mv, cell.temp_dc, st)
        self._own_due = False

    def cycle(self, dt_ms):
        cell = self.cell
        cell.measure(dt_ms)
        if self.since_frame_ms < _MAX_MS:
            self.since_frame_ms += dt_ms
        if self.since_good_ms < _MAX_MS:
            self.since_good_ms += dt_ms
        ok = self.link_ok
        cell.balance(self.vbal_mv if ok else 0, ok, dt_ms)
        self.lost = self.since_frame_ms >= self.lost_after_ms
        self._own_due = True
        if not self.fw.in_frame():
            self._set_own()
        if self.lost:
            self.since_origin_ms += dt_ms
            if self.since_origin_ms >= self.cycle_ms and not self.fw.in_frame():
                self.since_origin_ms = 0
                self.originate()
        else:
            self.since_origin_ms = self.cycle_ms

    def originate(self):
        """Upstream silent: send a frame of our own from our last known position on, with
        UPSTREAM_LOST in our status and our position in LOST_AT."""
        fw = self.fw
        pos = fw.good_pos if fw.good_pos else 1
        sw = self.switches
        cells_max = options.CELL_RANGES[options.cell_range_code(sw)][1]
        w = frame.window_size(cells_max)
        if self.window >= frame.windows(cells_max):
            self.window = 0
        win = 1 + self.window * w
        self.window += 1
        self.seq = (self.seq + 1) & 0xFF
        n = frame.build_empty(self.buf, w, self.seq, sw, pos - 1, win)
        fw.gap()
        fw.report_lost = True
        send_frame(fw, self.buf, n, self.tx)
        self.originated += 1
        return n

    def poll(self):
        return self.port.poll()

    def tick(self, dt_ms):
        self.cell.tick(dt_ms)

    def wake_in_ms(self):
        w = getattr(self.cell, "wake_in_ms", None)
        return self.port.wake_in_ms(w() if w is not None else 1000)

    def safe(self):
        self.cell.safe()


def make(hw, board_def, cell=None):
    if cell is None:
        from roles.cell_board import CellBoard
        cell = CellBoard(hw, board_def)
    return Between(hw, board_def, cell)
