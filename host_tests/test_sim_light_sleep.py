"""Light sleep in the virtual pack (issue 12 item 6): a board that light-sleeps is deaf (the
characters reaching it are lost), its time asleep is counted and each wake-up costs board time
(sim/roles_chain.py, hal/sleep.py, roles.FrameClock.sleep_budget_ms)."""
from sim import paths  # noqa: F401
from sim import engine, scenario

COSTS = {"mode": "fixed", "cycle_ms": {"begin": 20, "between": 4, "end": 20}, "poll_us_per_char": 100}


def _sim(cells=16, seconds=30, sleep=True, link=None, board="pico", seed=1):
    lk = {"light_sleep": sleep}
    lk.update(link or {})
    sc = scenario.load({"pack": {"cells": cells, "soc_pct": 50}, "duration_s": seconds, "board": board,
                        "mode": "critical", "link": lk, "board_time": COSTS})
    return engine.Simulation(sc, seed=seed)


def _run(sim, at=None):
    recs = []

    def on(s, r):
        recs.append(r)
        if at is not None and s.t_ms in at:
            at[s.t_ms](s)
    try:
        sim.run(on_second=on)
    finally:
        sim.close()
    return recs


def test_between_sleeps_most_of_each_period_and_no_frame_is_lost():
    awake = _sim(sleep=False)
    recs0 = _run(awake)
    asleep = _sim(sleep=True)
    recs1 = _run(asleep)
    c0 = awake.fw.chain
    c1 = asleep.fw.chain
    assert c1.roles[-1].complete_frames == c0.roles[-1].complete_frames >= 27
    assert sum(c1.lost_asleep) == 0
    assert all(r["comm_ok"] for r in recs1[3:]) and all(r["comm_ok"] for r in recs0[3:])
    span = 30e9
    betweens = [c1.asleep_ns[k] / span for k in range(1, 15)]
    assert min(betweens) > 0.7, betweens          # boot (first 2-3 s) awake included
    assert c1.asleep_ns[0] / span > 0.7            # Begin between its own frames
    assert c1.asleep_ns[15] == 0                   # End serves the app: never
    # every sleep ends in a wake-up that costs board time
    assert all(c1.sleep_wake_ns[k] == c1.light_sleeps[k] * 2000000 for k in range(15))
    assert sum(c0.asleep_ns) == 0 and sum(c0.light_sleeps) == 0


def test_a_begin_clock_3_percent_fast_loses_no_frame():
    sim = _sim(link={"clock_pct": {"1": 3.0}})
    recs = _run(sim)
    chain = sim.fw.chain
    assert sum(chain.lost_asleep) == 0
    assert all(r["comm_ok"] for r in recs[3:])
    assert min(chain.asleep_ns[1:15]) / 30e9 > 0.6


def _restart_begin(s):
    s.fw.chain.reset(0, "watchdog")      # Begin starts again at once: a new phase


def test_a_frame_that_comes_early_costs_at_most_one_frame_and_never_drops_comm():
    """Begin restarts 400 ms into a period: its next frame comes while every Between sleeps.
    The frame is lost (the sleeping boards are deaf), the boards stay awake for the next one
    (the slot had no good frame) and sleep again once in step."""
    for phase_s in (10000, 17000):
        sim = _sim(seconds=30)
        chain = sim.fw.chain
        done = {}

        def restart(s, t=phase_s, done=done):
            s.fw.chain.sched.at(s.fw.chain.sched.now + 400 * 1000000, lambda _a: _restart_begin(s))
            done["before"] = s.fw.chain.roles[-1].complete_frames
        recs = _run(sim, at={phase_s: restart})
        after = chain.roles[-1].complete_frames
        lost = (30 - phase_s // 1000) - (after - done["before"])
        assert lost <= 2, lost     # the frame cut by the restart itself, and at most one more
        assert sum(chain.lost_asleep) > 0          # it really came while they slept
        assert all(r["comm_ok"] for r in recs[3:]), [i for i, r in enumerate(recs) if not r["comm_ok"]]
        assert all(r["charge_allowed"] and r["load_allowed"] for r in recs[5:])


def test_esp32_wake_on_link_ends_the_sleep_at_the_first_character():
    sim = _sim(cells=4, seconds=20, board="esp32_devkitc", link={"phase_ms": {"2": 500, "3": 500}})
    _run(sim, at={8000: lambda s: s.fw.chain.sched.at(s.fw.chain.sched.now + 300 * 1000000,
                                                         lambda _a: _restart_begin(s))})
    chain = sim.fw.chain
    assert sum(chain.early_wakes) >= 1
    assert max(chain.asleep_ns[1:3]) > 0
