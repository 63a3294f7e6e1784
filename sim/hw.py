"""Virtual board hardware: the ``hw`` object of docs/architecture.md for every board of the pack.

Each board reads its sensors from the host model (``sim.model.Pack``) through the same
conversions a real board has: the cell-voltage divider (CELL_DIVIDER_NUM / CELL_DIVIDER_DEN: the
cell voltage is pin voltage x NUM / DEN), ADC noise, the NTC divider (NTC from the pin to ground,
series resistor from NTC_SUPPLY_UV to the pin, Beta model), the dual-range current sensors
(zero at CURRENT_ZERO_UV, CURRENT_LOW_UV_PER_A / CURRENT_HIGH_UV_PER_A, saturating at the range
ends, loop count turns through the sensor) and reports its outputs (balance duty, LEDs, relays,
extended-output bytes) back. Faults injected by a scenario change what these methods return.
Board constants come from the board definition when it has them, else the defaults below.

What an ADC pin reads for a true input - the noise and the injected faults - is sim/sensors.py's
``BoardSensors`` (``hw.faults``), the one sensor model of both engines: this module gives it
the true values (cell uV, NTC pin uV, uA through a current sensor with its offset); the
micropython engine sends the same true values to sim/mp_board.py, which reads them through
its own ``BoardSensors`` of the same seed.
"""
import math
import os

import numpy as np

from sim import sensors

DEFAULTS = {
    "CELL_DIVIDER_NUM": 2,
    "CELL_DIVIDER_DEN": 1,
    "NTC_BETA": 3950,
    "NTC_R25_OHM": 10000,
    "NTC_SERIES_OHM": 10000,
    "NTC_SUPPLY_UV": 3300000,
    "CURRENT_ZERO_UV": 1650000,
    "CURRENT_LOW_UV_PER_A": 75000,    # +-20 A  -> +-1.5 V around the zero
    "CURRENT_HIGH_UV_PER_A": 3000,    # +-500 A -> +-1.5 V around the zero
    "ADC_MAX_UV": 3300000,
}
LOW_RANGE_A = 20.0
HIGH_RANGE_A = 500.0
LOW_ACCURACY_A = 0.050    # manual: low range accuracy 50 mA, high range 1.25 A (at one turn)
HIGH_ACCURACY_A = 1.25


def board_const(board_def, name):
    value = getattr(board_def, name, None)
    return DEFAULTS[name] if value is None else value


def current_channels(board_def):
    """The Begin board's current channels for sim/sensors.py (ints: uA, uV)."""
    return {"zero_uv": int(board_const(board_def, "CURRENT_ZERO_UV")),
            "low_uv_per_a": int(board_const(board_def, "CURRENT_LOW_UV_PER_A")),
            "high_uv_per_a": int(board_const(board_def, "CURRENT_HIGH_UV_PER_A")),
            "low_range_ua": int(LOW_RANGE_A * 1e6), "high_range_ua": int(HIGH_RANGE_A * 1e6),
            "low_acc_ua": int(LOW_ACCURACY_A * 1e6), "high_acc_ua": int(HIGH_ACCURACY_A * 1e6)}


class ByteCapture:
    """A byte transmitter that records what it sends (the End board's extended output)."""

    def __init__(self):
        self.data = bytearray()
        self.writes = 0

    def write(self, buf, n=None):
        n = len(buf) if n is None else n
        self.data.extend(bytes(buf[:n]))
        self.writes += 1
        return n

    def busy(self):
        return False


class BoardHw:
    """hw for one cell board (all roles). ``index`` is 0-based from the Begin board."""

    def __init__(self, sim, index, role, board_def, data_dir, seed=0):
        self.sim = sim
        self.index = index
        self.role = role
        self.board_def = board_def
        self.data_dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.num = board_const(board_def, "CELL_DIVIDER_NUM")
        self.den = board_const(board_def, "CELL_DIVIDER_DEN")
        # noise and injected faults (stuck_adc_uv, frozen_uv, open_ntc, short_ntc): sim/sensors.py
        self.faults = sensors.BoardSensors(seed, index, self.num, self.den, DEFAULTS["ADC_MAX_UV"])
        self.has_ntc = getattr(board_def, "NTC_ADC_PIN", 1) is not None
        self.beta = board_const(board_def, "NTC_BETA")
        self.r25 = board_const(board_def, "NTC_R25_OHM")
        self.rser = board_const(board_def, "NTC_SERIES_OHM")
        self.faults.ntc_series_ohm = int(self.rser)
        self.supply_uv = board_const(board_def, "NTC_SUPPLY_UV")
        self.duty_permille = 0
        self.has_cell_probe = True
        self.has_temp_probe = True   # the input self-test's load (sim/sensors.py PROBE_PERMILLE)
        self.led = False
        self.led_on_ms = 0
        self.button = False
        self.watchdog_feeds = 0
        self.cell_reads = 0
        self.cause = "power"
        self.link_tx = None
        self.link_rx = None
        self.ble = None              # no radio: the app protocol goes over --app-port

    def true_cell_uv(self):
        """The cell's terminal voltage now (model), int uV."""
        return int(round(float(self.sim.pack.v_true[self.index]) * 1e6))

    def true_ntc_uv(self):
        """The NTC divider pin's voltage for the cell's temperature now, no noise (None: no NTC)."""
        if not self.has_ntc:
            return None
        return self.ntc_uv(float(self.sim.pack.temp_c[self.index]))

    def read_cell_uv(self):
        self.cell_reads += 1         # board time (sim/board_time.py): the call that measures
        return self.faults.cell_pin_uv(self.true_cell_uv())

    def ntc_uv(self, temp_c):
        t = temp_c + 273.15
        r = self.r25 * math.exp(self.beta * (1.0 / t - 1.0 / 298.15))
        return int(self.supply_uv * r / (r + self.rser))

    def set_cell_probe(self, on):
        self.faults.probe = bool(on)

    def set_temp_probe(self, on):
        self.faults.ntc_probe = bool(on)

    def read_temp_uv(self):
        return self.faults.ntc_pin_uv(self.true_ntc_uv(), int(self.supply_uv))

    def read_chip_temp_dc(self):
        return int(round(float(self.sim.pack.temp_c[self.index]) * 10 + 30))  # die runs ~3 degC warmer

    def set_balance_duty(self, permille):
        p = 0 if permille < 0 else (1000 if permille > 1000 else int(permille))
        self.duty_permille = p
        self.sim.pack.balance_duty[self.index] = p / 1000.0

    def set_led(self, on):
        self.led = bool(on)

    def button_down(self):
        return self.button

    def feed_watchdog(self):
        self.watchdog_feeds += 1

    def reset_cause(self):
        return self.cause

    def safe(self):
        """Every output to its safe level (hal/loop.py calls it after a role fault)."""
        self.set_balance_duty(0)
        self.led = False

    def power_off(self):
        """Board lost power: its balance resistor and LEDs go dark."""
        self.safe()


class BeginHw(BoardHw):
    """Begin board: option switches and two dual-range current sensors."""

    def __init__(self, sim, index, role, board_def, data_dir, seed=0):
        BoardHw.__init__(self, sim, index, role, board_def, data_dir, seed)
        self.switches = 0
        self.zero_uv = board_const(board_def, "CURRENT_ZERO_UV")
        self.low_uv_per_a = board_const(board_def, "CURRENT_LOW_UV_PER_A")
        self.high_uv_per_a = board_const(board_def, "CURRENT_HIGH_UV_PER_A")
        rng = np.random.default_rng(seed * 7919 + 17)
        # fixed offset errors of the two sensors, within the manual's accuracy (at one turn)
        self.offset_a = {(s, h): float(rng.uniform(-1, 1)) * (HIGH_ACCURACY_A if h else LOW_ACCURACY_A) * 0.5
                         for s in (1, 2) for h in (False, True)}
        self.sensor_present = [True, True]
        self.stuck_a = [None, None]       # a sensor stuck at this current (A, both ranges)
        self.low_stuck_a = [None, None]   # a sensor's low range stuck at this current (A)
        self.fault_offset_a = [0.0, 0.0]  # a sensor reading this much off (A, both ranges)
        self.channels = current_channels(board_def)

    def current_ua(self, sensor, high_range):
        """uA through ``sensor`` as its ``high_range`` channel sees it (loop count, stuck
        values and the sensor's offset applied; no noise), None while it is unplugged."""
        if not self.sensor_present[sensor - 1]:
            return None
        amps = self.sim.sensor_a(sensor) * self.sim.loop_count
        if self.stuck_a[sensor - 1] is not None:
            amps = self.stuck_a[sensor - 1]
        if not high_range and self.low_stuck_a[sensor - 1] is not None:
            amps = self.low_stuck_a[sensor - 1]
        amps += self.fault_offset_a[sensor - 1]
        return int(round((amps + self.offset_a[(sensor, bool(high_range))]) * 1e6))

    def read_switches(self):
        return self.switches

    def read_current_uv(self, sensor, high_range):
        # unplugged: the pin is pulled to ground (sim/sensors.py)
        return self.faults.current_pin_uv(self.current_ua(sensor, high_range), high_range, self.channels)


class EndHw(BoardHw):
    """End board: charge and load relays with their LEDs, extended data output."""

    def __init__(self, sim, index, role, board_def, data_dir, seed=0):
        BoardHw.__init__(self, sim, index, role, board_def, data_dir, seed)
        self.charge_relay = False
        self.load_relay = False
        self.charge_led = False
        self.load_led = False
        self.extout_tx = ByteCapture()
        self.relay_switches = 0

    def set_charge_relay(self, on):
        on = bool(on)
        if on != self.charge_relay:
            self.relay_switches += 1
        self.charge_relay = on

    def set_load_relay(self, on):
        on = bool(on)
        if on != self.load_relay:
            self.relay_switches += 1
        self.load_relay = on

    def set_charge_led(self, on):
        self.charge_led = bool(on)

    def set_load_led(self, on):
        self.load_led = bool(on)

    def safe(self):
        BoardHw.safe(self)
        self.set_charge_relay(False)   # relays and their LEDs off (a dead End board: coils unpowered)
        self.set_load_relay(False)
        self.charge_led = self.load_led = False
