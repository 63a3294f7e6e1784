"""Between board: checks, updates and forwards each frame as it flows (cut-through), adds its
own cell; originates frames marked UPSTREAM_LOST when nothing arrives from upstream.

Frame-clocked (roles.FrameClock): the cycle (balance decision, LED) runs right after a frame
has passed this board; the cell is measured MEASURE_LEAD_MS before the next frame is due, so
the frame carries a fresh reading. With upstream silent the fallback timer runs the cycle every
frame period and, after LOST_AFTER_FRAMES slots without a frame start, originates a frame each
slot."""
from core.balance import CHARGE_MIN_MA
from core import frame, options
from core.snapshot import CellStatus
from roles import (COMM_TIMEOUT_FRAMES, FrameClock, LinkPort, Originator, cycle_ms_of, frame_sleep_ms, frame_wake_ms,
                   link_baud_of, measure_before_frame)


class Between:
    def __init__(self, hw, board_def, cell, comm_timeout_frames=COMM_TIMEOUT_FRAMES):
        self.hw = hw
        self.cell = cell
        self.cell_wake = getattr(cell, "wake_in_ms", None)   # bound once: no allocation per wake-up
        self.tx = hw.link_tx
        self.cycle_ms = cycle_ms_of(board_def)
        self.clock = FrameClock(self.cycle_ms, comm_timeout_frames)
        self.port = LinkPort(hw.link_rx, hw.link_tx, self._on_event, link_baud_of(board_def))
        self.fw = self.port.fw
        self.origin = Originator(self.fw, hw.link_tx)
        self.lost = False
        self.switches = 0
        self.vbal_mv = 0
        self.charge_ma = -1         # the battery current section A carries (balancing rule)
        self.seq = 0
        self.window = 0
        self.originated = 0
        self._own_due = True
        self._prev_full = False     # the last frame slot had a whole good frame
        self._fresh = False         # measured (in tick) for the frame that passed since
        self.safe()
        # measure now: the first frame we forward (before our first cycle) carries our real
        # cell, not an empty slot (frame.NOT_MEASURED would mark it, docs/link-protocol.md)
        cell.measure(0)
        self._set_own()

    @property
    def link_ok(self):
        return self.clock.ok

    @property
    def position(self):
        """This board's chain position, from the last good section A (0 = not known yet)."""
        return self.fw.good_pos

    def diag_counters(self):
        c = self.port.diag_counters()
        c["originated"] = self.originated
        c["missed_frames"] = self.clock.missed
        c["period_ms"] = self.clock.period_ms
        return c

    def _on_event(self, ev):
        fw = self.fw
        if ev == frame.EV_START:
            self.clock.frame_started()
        elif ev == frame.EV_A:
            if fw.a_result == frame.OK:
                out = fw.out
                self.switches = out[frame.O_SWITCH]
                self.charge_ma = frame.pack_charge_ma(out)
                self.seq = out[frame.O_SEQ]
                self.clock.period_ms = frame.cadence_ms(out[frame.O_FLAGS])
        elif ev == frame.EV_B:
            # runs between two received characters: only note the frame; the balance voltage
            # and the LED flash follow in the cycle, which the loop runs right after the frame
            # (a good section A with a failed section B right after a whole good frame counts,
            # as on the End board: an isolated error in the detail costs no frame)
            a_ok = fw.a_result == frame.OK
            full = a_ok and fw.b_result == frame.OK
            self.clock.frame_passed(full or (a_ok and self._prev_full))
            self._prev_full = full
            if self._own_due:       # measured while the frame passed (cycle ran inside it)
                self._set_own()

    def _set_own(self):
        cell = self.cell
        st = cell.status | (CellStatus.UPSTREAM_LOST if self.lost else 0)
        self.fw.set_own(cell.cell_mv, cell.temp_dc, st)
        self._own_due = False

    def cycle_due(self):
        """For the board loop: a frame has passed, or the fallback timer expired."""
        return self.clock.due()

    def cycle(self, dt_ms):
        """One frame slot: right after a frame passed, or on the fallback timer."""
        cell = self.cell
        clock = self.clock
        if clock.slot():            # a good frame passed since the last cycle
            self.vbal_mv = options.balance_mv(self.switches)
            cell.frame_seen()
        else:
            self._prev_full = False
        if not self._fresh:
            cell.measure(dt_ms)
        self._fresh = False
        ok = clock.ok
        cell.balance(self.vbal_mv if ok else 0, ok, dt_ms, self.charge_ma >= CHARGE_MIN_MA)
        self.lost = clock.upstream_lost
        self._own_due = True
        if not self.fw.in_frame():
            self._set_own()
        if self.lost and not self.fw.in_frame():
            self.originate()

    def originate(self):
        """Upstream silent: send a frame of our own from our last known position on, with
        UPSTREAM_LOST in our status and our position in LOST_AT. The frame goes out through
        the Originator at the next poll() (the next wake-up, 1 ms on) without blocking: the
        loop's poll() keeps it flowing."""
        if self.origin.busy():
            return 0
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
        n = frame.build_empty(self.origin.buf, w, self.seq, sw, pos - 1, win,
                              period_ms=self.clock.period_ms, with_crc=False)
        fw.report_lost = True
        self.origin.queue(n)        # started by the next poll(): a short cycle
        self.originated += 1
        return n

    def poll(self):
        o = self.origin
        if o.queued or o.i < o.n:   # o.busy(), without a call per received character
            o.pump()
        return self.port.poll()

    def tick(self, dt_ms):
        self.clock.tick(dt_ms)
        measure_before_frame(self)
        self.cell.tick(dt_ms)

    def tx_busy(self):
        """Bytes still to hand to the transmitter: a frame we originate, or one passing through
        the forwarder (hal/sleep.py asks)."""
        o = self.origin
        return o.queued != 0 or o.i < o.n or self.fw.in_frame()

    def wake_in_ms(self):
        if self.origin.busy():
            return 1
        return self.port.wake_in_ms(frame_wake_ms(self))

    def sleep_budget_ms(self, wake_ms):
        """For the board loop: ms it may light-sleep now (roles.frame_sleep_ms)."""
        return frame_sleep_ms(self, wake_ms)

    def safe(self):
        self.cell.safe()


def make(hw, board_def, cell=None):
    if cell is None:
        from roles.cell_board import CellBoard
        cell = CellBoard(hw, board_def)
    return Between(hw, board_def, cell)
