"""Pack settings: fields, chemistry presets, validation and the settings file.

Every value is an integer in the unit its name carries (mV, 0.1 degC as ``_dc``, Ah, %), so
settings cost no floats on the boards. A value outside its range is refused, never clamped:
``apply`` validates a copy and commits only when the whole set is consistent, and the error
message names the field, the value and its allowed range given the other settings
(``allowed_range``: chemistry limits, V-min + 200 mV <= V-balance <= V-max - 10 mV, T-min < T-max,
restart SoCs in order, comm timeout <= 5 s; docs/pack-brain.md "Settings rules"). A fresh ``Settings()`` is *not configured* (chemistry unknown):
the End board keeps both relays off until the user chooses a chemistry or writes settings,
because a LiFePO4 default could over-discharge an NMC pack.
"""
from micropython import const

from core import store

# Chemistry codes
_UNKNOWN = const(0)
LIFEPO4 = const(1)
LTO = const(2)
NMC = const(3)
NCA = const(4)
CHEMISTRY_NAMES = ("unknown", "lifepo4", "lto", "nmc", "nca")

# Modes (manual: "Algorithm")
NORMAL = const(0)
CRITICAL = const(1)
MODE_NAMES = ("normal", "critical")

CELL_MV_LOW = const(1500)   # the boards' working range, manual: 1.5 - 5.0 V
CELL_MV_HIGH = const(5000)

# Absolute limits: a value outside them is refused, never clamped (the relays use the settings
# as stored, so what the app shows is what protects the pack).
# chemistry -> (lowest V-min, highest V-max) in mV
ABS_CELL_MV = {
    LIFEPO4: (2000, 4000),
    LTO: (1500, 2900),
    NMC: (2500, 4250),
    NCA: (2500, 4250),
}
ABS_TMAX_DC = const(700)          # no lithium cell is operated above 70 degC
ABS_TMIN_DC = const(-400)
ABS_TMIN_CHARGE_DC = const(0)     # no charging below 0 degC except LTO
VBAL_ABOVE_VMIN_MV = const(200)   # V-balance at least this far above V-min (balancing floor)
VBAL_BELOW_VMAX_MV = const(10)    # V-balance at least this far below V-max
_VMAX_ABOVE_VMIN_MV = const(20)
COMM_TIMEOUT_MAX_MS = const(5000)  # comm_timeout_cycles x cycle_ms: relays open within 5 s

# name, lowest, highest, unit (for messages). Order is the order of the app's settings list.
FIELDS = (
    ("vmin_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vbal_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vmax_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vnom_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("tmin_charge_dc", ABS_TMIN_DC, ABS_TMAX_DC, "0.1 degC"),
    ("tmin_discharge_dc", ABS_TMIN_DC, ABS_TMAX_DC, "0.1 degC"),
    ("tmax_dc", ABS_TMIN_DC, ABS_TMAX_DC, "0.1 degC"),
    ("capacity_ah", 1, 20000, "Ah"),
    ("charge_restart_pct", 1, 100, "%"),
    ("discharge_restart_pct", 0, 99, "%"),
    ("mode", NORMAL, CRITICAL, "0 normal, 1 critical"),
    ("loop_count", 1, 4, "turns (1, 2 or 4)"),
    ("sensors", 1, 2, "current sensors"),
    ("chemistry", _UNKNOWN, NCA, "0 unknown, 1 LiFePO4, 2 LTO, 3 NMC, 4 NCA"),
    ("comm_timeout_cycles", 1, 10, "cycles"),
    ("cycle_ms", 500, 1000, "ms (500 or 1000)"),
)
FIELD_NAMES = tuple(f[0] for f in FIELDS)

# vnom, vmin, vbal, vmax from the manual's "Recommended threshold values" table, then
# T-min charge, T-min discharge, T-max (0.1 degC) from common cell data sheets.
PRESETS = {
    LIFEPO4: (3300, 2900, 3400, 3700, 20, -200, 550),
    LTO: (2300, 2150, 2600, 2800, -300, -400, 600),
    NMC: (3700, 3490, 4000, 4150, 20, -200, 550),
    NCA: (3700, 3400, 4000, 4150, 20, -200, 550),
}

FILE_KIND = "settings"
FILE_VERSION = const(1)

# Load results
LOADED = const(0)
MISSING = const(1)
CORRUPT = const(2)
INVALID = const(3)
LOAD_NAMES = ("loaded", "missing", "corrupt", "invalid")


class SettingsError(ValueError):
    """A value or combination the BMS refuses; the message names the field and range."""


class Settings:
    """One complete set of pack settings. Plain attributes, integer units."""

    def __init__(self):
        self.vmin_mv = 2900
        self.vbal_mv = 3400
        self.vmax_mv = 3700
        self.vnom_mv = 3300
        self.tmin_charge_dc = 20
        self.tmin_discharge_dc = -200
        self.tmax_dc = 550
        self.capacity_ah = 100
        self.charge_restart_pct = 90
        self.discharge_restart_pct = 10
        self.mode = NORMAL
        self.loop_count = 1
        self.sensors = 2
        self.chemistry = _UNKNOWN
        self.comm_timeout_cycles = 3
        self.cycle_ms = 1000
        # App name and password (hash + per-board salt; empty hash = factory password).
        self.name = "cellchain"
        self.pw_salt = ""
        self.pw_hash = ""

    def copy(self):
        other = Settings()
        other.set_from(self)
        return other

    def set_from(self, other):
        for name in FIELD_NAMES:
            setattr(self, name, getattr(other, name))
        self.name = other.name
        self.pw_salt = other.pw_salt
        self.pw_hash = other.pw_hash

    def is_configured(self):
        """True once a chemistry was chosen (or settings written) by the user."""
        return self.chemistry != _UNKNOWN

    def to_dict(self):
        d = {}
        for name in FIELD_NAMES:
            d[name] = getattr(self, name)
        d["name"] = self.name
        d["pw_salt"] = self.pw_salt
        d["pw_hash"] = self.pw_hash
        return d

    def __eq__(self, other):
        return isinstance(other, Settings) and self.to_dict() == other.to_dict()


def field_range(name):
    """(lowest, highest, unit) of a numeric field; KeyError for unknown names."""
    for f in FIELDS:
        if f[0] == name:
            return f[1], f[2], f[3]
    raise KeyError(name)


def _range_message(name):
    lo, hi, unit = field_range(name)
    return "%s must be %d..%d %s" % (name, lo, hi, unit)


def cell_mv_range(chemistry):
    """(lowest, highest) cell voltage in mV a setting may take for this chemistry."""
    return ABS_CELL_MV.get(chemistry, (CELL_MV_LOW, CELL_MV_HIGH))


def _max(a, b):
    return a if a > b else b


def _min(a, b):
    return a if a < b else b


def allowed_range(s, name):
    """(lowest, highest, unit, rule) for field ``name`` given the other values in ``s``: the
    field's own range narrowed by the chemistry's absolute limits and the ordering rules
    (V-min < V-balance < V-max, T-min < T-max, discharge restart < charge restart, the comm
    timeout at most COMM_TIMEOUT_MAX_MS). ``rule`` is "" for a plain field range."""
    lo, hi, unit = field_range(name)
    if name in ("vmin_mv", "vbal_mv", "vmax_mv", "vnom_mv"):
        c_lo, c_hi = cell_mv_range(s.chemistry)
        chem = CHEMISTRY_NAMES[s.chemistry] if 0 <= s.chemistry < len(CHEMISTRY_NAMES) else "?"
        if name == "vmax_mv":
            return (_max(c_lo + _VMAX_ABOVE_VMIN_MV, _max(s.vbal_mv + VBAL_BELOW_VMAX_MV, s.vnom_mv)), c_hi,
                    unit, "%s limit; at least vbal_mv + %d and vnom_mv" % (chem, VBAL_BELOW_VMAX_MV))
        if name == "vmin_mv":
            return (c_lo, _min(s.vbal_mv - VBAL_ABOVE_VMIN_MV, s.vnom_mv), unit,
                    "%s limit; at most vbal_mv - %d and vnom_mv" % (chem, VBAL_ABOVE_VMIN_MV))
        if name == "vbal_mv":
            return (s.vmin_mv + VBAL_ABOVE_VMIN_MV, s.vmax_mv - VBAL_BELOW_VMAX_MV, unit,
                    "%d mV above vmin_mv, %d mV below vmax_mv" % (VBAL_ABOVE_VMIN_MV, VBAL_BELOW_VMAX_MV))
        return s.vmin_mv, s.vmax_mv, unit, "vmin_mv..vmax_mv"
    if name == "tmax_dc":
        return _max(s.tmin_charge_dc, s.tmin_discharge_dc) + 1, hi, unit, "above both T-min, 70 degC at most"
    if name == "tmin_charge_dc":
        floor = ABS_TMIN_DC if s.chemistry == LTO else ABS_TMIN_CHARGE_DC
        return floor, s.tmax_dc - 1, unit, "below tmax_dc; no charging below 0 degC except LTO"
    if name == "tmin_discharge_dc":
        return lo, s.tmax_dc - 1, unit, "below tmax_dc"
    if name == "charge_restart_pct":
        return _max(lo, s.discharge_restart_pct + 1), hi, unit, "above discharge_restart_pct"
    if name == "discharge_restart_pct":
        return lo, _min(hi, s.charge_restart_pct - 1), unit, "below charge_restart_pct"
    if name == "comm_timeout_cycles" and s.cycle_ms > 0:
        return lo, _min(hi, COMM_TIMEOUT_MAX_MS // s.cycle_ms), unit, \
            "at most %d ms at cycle_ms=%d" % (COMM_TIMEOUT_MAX_MS, s.cycle_ms)
    return lo, hi, unit, ""


def balance_switch_ok(vmin_mv, vmax_mv, switch_mv):
    """True when the Begin board's balance switch (mV, 0 = no balancing) fits the settings:
    the same window as ``vbal_mv`` (V-min + 200 mV .. V-max - 10 mV). Allocation-free."""
    if switch_mv == 0:
        return True
    return vmin_mv + VBAL_ABOVE_VMIN_MV <= switch_mv <= vmax_mv - VBAL_BELOW_VMAX_MV


def _check_field(s, name):
    """None, or the refusal message for field ``name`` in ``s``."""
    lo, hi, unit, rule = allowed_range(s, name)
    value = getattr(s, name)
    if lo <= value <= hi:
        return None
    if rule:
        return "%s=%d: must be %d..%d %s (%s)" % (name, value, lo, hi, unit, rule)
    return "%s=%d: must be %d..%d %s" % (name, value, lo, hi, unit)


def check(s, first=None):
    """None when the settings are consistent, else ``<field>=<value>: must be <lo>..<hi> <unit>``
    (plus the rule that narrows the range). ``first``: the field just written, reported first
    when it is the one that breaks a rule."""
    for name, lo, hi, unit in FIELDS:
        value = getattr(s, name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return "%s=%r: must be %d..%d %s" % (name, value, lo, hi, unit)
    if s.loop_count not in (1, 2, 4):
        return "loop_count=%d: must be 1, 2 or 4 turns" % s.loop_count
    if s.cycle_ms not in (500, 1000):
        return "cycle_ms=%d: must be 500 or 1000 ms" % s.cycle_ms
    if first == "chemistry":
        c_lo, c_hi = cell_mv_range(s.chemistry)
        if not (c_lo <= s.vmin_mv and s.vmax_mv <= c_hi):
            return "chemistry=%d: vmin_mv..vmax_mv must be within %d..%d mV for %s (use the preset CH:%s!)" % (
                s.chemistry, c_lo, c_hi, CHEMISTRY_NAMES[s.chemistry], CHEMISTRY_NAMES[s.chemistry])
    if first is not None and first in FIELD_NAMES:
        msg = _check_field(s, first)
        if msg is not None:
            return msg
    for name in FIELD_NAMES:
        msg = _check_field(s, name)
        if msg is not None:
            return msg
    if not isinstance(s.name, str) or not 1 <= len(s.name) <= 20:
        return "name: must be 1..20 characters"
    return None


def validate(s):
    """Raise SettingsError (message names the field and range) unless consistent."""
    msg = check(s)
    if msg is not None:
        raise SettingsError(msg)


def apply(s, name, value):
    """Set one field on ``s`` only if the result is valid; returns None or the refusal message.
    On refusal ``s`` is unchanged."""
    if name not in FIELD_NAMES and name != "name":
        return "unknown setting %r" % (name,)
    if name == "chemistry" and value != s.chemistry:
        # a chemistry is a preset: V-min/balance/max and the temperature limits move with it.
        # Alone, it let the next field write take the new chemistry's limits (LiFePO4 -> nmc,
        # then vmax_mv 4200: two commands to charge an LFP pack to 4.2 V, issue 20)
        c = CHEMISTRY_NAMES[value] if value in (1, 2, 3, 4) and not isinstance(value, bool) else "<name>"
        return "chemistry=%r: a chemistry change moves every limit: use the preset CH:%s!" % (value, c)
    trial = s.copy()
    setattr(trial, name, value)
    msg = check(trial, name)
    if msg is None:
        setattr(s, name, value)
    return msg


def apply_preset(s, chemistry):
    """Set voltages and temperatures from the chemistry table (manual). Returns None or a message."""
    p = PRESETS.get(chemistry)
    if p is None:
        return "chemistry must be 1 LiFePO4, 2 LTO, 3 NMC or 4 NCA"
    trial = s.copy()
    trial.vnom_mv, trial.vmin_mv, trial.vbal_mv, trial.vmax_mv = p[0], p[1], p[2], p[3]
    trial.tmin_charge_dc, trial.tmin_discharge_dc, trial.tmax_dc = p[4], p[5], p[6]
    trial.chemistry = chemistry
    msg = check(trial)
    if msg is None:
        s.set_from(trial)
    return msg


def preset(chemistry):
    """A new, configured Settings for a chemistry (ValueError for unknown codes)."""
    s = Settings()
    msg = apply_preset(s, chemistry)
    if msg is not None:
        raise ValueError(msg)
    return s


def from_dict(d):
    """Settings from a dict (as read from a file or sent by the app). Unknown keys are ignored,
    missing ones keep the not-configured defaults; raises SettingsError when inconsistent."""
    s = Settings()
    for name in FIELD_NAMES:
        if name in d:
            setattr(s, name, d[name])
    for name in ("name", "pw_salt", "pw_hash"):
        if name in d and isinstance(d[name], str):
            setattr(s, name, d[name])
    validate(s)
    return s


def load(path):
    """(Settings, result) from the settings file. On anything but LOADED the Settings returned
    are the not-configured defaults, so the End board stays fail-safe."""
    values, status = store.load(path, FILE_KIND, FILE_VERSION)
    if status == store.MISSING:
        return Settings(), MISSING
    if status != store.OK:
        return Settings(), CORRUPT
    try:
        return from_dict(values), LOADED
    except (SettingsError, TypeError):
        return Settings(), INVALID


def load_reason(path):
    """Why the settings file does not load (None when it does): the store status, or the first
    refused value with its allowed range (for the log, diag and the app)."""
    values, status = store.load(path, FILE_KIND, FILE_VERSION)
    if status != store.OK:
        return "settings file " + store.STATUS_NAMES[status]
    try:
        from_dict(values)
    except (SettingsError, TypeError) as e:
        return str(e)
    return None


def save(path, s):
    """Validate, then write atomically. Raises SettingsError before touching the file."""
    validate(s)
    store.save(path, FILE_KIND, FILE_VERSION, s.to_dict())
