"""Relay tables of the manual (normal and critical mode), row by row, plus hysteresis, debounce,
hold-off, temperature limits, absolute limits and the relay LEDs."""
from core import relays, settings
from core.relays import (ENABLE_SAMPLES, LIMIT_SAMPLES, RESTART_DWELL_MS, RETRY_MS, TRIP_SAMPLES, Limits,
                         RelayLeds, Relays)
from support import no_alloc

# LiFePO4 preset: V-min 2900, V-bal 3400, V-max 3700, T-min charge 2.0, T-min discharge -20.0,
# T-max 55.0 degC, 100 Ah (5 % = 5000 mA), charge restart 90 %, discharge restart 10 %.
GOOD = {"min_mv": 3300, "max_mv": 3300, "temp_ok": True, "min_t": 250, "max_t": 250,
        "soc_c": 5000, "current_ma": 0}


def limits(mode=settings.NORMAL):
    s = settings.preset(settings.LIFEPO4)
    s.mode = mode
    return Limits(s)


def step(r, lim, cycles=1, dt_ms=1000, **over):
    v = dict(GOOD)
    v.update(over)
    for _ in range(cycles):
        r.update(lim, v["min_mv"], v["max_mv"], v["temp_ok"], v["min_t"], v["max_t"],
                 v["soc_c"], v["current_ma"], dt_ms)
    return r


def both_on(lim):
    r = Relays()
    step(r, lim, ENABLE_SAMPLES)
    assert r.charge_on and r.load_on
    return r


# (name, overrides, normal: charge on, load on, critical: charge on, load on) - from off
ENABLE_ROWS = (
    ("all good", {}, True, True, True, True),
    ("a cell at V-balance", {"max_mv": 3400}, False, True, True, True),
    ("a cell just below V-balance", {"max_mv": 3399}, True, True, True, True),
    ("a cell at V-max", {"max_mv": 3700}, False, True, False, True),
    ("a cell just below V-max", {"max_mv": 3699}, False, True, True, True),
    ("SoC at charge restart", {"soc_c": 9000}, False, True, True, True),
    ("SoC just below charge restart", {"soc_c": 8999}, True, True, True, True),
    ("a cell at V-min", {"min_mv": 2900}, True, False, True, False),
    ("a cell just above V-min", {"min_mv": 2901}, True, True, True, True),
    ("SoC below discharge restart", {"soc_c": 999}, True, False, True, True),
    ("SoC at discharge restart", {"soc_c": 1000}, True, True, True, True),
    ("T at T-min charge", {"min_t": 20}, False, True, False, True),
    ("T just above T-min charge", {"min_t": 21}, True, True, True, True),
    ("T at T-min discharge", {"min_t": -200}, False, False, False, False),
    ("T just above T-min discharge", {"min_t": -199}, False, True, False, True),
    ("T at T-max", {"max_t": 550}, False, False, False, False),
    ("T just below T-max", {"max_t": 549}, True, True, True, True),
    ("no valid temperature", {"temp_ok": False}, False, False, False, False),
)


def test_enable_rows_both_modes():
    for name, over, n_c, n_l, c_c, c_l in ENABLE_ROWS:
        for mode, want_c, want_l in ((settings.NORMAL, n_c, n_l), (settings.CRITICAL, c_c, c_l)):
            r = Relays()
            step(r, limits(mode), ENABLE_SAMPLES + 2, **over)
            assert (r.charge_on, r.load_on) == (want_c, want_l), (name, mode)


def test_enable_needs_consecutive_samples():
    r = Relays()
    lim = limits()
    step(r, lim, ENABLE_SAMPLES - 1)
    assert not r.charge_on and not r.load_on
    step(r, lim, 1, max_t=600)            # one bad sample restarts the count
    step(r, lim, ENABLE_SAMPLES - 1)
    assert not r.charge_on
    step(r, lim, 1)
    assert r.charge_on and r.load_on and r.changed


# (name, overrides, samples until off or None = stays on; normal charge, normal load,
#  critical charge, critical load) - from both on
DISABLE_ROWS = (
    ("a cell at V-max", {"max_mv": 3700}, LIMIT_SAMPLES, None, LIMIT_SAMPLES, None),
    ("a cell above V-max", {"max_mv": 3900}, LIMIT_SAMPLES, None, LIMIT_SAMPLES, None),
    ("all cells at V-balance, 5 % charge", {"min_mv": 3400, "max_mv": 3450, "current_ma": 5000},
     TRIP_SAMPLES, None, None, None),
    ("all cells at V-balance, charging hard", {"min_mv": 3400, "max_mv": 3450, "current_ma": 5001},
     None, None, None, None),
    ("all cells at V-balance, discharging", {"min_mv": 3400, "max_mv": 3450, "current_ma": -20000},
     TRIP_SAMPLES, None, None, None),
    ("one cell below V-balance", {"min_mv": 3399, "max_mv": 3450}, None, None, None, None),
    ("a cell at V-min", {"min_mv": 2900}, None, LIMIT_SAMPLES, None, LIMIT_SAMPLES),
    ("a cell below V-min", {"min_mv": 2500}, None, LIMIT_SAMPLES, None, LIMIT_SAMPLES),
    ("T below T-min charge", {"min_t": 19}, TRIP_SAMPLES, None, TRIP_SAMPLES, None),
    ("T at T-min charge", {"min_t": 20}, None, None, None, None),
    ("T below T-min discharge", {"min_t": -201}, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES),
    ("T at T-min discharge", {"min_t": -200}, TRIP_SAMPLES, None, TRIP_SAMPLES, None),
    ("T above T-max", {"max_t": 551}, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES),
    ("T at T-max", {"max_t": 550}, None, None, None, None),
    ("temperatures lost", {"temp_ok": False}, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES, TRIP_SAMPLES),
    ("SoC above charge restart (not an off condition)", {"soc_c": 9900}, None, None, None, None),
    ("SoC below discharge restart (not an off condition)", {"soc_c": 0}, None, None, None, None),
)


def _samples_until_off(mode, over, which):
    lim = limits(mode)
    r = both_on(lim)
    for k in range(1, TRIP_SAMPLES + 3):
        step(r, lim, 1, **over)
        if not (r.charge_on if which == "c" else r.load_on):
            return k
    return None


def test_disable_rows_both_modes():
    for name, over, n_c, n_l, c_c, c_l in DISABLE_ROWS:
        assert _samples_until_off(settings.NORMAL, over, "c") == n_c, (name, "normal charge")
        assert _samples_until_off(settings.NORMAL, over, "l") == n_l, (name, "normal load")
        assert _samples_until_off(settings.CRITICAL, over, "c") == c_c, (name, "critical charge")
        assert _samples_until_off(settings.CRITICAL, over, "l") == c_l, (name, "critical load")


def test_no_cell_communication_switches_both_off_at_once():
    for mode in (settings.NORMAL, settings.CRITICAL):
        r = both_on(limits(mode))
        assert r.force_off()
        assert not r.charge_on and not r.load_on and r.changed
        assert not r.force_off()               # already off: no change reported
        step(r, limits(mode), ENABLE_SAMPLES)  # communication back: on again, no hold-off
        assert r.charge_on and r.load_on


def test_charge_restart_hysteresis_normal_mode():
    lim = limits()
    r = both_on(lim)
    step(r, lim, TRIP_SAMPLES, min_mv=3420, max_mv=3450, current_ma=1000, soc_c=10000)  # full
    assert not r.charge_on and r.load_on
    # cells relax below V-balance, SoC still at / above charge restart: stays off
    for soc in (10000, 9500, 9001, 9000):
        step(r, lim, ENABLE_SAMPLES + 1, soc_c=soc, current_ma=-3000)
        assert not r.charge_on, soc
    step(r, lim, ENABLE_SAMPLES, soc_c=8999, current_ma=-3000)
    assert r.charge_on
    # but a cell still >= V-balance blocks the restart even at low SoC
    r = Relays()
    step(r, lim, ENABLE_SAMPLES + 2, soc_c=5000, min_mv=3300, max_mv=3400)
    assert not r.charge_on


def test_discharge_restart_hysteresis_normal_mode():
    lim = limits()
    r = both_on(lim)
    step(r, lim, LIMIT_SAMPLES, min_mv=2850, soc_c=300)
    assert not r.load_on and r.charge_on
    step(r, lim, RESTART_DWELL_MS // 1000, min_mv=3100, soc_c=300)       # voltage recovered, SoC low: stays off
    assert not r.load_on
    step(r, lim, 5, min_mv=3100, soc_c=999)
    assert not r.load_on
    step(r, lim, ENABLE_SAMPLES, min_mv=3100, soc_c=1000)
    assert r.load_on


def test_critical_mode_ignores_soc_and_balance():
    lim = limits(settings.CRITICAL)
    r = both_on(lim)
    step(r, lim, 10, min_mv=3450, max_mv=3500, soc_c=10000, current_ma=0)
    assert r.charge_on and r.load_on
    step(r, lim, 10, min_mv=3000, soc_c=0)
    assert r.load_on


def test_hold_off_after_voltage_trip():
    """A V-max / V-min trip latches: back on only after the restart hysteresis (2 %) held for
    the dwell (RESTART_DWELL_MS) without a break; just below the limit is not enough."""
    lim = limits(settings.CRITICAL)
    assert lim.restart_hyst_mv == 74 and lim.restart_hyst_mv_min == 58
    r = both_on(lim)
    step(r, lim, 1, max_mv=3700)                        # the first sample at V-max trips
    assert not r.charge_on and r.vmax_hold and r.latch_changed
    step(r, lim, 10 * RETRY_MS // 1000, max_mv=3690)    # relaxed below V-max: no chatter
    assert not r.charge_on
    dwell = RESTART_DWELL_MS // 1000
    step(r, lim, dwell - 1, max_mv=3626)
    step(r, lim, 1, max_mv=3640)                        # back above the hysteresis: dwell restarts
    step(r, lim, dwell - 1, max_mv=3626)
    assert not r.charge_on and r.vmax_hold
    step(r, lim, 1 + ENABLE_SAMPLES, max_mv=3626)
    assert r.charge_on and not r.vmax_hold
    # load: same after V-min
    step(r, lim, LIMIT_SAMPLES, min_mv=2900)
    assert not r.load_on and r.vmin_hold
    step(r, lim, dwell, min_mv=2950)                    # inside the hysteresis (2958)
    assert not r.load_on
    step(r, lim, dwell + ENABLE_SAMPLES, min_mv=2958)
    assert r.load_on and not r.vmin_hold


def test_an_isolated_sample_over_a_limit_trips_and_latches():
    """No second sample in the pack brain (the burst debounced it): an isolated reading at
    V-max / V-min opens the relay and the latch holds it open when the next one is fine."""
    lim = limits()
    r = both_on(lim)
    step(r, lim, 1, max_mv=3700, min_mv=2900)
    step(r, lim, 20)
    assert not r.charge_on and not r.load_on and r.vmax_hold and r.vmin_hold


def test_latches_round_trip_and_deep_discharge():
    lim = limits()
    r = both_on(lim)
    step(r, lim, LIMIT_SAMPLES, min_mv=1990, soc_c=0)
    r.set_empty()                        # the pack brain's empty recalibration
    assert r.deep and r.empty and r.vmin_hold and not r.load_on and r.charge_on
    bits = r.latches()
    fresh = Relays()
    fresh.set_latches(bits)
    assert fresh.latches() == bits == 14
    step(fresh, lim, ENABLE_SAMPLES + 2, min_mv=2880, soc_c=2000)
    assert fresh.charge_on and not fresh.load_on and fresh.deep   # charging allowed, load not
    step(fresh, lim, 1, min_mv=3100, soc_c=2000)
    assert not fresh.deep and not fresh.load_on                     # dwell of the V-min latch
    step(fresh, lim, RESTART_DWELL_MS // 1000 + ENABLE_SAMPLES, min_mv=3100, soc_c=2000)
    assert fresh.load_on and fresh.latches() == 0


def test_temperature_sensor_fault_is_worst_case_for_both_relays():
    for mode in (settings.NORMAL, settings.CRITICAL):
        lim = limits(mode)
        r = both_on(lim)
        for _ in range(TRIP_SAMPLES):
            r.update(lim, 3300, 3300, True, 250, 250, 5000, 0, 1000, True)
        assert not r.charge_on and not r.load_on
        for _ in range(RETRY_MS // 1000 + ENABLE_SAMPLES):
            r.update(lim, 3300, 3300, True, 250, 250, 5000, 0, 1000, True)
        assert not r.charge_on and not r.load_on          # stays open while the fault lasts
        step(r, lim, ENABLE_SAMPLES)
        assert r.charge_on and r.load_on


def test_hold_off_after_temperature_trip_but_not_after_full():
    lim = limits()
    r = both_on(lim)
    step(r, lim, TRIP_SAMPLES, max_t=600)
    assert not r.charge_on and not r.load_on
    step(r, lim, 10, max_t=500)
    assert not r.charge_on and not r.load_on
    step(r, lim, RETRY_MS // 1000, max_t=500)
    assert r.charge_on and r.load_on


def test_all_temperature_limits_each_preset():
    for chem in (settings.LIFEPO4, settings.LTO, settings.NMC, settings.NCA):
        s = settings.preset(chem)
        s.mode = settings.CRITICAL
        lim = Limits(s)
        mid_mv = (s.vmin_mv + s.vmax_mv) // 2
        base = {"min_mv": mid_mv, "max_mv": mid_mv}
        cases = (
            (s.tmin_charge_dc + 1, 250, True, True),
            (s.tmin_charge_dc - 1, 250, False, s.tmin_charge_dc - 1 > s.tmin_discharge_dc),
            (s.tmin_discharge_dc - 1, 250, False, False),
            (250, s.tmax_dc - 1, True, True),
            (250, s.tmax_dc + 1, False, False),
        )
        for min_t, max_t, want_c, want_l in cases:
            r = Relays()
            step(r, lim, ENABLE_SAMPLES + 1, min_t=min_t, max_t=max_t, **base)
            assert (r.charge_on, r.load_on) == (want_c, want_l), (chem, min_t, max_t)


def test_limits_clamped_to_absolute_limits():
    s = settings.preset(settings.LIFEPO4)
    s.vmax_mv = 4800            # valid for the settings file, far beyond LiFePO4
    s.vbal_mv = 4700
    s.tmax_dc = 850
    s.tmin_charge_dc = -300     # charging LiFePO4 at -30 degC: refused
    lim = Limits(s)
    assert lim.vmax_mv == 4000 and lim.vbal_mv == 3990
    assert lim.tmax_dc == relays.ABS_TMAX_DC and lim.tmin_charge_dc == 0
    lto = settings.preset(settings.LTO)
    assert Limits(lto).tmin_charge_dc == lto.tmin_charge_dc   # LTO may charge below 0 degC
    nmc = settings.preset(settings.NMC)
    nmc.vmin_mv = 1600
    assert Limits(nmc).vmin_mv == 2500
    r = Relays()
    step(r, lim, ENABLE_SAMPLES + 1, max_mv=4000)
    assert not r.charge_on


def test_relay_leds_flash_every_5_s_while_on():
    leds = RelayLeds()
    lit = []
    for _ in range(50):
        leds.update(True, False, 100)
        lit.append(leds.charge_led)
        assert not leds.load_led
    assert lit.count(True) == 1 and lit.index(True) == 49
    for _ in range(20):
        leds.update(False, True, 1000)
        assert not leds.charge_led
    leds2 = RelayLeds()
    ons = 0
    for _ in range(20):
        leds2.update(True, True, 1000)
        ons += leds2.charge_led and leds2.load_led
    assert ons == 4


def test_relays_allocate_nothing():
    lim = limits()
    r = Relays()

    def cycle():
        r.update(lim, 3300, 3300, True, 250, 250, 5000, 0, 1000)
        r.update(lim, 3300, 3700, True, 250, 250, 5000, 0, 1000)
        r.force_off()
    assert no_alloc(cycle)


def test_vmin_trip_waits_for_charge_even_with_discharge_restart_zero():
    # discharge restart 0 %: "SoC >= 0" is always true, so the cells recovering above V-min after
    # the trip re-closed the load every RETRY_MS at an empty pack; now it needs 1 % counted back
    s = settings.preset(settings.LIFEPO4)
    s.discharge_restart_pct = 0
    lim = Limits(s)
    assert lim.empty_cap_c == 0 and lim.empty_restart_c == 100
    r = both_on(lim)
    step(r, lim, LIMIT_SAMPLES, min_mv=2900, soc_c=0)
    r.set_empty()                        # the pack brain's empty recalibration
    assert not r.load_on and r.empty
    step(r, lim, RESTART_DWELL_MS // 1000, min_mv=3050, soc_c=0)     # ten hold-offs and the dwell later
    assert not r.load_on
    step(r, lim, 5, min_mv=3050, soc_c=99)
    assert not r.load_on
    step(r, lim, ENABLE_SAMPLES, min_mv=3050, soc_c=100)
    assert r.load_on and not r.empty


def test_empty_limits_follow_discharge_restart():
    lim = limits()                       # preset: discharge restart 10 %
    assert lim.empty_cap_c == 900 and lim.empty_restart_c == 1000
    r = both_on(lim)
    step(r, lim, LIMIT_SAMPLES, min_mv=2880, soc_c=lim.empty_cap_c)
    r.set_empty()
    step(r, lim, RESTART_DWELL_MS // 1000, min_mv=3100, soc_c=999)
    assert not r.load_on
    step(r, lim, ENABLE_SAMPLES, min_mv=3100, soc_c=1000)
    assert r.load_on
    # critical mode: the manual's table, V-min then the V-min latch only (combined wiring)
    lim = limits(settings.CRITICAL)
    r = both_on(lim)
    step(r, lim, LIMIT_SAMPLES, min_mv=2900, soc_c=0)
    assert not r.load_on and not r.empty
    step(r, lim, RESTART_DWELL_MS // 1000 + ENABLE_SAMPLES, min_mv=3000, soc_c=0)
    assert r.load_on


def test_vmax_trips_on_the_first_sample_that_carries_it():
    """Issue 12: the debounce lives in the cell board's burst (core.sampling), so the frame
    that carries a crossing opens the relay; the sample before, 1 mV under, does not."""
    assert LIMIT_SAMPLES == 1
    for mode in (settings.NORMAL, settings.CRITICAL):
        lim = limits(mode)
        r = both_on(lim)
        step(r, lim, 1, max_mv=lim.vmax_mv - 1, min_mv=3300)
        assert r.charge_on, mode
        step(r, lim, 1, max_mv=lim.vmax_mv, min_mv=3300)
        assert not r.charge_on and r.vmax_hold, mode
        r = both_on(lim)
        step(r, lim, 1, min_mv=lim.vmin_mv)
        assert not r.load_on and r.vmin_hold, mode
