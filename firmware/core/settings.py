"""Pack settings: fields, chemistry presets, validation and the settings file.

Every value is an integer in the unit its name carries (mV, 0.1 degC as ``_dc``, Ah, %), so
settings cost no floats on the boards. A rejected value never changes anything: ``apply``
validates a copy and commits only when the whole set is consistent, and the error message names
the field and its allowed range. A fresh ``Settings()`` is *not configured* (chemistry unknown):
the End board keeps both relays off until the user chooses a chemistry or writes settings,
because a LiFePO4 default could over-discharge an NMC pack.
"""
from micropython import const

from core import store

# Chemistry codes
UNKNOWN = const(0)
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

# name, lowest, highest, unit (for messages). Order is the order of the app's settings list.
FIELDS = (
    ("vmin_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vbal_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vmax_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("vnom_mv", CELL_MV_LOW, CELL_MV_HIGH, "mV"),
    ("tmin_charge_dc", -400, 850, "0.1 degC"),
    ("tmin_discharge_dc", -400, 850, "0.1 degC"),
    ("tmax_dc", -400, 850, "0.1 degC"),
    ("capacity_ah", 1, 20000, "Ah"),
    ("charge_restart_pct", 1, 100, "%"),
    ("discharge_restart_pct", 0, 99, "%"),
    ("mode", NORMAL, CRITICAL, "0 normal, 1 critical"),
    ("loop_count", 1, 4, "turns (1, 2 or 4)"),
    ("sensors", 1, 2, "current sensors"),
    ("chemistry", UNKNOWN, NCA, "0 unknown, 1 LiFePO4, 2 LTO, 3 NMC, 4 NCA"),
    ("comm_timeout_cycles", 1, 30, "cycles"),
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
        self.chemistry = UNKNOWN
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
        return self.chemistry != UNKNOWN

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


def check(s):
    """None when the settings are consistent, else a message naming the field and its range."""
    for name, lo, hi, unit in FIELDS:
        value = getattr(s, name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return "%s=%r: must be %d..%d %s" % (name, value, lo, hi, unit)
    if s.loop_count not in (1, 2, 4):
        return "loop_count=%d: must be 1, 2 or 4 turns" % s.loop_count
    if s.cycle_ms not in (500, 1000):
        return "cycle_ms=%d: must be 500 or 1000 ms" % s.cycle_ms
    if not s.vmin_mv < s.vbal_mv:
        return "vbal_mv=%d: must be above vmin_mv (%d) and at most %d mV" % (s.vbal_mv, s.vmin_mv, CELL_MV_HIGH)
    if not s.vbal_mv < s.vmax_mv:
        return "vmax_mv=%d: must be above vbal_mv (%d) and at most %d mV" % (s.vmax_mv, s.vbal_mv, CELL_MV_HIGH)
    if not s.vmin_mv <= s.vnom_mv <= s.vmax_mv:
        return "vnom_mv=%d: must be %d..%d mV (vmin..vmax)" % (s.vnom_mv, s.vmin_mv, s.vmax_mv)
    if not s.tmin_charge_dc < s.tmax_dc:
        return "tmin_charge_dc=%d: must be -400..%d (below tmax_dc)" % (s.tmin_charge_dc, s.tmax_dc - 1)
    if not s.tmin_discharge_dc < s.tmax_dc:
        return "tmin_discharge_dc=%d: must be -400..%d (below tmax_dc)" % (s.tmin_discharge_dc, s.tmax_dc - 1)
    if not s.discharge_restart_pct < s.charge_restart_pct:
        return "discharge_restart_pct=%d: must be 0..%d (below charge_restart_pct)" % (
            s.discharge_restart_pct, s.charge_restart_pct - 1)
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
    trial = s.copy()
    setattr(trial, name, value)
    msg = check(trial)
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


def save(path, s):
    """Validate, then write atomically. Raises SettingsError before touching the file."""
    validate(s)
    store.save(path, FILE_KIND, FILE_VERSION, s.to_dict())
