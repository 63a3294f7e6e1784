"""Scenario files for the virtual pack (JSON; the format is documented in docs/virtual-pack.md).

``load(path_or_dict, cells=None, chemistry=None)`` returns a checked ``Scenario``; unknown keys
and bad values raise ``ScenarioError`` naming the key, so a typo never silently runs a different
test.
"""
import json
import os

from sim import chemistry as chem_mod

FAULT_KINDS = ("board_power_loss", "watchdog_reset", "link_break", "stuck_adc", "open_ntc", "short_ntc",
               "fast_ageing", "hot_cell", "sensor_unplugged", "frozen_adc", "current_stuck",
               "low_range_stuck", "frozen_ntc", "cell_offset", "current_offset")
_TOP = ("name", "description", "duration_s", "pack", "settings", "mode", "loop_count", "sensors",
        "balance_mv", "wiring", "charger", "load", "faults", "events", "cycle_ms", "board",
        "link", "board_time")
_PACK = ("cells", "chemistry", "capacity_ah", "capacity_spread_pct", "soc_pct", "soc_spread_pct",
         "ambient_c", "cell_soc_pct", "r0_mohm", "r1_mohm", "tau_s", "balance_ohm")
_CHARGER = ("max_a", "bulk_mv_per_cell", "profile", "schedule", "sunrise_h", "sunset_h", "day_s")
_LOAD = ("profile", "a", "evening_a", "csv", "schedule", "day_s")
_FAULT = ("t", "until", "kind", "cell", "position", "mv", "watts", "temp_c", "fade_per_ah", "sensor", "a",
          "mv_per_h", "a_per_h", "every_s")
_LINK = ("polarity", "opto", "opto_on_us", "opto_off_us", "clock_spread_pct", "byte_error_rate", "phase_ms",
         "clock_pct", "light_sleep")
_EVENT = ("t", "settings", "button", "hold_s", "note")

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")


class ScenarioError(ValueError):
    pass


def _keys(d, allowed, where):
    if not isinstance(d, dict):
        raise ScenarioError("%s must be an object" % where)
    for k in d:
        if k not in allowed:
            raise ScenarioError("%s: unknown key %r (allowed: %s)" % (where, k, ", ".join(allowed)))


def _positive(d, key, div=1.0):
    """d[key] / div as a float (> 0), None when the key is absent."""
    if key not in d:
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ScenarioError("pack.%s must be a number > 0, not %r" % (key, v))
    return float(v) / div


class Scenario:
    """Plain attributes; see docs/virtual-pack.md."""

    def __init__(self, d, source="<dict>"):
        _keys(d, _TOP, "scenario")
        self.source = source
        self.name = d.get("name", os.path.splitext(os.path.basename(source))[0])
        self.description = d.get("description", "")
        self.duration_s = float(d.get("duration_s", 3600))
        pack = d.get("pack", {})
        _keys(pack, _PACK, "pack")
        self.cells = int(pack.get("cells", 4))
        if not 2 <= self.cells <= 255:
            raise ScenarioError("pack.cells must be 2..255")
        try:
            self.chemistry = chem_mod.check(pack.get("chemistry", "lifepo4"))
        except ValueError as e:
            raise ScenarioError("pack.chemistry: %s" % e) from None
        self.capacity_ah = float(pack.get("capacity_ah", 100))
        self.capacity_spread = float(pack.get("capacity_spread_pct", 1.0)) / 100.0
        self.soc = float(pack.get("soc_pct", 50.0)) / 100.0
        self.soc_spread = float(pack.get("soc_spread_pct", 1.0)) / 100.0
        self.ambient_c = float(pack.get("ambient_c", 25.0))
        self.cell_soc = {int(k): float(v) / 100.0 for k, v in pack.get("cell_soc_pct", {}).items()}
        self.r0_ohm = _positive(pack, "r0_mohm", 1000.0)
        self.r1_ohm = _positive(pack, "r1_mohm", 1000.0)
        self.tau_s = _positive(pack, "tau_s")
        self.balance_ohm = _positive(pack, "balance_ohm")
        self.settings = dict(d.get("settings", {}))
        if not isinstance(d.get("settings", {}), dict):
            raise ScenarioError("settings must be an object")
        self.mode = d.get("mode", "normal")
        if self.mode not in ("normal", "critical"):
            raise ScenarioError("mode must be normal or critical")
        self.loop_count = int(d.get("loop_count", 1))
        if self.loop_count not in (1, 2, 4):
            raise ScenarioError("loop_count must be 1, 2 or 4")
        self.sensors = int(d.get("sensors", 1 if self.mode == "critical" else 2))
        self.wiring = d.get("wiring", "combined" if self.mode == "critical" else "separate")
        if self.wiring not in ("separate", "combined"):
            raise ScenarioError("wiring must be separate or combined")
        self.balance_mv = d.get("balance_mv")   # None = the V-balance setting rounded to 100 mV
        self.cycle_ms = int(d.get("cycle_ms", 1000))
        self.board = d.get("board", "pico")
        self.link = dict(d.get("link", {}))
        _keys(self.link, _LINK, "link")
        if self.link.get("polarity", "ideal") not in ("ideal", "board"):
            raise ScenarioError("link.polarity must be ideal or board")
        for k in ("opto_on_us", "opto_off_us", "clock_spread_pct", "byte_error_rate"):
            v = self.link.get(k, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ScenarioError("link.%s must be a number >= 0, not %r" % (k, v))
        if self.link.get("byte_error_rate", 0) >= 1:
            raise ScenarioError("link.byte_error_rate must be < 1")
        if not isinstance(self.link.get("phase_ms", {}), dict):
            raise ScenarioError("link.phase_ms must map board numbers to ms")
        if not isinstance(self.link.get("clock_pct", {}), dict):
            raise ScenarioError("link.clock_pct must map board numbers to a clock offset in %")
        if not isinstance(self.link.get("light_sleep", True), bool):
            raise ScenarioError("link.light_sleep must be true or false")
        from sim import board_time
        self.board_time = board_time.check(d.get("board_time", {}))
        self.charger = dict(d.get("charger", {"max_a": 10}))
        _keys(self.charger, _CHARGER, "charger")
        self.load = dict(d.get("load", {"a": 0}))
        _keys(self.load, _LOAD, "load")
        self.faults = []
        for i, f in enumerate(d.get("faults", [])):
            _keys(f, _FAULT, "faults[%d]" % i)
            if f.get("kind") not in FAULT_KINDS:
                raise ScenarioError("faults[%d].kind must be one of %s" % (i, ", ".join(FAULT_KINDS)))
            if "t" not in f:
                raise ScenarioError("faults[%d]: t missing" % i)
            if f["kind"] == "watchdog_reset" and ("until" in f or "every_s" in f):
                raise ScenarioError("faults[%d]: a watchdog_reset is instant (no until, no every_s)" % i)
            if "every_s" in f and (isinstance(f["every_s"], bool) or not isinstance(f["every_s"], (int, float))
                                   or not f["every_s"] > 0):
                raise ScenarioError("faults[%d].every_s must be a number > 0" % i)
            if f["kind"] == "link_break":
                pos = f.get("position")
                if not isinstance(pos, int) or not 1 <= pos < self.cells:
                    raise ScenarioError("faults[%d].position must be 1..%d (wire after that board)"
                                        % (i, self.cells - 1))
            elif f["kind"] in ("sensor_unplugged", "current_stuck", "low_range_stuck", "current_offset"):
                if f.get("sensor") not in (1, 2):
                    raise ScenarioError("faults[%d].sensor must be 1 or 2" % i)
            else:
                cell = f.get("cell")
                if not isinstance(cell, int) or not 1 <= cell <= self.cells:
                    raise ScenarioError("faults[%d].cell must be 1..%d" % (i, self.cells))
            self.faults.append(dict(f))
        self.events = []
        for i, e in enumerate(d.get("events", [])):
            _keys(e, _EVENT, "events[%d]" % i)
            if "t" not in e:
                raise ScenarioError("events[%d]: t missing" % i)
            self.events.append(dict(e))
        self.events.sort(key=lambda e: e["t"])


def load(src, cells=None, chemistry=None):
    """Scenario from a file path, a name in sim/scenarios/, or a dict; CLI overrides applied."""
    if isinstance(src, dict):
        d, source = dict(src), "<dict>"
    else:
        path = src
        if not os.path.exists(path):
            cand = os.path.join(SCENARIO_DIR, src if src.endswith(".json") else src + ".json")
            if os.path.exists(cand):
                path = cand
        try:
            with open(path) as f:
                d = json.load(f)
        except OSError as e:
            raise ScenarioError("cannot read scenario %s: %s" % (src, e)) from None
        except ValueError as e:
            raise ScenarioError("%s: not valid JSON: %s" % (src, e)) from None
        source = path
    if cells is not None or chemistry is not None:
        pack = dict(d.get("pack", {}))
        if cells is not None:
            pack["cells"] = int(cells)
        if chemistry is not None:
            pack["chemistry"] = chemistry
        d["pack"] = pack
    return Scenario(d, source)
