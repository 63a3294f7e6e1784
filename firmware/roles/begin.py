"""Begin board (pack minus): reads the option switches and the two current sensors, measures
its own cell (position 1) and originates one frame per cycle (docs/link-protocol.md). Its
free-running cycle is the chain's clock: the period travels in every frame (FLAGS cadence
bits) and the other boards run their cycles on the frames. The frame goes out through a
non-blocking ``Originator``: the cycle only builds it, ``poll()`` at the following wake-ups
hands it to the transmitter."""
from core.balance import CHARGE_MIN_MA
from core.current import sensor_ok
from core import frame, options
from roles import Originator, cycle_ms_of


class Begin:
    """``cell``: a roles.cell_board.CellBoard (or a fake); ``pair``: a core.current.SensorPair
    (or a fake with ``update(hw)`` and ``s1_ma, s1_flags, s2_ma, s2_flags``)."""

    def __init__(self, hw, board_def, cell, pair):
        self.hw = hw
        self.cell = cell
        self.cell_wake = getattr(cell, "wake_in_ms", None)   # bound once: no allocation per wake-up
        self.pair = pair
        self.tx = hw.link_tx
        self.cycle_ms = cycle_ms_of(board_def)
        self.fw = frame.Forwarder()
        self.origin = Originator(self.fw, self.tx)
        self.buf = self.origin.buf
        self.seq = 0
        self.window = 0
        self.switches = 0
        self.frames_sent = 0
        self.tx_skipped = 0
        self.safe()

    def cycle(self, dt_ms):
        cell = self.cell
        cell.measure(dt_ms)
        sw = self.hw.read_switches() & 0xFF
        self.switches = sw
        self.pair.update(self.hw)
        pair = self.pair
        charge = pair.s1_ma if sensor_ok(pair.s1_flags) else -1
        if charge >= 0 and sensor_ok(pair.s2_flags):
            charge -= pair.s2_ma
        # Begin has no upstream link; balancing only while the pack charges (core/balance.py)
        cell.balance(options.balance_mv(sw), True, dt_ms, charge >= CHARGE_MIN_MA)
        self.fw.set_own(cell.cell_mv, cell.temp_dc, cell.status)
        self.originate()
        cell.frame_seen()

    @property
    def position(self):
        return 1

    def diag_counters(self):
        return {"frames_sent": self.frames_sent, "period_ms": self.cycle_ms,
                "tx_skipped": self.tx_skipped}

    def originate(self):
        """Build this cycle's frame; the loop's poll() sends it, from the next wake-up on."""
        if self.origin.busy():
            self.tx_skipped += 1      # the last frame is still going out: the period is too short
            return 0
        sw = self.switches
        cells_max = options.CELL_RANGES[options.cell_range_code(sw)][1]
        w = frame.window_size(cells_max)
        if self.window >= frame.windows(cells_max):
            self.window = 0
        win = 1 + self.window * w
        self.window += 1
        self.seq = (self.seq + 1) & 0xFF
        p = self.pair
        n = frame.build_empty(self.buf, w, self.seq, sw, 0, win, p.s1_ma, p.s1_flags, p.s2_ma,
                              p.s2_flags, self.cycle_ms, False)
        # started by the next poll() (the next wake-up, 1 ms on), not here: the first characters
        # must not wait in the transmitter FIFO (8 on a PIO) behind the rest of this long cycle
        # and the loop's work after it - past 8 characters + the 30-bit gap every receiver
        # would cut the frame (docs/link-protocol.md "Originated frames")
        self.origin.queue(n)
        self.frames_sent += 1
        return n

    def poll(self):
        """Feed the transmitter with the rest of the frame being sent."""
        o = self.origin
        if o.busy():
            o.pump()
        return 0

    def tx_busy(self):
        """Bytes of the frame still to hand to the transmitter (hal/sleep.py asks)."""
        return self.origin.busy()

    def wake_in_ms(self):
        if self.origin.busy():
            return 1
        w = self.cell_wake
        return w() if w is not None else 1000

    def sleep_budget_ms(self, wake_ms):
        """For the board loop: ms it may light-sleep now - 0 while its frame goes out, else
        until the LED/button needs it (the loop bounds it by the next cycle itself)."""
        if self.origin.busy():
            return 0
        w = self.cell_wake
        ms = (w() if w is not None else 1000) - wake_ms
        return ms if ms > 0 else 0

    def tick(self, dt_ms):
        cell = self.cell
        cell.tick(dt_ms)
        if cell.take_long_press():
            self.zero_current()

    def zero_current(self):
        """Manual: no current flowing, hold the button until the LED flashes fast. The present
        readings become the sensors' zero, saved in the Begin board's data folder. Refused (no
        fast flash, False) when a channel is far from its nominal zero: a current is flowing or
        a sensor is missing."""
        pair = self.pair
        pair.zero()
        if not getattr(pair, "zero_ok", True):
            print("begin: zero calibration refused - is a current flowing or a sensor missing?")
            return False
        values = getattr(pair, "zero_values", None)
        if values is not None:
            from core import current, store
            # the flash write stalls the CPU: finish the frame going out first (a manual
            # action, rare), so the write falls between frames, never into one
            o = self.origin
            tries = 0
            while o.busy() and tries < 50000:   # bounded: a stuck transmitter is not a hang
                o.pump()
                tries += 1
            try:
                store.save(current.zero_path(getattr(self.hw, "data_dir", ".")), current.ZERO_KIND,
                           current.ZERO_VERSION, values())
            except OSError as e:
                print("begin: zero calibration not saved:", e)
                return False
        self.cell.confirm()
        return True

    def safe(self):
        self.cell.safe()


def make(hw, board_def, cell=None, pair=None):
    if cell is None:
        from core import ui
        from roles.cell_board import CellBoard
        cell = CellBoard(hw, board_def, long_press_ms=ui.CALIBRATE_PRESS_MS)
    if pair is None:
        from core import current
        pair = current.SensorPair(board_def)
        if hasattr(pair, "load_zero_file") and hasattr(current, "zero_path"):
            pair.load_zero_file(current.zero_path(getattr(hw, "data_dir", ".")))
    return Begin(hw, board_def, cell, pair)
