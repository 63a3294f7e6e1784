"""Begin board (pack minus): reads the option switches and the two current sensors, measures
its own cell (position 1) and originates one frame per cycle (docs/link-protocol.md)."""
from core import frame, options
from roles import cycle_ms_of, send_frame


class Begin:
    """``cell``: a roles.cell_board.CellBoard (or a fake); ``pair``: a core.current.SensorPair
    (or a fake with ``update(hw)`` and ``s1_ma, s1_flags, s2_ma, s2_flags``)."""

    def __init__(self, hw, board_def, cell, pair):
        self.hw = hw
        self.cell = cell
        self.pair = pair
        self.tx = hw.link_tx
        self.cycle_ms = cycle_ms_of(board_def)
        self.fw = frame.Forwarder()
        self.buf = bytearray(frame.MAX_FRAME)
        self.seq = 0
        self.window = 0
        self.switches = 0
        self.frames_sent = 0
        self.safe()

    def cycle(self, dt_ms):
        cell = self.cell
        cell.measure(dt_ms)
        sw = self.hw.read_switches() & 0xFF
        self.switches = sw
        self.pair.update(self.hw)
        cell.balance(options.balance_mv(sw), True, dt_ms)   # Begin has no upstream link
        self.fw.set_own(cell.cell_mv, cell.temp_dc, cell.status)
        self.originate()
        cell.frame_seen()

    def originate(self):
        """Build this cycle's frame and hand it to the transmitter as one burst."""
        sw = self.switches
        cells_max = options.CELL_RANGES[options.cell_range_code(sw)][1]
        w = frame.window_size(cells_max)
        if self.window >= frame.windows(cells_max):
            self.window = 0
        win = 1 + self.window * w
        self.window += 1
        self.seq = (self.seq + 1) & 0xFF
        p = self.pair
        n = frame.build_empty(self.buf, w, self.seq, sw, 0, win, p.s1_ma, p.s1_flags, p.s2_ma, p.s2_flags)
        send_frame(self.fw, self.buf, n, self.tx)
        self.frames_sent += 1
        return n

    def poll(self):
        return 0

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
        save = getattr(pair, "save_zero_file", None)
        if save is not None:
            from core import current
            try:
                save(current.zero_path(getattr(self.hw, "data_dir", ".")))
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
