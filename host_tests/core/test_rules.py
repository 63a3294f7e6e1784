"""The pack brain's rules, one test table each (core/pack_view.py, core/rules.py): the view a
snapshot gives, the limit alarms and the balance-switch rule for every chemistry preset, the
full condition in both modes, empty means empty, the sensor-doubt hold-off, the reset loop."""
from core import alarms as A
from core import rules, settings
from core.pack_view import PackView
from core.relays import Limits
from core.rules import (DOUBT_HOLD_MAX_MS, DOUBT_HOLD_MS, DOUBT_MEMORY_MS, EMPTY_RETRIP_MS, RESET_LOOP_N,
                        RESET_LOOP_SLOTS, EmptyRule, ResetLoop, SensorDoubt)
from core.snapshot import CellStatus, PackSnapshot

CHEMISTRIES = (settings.LIFEPO4, settings.LTO, settings.NMC, settings.NCA)
S = CellStatus


def limits(chem, mode=settings.NORMAL, capacity_ah=100):
    s = settings.preset(chem)
    s.mode = mode
    s.capacity_ah = capacity_ah
    return Limits(s)


def snap_of(mv, status=None, temps=None, **fields):
    """A complete, fresh frame of len(mv) cells; ``fields`` set snapshot attributes."""
    snap = PackSnapshot()
    snap.valid = True
    snap.comm_ok = True
    snap.cell_count = len(mv)
    for i, v in enumerate(mv):
        snap.cell_mv[i] = v
        snap.cell_temp_dc[i] = 250 if temps is None else temps[i]
        snap.cell_status[i] = 0 if status is None else status[i]
    for k, v in fields.items():
        setattr(snap, k, v)
    return snap


def view_of(**attrs):
    """A view with the given attributes (a complete 4-cell pack at 3300 mV, 25 degC otherwise)."""
    v = PackView()
    v.n = 4
    v.count = 4
    v.total_mv = 13200
    v.min_mv = 3300
    v.max_mv = 3300
    v.temp_ok = True
    v.min_t = 250
    v.max_t = 250
    v.comm = True
    v.counted = True
    for k, x in attrs.items():
        setattr(v, k, x)
    return v


# --- the pack view ----------------------------------------------------------------------------
# (what the snapshot holds, what the view says: attributes, status alarms, data_ok)
VIEW_TABLE = (
    ("fresh pack", snap_of([3300, 3310, 3290, 3305]),
     {"comm": True, "count": 4, "min_mv": 3290, "max_mv": 3310, "total_mv": 13205, "temp_ok": True},
     0, True),
    ("a stale slot: incomplete, only COMM_LOST", snap_of([3300, 3300, 3300, 3300], [0, S.STALE, 0, 0]),
     {"comm": False, "stale": True, "count": 3}, A.COMM_LOST, False),
    ("a slot nobody filled (0 mV, no fault bit)", snap_of([3300, 0, 3300, 3300]),
     {"comm": False, "stale": True}, A.COMM_LOST, False),
    ("a voltage sensor fault: left out, no data", snap_of([3300, 9999, 3300, 3300], [0, S.VOLT_SENSOR_FAULT, 0, 0]),
     {"comm": True, "vfault": True, "count": 3, "max_mv": 3300}, A.VOLT_SENSOR_FAULT, False),
    ("section A names a voltage fault (FAULT_AT)", snap_of([3300] * 4, volt_fault_at=3),
     {"vfault": True}, A.VOLT_SENSOR_FAULT, False),
    ("an NTC fault: its temperature left out", snap_of([3300] * 4, [0, 0, S.TEMP_SENSOR_FAULT, 0], [250, 260, -999, 240]),
     {"tfault": True, "min_t": 240, "max_t": 260, "temp_ok": True}, A.TEMP_SENSOR_FAULT, True),
    ("every NTC faulty: no temperature", snap_of([3300] * 2, [S.TEMP_SENSOR_FAULT] * 2),
     {"tfault": True, "temp_ok": False}, A.TEMP_SENSOR_FAULT, True),
    ("section A's highest cell above the detail", snap_of([3300] * 4, max_mv=3650, max_mv_cell=2, min_mv=3300, min_mv_cell=1),
     {"max_mv": 3650, "min_mv": 3300}, 0, True),
    ("section A's lowest cell below the detail", snap_of([3300] * 4, max_mv=3300, max_mv_cell=2, min_mv=2850, min_mv_cell=4),
     {"min_mv": 2850, "max_mv": 3300}, 0, True),
    ("a minimum above the maximum counts against both ends",
     snap_of([3300] * 4, max_mv=3200, max_mv_cell=2, min_mv=3400, min_mv_cell=1),
     {"min_mv": 3200, "max_mv": 3400}, 0, True),
    ("an implausible aggregate is not data", snap_of([3300] * 4, max_mv=5200, max_mv_cell=2),
     {"stale": True, "comm": False}, A.COMM_LOST, False),
    ("aggregate temperatures widen the range", snap_of([3300] * 4, min_mv_cell=1, min_mv=3300, max_mv_cell=1,
                                                      max_mv=3300, min_temp_cell=2, min_temp_dc=-50,
                                                      max_temp_cell=3, max_temp_dc=600),
     {"min_t": -50, "max_t": 600, "temp_ok": True}, 0, True),
    ("no valid temperature in the chain (aggregate positions 0)", snap_of([3300] * 4, min_mv_cell=1, min_mv=3300),
     {"temp_ok": False}, 0, True),
    ("count outside the switches, frame through the chain", snap_of([3300] * 4, cells_min=5, cells_max=8),
     {"count_ok": False}, A.CELL_COUNT_MISMATCH, False),
    ("count outside, frame started below a break: not counted",
     snap_of([3300] * 4, cells_min=5, cells_max=8, comm_ok=False, break_position=2),
     {"count_ok": False, "counted": False, "comm": False, "break_position": 2}, A.COMM_LOST, False),
    ("a board restarted (first one named)", snap_of([3300] * 4, [0, 0, S.WATCHDOG_RESET, S.WATCHDOG_RESET]),
     {"reset_at": 3}, 0, True),
    ("a derated balancer", snap_of([3300] * 4, [0, S.DERATED, 0, 0]), {"hot": True}, A.BALANCE_HOT, True),
    ("the link's own flags pass through", snap_of([3300] * 4, link_flags=A.LINK_QUALITY),
     {}, A.LINK_QUALITY, True),
    ("no frame yet", PackSnapshot(), {"comm": False, "count": 0, "min_mv": 0}, A.COMM_LOST, False),
)


def test_pack_view_table():
    v = PackView()
    for name, snap, want, alarms, data_ok in VIEW_TABLE:
        v.read(snap)
        for k, x in want.items():
            assert getattr(v, k) == x, "%s: %s = %r, want %r" % (name, k, getattr(v, k), x)
        assert v.status_alarms() == alarms, "%s: alarms %x, want %x" % (name, v.status_alarms(), alarms)
        assert v.data_ok() == data_ok, name


def test_pack_view_read_allocates_nothing():
    from support import no_alloc
    v = PackView()
    snap = snap_of([3300] * 16, max_mv=3310, max_mv_cell=2, min_mv=3290, min_mv_cell=3)
    no_alloc(lambda: (v.read(snap), v.status_alarms(), v.data_ok()))


# --- limit alarms and the balance switch, every chemistry ---------------------------------------
def limit_table(lim):
    """(view attributes, alarms) relative to the chemistry's limits."""
    mid = (lim.vmin_mv + lim.vmax_mv) // 2
    warn_lo = lim.vmin_mv + lim.vmin_mv // 50
    warn_hi = lim.vmax_mv - lim.vmax_mv // 50
    return (
        ({"min_mv": mid, "max_mv": mid}, 0),
        ({"min_mv": lim.vmin_mv, "max_mv": mid}, A.UNDER_VOLTAGE | A.EARLY_WARNING),
        ({"min_mv": lim.vmin_mv + 1, "max_mv": mid}, A.EARLY_WARNING),
        ({"min_mv": warn_lo, "max_mv": mid}, A.EARLY_WARNING),
        ({"min_mv": warn_lo + 1, "max_mv": mid}, 0),
        ({"min_mv": mid, "max_mv": lim.vmax_mv}, A.OVER_VOLTAGE | A.EARLY_WARNING),
        ({"min_mv": mid, "max_mv": warn_hi}, A.EARLY_WARNING),
        ({"min_mv": mid, "max_mv": warn_hi - 1}, 0),
        ({"min_mv": mid, "max_mv": mid, "switch_vbal_mv": lim.vmin_mv + 199}, A.BALANCE_SWITCH_INVALID),
        ({"min_mv": mid, "max_mv": mid, "switch_vbal_mv": lim.vmin_mv + 200}, 0),
        ({"min_mv": mid, "max_mv": mid, "switch_vbal_mv": lim.vmax_mv - 9}, A.BALANCE_SWITCH_INVALID),
        ({"min_mv": mid, "max_mv": mid, "min_t": lim.tmin_charge_dc - 1},
         A.UNDER_TEMP_CHARGE | (A.UNDER_TEMP_DISCHARGE if lim.tmin_charge_dc - 1 < lim.tmin_discharge_dc else 0)),
        ({"min_mv": mid, "max_mv": mid, "min_t": lim.tmin_discharge_dc - 1},
         A.UNDER_TEMP_CHARGE | A.UNDER_TEMP_DISCHARGE),
        ({"min_mv": mid, "max_mv": mid, "max_t": lim.tmax_dc + 1}, A.OVER_TEMP),
        ({"min_mv": mid, "max_mv": mid, "max_t": lim.tmax_dc + 1, "temp_ok": False}, 0),
        # part of a pack: no cell alarms at all (COMM_LOST says it)
        ({"min_mv": lim.vmin_mv, "max_mv": lim.vmax_mv, "comm": False}, 0),
        ({"min_mv": 0, "max_mv": 0, "count": 0}, 0),
    )


def test_limit_alarms_table_for_every_chemistry():
    for chem in CHEMISTRIES:
        lim = limits(chem)
        for attrs, want in limit_table(lim):
            got = rules.limit_alarms(view_of(**attrs), lim)
            assert got == want, "%s %r: %x, want %x" % (settings.CHEMISTRY_NAMES[chem], attrs, got, want)


def test_a_balance_switch_that_would_drain_cells_keeps_charging_off_for_every_chemistry():
    for chem in CHEMISTRIES:
        lim = limits(chem)
        for sw, drains in ((0, False), (1, True), (lim.vmin_mv, True), (lim.vmin_mv + 199, True),
                           (lim.vmin_mv + 200, False), (lim.vbal_mv, False), (lim.vmax_mv + 500, False)):
            assert rules.switch_drains_cells(view_of(switch_vbal_mv=sw), lim) == drains, (chem, sw)


# --- full -----------------------------------------------------------------------------------
def test_full_condition_table_normal_and_critical():
    for chem in CHEMISTRIES:
        for mode in (settings.NORMAL, settings.CRITICAL):
            lim = limits(chem, mode)
            vb = lim.vbal_mv
            crit = mode == settings.CRITICAL
            table = (
                ({"min_mv": vb, "total_mv": 4 * vb}, 0, True),
                ({"min_mv": vb, "total_mv": 4 * vb}, lim.full_ma, True),
                ({"min_mv": vb, "total_mv": 4 * vb}, lim.full_ma + 1, False),     # still charging hard
                ({"min_mv": vb, "total_mv": 4 * vb}, -50000, True),              # a load at the top
                # one cell 30 mV short, the rest 10 mV over: normal waits, critical's average is there
                ({"min_mv": vb - 30, "total_mv": 4 * vb}, 0, crit),
                ({"min_mv": vb - 30, "total_mv": 4 * vb - 1}, 0, False),
                ({"min_mv": 0, "total_mv": 0, "count": 0}, 0, False),
            )
            for attrs, current, want in table:
                got = rules.full_now(view_of(**attrs), lim, current)
                assert got == want, (chem, mode, attrs, current)


# --- empty means empty -------------------------------------------------------------------------
def _empty_run(chem, steps):
    """steps: (event, arg); events: "trip", "load" (ms the load ran), "check" (min_mv, current,
    load_on) -> records empty_now, "emptied". Returns the list of empty_now results."""
    lim = limits(chem)
    e = EmptyRule()
    out = []
    for ev, arg in steps:
        if ev == "trip":
            e.vmin_trip()
        elif ev == "load":
            e.load_ran(arg)
        elif ev == "emptied":
            e.emptied()
        else:
            min_mv, current, load_on = arg
            out.append(e.empty_now(view_of(min_mv=min_mv), lim, current, load_on))
    return out, lim


def test_empty_rule_table_for_every_chemistry():
    for chem in CHEMISTRIES:
        lim = limits(chem)
        low = lim.empty_rest_mv - 1            # rested and still low: no charge left
        back = lim.empty_rest_mv               # recovered at rest: it was a surge
        table = (
            ("no trip, low: not empty", [("check", (low, 0, False))], [False]),
            ("trip, rested low", [("trip", 0), ("check", (low, 0, False))], [True]),
            ("trip, recovered (a surge)", [("trip", 0), ("check", (back, 0, False))], [False]),
            ("trip, load back on", [("trip", 0), ("check", (low, 0, True))], [False]),
            ("trip, charging clears it", [("trip", 0), ("check", (low, 1, False)), ("check", (low, 0, False))],
             [False, False]),
            ("trip, discharging (standby)", [("trip", 0), ("check", (low, -100, False))], [True]),
            ("two trips within 30 min of load", [("trip", 0), ("load", EMPTY_RETRIP_MS), ("trip", 0),
                                                 ("check", (back, 0, False))], [True]),
            ("two trips more than 30 min of load apart",
             [("trip", 0), ("load", EMPTY_RETRIP_MS + 1), ("trip", 0), ("check", (back, 0, False))], [False]),
            ("emptied: the next trip starts again", [("trip", 0), ("trip", 0), ("emptied", 0),
                                                     ("check", (back, 0, False)), ("trip", 0),
                                                     ("check", (back, 0, False))], [False, False]),
        )
        for name, steps, want in table:
            got, _ = _empty_run(chem, steps)
            assert got == want, "%s %s: %r" % (settings.CHEMISTRY_NAMES[chem], name, got)


def test_empty_rule_time_counter_stays_a_small_int():
    e = EmptyRule()
    for _ in range(100):
        e.load_ran(600000)
    assert e.since_trip_ms == rules.SINCE_CAP_MS < 2 ** 30


# --- sensor doubt -------------------------------------------------------------------------------
def _doubt(seq):
    """seq: (fault, ms) pairs, each run in 1 s cycles; returns the hold (True) at the end of each
    (during a fault that came back the hold shows already: the relays are open either way)."""
    d = SensorDoubt()
    out = []
    for fault, ms in seq:
        held = False
        for _ in range(ms // 1000):
            held = d.update(fault, 1000)
        out.append(held)
    return out, d


def test_sensor_doubt_table():
    h = DOUBT_HOLD_MS
    table = (
        ("a first fault closes as soon as the data is clean", [(True, 5000), (False, 1000)], [False, False]),
        ("back within the hour: held for 15 s of clean data",
         [(True, 2000), (False, 60000), (True, 2000), (False, h - 1000), (False, 1000)],
         [False, False, True, True, False]),
        ("each return doubles the hold",
         [(True, 1000), (False, 2000), (True, 1000), (False, h), (True, 1000), (False, 2 * h - 1000),
          (False, 1000)],
         [False, False, True, False, True, True, False]),
        ("an hour clean: the next fault is a first fault again",
         [(True, 1000), (False, 2000), (True, 1000), (False, DOUBT_MEMORY_MS), (True, 1000), (False, 1000)],
         [False, False, True, False, False, False]),
        ("a fault that lasts is not a return", [(True, 1000), (False, 2000), (True, 600000), (False, h - 1000)],
         [False, False, True, True]),
    )
    for name, seq, want in table:
        got, _ = _doubt(seq)
        assert got == want, "%s: %r" % (name, got)


def test_sensor_doubt_hold_stops_doubling_at_an_hour():
    d = SensorDoubt()
    for _ in range(20):                      # a fault every 10 s: the hold doubles up to its cap
        d.update(True, 1000)
        for _ in range(10):
            d.update(False, 1000)
    assert d.hold_ms == DOUBT_HOLD_MAX_MS
    assert d.update(False, 1000) is True


# --- reset loop ---------------------------------------------------------------------------------
def _resets(seq):
    """seq: (reset_at, cycles) pairs; the position at the end of each."""
    r = ResetLoop()
    out = []
    for at, cycles in seq:
        p = 0
        for _ in range(cycles):
            p = r.update(at)
        out.append(p)
    return out


def test_reset_loop_table():
    gap = RESET_LOOP_SLOTS - 10
    n = RESET_LOOP_N
    table = (
        ("one restart (its bit shows for two frames)", [(5, 2), (0, 10)], [0, 0]),
        ("%d restarts close together" % n, [(5, 2), (0, gap), (5, 2), (0, gap), (5, 2), (0, 5)], [0, 0, 0, 0, 5, 5]),
        ("restarts spread wider than the window", [(5, 2), (0, RESET_LOOP_SLOTS + 5)] * n, [0, 0] * n),
        ("quiet for the window: cleared", [(7, 1), (0, 1), (7, 1), (0, 1), (7, 1), (0, RESET_LOOP_SLOTS - 2),
                                           (0, 5)], [0, 0, 0, 0, 7, 7, 0]),
        ("a bit held for many frames counts once", [(3, 500)], [0]),
    )
    for name, seq, want in table:
        got = _resets(seq)
        assert got == want, "%s: %r" % (name, got)
