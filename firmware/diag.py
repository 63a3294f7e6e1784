"""REPL diagnostics: what a board is doing, and its calibrations. At the board's serial REPL
(``mpremote connect PORT repl``, Ctrl-C stops the running loop with every output safe)::

    >>> import diag
    >>> diag.show()                  # role, chain position, cell, temperature, balancing, link,
                                     # settings, reset cause, last error, loop and memory figures
    >>> diag.calibrate_cell(3300)    # point 1: the cell voltage your meter shows, in mV
    >>> diag.calibrate_cell(4100)    # point 2 (>= 500 mV away): checked, stored, used at once
    >>> diag.calibrate_cell_restart()   # forget point 1;  diag.calibrate_cell_clear(): nominal
    >>> diag.zero_current()          # Begin board: zero the current sensors (no current flowing)
    >>> machine.reset()              # back to normal operation

Everything is read from the registry ``hal.loop`` fills (``current_role``, ``current_hw``,
``current_board``, ``current_loop``). Without a running role (e.g. main.py removed) diag builds
the board's hw and a CellBoard itself, so calibration works on a bare board too.
Allocation is fine here: nothing in this module runs in the control loop.
"""
import gc

from core.sampling import CalibrationError
from core.snapshot import CellStatus

_STATUS_NAMES = (
    (CellStatus.BALANCING, "balancing"),
    (CellStatus.TEMP_SENSOR_FAULT, "temp-sensor-fault"),
    (CellStatus.VOLT_SENSOR_FAULT, "volt-sensor-fault"),
    (CellStatus.DERATED, "derated"),
    (CellStatus.UPSTREAM_LOST, "upstream-lost"),
    (CellStatus.NOT_CALIBRATED, "not-calibrated"),
    (CellStatus.WATCHDOG_RESET, "watchdog-reset"),
    (CellStatus.STALE, "stale"),
)
_COUNTER_NAMES = ("good_frames", "bad_frames", "timeouts", "crc_errors", "framing_errors",
                  "originated", "forwarded", "frames_rx", "frames_tx", "frames_sent",
                  "complete_frames", "missed_frames", "breaks", "seq")
_standalone: "dict[str, object]" = {}


def _loop():
    from hal import loop
    return loop


def status_names(bits):
    names = [name for bit, name in _STATUS_NAMES if bits & bit]
    return ",".join(names) if names else "ok"


def cell_board():
    """The running role's CellBoard, or one built for this board when no role runs."""
    role = _loop().current_role
    cb = getattr(role, "cell", None) if role is not None else None
    if cb is None and role is not None and hasattr(role, "measure") and hasattr(role, "cell_mv"):
        cb = role
    if cb is not None:
        return cb
    if "cell" not in _standalone:
        import board
        from hal.board import make_hw
        from roles.cell_board import CellBoard
        roles = getattr(board, "ROLES", ("between",))
        name = "between" if "between" in roles else roles[0]
        hw = make_hw(board, name)
        _standalone["hw"] = hw
        _standalone["cell"] = CellBoard(hw, board)
    return _standalone["cell"]


def _fmt_dc(dc):
    sign = "-" if dc < 0 else ""
    dc = -dc if dc < 0 else dc
    return "%s%d.%d" % (sign, dc // 10, dc % 10)


def _counters(obj, into):
    """Add obj's counters (``diag_counters()``, else the known int attributes) to ``into``."""
    if obj is None:
        return into
    fn = getattr(obj, "diag_counters", None)
    if fn is not None:
        into.update(fn())
        return into
    for name in _COUNTER_NAMES:
        v = getattr(obj, name, None)
        if isinstance(v, int):
            into[name] = v
    return into


def _settings_line(role):
    s = getattr(role, "settings", None)
    if s is None:
        brain = getattr(role, "brain", None)
        s = getattr(brain, "settings", None)
    if s is None or not hasattr(s, "to_dict"):
        return None
    d = s.to_dict()
    return " ".join("%s=%s" % (k, d[k]) for k in sorted(d))


def _cell_lines(cb, measure, out):
    if measure:
        cb.measure(0)
    cal = cb.channel.cal
    out.append("cell: %d mV %s  (pin %d uV, nominal %d.%d mV, %s gain %d ppm offset %s mV)" % (
        cb.cell_mv, "ok" if cb.cell_ok else "NOT DATA", cb.channel.pin_uv,
        cb.channel.nominal_01mv // 10, cb.channel.nominal_01mv % 10,
        "calibrated" if cal.calibrated else "NOT calibrated", cal.gain_ppm(), _fmt_dc(cal.offset_01mv)))
    src = "chip sensor" if cb.ntc is None else "NTC"
    out.append("temperature: %s degC %s (%s); chip %s degC" % (
        _fmt_dc(cb.temp_dc), "ok" if cb.temp_ok else "SENSOR FAULT", src,
        _fmt_dc(cb.chip_dc) if cb.chip_ok else "n/a"))
    b = cb.balancer
    out.append("balancing: duty %d permille, v-balance %d mV%s, link %s, derated %s, hot stop %s, on %d s" % (
        cb.duty, cb.vbal_mv, " (off by switches)" if cb.vbal_mv == 0 else "", "ok" if cb.link_ok else "STALE",
        b.derated, b.hot_stop, b.on_s))
    out.append("status: 0x%02x %s; frames seen %d" % (cb.status, status_names(cb.status), cb.frames))


def lines(measure=True):
    """The report as a list of strings (show() prints them; tests read them)."""
    lp = _loop()
    role = lp.current_role
    bd = lp.current_board
    out = []
    try:
        from core.version import FIRMWARE_VERSION
        ver = "%d.%d.%d" % FIRMWARE_VERSION
    except ImportError:
        ver = "?"
    out.append("cellchain %s  role: %s  board: %s" % (ver, lp.role_name or "(none running)",
                                                      getattr(bd, "NAME", "?")))
    if lp.role_name == "gateway":     # no cell board here (its pins are the gateway's): counters only
        c = _counters(role, {})
        out.append("gateway: " + " ".join("%s=%s" % (k, c[k]) for k in sorted(c)))
        return out
    pos = getattr(role, "position", None)
    out.append("chain position: %s" % (pos if pos is not None else "unknown (from the next frame)"))
    try:
        cb = cell_board()
    except (AttributeError, ImportError, OSError, ValueError) as e:
        # a virtual board (the Unix port: no machine.Pin/ADC) or a board definition that does
        # not fit the chip: say so, and show what needs no hardware (issue 22)
        cb = None
        out.append("cell: no board hardware here (%s): a virtual board or the Unix port has no "
                   "pins or ADC; link, settings and errors below" % e)
    if cb is not None:
        _cell_lines(cb, measure, out)
    port = getattr(role, "link", None) or getattr(role, "port", None)
    # the role's counters include its port's (Between, End): each name once
    d = _counters(role, _counters(port, {}) if port is not role else {})
    link = ["%s=%s" % (k, d[k]) for k in sorted(d)]
    out.append("link: %s" % (" ".join(link) if link else "no counters (role not running)"))
    st = _settings_line(role)
    if st is not None:
        out.append("settings: %s" % st)
    out.append("reset cause: %s" % (cb.reset_cause if cb is not None else "n/a"))
    data_dir = (getattr(cb.hw, "data_dir", None) if cb is not None else None) or lp.DATA_DIR
    err = lp.last_error(data_dir)
    out.append("last error: %s" % (err.strip().replace("\n", " | ") if err else "none"))
    loop = lp.current_loop
    if loop is not None:
        s = loop.stats
        out.append("loop: %d cycles of %d ms, awake %d.%d %% (avg %d.%d %%), cycle %d us (max %d), "
                   "overruns %d, watchdog feeds %d, wake-ups %d" % (
                       s.cycles, loop.cycle_ms, s.awake_permille // 10, s.awake_permille % 10,
                       s.awake_avg_permille // 10, s.awake_avg_permille % 10, s.last_cycle_us,
                       s.max_cycle_us, s.overruns, s.feeds, s.sleeps))
    else:
        out.append("loop: not running")
    gc.collect()
    try:
        out.append("memory: %d bytes free, %d used" % (gc.mem_free(), gc.mem_alloc()))
    except AttributeError:  # CPython (host tests)
        pass
    return out


def show():
    """Print everything a user needs to see about this board."""
    for line in lines():
        print(line)


def calibrate_cell(applied_mv):
    """One calibration point: apply a known cell voltage, measure it with a good meter and enter
    it in mV. Two calls (points >= 500 mV apart) make a calibration; nonsense is refused."""
    try:
        msg = cell_board().calibrate_point(applied_mv)
    except CalibrationError as e:
        msg = "refused: %s" % e
    print(msg)
    return msg


def calibrate_cell_restart():
    cell_board().restart_calibration()
    print("calibration restarted: call calibrate_cell(mV) for point 1")


def calibrate_cell_clear():
    cell_board().clear_calibration()
    print("cell calibration cleared: nominal divider from the board definition")


def zero_current():
    """Begin board: zero the current sensors (no current may flow). Same as the long press."""
    role = _loop().current_role
    fn = getattr(role, "zero_current", None)
    if fn is None:
        print("only the running Begin role can zero its current sensors")
        return False
    ok = fn()
    print("current sensors zeroed" if ok else "zeroing refused (a reading is far from its nominal zero)")
    return ok
