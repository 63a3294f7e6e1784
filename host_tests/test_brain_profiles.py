"""CPython-only property tests of the pack brain (hypothesis): whatever the snapshots, settings
and times, relays never contradict the limits (of the per-cell detail nor of the section-A
aggregates), nothing raises, the counters stay small ints,
and the coulomb counter loses nothing over long random profiles."""
from hypothesis import example, given, settings as hsettings, strategies as st

from core import settings
from core.brain import PackBrain
from core.relays import LIMIT_SAMPLES, TRIP_SAMPLES, Limits
from core.snapshot import CellStatus, PackSnapshot, SensorFlags
from core.soc import SocCounter

SMALL = 0x3FFFFFFF
ON = [0, 0]   # how often a relay was on (the invariants must not hold vacuously)

# mostly plausible cells of the four presets' ranges, sometimes anything
cell_mv = st.one_of(st.sampled_from([2300, 2500, 3300, 3350, 3600, 3700, 3900]), st.integers(0, 6000))
cell = st.tuples(cell_mv, st.one_of(st.just(250), st.integers(-500, 1000)), st.sampled_from(
    [0, 0, 0, CellStatus.TEMP_SENSOR_FAULT, CellStatus.VOLT_SENSOR_FAULT, CellStatus.DERATED]))
frame = st.tuples(
    st.lists(cell, min_size=0, max_size=4),
    st.sampled_from([True, True, True, False]), st.sampled_from([True, True, True, False]),
    st.integers(-2000000, 2000000), st.integers(-2000000, 2000000),
    st.sampled_from([0, SensorFlags.PRESENT, SensorFlags.FAULT, SensorFlags.PRESENT | SensorFlags.HIGH_RANGE]),
    st.one_of(st.just(1000), st.integers(-5000, 2000000)),   # dt_ms, also absurd ones
    st.integers(1, 6),                                 # the frame repeats this many cycles
    # section A aggregates (min mV, position, max mV, position, min T, position, max T,
    # position), position 0 = no board contributed; None: nobody filled section A in
    st.one_of(st.none(), st.tuples(cell_mv, st.integers(0, 4), cell_mv, st.integers(0, 4),
                                   st.integers(-500, 1000), st.integers(0, 4),
                                   st.integers(-500, 1000), st.integers(0, 4))),
)


def make_settings(chem, mode, sensors, loops, cap):
    s = settings.preset(chem)
    s.mode, s.sensors, s.loop_count, s.capacity_ah = mode, sensors, loops, cap
    return s


@hsettings(max_examples=300, deadline=None)
@given(chem=st.sampled_from([settings.LIFEPO4, settings.LTO, settings.NMC, settings.NCA]),
       mode=st.sampled_from([settings.NORMAL, settings.CRITICAL]),
       sensors=st.sampled_from([1, 2]), loops=st.sampled_from([1, 2, 4]),
       cap=st.integers(1, 20000), ok=st.sampled_from([True, True, True, False]), frames=st.lists(frame, min_size=1, max_size=40))
@example(chem=settings.LIFEPO4, mode=settings.NORMAL, sensors=2, loops=1, cap=100, ok=True,
         frames=[([(3300, 250, 0)] * 4, True, True, 0, 0, SensorFlags.PRESENT, 1000, 6, None)] * 3
         + [([(3300, 250, 0), (3700, 250, 0), (2900, 250, 0), (3300, 250, 0)], True, True, 0, 0,
             SensorFlags.PRESENT, 1000, 1, None)] * 3)   # both on, then V-max and V-min: never vacuous
def test_relays_never_contradict_limits(chem, mode, sensors, loops, cap, ok, frames):
    s = make_settings(chem, mode, sensors, loops, cap)
    lim = Limits(s)
    b = PackBrain(s, ok)
    snap = PackSnapshot()
    hot_c = hot_l = 0       # consecutive frames beyond a temperature limit (trips need 3)
    over = under = 0        # consecutive frames beyond V-max / V-min (trips need 2)
    for cells, valid, comm, s1, s2, flags, dt, repeat, agg in frames:
        snap.valid, snap.comm_ok, snap.cell_count = valid, comm, len(cells)
        for i, (mv, t, stat) in enumerate(cells):
            snap.cell_mv[i], snap.cell_temp_dc[i], snap.cell_status[i] = mv, t, stat
        snap.s1_ma, snap.s2_ma, snap.s1_flags, snap.s2_flags = s1, s2, flags, flags
        (snap.min_mv, snap.min_mv_cell, snap.max_mv, snap.max_mv_cell, snap.min_temp_dc,
         snap.min_temp_cell, snap.max_temp_dc, snap.max_temp_cell) = agg or (0,) * 8
        for _ in range(repeat):
            b.update(snap, dt)
        good = [c for c in cells if not c[2] & CellStatus.VOLT_SENSOR_FAULT]
        temps = [c[1] for c in cells if not c[2] & CellStatus.TEMP_SENSOR_FAULT]
        volts = [c[0] for c in good]
        agg_ok = True
        if agg:
            # the worse of the aggregate and the detail counts; an implausible aggregate is no data
            for mv, pos in ((agg[0], agg[1]), (agg[2], agg[3])):
                if pos:
                    volts.append(mv)
                    agg_ok = agg_ok and 1000 <= mv <= 5100
            if agg[5] and agg[7]:
                temps += [agg[4], agg[6]] if temps else []
            elif agg[1] or agg[3] or agg[5] or agg[7]:
                temps = []
        data = ok and valid and comm and cells and len(good) == len(cells) and agg_ok
        t_bad = not temps or max(temps) > lim.tmax_dc
        hot_c = hot_c + repeat if data and (t_bad or min(temps) < lim.tmin_charge_dc) else 0
        hot_l = hot_l + repeat if data and (t_bad or min(temps) < lim.tmin_discharge_dc) else 0
        # V-max / V-min: LIMIT_SAMPLES consecutive samples (core.relays, issue 13)
        over = over + repeat if data and max(volts) >= lim.vmax_mv else 0
        under = under + repeat if data and min(volts) <= lim.vmin_mv else 0
        if b.charge_allowed or b.load_allowed:
            assert data                                  # same cycle
        if b.charge_allowed:
            assert over < LIMIT_SAMPLES
            assert hot_c < TRIP_SAMPLES
        if b.load_allowed:
            assert under < LIMIT_SAMPLES
            assert hot_l < TRIP_SAMPLES
        ON[0] += b.charge_allowed
        ON[1] += b.load_allowed
        assert 0 <= b.soc_c <= 10000
        for v in (b.energy_in_wh, b.energy_out_wh, b.power_in_w, b.power_out_w, b.stored_wh,
                  b._soc.acc_mas, b._e_in.acc_cws, b.uptime_s, b.charge_cycles):
            assert 0 <= v < SMALL
        assert -SMALL < b.current_ma < SMALL


def test_profiles_switched_relays_on():
    if ON == [0, 0]:
        test_relays_never_contradict_limits()
    assert ON[0] > 0 and ON[1] > 0


@hsettings(max_examples=200, deadline=None)
@given(cap=st.integers(1, 20000),
       steps=st.lists(st.tuples(st.integers(-1000000, 1000000), st.integers(0, 5000)),
                      min_size=1, max_size=300))
def test_coulomb_counter_is_exact(cap, steps):
    c = SocCounter(cap, 5000)
    step = cap * 360
    start = 5000 * step * 1000                          # in mA*ms
    total = start
    for ma, dt in steps:
        c.integrate(ma, dt)
        total += ma * dt
        held = (c.soc_c * step + c.acc_mas) * 1000 + c.sub_mams
        if 0 < c.soc_c < 10000:
            assert held == total                          # nothing lost, nothing invented
        else:
            total = held                                  # clamped at an end: restart reference
        assert 0 <= c.acc_mas < step and 0 <= c.sub_mams < 1000
