"""The End board's pack brain: snapshot + elapsed time -> relays, SoC, energies, alarms.

``PackBrain(settings, settings_ok, state_path=None)``; ``update(snap, dt_ms)`` every cycle with
the real elapsed time. Afterwards these attributes are valid (read by the End role, the extended
output and the app protocol):

charge_allowed, load_allowed, charge_led, load_led (bool); soc_c (0..10000 = 0.01 %);
soc_calibrated (full/empty recalibration since boot); current_ma (battery, + = charging);
charge_ma / discharge_ma (sensor 1 / sensor 2 after loop count and dead band; with one sensor
the positive / negative part of the battery current); power_in_w, power_out_w; energy_in_wh,
energy_out_wh (totals); energy_in_today_wh, energy_out_today_wh (reset every 24 h of run time,
counted from the first boot, the day counter is persisted); stored_wh (SoC x capacity x V-nom x
cells); charge_cycles; soh_pct (100); charge_efficiency_pct (100); alarms (core.alarms bits);
break_position (from the snapshot while communication is lost, else 0); uptime_s;
should_save (the role should store ``state_values()`` now and report with ``state_saved(ok)``).

Fail-safe: both relays are off until settings are valid and configured AND a valid, fresh,
complete snapshot arrived; no communication, a cell-voltage sensor fault (in a cell's detail or
named by section A's FAULT_AT) or a cell count outside the switch range switch both off in the
same cycle. The lowest/highest cell voltage and
temperature are the worse of the per-cell detail and the section-A aggregates (updated in every
frame), so limits act within one frame at any chain length; V-max / V-min trip on
``core.relays.LIMIT_SAMPLES`` (1) unfiltered sample (the cell board's burst debounces). A sensor fault never disables the
protection it feeds: an untrusted temperature counts as too hot and too cold for both relays
(TEMP_SENSOR_FAULT), a cell reading that does not follow the pack's current steps as an untrusted
voltage (CELL_NOT_FOLLOWING + VOLT_SENSOR_FAULT), a current sensor without data freezes the SoC
count (CURRENT_SENSOR_FAULT). The protection latches of ``core.relays.Relays`` (V-max / V-min
hold, empty, deep discharge) are saved at once when they change and restored at boot. See
docs/pack-brain.md.
"""
from micropython import const

from core import alarms as A
from core import rules, store
from core import settings as _settings
from core.current import PackCurrent, sensor_ok
from core.follow import FollowCheck
from core.pack_view import PackView
from core.relays import LIMIT_SAMPLES, Limits, RelayLeds, Relays
from core.sampling import CELL_MAX_MV
from core.soc import EnergyCounter, FullEmptyDetector, SocCounter, mul_e4, mul_e5

STATE_KIND = "soc"
STATE_VERSION = const(1)

MAX_DT_MS = const(600000)          # a longer gap is integrated as 10 minutes
DAY_MS = const(86400000)
EMPTY_MS = const(30000)            # after a V-min trip, a cell this long at rest within the
#                                    restart hysteresis of V-min -> empty: SoC 0 %
FULL_SAMPLES = const(3)
SAVE_EVENT_MIN_MS = const(60000)   # relay change / recalibration: save, at most once a minute
SAVE_SOC_MIN_MS = const(300000)    # SoC moved >= 1 %: save, at most every 5 minutes
SAVE_SOC_DELTA_C = const(100)
SAVE_MAX_MS = const(3600000)       # anything else changed (energies): save once an hour
TRIM_MAX_MA = const(2000)          # End-side zero trim refused beyond 2 A (current flowing?)
DEFAULT_SOC_C = const(5000)        # no saved state: 50 %, not calibrated
_MAX_PACK_MV = const(2000000)
_SINCE_CAP_MS = const(0x10000000)


def _int_in(values, key, lo, hi, default):
    v = values.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        return default
    return v


class PackBrain:
    def __init__(self, settings, settings_ok, state_path=None):
        self.state_path = state_path
        self._cur = PackCurrent()
        self._soc = SocCounter(100, DEFAULT_SOC_C)
        self._det = FullEmptyDetector(FULL_SAMPLES, EMPTY_MS)
        self._relays = Relays()
        self._leds = RelayLeds()
        self._e_in = EnergyCounter()
        self._e_out = EnergyCounter()
        self._t_in = EnergyCounter()
        self._t_out = EnergyCounter()
        self._today_ms = 0
        self._up_ms = 0
        self._trim1 = 0
        self._trim2 = 0
        self._raw1 = 0
        self._raw1_ok = False
        self._raw2 = 0
        self._raw2_ok = False
        self._pack_mv = 0
        self._cells = 0
        self._since_save_ms = 0
        self._urgent = False
        self._saved_soc_c = -1
        self._saved_in = 0
        self._saved_out = 0
        self._latch_urgent = False
        self._view = PackView()          # this cycle's digest of the snapshot
        self._follow = FollowCheck()     # readings that do not follow the current's steps
        self._empty = rules.EmptyRule()  # a V-min trip: is the pack empty?
        self._doubt = rules.SensorDoubt()  # sensor faults that come back: hold-off
        self._loop = rules.ResetLoop()   # a board that keeps restarting
        self.charge_allowed = False
        self.load_allowed = False
        self.charge_led = False
        self.load_led = False
        self.soc_c = DEFAULT_SOC_C
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
        self.charge_efficiency_pct = 100
        self.alarms = A.SETTINGS_INVALID | A.COMM_LOST | A.SOC_NOT_CALIBRATED
        self.break_position = 0
        self.charge_hold_mv = 0       # CHARGE_HELD: every cell at or below this releases it
        self.reset_position = 0       # a board in a reset loop (BOARD_RESET_LOOP), 0 = none
        self.uptime_s = 0
        self.should_save = False
        self.state_status = store.MISSING
        self.set_settings(settings, settings_ok)
        if state_path is not None:
            self.load_state()
        self._publish_counters()

    # --- settings ----------------------------------------------------------------------------
    def set_settings(self, settings, ok):
        """New settings (from the store or the app, already validated). ``ok`` False, failed
        consistency or an unknown chemistry keep both relays off (SETTINGS_INVALID)."""
        usable = False
        if settings is not None and ok:
            try:
                usable = _settings.check(settings) is None and settings.is_configured()
            except (TypeError, AttributeError, ValueError):
                usable = False
        self._ok = usable
        self._settings = settings if usable else _settings.Settings()
        self._lim = Limits(self._settings)
        self._soc.set_capacity(self._settings.capacity_ah)
        self._follow.set_capacity(self._settings.capacity_ah)
        if usable:
            self.alarms &= ~A.SETTINGS_INVALID
        else:
            self._relays.force_off()
            self.charge_allowed = False
            self.load_allowed = False
            self.alarms |= A.SETTINGS_INVALID

    # --- per cycle ---------------------------------------------------------------------------
    def vmax_in_section_a(self, max_mv, max_mv_cell):
        """True when section A's highest cell (CRC-checked, mid-frame) is at or over V-max:
        the End opens the charge relay at once, before the rest of the frame (the detail)
        has arrived; ``update`` after the frame trips on the same value (``LIMIT_SAMPLES``
        = 1), so the relay is not closed again. No allocation (the receiver's handler)."""
        return (self._ok and max_mv_cell != 0 and self._lim.vmax_mv <= max_mv <= CELL_MAX_MV)

    def update(self, snap, dt_ms):
        """One cycle: ``snap`` is the current ``core.snapshot.PackSnapshot``, ``dt_ms`` the real
        time since the previous call. Allocation-free. The snapshot is digested once into a
        ``core.pack_view.PackView``; every decision below is a rule of core/rules.py (or
        ``core.relays.Relays``, ``core.follow.FollowCheck``) taken on that view, in this order:
        view alarms, reset loop, current and SoC, follow check, recalibration, sensor doubt,
        relays, limit alarms."""
        if dt_ms < 0:
            dt_ms = 0
        elif dt_ms > MAX_DT_MS:
            dt_ms = MAX_DT_MS
        up = self._up_ms + dt_ms
        while up >= 1000:
            up -= 1000
            self.uptime_s += 1
        self._up_ms = up
        s = self._settings
        lim = self._lim
        ok = self._ok

        # --- the pack view: cells, aggregates, communication ------------------------------------
        v = self._view.read(snap)
        if v.count > 0:
            t = v.total_mv
            self._pack_mv = t if t < _MAX_PACK_MV else _MAX_PACK_MV
            self._cells = v.n
        al = v.status_alarms()
        self.break_position = 0 if v.comm else v.break_position
        data_ok = v.data_ok()
        self.reset_position = self._loop.update(v.reset_at)
        if self.reset_position:
            al |= A.BOARD_RESET_LOOP
            data_ok = False

        # --- current, SoC, energies ---------------------------------------------------------
        self._raw1 = snap.s1_ma
        self._raw1_ok = sensor_ok(snap.s1_flags)
        self._raw2 = snap.s2_ma
        self._raw2_ok = sensor_ok(snap.s2_flags)
        cur = self._cur
        cur.update(snap.s1_ma - self._trim1, snap.s1_flags, snap.s2_ma - self._trim2,
                   snap.s2_flags, s.loop_count, s.sensors)
        if cur.fault and v.counted:
            # only a frame that came through from the Begin board carries its sensor readings;
            # with the chain broken the frame was started downstream with none: that is
            # COMM_LOST (relays already off), not a current-sensor fault
            al |= A.CURRENT_SENSOR_FAULT
        current = cur.current_ma
        self.current_ma = current
        self.charge_ma = cur.charge_ma
        self.discharge_ma = cur.discharge_ma
        vfault = v.vfault
        if v.comm and not vfault and v.count == v.n and not cur.fault:
            if self._follow.update(snap.cell_mv, snap.cell_age, v.n, current):
                # counts as an untrusted voltage (both over- and under-voltage): both off
                vfault = True
                data_ok = False
                al |= A.VOLT_SENSOR_FAULT | A.CELL_NOT_FOLLOWING
        else:
            self._follow.forget()
        soc = self._soc
        if not cur.fault:
            # the count includes currents inside the display dead band (standby loads), see
            # core.current.PackCurrent.count_ma; a sensor fault freezes it (no data, no count)
            soc.integrate(cur.count_ma, dt_ms)
        self._count_energy(cur, dt_ms)

        # --- recalibration (manual: Algorithm / SoC calculation) -----------------------------
        full_now = False
        empty_now = False
        if data_ok and ok:
            full_now = rules.full_now(v, lim, current)
            empty_now = self._empty.empty_now(v, lim, current, self.load_allowed)
        det = self._det
        det.update(full_now, empty_now, dt_ms)
        # at the event, and held while the condition lasts unless the current already moves the
        # pack away from that end (discharging from full / charging from empty counts again)
        if det.full or (det.full_active and current >= 0):
            soc.set_soc(10000)
        elif det.empty or (det.empty_active and current <= 0):
            soc.set_soc(0)
        if det.full or det.empty:
            self.soc_calibrated = True
            self._urgent = True
        if det.empty:
            self._empty.emptied()
            if not lim.critical:
                self._relays.set_empty()   # the load waits for charge counted back in
                self._latch_urgent = True
        if self.load_allowed:              # time the load has run since the last V-min trip
            self._empty.load_ran(dt_ms)

        # --- sensor doubt: hold-off that doubles while a fault keeps coming back -----------------
        held = self._doubt.update(vfault or v.tfault, dt_ms)
        if held:
            al |= A.SENSOR_HOLD

        # --- relays ---------------------------------------------------------------------------
        relays = self._relays
        if data_ok and ok and not held:
            was_under = relays.under_n
            relays.update(lim, v.min_mv, v.max_mv, v.temp_ok, v.min_t, v.max_t, soc.soc_c, current,
                          dt_ms, v.tfault, rules.switch_drains_cells(v, lim))
            if relays.under_n >= LIMIT_SAMPLES and was_under < LIMIT_SAMPLES:
                self._empty.vmin_trip()    # is the pack empty? (the recalibration above)
        else:
            relays.force_off()
        if relays.changed:
            self._urgent = True
        if relays.latch_changed:
            self._latch_urgent = True
        self.charge_allowed = relays.charge_on
        self.load_allowed = relays.load_on
        self._leds.update(relays.charge_on, relays.load_on, dt_ms)
        self.charge_led = self._leds.charge_led
        self.load_led = self._leds.load_led

        # --- alarms -----------------------------------------------------------------------------
        if not ok:
            al |= A.SETTINGS_INVALID
        else:
            al |= rules.limit_alarms(v, lim)
        if relays.deep:
            al |= A.DEEP_DISCHARGE
        if relays.vmax_hold:
            # what the latch waits for: every cell at or below this (mV) for the dwell
            al |= A.CHARGE_HELD
            self.charge_hold_mv = lim.vmax_mv - lim.restart_hyst_mv
        else:
            self.charge_hold_mv = 0
        if not self.soc_calibrated:
            al |= A.SOC_NOT_CALIBRATED
        self.alarms = al

        self._publish_counters()
        self._save_policy(dt_ms)

    def _count_energy(self, cur, dt_ms):
        """Powers (display) and the energy counters (totals, today) from this cycle's current."""
        pack_mv = self._pack_mv
        p_in = mul_e4(cur.charge_ma, pack_mv) if cur.charge_ma > 0 else 0
        p_out = mul_e4(cur.discharge_ma, pack_mv) if cur.discharge_ma > 0 else 0
        self.power_in_w = p_in // 100
        self.power_out_w = p_out // 100
        if cur.fault:
            p_in = 0
            p_out = 0
        self._e_in.integrate(p_in, dt_ms)
        self._e_out.integrate(p_out, dt_ms)
        tm = self._today_ms + dt_ms
        if tm >= DAY_MS:
            tm -= DAY_MS
            self._t_in.reset()
            self._t_out.reset()
        self._today_ms = tm
        self._t_in.integrate(p_in, dt_ms)
        self._t_out.integrate(p_out, dt_ms)

    def _publish_counters(self):
        soc = self._soc
        self.soc_c = soc.soc_c
        self.charge_cycles = soc.cycles
        self.energy_in_wh = self._e_in.wh
        self.energy_out_wh = self._e_out.wh
        self.energy_in_today_wh = self._t_in.wh
        self.energy_out_today_wh = self._t_out.wh
        # 0.01 Ah left x mV nominal pack voltage / 10^5 = Wh
        cah = soc.soc_c * self._settings.capacity_ah // 100
        vnom = self._settings.vnom_mv * self._cells
        if vnom > _MAX_PACK_MV:
            vnom = _MAX_PACK_MV
        self.stored_wh = mul_e5(cah, vnom)

    def _save_policy(self, dt_ms):
        since = self._since_save_ms + dt_ms
        if since > _SINCE_CAP_MS:
            since = _SINCE_CAP_MS
        self._since_save_ms = since
        if self.state_path is None:
            return
        d = self.soc_c - self._saved_soc_c
        if d < 0:
            d = -d
        dirty = (d != 0 or self.energy_in_wh != self._saved_in
                 or self.energy_out_wh != self._saved_out)
        if (self._latch_urgent
                or (self._urgent and since >= SAVE_EVENT_MIN_MS)
                or (d >= SAVE_SOC_DELTA_C and since >= SAVE_SOC_MIN_MS)
                or (dirty and since >= SAVE_MAX_MS)):
            self.should_save = True

    # --- commands ------------------------------------------------------------------------------
    def zero_current(self):
        """End-side zero trim (the app's "calibrate"; no current may flow): the present readings
        of the sensors in use become the trim. Refused (False) when a sensor gives no data or
        reads more than 2 A. Persisted at once when there is a state file."""
        use2 = self._settings.sensors >= 2
        if not self._raw1_ok or (use2 and not self._raw2_ok):
            return False
        r1 = self._raw1
        r2 = self._raw2 if use2 else 0
        if not -TRIM_MAX_MA <= r1 <= TRIM_MAX_MA or not -TRIM_MAX_MA <= r2 <= TRIM_MAX_MA:
            return False
        self._trim1 = r1
        self._trim2 = r2
        if self.state_path is not None:
            # persisted by the role right after this cycle (roles/end_app.save_brain_state)
            self._urgent = True
            self.should_save = True
        return True

    def state_values(self):
        soc = self._soc
        return {
            "soc_c": soc.soc_c,
            "acc_mas": soc.acc_mas,
            "dis_steps": soc.discharged_steps,
            "cycles": soc.cycles,
            "e_in_wh": self._e_in.wh,
            "e_out_wh": self._e_out.wh,
            "t_in_wh": self._t_in.wh,
            "t_out_wh": self._t_out.wh,
            "today_ms": self._today_ms,
            "trim1_ma": self._trim1,
            "trim2_ma": self._trim2,
            "capacity_ah": self._settings.capacity_ah,
            "latches": self._relays.latches(),
        }

    def state_saved(self, ok):
        """The role stored ``state_values()`` in ``state_path`` (ok) or the file system refused
        (retried after the next save interval). The brain decides WHEN (``should_save``); the
        role's edge does the flash write, outside the frame window (roles/end_app.py)."""
        self.should_save = False
        self._since_save_ms = 0
        if not ok:
            return
        self._urgent = False
        self._latch_urgent = False
        self._saved_soc_c = self.soc_c
        self._saved_in = self.energy_in_wh
        self._saved_out = self.energy_out_wh

    def load_state(self):
        """Restore from state_path (at boot). Bad or missing files keep the defaults (50 %,
        zero counters); returns the store status."""
        values, status = store.load(self.state_path, STATE_KIND, STATE_VERSION)
        self.state_status = status
        if status != store.OK:
            return status
        big = 0x3FFFFFFF
        soc = self._soc
        soc.set_soc(_int_in(values, "soc_c", 0, 10000, DEFAULT_SOC_C))
        if _int_in(values, "capacity_ah", 1, 20000, 0) == self._settings.capacity_ah:
            soc.acc_mas = _int_in(values, "acc_mas", 0, soc.step_mas - 1, 0)
        soc.discharged_steps = _int_in(values, "dis_steps", 0, 9999, 0)
        soc.cycles = _int_in(values, "cycles", 0, big, 0)
        self._e_in.wh = _int_in(values, "e_in_wh", 0, big, 0)
        self._e_out.wh = _int_in(values, "e_out_wh", 0, big, 0)
        self._t_in.wh = _int_in(values, "t_in_wh", 0, big, 0)
        self._t_out.wh = _int_in(values, "t_out_wh", 0, big, 0)
        self._today_ms = _int_in(values, "today_ms", 0, DAY_MS - 1, 0)
        self._trim1 = _int_in(values, "trim1_ma", -TRIM_MAX_MA, TRIM_MAX_MA, 0)
        self._trim2 = _int_in(values, "trim2_ma", -TRIM_MAX_MA, TRIM_MAX_MA, 0)
        # protection latches (V-max hold-off, V-min, empty, deep discharge): a reset must not
        # re-close a relay the latch keeps open
        self._relays.set_latches(_int_in(values, "latches", 0, 15, 0))
        self._publish_counters()
        self._saved_soc_c = self.soc_c
        self._saved_in = self.energy_in_wh
        self._saved_out = self.energy_out_wh
        return status
