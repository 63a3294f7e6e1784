"""Fakes shared by the role tests (both interpreters): a cell board with a pressable button."""


class Cell:
    """Stands in for roles.cell_board.CellBoard: fixed readings, a button whose long press a
    test sets with ``cell.long = True``, and a count of fast-flash confirmations."""

    def __init__(self, cell_mv=3300, temp_dc=250):
        self.cell_mv = cell_mv
        self.temp_dc = temp_dc
        self.status = 0
        self.long = False
        self.confirmed = 0

    def measure(self, dt_ms):
        pass

    def balance(self, vbal_mv, link_ok, dt_ms):
        pass

    def frame_seen(self):
        pass

    def tick(self, dt_ms):
        pass

    def take_long_press(self):
        long, self.long = self.long, False
        return long

    def confirm(self):
        self.confirmed += 1

    def safe(self):
        pass
