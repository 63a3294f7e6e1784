"""The simulation loop shared by both engines: model, charger/load, relays, faults, trace.

``Simulation(scenario, engine="cpython"|"micropython", seed=S, trace=PATH, extout=PATH)``
builds the pack model and one virtual-hardware object per board (sim/hw.py), then steps virtual
time one firmware cycle at a time:

1. faults and events due at ``t`` are applied (scenario);
2. the End board's relay outputs decide which devices run (power.Wiring), the charger/load
   currents follow (power.currents) and the model advances by the cycle (model.Pack.step);
3. the firmware runs one cycle on every powered board (engine: real role code on CPython, or
   under the MicroPython Unix port), reading the new sensor values and setting its outputs;
4. once per simulated second a trace line is written.
"""
import json
import os
import shutil
import tempfile
import time

import numpy as np

from sim import fw
from sim import power
from sim.hw import BeginHw, BoardHw, EndHw
from sim.model import Pack
from sim.scenario import ScenarioError
from sim.trace import TraceWriter
from cellchain.extout import gaps_path

alarm_codes = fw.core("alarms")
options = fw.core("options")
cs = fw.core("settings")

CHEM_CODES = {"lifepo4": cs.LIFEPO4, "lto": cs.LTO, "nmc": cs.NMC, "nca": cs.NCA}
TRACE_SETTINGS = ("vmin_mv", "vbal_mv", "vmax_mv", "vnom_mv", "tmin_charge_dc", "tmin_discharge_dc",
                  "tmax_dc", "capacity_ah", "charge_restart_pct", "discharge_restart_pct", "mode",
                  "loop_count", "sensors", "chemistry", "comm_timeout_cycles", "cycle_ms")


def load_board_def(name):
    """The board definition module board_defs/<name>.py (a plain object when it is missing)."""
    try:
        return __import__("board_defs." + name, None, None, ["NAME"])
    except ImportError:
        class _Default:
            NAME = name
        return _Default()


def initial_settings(sc):
    """core.settings.Settings for a scenario: chemistry preset, pack facts, then overrides."""
    s = cs.preset(CHEM_CODES[sc.chemistry])
    s.capacity_ah = max(1, int(round(sc.capacity_ah)))
    s.mode = cs.CRITICAL if sc.mode == "critical" else cs.NORMAL
    s.loop_count = sc.loop_count
    s.sensors = sc.sensors
    s.cycle_ms = sc.cycle_ms
    for name, value in sc.settings.items():
        msg = cs.apply(s, name, value)
        if msg is not None:
            raise ScenarioError("settings.%s: %s" % (name, msg))
    return s


def settings_for_trace(s_dict, balance_mv):
    out = {k: s_dict.get(k) for k in TRACE_SETTINGS}
    out["mode_name"] = cs.MODE_NAMES[out["mode"]] if out["mode"] in (0, 1) else str(out["mode"])
    out["chemistry_name"] = (cs.CHEMISTRY_NAMES[out["chemistry"]]
                             if isinstance(out["chemistry"], int) and 0 <= out["chemistry"] <= 4 else "?")
    out["balance_switch_mv"] = balance_mv
    return out


def switch_balance_mv(sc, vbal_mv):
    mv = sc.balance_mv
    if mv is None:
        mv = min(4900, max(1900, int(round(vbal_mv / 100.0)) * 100))
    return int(mv)


class Simulation:
    def __init__(self, scenario, engine="cpython", seed=0, trace=None, extout=None, workdir=None,
                 realtime=False, mpy=None, gateway=None):
        self.sc = sc = scenario
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self.pack = Pack(sc.cells, sc.chemistry, sc.capacity_ah, soc=sc.soc, capacity_spread=sc.capacity_spread,
                         soc_spread=sc.soc_spread, r0_ohm=sc.r0_ohm, ambient_c=sc.ambient_c, rng=rng,
                         r1_ohm=sc.r1_ohm, tau_s=sc.tau_s, balance_ohm=sc.balance_ohm)
        if sc.cell_soc:
            soc = self.pack.soc.copy()
            for cell, value in sc.cell_soc.items():
                if not 1 <= cell <= sc.cells:
                    raise ScenarioError("pack.cell_soc_pct: cell %d outside 1..%d" % (cell, sc.cells))
                soc[cell - 1] = value
            self.pack.set_soc(soc)
        self.settings = initial_settings(sc)
        self.balance_mv = switch_balance_mv(sc, self.settings.vbal_mv)
        self.switch_word = options.word_for(options.range_code_for_cells(sc.cells), self.balance_mv)
        ch = sc.charger
        per_cell = ch.get("bulk_mv_per_cell")
        bulk_v = (sc.cells * per_cell / 1000.0) if per_cell else power.bulk_voltage(self.settings.vbal_mv, sc.cells)
        self.charger = power.Charger(bulk_v, ch.get("max_a", 10.0), ch.get("profile", "constant"),
                                     power.Schedule(ch.get("schedule")), ch.get("sunrise_h", 6.0),
                                     ch.get("sunset_h", 18.0), ch.get("day_s", power.DAY_S))
        ld = sc.load
        csv_path = ld.get("csv")
        if csv_path and not os.path.isabs(csv_path) and sc.source not in ("<dict>",):
            csv_path = os.path.join(os.path.dirname(sc.source), csv_path)
        self.load = power.Load(ld.get("profile", "csv" if csv_path else "constant"), ld.get("a", 0.0),
                               power.Schedule(ld.get("schedule")), ld.get("evening_a"), csv_path,
                               ld.get("day_s", power.DAY_S))
        self.wiring = power.Wiring(sc.wiring)
        self.loop_count = sc.loop_count
        self.cycle_ms = sc.cycle_ms
        self.board_def = load_board_def(sc.board)
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="cellchain-sim-")
        self.boards = []
        for i in range(sc.cells):
            role = "begin" if i == 0 else ("end" if i == sc.cells - 1 else "between")
            cls = BeginHw if role == "begin" else (EndHw if role == "end" else BoardHw)
            hw = cls(self, i, role, self.board_def, os.path.join(self.workdir, "board%03d" % (i + 1)), self.seed)
            self.boards.append(hw)
        self.begin = self.boards[0]
        self.end = self.boards[-1]
        self.begin.switches = self.switch_word
        cs.save(os.path.join(self.end.data_dir, "settings.json"), self.settings)
        self.t_ms = 0
        self.ic = 0.0
        self.il = 0.0
        self.realtime = realtime
        self.trace = TraceWriter(trace)
        self.extout_path = extout
        self.extout_written = 0
        self.extout_bursts = []    # [start ms, offset, length] per burst: CAPTURE.gaps.json
        self.history = []          # compact per-second records for the view and the plot
        self.keep_history = True
        self.last_rec = None
        self.cycle_hooks = []      # fn(dt_ms) after every firmware cycle (app socket server)
        self.idle_hooks = []       # fn(timeout_s) -> bool: wait serving something (--realtime)
        self.between_hooks = []    # fn() inside a cycle, between event slices (cpython engine)
        self._change_t = None
        self._faults = [dict(f, _state=0) for f in sc.faults]
        self._events = list(sc.events)
        self._buttons = []
        self.engine_name = engine
        if engine == "cpython":
            from sim.cpython_engine import CpythonFirmware
            self.fw = CpythonFirmware(self)
        elif engine == "micropython":
            from sim.mp_engine import MicropythonFirmware
            self.fw = MicropythonFirmware(self, mpy=mpy)
        else:
            raise ValueError("engine must be cpython or micropython")
        self._last_settings = None
        self.fw.boot()
        self.gateway = None        # sim/gateway.py: the gateway board and a virtual inverter on CAN
        if gateway:
            from sim.gateway import VirtualGateway
            self.gateway = VirtualGateway(self, gateway)
        self._write_header()

    # --- what the Begin board's current sensors see ---------------------------------------
    def sensor_a(self, sensor):
        """Current through current sensor 1 or 2 (A, one turn, sign as the manual wires them)."""
        if self.wiring.kind == "combined" or self.sc.sensors == 1:
            return (self.ic - self.il) if sensor == 1 else 0.0
        return self.ic if sensor == 1 else self.il

    # --- scenario: faults and events ---------------------------------------------------------
    def _apply_faults(self, t_s):
        for f in self._faults:
            if f["_state"] == 0 and t_s >= f["t"]:
                f["_state"] = 1
                f["_on"] = True
                self._fault(f, True)
            elif f["_state"] == 1 and "until" in f and t_s >= f["until"]:
                f["_state"] = 2
                if f.get("_on", True):
                    self._fault(f, False)
            elif f["_state"] == 1:
                if "every_s" in f:
                    # intermittent: on and off in turn, every_s each
                    on = int((t_s - f["t"]) // float(f["every_s"])) % 2 == 0
                    if on != f.get("_on", True):
                        f["_on"] = on
                        self._fault(f, on)
                if f.get("_on", True) and ("mv_per_h" in f or "a_per_h" in f):
                    self._fault(f, True, t_s - f["t"])      # drift: the offset grows
        while self._events and t_s >= self._events[0]["t"]:
            e = self._events.pop(0)
            if "settings" in e:
                self._change_t = int(t_s)
                for name, value in e["settings"].items():
                    msg = self.fw.apply_setting(name, value)
                    if msg:
                        print("t=%.0f s: setting %s=%r refused: %s" % (t_s, name, value, msg))
            if "button" in e:
                hw = self.boards[int(e["button"]) - 1]
                hw.button = True
                self._buttons.append((t_s + float(e.get("hold_s", 1.0)), hw))
        for item in list(self._buttons):
            if t_s >= item[0]:
                item[1].button = False
                self._buttons.remove(item)

    def _fault(self, f, on, since_s=0.0):
        kind = f["kind"]
        if kind == "link_break":
            self.fw.link_break(f["position"], on)
            return
        if kind == "sensor_unplugged":
            self.begin.sensor_present[f["sensor"] - 1] = not on
            return
        if kind == "current_stuck":
            self.begin.stuck_a[f["sensor"] - 1] = float(f.get("a", 490.0)) if on else None
            return
        if kind == "low_range_stuck":
            self.begin.low_stuck_a[f["sensor"] - 1] = float(f.get("a", 0.0)) if on else None
            return
        if kind == "current_offset":
            a = float(f.get("a", 0.0)) + float(f.get("a_per_h", 0.0)) * since_s / 3600.0
            self.begin.fault_offset_a[f["sensor"] - 1] = a if on else 0.0
            return
        i = f["cell"] - 1
        hw = self.boards[i]
        if kind == "board_power_loss":
            self.fw.power(i, not on)
        elif kind == "watchdog_reset":
            if on:
                self.fw.reset(i, "watchdog")
        elif kind == "stuck_adc":
            mv = f.get("mv", float(self.pack.v_true[i]) * 1000.0)
            hw.faults.stuck_adc_uv = int(mv * 1000 * hw.den / hw.num) if on else None
        elif kind == "frozen_adc":
            # the reading freezes at the cell voltage of now (or mv) but keeps its ADC noise
            mv = f.get("mv", float(self.pack.v_true[i]) * 1000.0)
            hw.faults.frozen_uv = int(round(mv * 1000)) if on else None
        elif kind == "cell_offset":
            mv = float(f.get("mv", 0.0)) + float(f.get("mv_per_h", 0.0)) * since_s / 3600.0
            hw.faults.cell_offset_uv = int(round(mv * 1000)) if on else 0
        elif kind == "frozen_ntc":
            # the temperature input freezes at its pin voltage of now, noise and all
            hw.faults.frozen_ntc_uv = hw.true_ntc_uv() if on else None
        elif kind == "open_ntc":
            hw.faults.open_ntc = on
        elif kind == "short_ntc":
            hw.faults.short_ntc = on
        elif kind == "fast_ageing":
            self.pack.fade_per_as[i] = (f.get("fade_per_ah", 0.002) / 3600.0) if on else 0.0
        elif kind == "hot_cell":
            if "temp_c" in f:
                self.pack.temp_pin[i] = f["temp_c"] if on else np.nan
            else:
                self.pack.extra_heat_w[i] = f.get("watts", 20.0) if on else 0.0

    # --- one cycle ------------------------------------------------------------------------
    def relays(self):
        return self.end.charge_relay, self.end.load_relay

    def step(self):
        dt_ms = self.cycle_ms
        t_s = self.t_ms / 1000.0
        self._apply_faults(t_s)
        charger_on, load_on = self.wiring.enabled(*self.relays())
        self.ic, self.il = power.currents(self.pack, self.charger, self.load, charger_on, load_on, t_s)
        self.pack.step(self.ic - self.il, dt_ms / 1000.0)
        self.t_ms += dt_ms
        self.fw.cycle(dt_ms)
        self._flush_extout()
        for hook in self.cycle_hooks:
            hook(dt_ms)
        if self.t_ms % 1000 == 0:
            self._second()

    def run(self, duration_s=None, on_second=None, stop=None):
        """Run to duration_s (default: the scenario's). on_second(sim, record) is called each
        simulated second; stop(sim, record) True ends the run early."""
        end_ms = int(1000 * (self.sc.duration_s if duration_s is None else duration_s))
        wall0 = time.monotonic()
        try:
            while self.t_ms < end_ms:
                self.step()
                if self.t_ms % 1000 == 0 and self.last_rec is not None:
                    rec = self.last_rec
                    if on_second is not None:
                        on_second(self, rec)
                    if stop is not None and stop(self, rec):
                        break
                if self.realtime:
                    self._wait_until(wall0 + self.t_ms / 1000.0)
        finally:
            self.close()
        return self

    def _wait_until(self, wall_t):
        while True:
            ahead = wall_t - time.monotonic()
            if ahead <= 0:
                return
            served = False
            for hook in self.idle_hooks:
                served = hook(min(ahead, 0.05)) or served
            if not served:
                time.sleep(ahead)
                return

    def close(self):
        self.trace.close()
        self.fw.close()
        self._write_gaps()
        if self._own_workdir and self.workdir and os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _flush_extout(self):
        """Append this cycle's extended-output bytes to the capture and note the burst (the
        End board writes at most one packet, in one burst, per cycle) for the sidecar."""
        data = self.end.extout_tx.data
        if self.extout_path and len(data) > self.extout_written:
            mode = "ab" if self.extout_written else "wb"
            with open(self.extout_path, mode) as f:
                f.write(bytes(data[self.extout_written:]))
            # the burst started in this cycle: the cycle's start time (t_ms is its end)
            self.extout_bursts.append([self.t_ms - self.cycle_ms, self.extout_written,
                                       len(data) - self.extout_written])
            self.extout_written = len(data)

    def _write_gaps(self):
        """CAPTURE.gaps.json next to the capture: when each burst started, so a replay feeds
        the bytes with the line timing a reader saw (cellchain.extout uses it)."""
        if not self.extout_path:
            return
        with open(gaps_path(self.extout_path), "w") as f:
            json.dump({"format": "cellchain-extout-gaps/1", "baud": 9600,
                       "bursts": self.extout_bursts}, f, separators=(",", ":"))

    # --- trace ----------------------------------------------------------------------------
    def _write_header(self):
        st = self.fw.state()
        self._last_settings = settings_for_trace(st["settings"], self.balance_mv)
        if not self.extout_path:
            pass
        else:
            for path in (self.extout_path, gaps_path(self.extout_path)):
                if os.path.exists(path):
                    os.remove(path)
        self.trace.write({"cells": self.sc.cells, "chemistry": self.sc.chemistry, "engine": self.engine_name,
                          "scenario": self.sc.name, "seed": self.seed, "wiring": self.wiring.kind,
                          "charger_bulk_v": round(self.charger.bulk_v, 3), "capacity_ah": self.sc.capacity_ah,
                          "units": {"v": "V", "temp": "degC", "soc": "%", "current": "A, + = charging"},
                          "settings": self._last_settings})

    def _second(self):
        st = self.fw.state()
        t = self.t_ms // 1000
        s = settings_for_trace(st["settings"], self.balance_mv)
        if s != self._last_settings:
            self._last_settings = s
            self.trace.write({"t": self._change_t if self._change_t is not None else t, "settings": s})
        self._change_t = None
        p = self.pack
        cmv = st["cell_mv"]
        v_meas = [(m / 1000.0 if m else None) for m in cmv]
        charge, load = self.relays()
        rec = {
            "t": t,
            "v_true": [round(float(v), 4) for v in p.v_true],
            "v_meas": v_meas,
            "temp": [round(float(x), 2) for x in p.temp_c],
            "balancing": [bool(d > 0) for d in p.balance_duty],
            "status": st.get("cell_status"),
            "soc_true": [round(100.0 * float(x), 3) for x in p.soc],
            "soc_true_pack": round(100.0 * float(np.mean(p.soc)), 3),
            "soc_est": None if st["soc_c"] is None else st["soc_c"] / 100.0,
            "soc_calibrated": st.get("soc_calibrated"),
            "current": round(self.ic - self.il, 3),
            "current_meas": None if st.get("current_ma") is None else st["current_ma"] / 1000.0,
            "charger_a": round(self.ic, 3),
            "load_a": round(self.il, 3),
            "pack_v": round(p.pack_voltage(), 3),
            "charge_allowed": bool(charge),
            "load_allowed": bool(load),
            "mode": cs.MODE_NAMES[st["settings"].get("mode", 0)] if st["settings"].get("mode") in (0, 1) else "?",
            "alarms": alarm_codes.names(st["alarms"]) if st["alarms"] is not None else [],
            "comm_ok": st.get("comm_ok"),
            "break_position": st.get("break_position"),
            "reset_position": st.get("reset_position"),
            "link_good": st.get("link_good"),
            "powered": [b is True for b in self.fw.powered()],
        }
        if self.gateway is not None:
            rec["gw"] = self.gateway.record()
        self.trace.write(rec)
        self.last_rec = rec
        if self.keep_history:
            self.history.append(rec)
        return rec


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))
