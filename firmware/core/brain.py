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
from array import array

from micropython import const

from core import alarms as A
from core import settings as _settings
from core import store
from core.current import PackCurrent, sensor_ok
from core.relays import LIMIT_SAMPLES, Limits, RelayLeds, Relays
from core.sampling import CELL_MAX_MV, CELL_MIN_MV
from core.snapshot import MAX_CELLS, CellStatus
from core.soc import EnergyCounter, FullEmptyDetector, SocCounter, mul_e4, mul_e5

STATE_KIND = "soc"
STATE_VERSION = const(1)

MAX_DT_MS = const(600000)          # a longer gap is integrated as 10 minutes
DAY_MS = const(86400000)
EMPTY_MS = const(30000)            # a cell below V-min this long (load off) -> SoC 0 %
FULL_SAMPLES = const(3)
SAVE_EVENT_MIN_MS = const(60000)   # relay change / recalibration: save, at most once a minute
SAVE_SOC_MIN_MS = const(300000)    # SoC moved >= 1 %: save, at most every 5 minutes
SAVE_SOC_DELTA_C = const(100)
SAVE_MAX_MS = const(3600000)       # anything else changed (energies): save once an hour
TRIM_MAX_MA = const(2000)          # End-side zero trim refused beyond 2 A (current flowing?)
DEFAULT_SOC_C = const(5000)        # no saved state: 50 %, not calibrated
STEP_MA_MIN = const(2000)          # plausibility: a current step of at least 2 A and 0.05 C ...
STEP_RESP_MV = const(5)            # ... to which at least half of the cells (>= 2) respond by
#                                    this much in the step's direction (I x R)
NO_RESPONSE_DIV = const(4)         # a cell responding less than 1/4 of their mean: a strike
FROZEN_STRIKES = const(3)          # strikes in a row: the reading does not follow the pack
STEP_WAIT_CYCLES = const(12)       # every cell's fresh detail within this after a step (255
#                                    cells: a reading every 8 cycles), else no judgement
FOLLOW_MV = const(40)              # a flagged reading that moves this much on its own: data again
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
        self._empty_pending = False   # a V-min trip waits for the empty recalibration
        # plausibility of the cell readings on current steps (see _follows)
        self._v1 = array("H", bytes(2 * MAX_CELLS))   # readings one and two cycles ago
        self._v2 = array("H", bytes(2 * MAX_CELLS))
        self._pre = array("H", bytes(2 * MAX_CELLS))  # each cell's reading before the step
        self._resp = array("H", bytes(2 * MAX_CELLS))  # ... and its response after it (mV)
        self._done = bytearray(MAX_CELLS)             # response taken (fresh detail seen)
        self._at = array("H", bytes(2 * MAX_CELLS))   # a flagged reading's value when flagged
        self._strikes = bytearray(MAX_CELLS)
        self._frozen = bytearray(MAX_CELLS)
        self._hist_n = 0              # cycles of history (0..2) for the cells in _hist_cells
        self._hist_cells = 0
        self._i1 = 0                  # battery current one and two cycles ago
        self._i2 = 0
        self._pend = 0                # cycles since a current step whose responses are collected
        self._pend_level = 0          # the current after that step, and how far it may move
        self._pend_quiet = 0
        self._step_ma = STEP_MA_MIN
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
        step = self._settings.capacity_ah * 50          # 0.05 C in mA
        self._step_ma = step if step > STEP_MA_MIN else STEP_MA_MIN
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
        time since the previous call. Allocation-free."""
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
        al = 0

        # --- cells -----------------------------------------------------------------------
        n = snap.cell_count
        if n > MAX_CELLS:
            n = MAX_CELLS
        vfault = False
        tfault = False
        stale = False
        hot = False
        count = 0
        total = 0
        min_mv = 0
        max_mv = 0
        temp_ok = False
        min_t = 0
        max_t = 0
        if snap.valid:
            cell_mv = snap.cell_mv
            cell_t = snap.cell_temp_dc
            status = snap.cell_status
            min_mv = 0xFFFF
            for i in range(n):
                st = status[i]
                if st & CellStatus.STALE or (
                        not st & CellStatus.VOLT_SENSOR_FAULT
                        and not CELL_MIN_MV <= cell_mv[i] <= CELL_MAX_MV):
                    # not (yet) reported: detail never received or too old (STALE), or a slot
                    # no board has filled in (0 mV without VOLT_SENSOR_FAULT: a board forwards
                    # frames before its first measurement; every measured voltage outside
                    # 1.0..5.1 V carries VOLT_SENSOR_FAULT). Nothing of this cell is data.
                    stale = True
                    continue
                if st & CellStatus.DERATED:
                    hot = True
                if st & CellStatus.VOLT_SENSOR_FAULT:
                    vfault = True
                else:
                    mv = cell_mv[i]
                    count += 1
                    total += mv
                    if mv < min_mv:
                        min_mv = mv
                    if mv > max_mv:
                        max_mv = mv
                if st & CellStatus.TEMP_SENSOR_FAULT:
                    tfault = True
                else:
                    t = cell_t[i]
                    if not temp_ok:
                        min_t = t
                        max_t = t
                        temp_ok = True
                    elif t < min_t:
                        min_t = t
                    elif t > max_t:
                        max_t = t
            if snap.volt_fault_at:
                # section A names a board whose cell voltage is not data (FAULT_AT, every
                # frame): the same sensor fault as in its detail, which reaches this board only
                # once per window rotation (8 cycles at 255 cells) - act now, not then
                vfault = True
            if count == 0:
                min_mv = 0
            else:
                self._pack_mv = total if total < _MAX_PACK_MV else _MAX_PACK_MV
                self._cells = n
                # the aggregates of section A: every board updates them in every frame, while
                # a cell's detail reaches this board once per window rotation (8 cycles at 255
                # cells). The worse of the two counts, so a crossing anywhere in the chain acts
                # within one frame. Boards with a sensor fault are left out of the matching
                # aggregate by the link (core/frame.py); position 0 = no board contributed.
                # Each aggregate value counts as one more cell (against both ends: a minimum
                # above the maximum cannot hide anything).
                agg = False
                if snap.min_mv_cell:
                    agg = True
                    v = snap.min_mv
                    if v < min_mv:
                        min_mv = v
                    if v > max_mv:
                        max_mv = v
                if snap.max_mv_cell:
                    agg = True
                    v = snap.max_mv
                    if v < min_mv:
                        min_mv = v
                    if v > max_mv:
                        max_mv = v
                if min_mv < CELL_MIN_MV or max_mv > CELL_MAX_MV:
                    # no measured cell gives such an aggregate (an implausible reading carries
                    # VOLT_SENSOR_FAULT and is left out): not data, as a slot nobody filled
                    stale = True
                if snap.min_temp_cell and snap.max_temp_cell:
                    if temp_ok:            # detail without any valid temperature stays "none"
                        v = snap.min_temp_dc
                        if v < min_t:
                            min_t = v
                        if v > max_t:
                            max_t = v
                        v = snap.max_temp_dc
                        if v < min_t:
                            min_t = v
                        if v > max_t:
                            max_t = v
                elif agg or snap.min_temp_cell or snap.max_temp_cell:
                    temp_ok = False        # this frame: no valid temperature in the chain
        # complete: every cell's detail is fresh; until then only COMM_LOST (no cell alarms)
        comm = snap.valid and snap.comm_ok and n > 0 and not stale
        count_ok = True
        if snap.cells_min > 0 and (n < snap.cells_min or n > snap.cells_max):
            count_ok = False
        data_ok = comm and count_ok and not vfault and count > 0
        if not comm:
            al |= A.COMM_LOST
            self.break_position = snap.break_position
        else:
            self.break_position = 0
        if not count_ok and snap.valid:
            al |= A.CELL_COUNT_MISMATCH
        if vfault:
            al |= A.VOLT_SENSOR_FAULT
        if tfault:
            al |= A.TEMP_SENSOR_FAULT
        if hot:
            al |= A.BALANCE_HOT

        # --- current, SoC, energies ---------------------------------------------------------
        self._raw1 = snap.s1_ma
        self._raw1_ok = sensor_ok(snap.s1_flags)
        self._raw2 = snap.s2_ma
        self._raw2_ok = sensor_ok(snap.s2_flags)
        cur = self._cur
        cur.update(snap.s1_ma - self._trim1, snap.s1_flags, snap.s2_ma - self._trim2,
                   snap.s2_flags, s.loop_count, s.sensors)
        if cur.fault and snap.valid and snap.comm_ok:
            # only a frame that came through from the Begin board carries its sensor readings;
            # with the chain broken the frame was started downstream with none: that is
            # COMM_LOST (relays already off), not a current-sensor fault
            al |= A.CURRENT_SENSOR_FAULT
        current = cur.current_ma
        self.current_ma = current
        self.charge_ma = cur.charge_ma
        self.discharge_ma = cur.discharge_ma
        soc = self._soc
        if comm and not vfault and count == n and not cur.fault:
            if self._follows(snap.cell_mv, snap.cell_age, n, current):
                # counts as an untrusted voltage (both over- and under-voltage): both off
                vfault = True
                data_ok = False
                al |= A.VOLT_SENSOR_FAULT | A.CELL_NOT_FOLLOWING
        else:
            self._hist_n = 0
        if not cur.fault:
            # the count includes currents inside the display dead band (standby loads), see
            # core.current.PackCurrent.count_ma; a sensor fault freezes it (no data, no count)
            soc.integrate(cur.count_ma, dt_ms)

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

        # --- recalibration (manual: Algorithm / SoC calculation) -----------------------------
        full_now = False
        empty_now = False
        if data_ok and self._ok:
            if current <= lim.full_ma:
                if lim.critical:
                    full_now = total >= lim.vbal_mv * count
                else:
                    full_now = min_mv >= lim.vbal_mv
            # manual: a cell below V-min for a longer time while discharging is not allowed.
            # Once the load is off the cells recover above V-min within seconds, so a V-min
            # trip counts as "below V-min" until the recalibration came or charge was counted
            # in (without this the empty recalibration never fired)
            if current > 0:
                self._empty_pending = False
            empty_now = ((min_mv < lim.vmin_mv or self._empty_pending)
                         and not self.load_allowed and current <= 0)
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
            self._empty_pending = False
        # a cell at V-min: the pack is empty whatever was counted (an uncalibrated 50 % would
        # re-close the load 30 s after every trip): cap the SoC below the discharge restart, so
        # the load waits for charge counted back in (core.relays: empty_cap_c / empty_restart_c)
        if data_ok and self._ok and min_mv <= lim.vmin_mv and soc.soc_c > lim.empty_cap_c:
            soc.set_soc(lim.empty_cap_c)
            self._urgent = True

        # --- relays ---------------------------------------------------------------------------
        relays = self._relays
        if data_ok and self._ok:
            was_under = relays.under_n
            relays.update(lim, min_mv, max_mv, temp_ok, min_t, max_t, soc.soc_c, current, dt_ms,
                          tfault)
            if relays.under_n >= LIMIT_SAMPLES and was_under < LIMIT_SAMPLES:
                self._empty_pending = True   # a V-min trip: empty recalibration due
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
        if not self._ok:
            al |= A.SETTINGS_INVALID
        elif comm and count > 0:
            if min_mv <= lim.vmin_mv:
                al |= A.UNDER_VOLTAGE
            if max_mv >= lim.vmax_mv:
                al |= A.OVER_VOLTAGE
            if min_mv <= lim.vmin_mv + lim.vmin_mv // 50 or max_mv >= lim.vmax_mv - lim.vmax_mv // 50:
                al |= A.EARLY_WARNING
            if not _settings.balance_switch_ok(lim.vmin_mv, lim.vmax_mv, snap.switch_vbal_mv):
                al |= A.BALANCE_SWITCH_INVALID
            if temp_ok:
                if min_t < lim.tmin_charge_dc:
                    al |= A.UNDER_TEMP_CHARGE
                if min_t < lim.tmin_discharge_dc:
                    al |= A.UNDER_TEMP_DISCHARGE
                if max_t > lim.tmax_dc:
                    al |= A.OVER_TEMP
        if relays.deep:
            al |= A.DEEP_DISCHARGE
        if not self.soc_calibrated:
            al |= A.SOC_NOT_CALIBRATED
        self.alarms = al

        self._publish_counters()
        self._save_policy(dt_ms)

    def _follows(self, cell_mv, cell_age, n, current):
        """Plausibility of every cell reading against its neighbours (allocation-free). On a
        current step (>= max(2 A, 0.05 C) from one cycle to the next, the current steady within
        a quarter of the step in the cycle before) every real cell's voltage moves by I x R.
        Each cell's response is its first reading whose detail arrived after the step's frame, against its reading two cycles before it (a board's reading may lead or lag
        the current by one frame; beyond one detail window a cell's detail comes every 2-8
        cycles), collected while the current stays within a quarter of the step, at most
        STEP_WAIT_CYCLES. When at least half of the cells (and at least two) responded by
        STEP_RESP_MV or more, a cell that responded less than a quarter of their mean gets a
        strike; FROZEN_STRIKES strikes in a row flag it (a frozen ADC or input that still shows
        noise: the bit-identical burst check cannot see it). A flagged cell is data again
        after a normal response to a step, or when its reading moves FOLLOW_MV away from where
        it froze. Returns True while any cell is flagged."""
        v1 = self._v1
        v2 = self._v2
        fz = self._frozen
        st = self._strikes
        if n != self._hist_cells:
            self._hist_cells = n
            self._hist_n = 0
            self._pend = 0
            for i in range(n):
                fz[i] = 0
                st[i] = 0
        for i in range(n):
            if fz[i]:
                d = cell_mv[i] - self._at[i]
                if d >= FOLLOW_MV or d <= -FOLLOW_MV:
                    fz[i] = 0
                    st[i] = 0
        if self._pend:
            self._pend += 1
            d = current - self._pend_level
            q = self._pend_quiet
            if d >= q or d <= -q or self._pend > STEP_WAIT_CYCLES:
                self._pend = 0                  # the current moved again: no judgement
            else:
                pre = self._pre
                resp = self._resp
                done = self._done
                left = 0
                for i in range(n):
                    if not done[i]:
                        # detail that arrived after the step's frame (the End board ages every
                        # cell once per cycle before the brain runs: fresh detail reads 1)
                        if cell_age[i] < self._pend:
                            r = cell_mv[i] - pre[i]
                            if r < 0:
                                r = -r
                            resp[i] = r
                            done[i] = 1
                        else:
                            left += 1
                if left == 0:
                    self._pend = 0
                    self._judge(n)
        elif self._hist_n >= 2:
            di = current - self._i1
            step = self._step_ma
            if di >= step or di <= -step:
                q = (di if di >= 0 else -di) >> 2
                b = self._i1 - self._i2
                if -q < b < q:
                    pre = self._pre
                    done = self._done
                    for i in range(n):
                        pre[i] = v2[i]
                        done[i] = 0
                    self._pend = 1
                    self._pend_level = current
                    self._pend_quiet = q
        for i in range(n):
            v2[i] = v1[i]
            v1[i] = cell_mv[i]
        self._i2 = self._i1
        self._i1 = current
        if self._hist_n < 2:
            self._hist_n += 1
        for i in range(n):
            if fz[i]:
                return True
        return False

    def _judge(self, n):
        """Strikes from the responses of one step (see _follows)."""
        resp = self._resp
        moved = 0
        total = 0
        for i in range(n):
            r = resp[i]
            if r >= STEP_RESP_MV:
                moved += 1
                total += r
        if moved < 2 or moved + moved < n:
            return
        mean = total // moved
        st = self._strikes
        fz = self._frozen
        for i in range(n):
            r = resp[i]
            if r * NO_RESPONSE_DIV < mean:
                if st[i] < FROZEN_STRIKES:
                    st[i] += 1
                if st[i] >= FROZEN_STRIKES and not fz[i]:
                    fz[i] = 1
                    self._at[i] = self._v1[i]
            elif r + r >= mean:
                st[i] = 0
                fz[i] = 0

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
