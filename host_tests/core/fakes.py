"""Fakes shared by the tests on both interpreters: a cell board with a pressable button, and the
pack brain's published state."""


class Cell:
    """Stands in for roles.cell_board.CellBoard: fixed readings, a button whose long press a
    test sets with ``cell.long = True``, and a count of fast-flash confirmations."""

    def __init__(self, cell_mv=3300, temp_dc=250):
        self.cell_mv = cell_mv
        self.temp_dc = temp_dc
        self.status = 0
        self.long = False
        self.short_press = False
        self.confirmed = 0

    def measure(self, dt_ms):
        pass

    def balance(self, vbal_mv, link_ok, dt_ms, charging):
        self.charging = charging

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


class Brain:
    """The pack brain's published state (the attributes core/brain.py documents and the
    extended output and app protocol read): nothing allowed, nothing counted, unless a test
    passes other values, e.g. ``Brain(charge_allowed=True, soc_c=10000)``."""

    def __init__(self, **values):
        self.charge_allowed = False
        self.load_allowed = False
        self.soc_c = 0
        self.soc_calibrated = False
        self.current_ma = 0
        self.charge_ma = 0
        self.discharge_ma = 0
        self.power_in_w = 0
        self.power_out_w = 0
        self.energy_in_wh = 0
        self.energy_out_wh = 0
        self.energy_in_today_wh = 0
        self.energy_out_today_wh = 0
        self.stored_wh = 0
        self.charge_cycles = 0
        self.soh_pct = 100
        self.alarms = 0
        self.break_position = 0
        self.uptime_s = 0
        for name in values:
            setattr(self, name, values[name])
