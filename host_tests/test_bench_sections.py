"""make bench sections other than the link (issue 9): each run with tiny parameters, checking the
JSON keys the issue names and that the figures are sane (measured, not constants)."""
import pytest

from bench import __main__ as bench_main
from bench import accuracy, images, link, memory, reaction


def test_sections_exclude_the_micropython_probe():
    names = bench_main.sections()
    assert "mp_probe" not in names
    for n in ("accuracy", "images", "link", "memory", "reaction"):
        assert n in names


def test_link_comparison_figures():
    for n in (4, 16, 64, 255):
        c = link.compare(n)
        assert c["smartbms123"]["latency_bits"] == (n - 1) * (58 * 10 + link.PROC_BITS)
        assert c["smartbms123"]["detail_cycles"] == n
        assert c["floor"]["latency_bits"] == 350 + n - 2
        assert c["store_forward"]["latency_bits"] > c["floor"]["latency_bits"]
        assert c["store_forward"]["last_frame_bytes"] == 38 + 5 * n
    assert link.compare(4)["store_forward"]["fits_cycle"] and not link.compare(64)["store_forward"]["fits_cycle"]
    assert link.compare(255)["floor"]["detail_cycles"] == 2
    m = link.measure(16)
    c = link.compare(16)
    # the measured chain sits between the floor and the other schemes
    assert c["floor"]["latency_bits"] <= m["aggregates_latency_bits"] < c["smartbms123"]["latency_bits"]
    assert m["aggregates_latency_bits"] < c["store_forward"]["latency_bits"]


def test_security_guesses_per_day_from_the_shipped_code():
    """Issue 21: the bench's guesses/day over Bluetooth and through the page (virtual time)."""
    from bench import security
    res = {}
    security.run(res, days=2)
    s = res["security"]
    assert s["ble"]["per_day"] <= 26 and s["ble"]["first_day"] <= 45       # was 2880 a day
    assert s["page"]["per_day"] <= 26 and s["page"]["logins_posted_per_day"] <= 100
    assert s["ble"]["pin6_expected_years"] > 50
    assert s["owner_6h_once_a_minute"]["with_button"] == 360
    rows = dict(bench_main.summary_rows(res))
    assert "password guesses per day, through the dashboard page" in rows


def test_memory_and_cpu_per_role():
    res = {}
    memory.run(res, cycles=60)
    for role in ("begin", "between", "end"):
        m = res["memory"][role]
        assert 10000 < m["heap_after_boot_bytes"] < 400000
        assert m["alloc_per_cycle_bytes"] == 0        # steady state allocates nothing
        assert m["heap_lock_steady_ok"] is True
        assert 0 < m["cpu_ms_per_cycle"] < 100
        assert 0 < m["awake_fraction"] < 1
        assert m["awake_fraction"] <= m["awake_fraction_board_est"] < 1
    # Begin and Between allocate nothing even while starting; End saves its state once
    assert res["memory"]["begin"]["first_alloc"] is None
    assert res["memory"]["between"]["first_alloc"] is None
    assert res["memory"]["end"]["relays_closed"] == [True, True]
    rows = dict(bench_main.summary_rows(res))
    assert "end: heap after boot / alloc per cycle" in rows


def test_wire_time_depends_on_the_frame():
    assert memory.wire_ms("between", 118) > memory.wire_ms("end", 118)
    assert abs(memory.wire_ms("begin", 96, baud=9600) - 100.0) < 1e-9


def test_image_sizes_from_a_fresh_build():
    res = {}
    images.run(res, boards=["pico_w"], roles=["between"])
    per = res["images"]["armv6m"]
    assert list(per) == ["between"]
    assert per["between"]["bytes"] > per["between"]["mpy_bytes"] > 10000
    assert per["between"]["board"] == "pico_w" and per["between"]["files"] > 3
    heap = per["between"]["heap"]                     # tools/role_heap.py, plain and --romfs
    assert heap["plain"]["heap_bytes"] > heap["romfs"]["heap_bytes"] > heap["romfs"]["objects_bytes"] > 1000
    assert heap["romfs"]["rom_modules"] == heap["romfs"]["modules"] - 1 and heap["plain"]["rom_modules"] == 0


@pytest.mark.parametrize("kind", reaction.KINDS)
def test_reaction_trial_16_cells(kind):
    t = reaction.trial(16, kind, seed=3)
    if t == reaction.EARLY:
        # a slow ramp: the reading reached the limit within the ADC noise before the true
        # crossing and the relay opened first (safe; it depends on the noise drawn): another trial
        assert kind in reaction.RAMP_MARGIN_MV
        for seed in (4, 5, 6):
            t = reaction.trial(16, kind, seed=seed)
            if t != reaction.EARLY:
                break
    # at least the time to the next sample, at most sample + frame + comm timeout (1 s cycles)
    assert t is not None and 0 < t < 4000


def test_reaction_results_keys():
    res = {}
    reaction.run(res, sizes=(16,), trials=2, workers=1)
    cell = res["reaction"]["cells"]["16"]
    for key in ("vmax_to_charge_off_ms", "vmin_to_load_off_ms", "link_break_to_both_off_ms"):
        assert cell[key]["trials"] == 2 and cell[key]["missed"] == 0
        assert 0 < cell[key]["median"] <= cell[key]["worst"] < 4000


def test_accuracy_keys_and_sanity():
    res = {}
    accuracy.run(res, soc_days=2, bal_days=1, day_s=864, cells=3, soc_cells=2, workers=1)
    soc = res["soc"]
    assert 0 <= soc["rms_error_pct"] <= soc["max_error_pct"] < 10
    assert soc["recal"]["calibrated"] is True
    assert soc["no_recal"]["detail"]["calibrated"] is False
    assert soc["no_recal"]["max_error_pct"] >= 0
    # unknown start: the brain starts at 50 % (nothing saved) against a true 80 %; the full
    # recalibration brings it to the truth at the first full charge, the count alone only at
    # its 0 % floor once the pack has been run down (still off on day 2 here)
    u = soc["unknown_start"]
    assert u["recal"]["start_est_pct"] == 50.0 and u["recal"]["start_true_pct"] == 80
    assert abs(u["max_error_pct"] - 30) < 3                 # the start itself
    assert u["recal"]["first_recal_at_day"] is not None and u["recal"]["calibrated"] is True
    assert u["last_day_max_error_pct"] < 5
    assert u["no_recal"]["detail"]["calibrated"] is False
    assert u["no_recal"]["last_day_max_error_pct"] > max(5.0, 3 * u["last_day_max_error_pct"])
    assert u["no_recal"]["rms_error_pct"] > u["rms_error_pct"]
    assert abs(u["settled_at_day"] - u["recal"]["first_recal_at_day"]) <= 0.02     # settled by the recalibration
    assert u["settled_at_day"] + 0.3 < u["no_recal"]["settled_at_day"]
    bal = res["balance"]
    assert bal["balance_switch_mv"] > 0
    assert 0 <= bal["spread_mv_on"] < 1000 and 0 <= bal["spread_mv_off"] < 1000
