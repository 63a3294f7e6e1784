"""CellBoard: the per-cell service of every role, driven through a fake hw (both interpreters)."""
import os

from core import store
from core.sampling import CalibrationError
from core.snapshot import CellStatus
from roles.cell_board import CellBoard

import support


class Board:
    NAME = "fake"
    CELL_DIVIDER_NUM = 2
    CELL_DIVIDER_DEN = 1
    ADC_VREF_UV = 3300000
    NTC_ADC_PIN = 27
    NTC_BETA = 3950
    NTC_R25_OHM = 10000
    NTC_SERIES_OHM = 10000
    NTC_SUPPLY_UV = 3300000


class ChipOnly(Board):
    NTC_ADC_PIN = None


class FakeHw:
    """Cell behind a 2:1 divider with a 2 % gain error; the balance current drops the sensed
    voltage by 30 mV (sense-wire resistance) while the resistor is on."""

    def __init__(self, data_dir, cell_mv=3300, ntc_uv=1650000, chip_dc=300, cause="power"):
        self.data_dir = data_dir
        self.cell_mv = cell_mv
        self.ntc_uv = ntc_uv
        self.chip_dc = chip_dc
        self.duty = -1
        self.duty_log = []
        self.led = None
        self.led_changes = 0
        self.button = False
        self.cause = cause
        self.reads_while_on = 0
        self.reads = 0

    def lsb_noise_uv(self):
        """A real ADC's last bits: -1, 0, +1 LSB (0.8 mV at the pin) in turn."""
        self.reads += 1
        return (self.reads % 3 - 1) * 800

    def read_cell_uv(self):
        mv = self.cell_mv - (30 if self.duty > 0 else 0)
        if self.duty > 0:
            self.reads_while_on += 1
        return mv * 1000 * 102 // 200 + self.lsb_noise_uv()

    def read_temp_uv(self):
        return self.ntc_uv

    def read_chip_temp_dc(self):
        return self.chip_dc

    def set_balance_duty(self, permille):
        self.duty = permille
        if len(self.duty_log) < 1000:
            self.duty_log.append(permille)

    def set_led(self, on):
        if on != self.led:
            self.led_changes += 1
        self.led = on

    def button_down(self):
        return self.button

    def reset_cause(self):
        return self.cause


def _board(cell_mv=3300, **kw):
    hw = FakeHw(support.tmpdir(), cell_mv, **kw)
    return hw, CellBoard(hw, Board)


def test_starts_safe_and_uncalibrated():
    hw, cb = _board()
    assert hw.duty == 0 and hw.led is False
    cb.measure(0)
    assert cb.status & CellStatus.NOT_CALIBRATED
    assert not cb.status & (CellStatus.VOLT_SENSOR_FAULT | CellStatus.TEMP_SENSOR_FAULT)
    assert abs(cb.cell_mv - 3366) <= 2     # 2 % high before calibration
    assert cb.temp_dc == 250


def test_calibration_from_repl_two_points_and_reboot():
    hw, cb = _board(2000)
    msg = cb.calibrate_point(2000)
    assert "point 1" in msg
    hw.cell_mv = 4000
    msg = cb.calibrate_point(4000)
    assert "calibrated" in msg
    assert os.stat(hw.data_dir + "/calibration.json")
    for mv in (1500, 3300, 5000):
        hw.cell_mv = mv
        cb.measure(1000)
        cb.measure(1000)
        assert abs(cb.cell_mv - mv) <= 2, (mv, cb.cell_mv)
    assert not cb.status & CellStatus.NOT_CALIBRATED
    # reboot: a new CellBoard on the same data folder uses the stored calibration
    cb2 = CellBoard(hw, Board)
    hw.cell_mv = 3600
    cb2.measure(0)
    assert abs(cb2.cell_mv - 3600) <= 2
    assert not cb2.status & CellStatus.NOT_CALIBRATED


def test_calibration_keeps_other_keys_and_can_be_cleared():
    hw, cb = _board(2000)
    store.save(hw.data_dir + "/calibration.json", "calibration", 1, {"s1_zero_uv": 1650123})
    cb.calibrate_point(2000)
    hw.cell_mv = 4200
    cb.calibrate_point(4200)
    values, st = store.load(hw.data_dir + "/calibration.json", "calibration", 1)
    assert st == store.OK and values["s1_zero_uv"] == 1650123 and "cell_delta_q16" in values
    cb.clear_calibration()
    values, st = store.load(hw.data_dir + "/calibration.json", "calibration", 1)
    assert values == {"s1_zero_uv": 1650123}
    cb.measure(0)
    assert cb.status & CellStatus.NOT_CALIBRATED


def test_calibration_refuses_nonsense_and_keeps_old():
    hw, cb = _board(3300)
    cb.calibrate_point(3300)
    hw.cell_mv = 3350
    e = support.raises(CalibrationError, cb.calibrate_point, 3350)
    assert "closer" in str(e)
    hw.cell_mv = 4000
    e = support.raises(CalibrationError, cb.calibrate_point, 5000)   # typo: gain far from 1
    assert "gain" in str(e)
    assert not cb.channel.cal.calibrated
    support.raises(CalibrationError, cb.calibrate_point, 12)
    hw.cell_mv = 4000
    assert "calibrated" in cb.calibrate_point(4000)


def test_corrupt_calibration_file_is_nominal():
    d = support.tmpdir()
    with open(d + "/calibration.json", "wb") as f:
        f.write(b"cellchain calibration 1 0000\n{garbage")
    hw = FakeHw(d)
    cb = CellBoard(hw, Board)
    cb.measure(0)
    assert cb.status & CellStatus.NOT_CALIBRATED and cb.cal_status == store.CORRUPT


def test_measures_with_resistor_off():
    hw, cb = _board(3500)
    cb.measure(1000)
    assert cb.balance(3400, True, 1000, True) == 1000
    assert hw.duty == 1000 and cb.status & CellStatus.BALANCING
    hw.reads_while_on = 0
    before = len(hw.duty_log)
    cb.measure(1000)
    assert hw.reads_while_on == 0                  # every ADC read with the resistor off
    assert hw.duty_log[before:] == [0, 1000]       # off for the burst, back on after
    assert abs(cb.cell_mv - 3570) <= 2             # no 30 mV sense-wire drop in the reading


def test_balancing_rules_through_the_board():
    hw, cb = _board(3500)
    cb.measure(0)
    assert cb.balance(0, True, 1000, True) == 0            # switches: no balancing
    assert cb.balance(3400, False, 1000, True) == 0        # stale link
    assert cb.balance(3400, True, 1000, True) == 1000
    hw.ntc_uv = 3300000                              # NTC opens: chip sensor keeps derating possible
    cb.measure(1000)
    assert cb.status & CellStatus.TEMP_SENSOR_FAULT and cb.temp_dc == 0
    assert cb.balance(3400, True, 1000, True) == 1000
    hw.chip_dc = 700                                 # hot board: derated
    cb.measure(1000)
    d = cb.balance(3400, True, 1000, True)
    assert 0 < d < 1000 and cb.status & CellStatus.DERATED
    hw.chip_dc = 800
    cb.measure(1000)
    assert cb.balance(3400, True, 1000, True) == 0 and hw.duty == 0


def test_sensor_faults_are_flags_not_data():
    hw, cb = _board(3300, ntc_uv=0)
    cb.measure(0)
    assert cb.status & CellStatus.TEMP_SENSOR_FAULT and cb.temp_dc == 0
    hw.ntc_uv = 1650000
    cb.measure(0)
    assert not cb.status & CellStatus.TEMP_SENSOR_FAULT and cb.temp_dc == 250
    hw.cell_mv = 0
    cb.measure(0)
    assert cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert cb.balance(3400, True, 1000, True) == 0
    hw.cell_mv = 9000        # saturated ADC
    cb.measure(0)
    assert cb.status & CellStatus.VOLT_SENSOR_FAULT


def test_chip_sensor_board():
    hw = FakeHw(support.tmpdir(), chip_dc=412)
    cb = CellBoard(hw, ChipOnly)
    cb.measure(0)
    assert cb.temp_dc == 412 and not cb.status & CellStatus.TEMP_SENSOR_FAULT
    hw.chip_dc = 2000
    cb.measure(0)
    assert cb.status & CellStatus.TEMP_SENSOR_FAULT


def test_balance_floor_from_the_board_definition():
    """The default floor lies below every switch value (the charging rule protects the cells,
    core/balance.py); a board definition may still set one."""
    hw, cb = _board(2700)
    cb.measure(0)
    assert cb.balancer.floor_mv == 1800
    assert cb.balance(2600, True, 1000, False) == 0              # no charge seen: no consent
    assert cb.balance(2600, True, 1000, True) == 1000            # an LTO pack balances

    class Floor(Board):
        BALANCE_FLOOR_MV = 3000

    hw = FakeHw(support.tmpdir(), 2700)
    cb = CellBoard(hw, Floor)
    cb.measure(0)
    assert cb.balance(2500, True, 1000, True) == 0 and hw.duty == 0


class ProbeHw(FakeHw):
    """FakeHw with the input self-test's load: a live input reads 57 % while it is on; a
    frozen input (``frozen_mv``) reads its frozen value, noise and all, whatever the load."""
    has_cell_probe = True

    def __init__(self, *a, **k):
        FakeHw.__init__(self, *a, **k)
        self.probe = False
        self.frozen_mv = None
        self.probe_calls = 0

    def set_cell_probe(self, on):
        self.probe = on
        self.probe_calls += 1

    def read_cell_uv(self):
        if self.frozen_mv is not None:
            return self.frozen_mv * 1000 * 102 // 200 + self.lsb_noise_uv()
        uv = FakeHw.read_cell_uv(self)
        return uv * 570 // 1000 if self.probe else uv


def test_input_self_test_finds_a_frozen_input_at_any_current():
    """Issue 20, item 1: an input frozen with its noise (no limit, no burst check can see it;
    the pack's current profile does not matter) is a VOLT_SENSOR_FAULT within
    CELL_PROBE_EVERY x STRIKES measurements; it clears after CLEAR good self-tests."""
    from core import probe
    hw = ProbeHw(support.tmpdir(), 3300)
    cb = CellBoard(hw, Board)
    for _ in range(10):
        cb.measure(1000)
        assert cb.cell_ok and not cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert hw.probe_calls == 10 and not hw.probe            # every 2nd burst, load released
    assert 500 <= cb.probe.last_permille <= 640
    hw.frozen_mv = 3300
    n = 0
    while cb.cell_ok:
        cb.measure(1000)
        n += 1
        assert n <= probe.EVERY_CYCLES * probe.STRIKES
    assert cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert cb.balance(3000, True, 1000, True) == 0          # never balance on it
    hw.frozen_mv = None
    for _ in range(probe.EVERY_CYCLES * probe.CLEAR):
        cb.measure(1000)
    assert cb.cell_ok and not cb.status & CellStatus.VOLT_SENSOR_FAULT


def test_input_self_test_allocates_nothing():
    hw = ProbeHw(support.tmpdir(), 3300)
    cb = CellBoard(hw, Board)
    cb.measure(1000)
    assert support.no_alloc(lambda: cb.measure(1000))


def test_led_flash_on_frames_and_steady_when_balancing():
    hw, cb = _board(3300)
    cb.measure(0)
    cb.balance(3400, True, 1000, True)
    ons = 0
    for _ in range(5):
        cb.frame_seen()
        cb.tick(0)
        ons += 1 if hw.led else 0
        for _ in range(20):
            cb.tick(50)
        assert hw.led is False
    assert ons == 5
    hw.cell_mv = 3500
    cb.measure(0)
    cb.balance(3400, True, 1000, True)
    for _ in range(40):
        cb.frame_seen()
        cb.tick(50)
        assert hw.led is True


def test_long_press_and_confirm():
    hw, cb = _board()
    cb.button.long_ms = 3000
    hw.button = True
    fired_at = None
    for i in range(100):
        cb.tick(50)
        if cb.take_long_press():
            fired_at = (i + 1) * 50
            cb.confirm()
            break
    assert fired_at is not None and 3000 <= fired_at <= 3100
    assert not cb.take_long_press()
    changes = hw.led_changes
    for _ in range(20):
        cb.tick(100)
    assert hw.led_changes - changes >= 15      # fast flash
    hw.button = False
    for _ in range(5):
        cb.tick(50)
    assert not cb.short_press


def test_watchdog_reset_flag_is_one_shot():
    hw = FakeHw(support.tmpdir(), cause="watchdog")
    cb = CellBoard(hw, Board)
    cb.measure(0)
    assert cb.status & CellStatus.WATCHDOG_RESET
    cb.frame_seen()
    assert cb.status & CellStatus.WATCHDOG_RESET
    cb.frame_seen()
    assert not cb.status & CellStatus.WATCHDOG_RESET


def test_wake_hints():
    hw, cb = _board(3500)
    assert cb.wake_in_ms() >= 1000
    cb.frame_seen()
    assert cb.wake_in_ms() <= 50
    cb.measure(0)
    cb.balance(3400, True, 1000, True)
    cb.safe()
    assert hw.duty == 0 and hw.led is False


def test_cycle_allocates_nothing():
    hw, cb = _board(3500)
    hw.duty_log = [0] * 1000     # full: the fake stops logging (its own allocation)

    def cycle():
        cb.measure(1000)
        cb.balance(3400, True, 1000, True)
        cb.frame_seen()
        cb.tick(20)
        cb.wake_in_ms()

    assert support.no_alloc(cycle)


def test_stuck_high_adc_is_a_sensor_fault_not_over_voltage():
    # the fake reads 2 % high: 5392 mV at the cell reads as 5.50 V (an ADC stuck at 5.5 V)
    hw, cb = _board(5392)
    cb.measure(0)
    assert 5490 <= cb.cell_mv <= 5510
    assert not cb.cell_ok and cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert cb.balance(3400, True, 1000, True) == 0 and hw.duty == 0    # never drains the cell
    for _ in range(5):
        cb.measure(1000)
        assert cb.balance(3400, True, 1000, True) == 0
    # a real full NMC cell (4.25 V) and the board's top (5.0 V) are data and balance
    hw.cell_mv = 4900                      # reads 4998 mV
    cb.measure(1000)
    assert cb.cell_ok and not cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert cb.balance(3400, True, 1000, True) == 1000
    hw.cell_mv = 1480                      # reads 1.51 V: an LTO cell near its V-min is data
    cb.measure(1000)
    assert cb.cell_ok
    hw.cell_mv = 900                       # reads 0.92 V: open input, not a cell
    cb.measure(1000)
    assert not cb.cell_ok and cb.balance(3400, True, 1000, True) == 0


def test_calibration_works_on_a_board_reading_high():
    # before calibration a 10 % gain error shows a real 4.8 V cell as 5.28 V (implausible), but
    # the two-point calibration still takes it (it only needs the ADC off its rails)
    hw, cb = _board(3000)
    hw.read_cell_uv = lambda: hw.cell_mv * 1000 * 110 // 200 + hw.lsb_noise_uv()
    cb.calibrate_point(3000)
    hw.cell_mv = 4800
    cb.measure(0)
    assert not cb.cell_ok
    cb.calibrate_point(4800)
    cb.measure(0)
    assert cb.cell_ok and abs(cb.cell_mv - 4800) <= 3


def test_frozen_adc_is_a_sensor_fault_not_a_cell_voltage():
    hw, cb = _board(3300)
    for _ in range(20):
        cb.measure(1000)
    assert cb.cell_ok and not cb.status & CellStatus.VOLT_SENSOR_FAULT
    frozen = hw.read_cell_uv()
    hw.read_cell_uv = lambda: frozen       # the converter returns the same word for ever
    for _ in range(9):
        cb.measure(1000)
    assert cb.cell_ok                      # a few flat bursts can happen: not yet a fault
    cb.measure(1000)
    assert not cb.cell_ok and cb.status & CellStatus.VOLT_SENSOR_FAULT
    assert cb.balance(3000, True, 1000, True) == 0      # never drain a cell on a frozen reading
    hw.read_cell_uv = lambda: 3300 * 1000 * 102 // 200 + hw.lsb_noise_uv()
    cb.measure(1000)
    assert cb.cell_ok                      # noise is back: the converter is alive again
