"""The per-cell service every role runs: cell voltage, temperature, balancing, LED and button.

A role owns one ``CellBoard(hw, board_def)`` and calls, per cycle::

    cell.measure(dt_ms)                    # ADC burst with the balance resistor off
    ... link: put cell.cell_mv, cell.temp_dc, cell.status into the frame ...
    cell.balance(vbal_mv, link_ok, dt_ms, charging)  # vbal_mv 0 = switches say no balancing;
                                           # charging: the pack takes >= CHARGE_MIN_MA
    cell.frame_seen()                      # on every good frame (LED flash)

and on every wake-up of the loop ``cell.tick(dt_ms)`` (LED pattern, button timing). A hold of the
button past ``long_press_ms`` sets ``cell.long_press`` (read it with ``take_long_press()``); the
role acts and calls ``cell.confirm()`` for the fast flash. ``safe()`` switches the resistor and
the LED off. ``wake_in_ms()`` tells the loop when the LED or the button needs it next.

Board-definition constants used (getattr with defaults): CELL_DIVIDER_NUM/DEN, ADC_FULL_SCALE_UV
or ADC_VREF_UV, CELL_SAMPLES, CELL_TRIM, CELL_FILTER_SHIFT, NTC_* (see core.ntc), BALANCE_HYST_MV,
BALANCE_DERATE_DC, BALANCE_STOP_DC, BALANCE_RESUME_DC, BALANCE_MIN_DUTY, BALANCE_SETTLE_READS,
BALANCE_DWELL_MS, BALANCE_FLOOR_MV (never balance below it; default 1800 mV), CELL_PROBE_* (core/probe.py).
Calibration: ``hw.data_dir + "/calibration.json"`` (core.store record, kind "calibration",
version 1); the keys ``cell_delta_q16`` and ``cell_offset_01mv`` belong to this module, other keys
(the Begin board's current-sensor zeros) are preserved on every write.
"""
from micropython import const

from core import ntc as ntc_mod
from core import store
from core import ui
from core.balance import FLOOR_MV, Balancer
from core.probe import InputProbe
from core.sampling import CELL_MAX_MV, CELL_MIN_MV, Calibration, CalibrationError, CellChannel, Oversampler, solve_two_point
from core.snapshot import CellStatus

CAL_FILE = "/calibration.json"
CAL_KIND = "calibration"
_CAL_VERSION = const(1)

_CHIP_MIN_DC = const(-400)     # plausible die temperatures
_CHIP_MAX_DC = const(1250)
_TEMP_SAMPLES = const(8)
_ONE_SHOT_FRAMES = const(2)
_PROBE_HOT_DC = const(700)     # NTC self-test judged below 70 degC (see _measure_temp)   # WATCHDOG_RESET stays set for this many good frames


class CellBoard:
    def __init__(self, hw, board_def, long_press_ms=ui.LONG_PRESS_MS):
        self.hw = hw
        self.board_def = board_def
        g = getattr
        full_scale = g(board_def, "ADC_FULL_SCALE_UV", None) or g(board_def, "ADC_VREF_UV", None) or 3100000
        self.channel = CellChannel(
            g(board_def, "CELL_DIVIDER_NUM", 2), g(board_def, "CELL_DIVIDER_DEN", 1),
            samples=g(board_def, "CELL_SAMPLES", 16), trim=g(board_def, "CELL_TRIM", 4),
            filter_shift=g(board_def, "CELL_FILTER_SHIFT", 2), full_scale_uv=full_scale,
            stuck_bursts=g(board_def, "CELL_ADC_STUCK_BURSTS", 10))
        self.samples = self.channel.samples
        # input self-test (core/probe.py): only on hardware that can load its ADC node
        self.has_probe = getattr(hw, "has_cell_probe", False)
        self.probe = InputProbe(
            g(board_def, "CELL_PROBE_EVERY", 2) if self.has_probe else 0,
            g(board_def, "CELL_PROBE_MIN_PERMILLE", 300), g(board_def, "CELL_PROBE_MAX_PERMILLE", 900))
        self.probe_over = Oversampler(8, 2)
        # the NTC input's self-test (the same idea: a frozen temperature reading is a
        # TEMP_SENSOR_FAULT, counted as too hot and too cold by the pack brain)
        self.has_temp_probe = getattr(hw, "has_temp_probe", False)
        self.temp_probe = InputProbe(
            g(board_def, "NTC_PROBE_EVERY", 2) if self.has_temp_probe else 0,
            g(board_def, "NTC_PROBE_MIN_PERMILLE", 500), g(board_def, "NTC_PROBE_MAX_PERMILLE", 995))
        self.ntc = ntc_mod.from_board(board_def)
        self.temp_over = Oversampler(_TEMP_SAMPLES, 2)
        self.has_chip_temp = hasattr(hw, "read_chip_temp_dc")
        self.balancer = Balancer(
            hyst_mv=g(board_def, "BALANCE_HYST_MV", 10), derate_dc=g(board_def, "BALANCE_DERATE_DC", 600),
            stop_dc=g(board_def, "BALANCE_STOP_DC", 750), resume_dc=g(board_def, "BALANCE_RESUME_DC", 650),
            min_duty=g(board_def, "BALANCE_MIN_DUTY", 200), settle_reads=g(board_def, "BALANCE_SETTLE_READS", 4),
            dwell_ms=g(board_def, "BALANCE_DWELL_MS", 60000),
            floor_mv=g(board_def, "BALANCE_FLOOR_MV", FLOOR_MV))
        self.button = ui.Button(long_ms=long_press_ms)
        self.has_button = hasattr(hw, "button_down")
        self.led = ui.Led()
        self.cell_mv = 0
        self.smooth_mv = 0
        self.cell_ok = False
        self.temp_dc = 0
        self.temp_ok = False
        self.chip_dc = 0           # die temperature (derating fallback), when the board has a sensor
        self.chip_ok = False
        self.status = 0
        self.duty = 0              # what the balance output is set to
        self.vbal_mv = 0
        self.link_ok = False
        self.frames = 0
        self.long_press = False
        self.short_press = False
        self.cal_message = ""
        self._cal_point = None     # (nominal_01mv, applied_mv) after the first calibration point
        self._led_on = False
        self._led_due = 0          # LED change made outside tick: 1 show it, 2 start the flash
        self.reset_cause = hw.reset_cause() if hasattr(hw, "reset_cause") else "unknown"
        self.watchdog_reset = self.reset_cause == "watchdog"
        self.cal_path = g(hw, "data_dir", ".") + CAL_FILE
        self.load_calibration()
        self.safe()

    # ------------------------------------------------------------------ per cycle
    def measure(self, dt_ms):
        """One ADC burst for the cell voltage (resistor off meanwhile) and one for temperature."""
        hw = self.hw
        duty = self.duty
        if duty:
            hw.set_balance_duty(self.balancer.measure_duty())
            for _ in range(self.balancer.settle_reads):
                hw.read_cell_uv()
        probed = self.probe.due()
        if probed:
            # the input self-test: the node loaded, a short burst, the load off and settled
            settle = self.balancer.settle_reads
            hw.set_cell_probe(True)
            for _ in range(settle):
                hw.read_cell_uv()
            over = self.probe_over
            over.reset()
            for _ in range(over.n):
                over.add(hw.read_cell_uv())
            hw.set_cell_probe(False)
            for _ in range(settle):
                hw.read_cell_uv()
        ch = self.channel
        ch.begin()
        for _ in range(self.samples):
            ch.add(hw.read_cell_uv())
        if duty:
            hw.set_balance_duty(duty)
        mv = ch.finish()
        if probed:
            self.probe.judge(ch.raw_uv, self.probe_over.result())
        self.cell_ok = ch.ok and CELL_MIN_MV <= mv <= CELL_MAX_MV and not self.probe.fault
        # the link, the limit checks and the balancer: unfiltered (no filter lag; the balancer
        # must see what the pack brain sees, so a balancing cell always reads >= V-balance)
        self.cell_mv = ch.fast_mv
        self.smooth_mv = mv          # filtered: diagnostics only
        self._measure_temp()
        self._update_status()

    def _measure_temp(self):
        hw = self.hw
        if self.has_chip_temp:
            t = hw.read_chip_temp_dc()
            self.chip_ok = t is not None and _CHIP_MIN_DC <= t <= _CHIP_MAX_DC
            self.chip_dc = t if self.chip_ok else 0
        if self.ntc is None:
            self.temp_ok = self.chip_ok
            self.temp_dc = self.chip_dc
            return
        probed = self.temp_probe.due()
        pr = self.probe_over
        if probed:
            hw.set_temp_probe(True)
            for _ in range(self.balancer.settle_reads):
                hw.read_temp_uv()
            pr.reset()
            for _ in range(pr.n):
                uv = hw.read_temp_uv()
                if uv is None:
                    break
                pr.add(uv)
            hw.set_temp_probe(False)
            for _ in range(self.balancer.settle_reads):
                hw.read_temp_uv()
        over = self.temp_over
        over.reset()
        for _ in range(_TEMP_SAMPLES):
            uv = hw.read_temp_uv()
            if uv is None:
                over.reset()
                break
            over.add(uv)
        t = self.ntc.temp_dc(over.result()) if over.count else None
        if probed and t is not None and t < _PROBE_HOT_DC and pr.count:
            # a reading that says hot trips OVER_TEMP anyway (and a hot NTC's low resistance
            # hardly moves under the load): only a reading that could hide heat is judged
            self.temp_probe.judge(over.result(), pr.result())
        if self.temp_probe.fault:
            t = None
        if t is None:
            self.temp_ok = False
            self.temp_dc = 0     # not data: the TEMP_SENSOR_FAULT bit says so
        else:
            self.temp_ok = True
            self.temp_dc = t

    def balance(self, vbal_mv, link_ok, dt_ms, charging):
        """Decide and set the balance resistor duty; LED steady while balancing. ``charging``:
        the pack takes at least ``core.balance.CHARGE_MIN_MA`` (balancing never drains a cell)."""
        self.vbal_mv = vbal_mv
        self.link_ok = link_ok
        if self.temp_ok:
            t = self.temp_dc
            t_ok = True
        else:
            t = self.chip_dc
            t_ok = self.chip_ok
        duty = self.balancer.update(self.cell_mv, self.cell_ok, vbal_mv, link_ok, t, t_ok, dt_ms, charging)
        if duty != self.duty:
            if not self._led_due and (duty == 0) != (self.duty == 0):
                self._led_due = 1      # steady on / off: shown at the next tick, now
            self.duty = duty
            self.hw.set_balance_duty(duty)
        if duty:
            self.led.steady()
        else:
            self.led.idle()
        self._update_status()
        return duty

    def frame_seen(self):
        """A good frame passed this board: one LED flash; one-shot status bits age out. The
        flash starts at the next tick (asked for at once: wake_in_ms 0), so the time before
        it - the rest of a cycle, the wait for the wake-up - does not shorten it."""
        self._led_due = 2
        if self.frames < 1000000:
            self.frames += 1
        if self.watchdog_reset and self.frames >= _ONE_SHOT_FRAMES:
            self.watchdog_reset = False
            self._update_status()

    def tick(self, dt_ms):
        """LED pattern and button timing; call on every wake-up with the elapsed ms."""
        if self.has_button:
            ev = self.button.update(self.hw.button_down(), dt_ms)
            if ev == ui.LONG:
                self.long_press = True
            elif ev == ui.SHORT:
                self.short_press = True
        led = self.led
        on = led.update(dt_ms)
        d = self._led_due
        if d:
            self._led_due = 0
            if d == 2:
                led.pulse()
                on = led.update(0)
        if on != self._led_on:
            self._led_on = on
            self.hw.set_led(on)

    def take_long_press(self):
        """True once per long press (clears the flag)."""
        if self.long_press:
            self.long_press = False
            return True
        return False

    def confirm(self):
        """Fast flash: the role's long-press action is done (manual: 'until the LED flashes fast')."""
        self.led.fast()
        if not self._led_due:
            self._led_due = 1

    def wake_in_ms(self):
        if self._led_due:
            return 0                   # an LED change to show (the cycle's flash): now
        a = self.led.wake_in_ms()
        b = self.button.wake_in_ms() if self.has_button else ui.IDLE_WAKE_MS
        return a if a < b else b

    def safe(self):
        """Resistor off, LED off, balancing state cleared. Never raises on a sane hw."""
        self.balancer.reset()
        self.duty = 0
        self.hw.set_balance_duty(0)
        self.led.off()
        self._led_on = False
        self._led_due = 0
        self.hw.set_led(False)
        self._update_status()

    def _update_status(self):
        s = 0
        if self.duty:
            s |= CellStatus.BALANCING
        if not self.temp_ok:
            s |= CellStatus.TEMP_SENSOR_FAULT
        if not self.cell_ok:
            s |= CellStatus.VOLT_SENSOR_FAULT
        if self.balancer.derated or self.balancer.hot_stop:
            s |= CellStatus.DERATED
        if not self.channel.cal.calibrated:
            s |= CellStatus.NOT_CALIBRATED
        if self.watchdog_reset:
            s |= CellStatus.WATCHDOG_RESET
        self.status = s

    # ------------------------------------------------------------------ calibration (REPL)
    def load_calibration(self):
        values, st = store.load(self.cal_path, CAL_KIND, _CAL_VERSION)
        self.channel.cal = Calibration.from_dict(values) if st == store.OK else Calibration()
        self.cal_status = st
        return self.channel.cal.calibrated

    def _fresh_nominal(self, reads):
        self.channel.filter.reset()
        total = 0
        for _ in range(reads):
            self.measure(0)
            if not self.channel.adc_ok:
                raise CalibrationError("no plausible cell reading (pin %d uV): check the wiring" % self.channel.pin_uv)
            total += self.channel.nominal_01mv
        return (total + reads // 2) // reads

    def calibrate_point(self, applied_mv, reads=8):
        """Two-point calibration, one call per point: apply a known voltage (measured with a good
        meter), call with it in mV; then a second voltage at least 0.5 V away, call again. The
        result is checked, stored (survives reboot) and used at once. Returns a message; raises
        CalibrationError (with the reason) on nonsense, keeping the old calibration."""
        applied_mv = int(applied_mv)
        if not 1000 <= applied_mv <= 5500:
            raise CalibrationError("applied voltage %d mV outside 1000..5500 mV" % applied_mv)
        nominal = self._fresh_nominal(reads)
        if self._cal_point is None:
            self._cal_point = (nominal, applied_mv)
            self.cal_message = "point 1 stored (%d mV); now apply a voltage at least 500 mV away and call again" % applied_mv
            return self.cal_message
        n1, a1 = self._cal_point
        cal = solve_two_point(n1, a1, nominal, applied_mv)   # raises CalibrationError
        self._save_calibration(cal.to_dict())
        self.channel.cal = cal
        self._cal_point = None
        self._update_status()
        off = cal.offset_01mv
        self.cal_message = "calibrated: gain %d ppm, offset %s%d.%d mV, saved to %s" % (
            cal.gain_ppm(), "-" if off < 0 else "", abs(off) // 10, abs(off) % 10, self.cal_path)
        return self.cal_message

    def restart_calibration(self):
        """Forget a stored first point (start over with point 1)."""
        self._cal_point = None

    def clear_calibration(self):
        """Back to the board definition's nominal divider (stored)."""
        self._save_calibration(None)
        self.channel.cal = Calibration()
        self._cal_point = None
        self._update_status()

    def _save_calibration(self, mine):
        values, st = store.load(self.cal_path, CAL_KIND, _CAL_VERSION)
        if st != store.OK:
            values = {}
        for k in ("cell_delta_q16", "cell_offset_01mv"):
            if k in values:
                del values[k]
        if mine:
            for k in mine:
                values[k] = mine[k]
        store.save(self.cal_path, CAL_KIND, _CAL_VERSION, values)
