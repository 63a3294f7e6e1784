"""The virtual pack on the micropython engine: every board's role code under the MicroPython
Unix port (sim/mp_board.py: each board its image and its hal.loop.Loop), judged on the trace exactly like the cpython engine."""
import os

import pytest

from sim import engine, mp_engine, scenario, trace

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim", "scenarios")

pytestmark = pytest.mark.skipif(not os.path.exists(mp_engine.MPY_DEFAULT),
                                reason="MicroPython Unix port not installed (.venv/bin/micropython)")


def _run(tmp_path, name, eng, duration=None):
    sc = scenario.load(os.path.join(SCEN, name + ".json"))
    path = str(tmp_path / ("%s.jsonl" % eng))
    ext = str(tmp_path / ("%s.bin" % eng))
    engine.Simulation(sc, engine=eng, trace=path, extout=ext).run(duration_s=duration)
    return trace.read(path), ext


def test_comm_loss_on_micropython_matches_the_manual(tmp_path):
    (header, states, _), ext = _run(tmp_path, "comm_loss", "micropython")
    assert header["engine"] == "micropython"
    at = {r["t"]: r for r in states}
    timeout_s = header["settings"]["comm_timeout_cycles"]
    for t0, t1 in ((100, 200), (300, 400)):
        assert at[t0 - 1]["charge_allowed"] and at[t0 - 1]["load_allowed"]
        cut = [at[t] for t in range(t0 + timeout_s + 1, t1)]
        assert not any(r["charge_allowed"] or r["load_allowed"] for r in cut)
        assert all("comm_lost" in r["alarms"] for r in cut)
    # the first loss recovers; the second within 10 minutes holds the relays open (issue 20)
    assert at[220]["charge_allowed"] and at[220]["load_allowed"]
    held = [at[t] for t in range(400 + 20, 500)]
    assert not any(r["charge_allowed"] or r["load_allowed"] for r in held)
    assert all("link_quality" in r["alarms"] and r["powered"] == [True] * 5 for r in held)
    assert at[150]["break_position"] == 3
    assert all(abs(v - t) < 0.03 for v, t in zip(at[90]["v_meas"], at[90]["v_true"], strict=True))
    assert os.path.getsize(ext) > 0 and os.path.getsize(ext) % 58 == 0


def test_micropython_engine_agrees_with_cpython_on_relays(tmp_path):
    (_, mp_states, _), _ = _run(tmp_path, "temperature", "micropython", duration=400)
    (_, cp_states, _), _ = _run(tmp_path, "temperature", "cpython", duration=400)
    mp = [(r["charge_allowed"], r["load_allowed"]) for r in mp_states]
    cp = [(r["charge_allowed"], r["load_allowed"]) for r in cp_states]
    differ = sum(1 for a, b in zip(mp, cp, strict=True) if a != b)
    assert differ <= 3            # same decisions; at most an edge a cycle apart (board phases)
    assert not mp[200][0] and not mp[200][1] and mp[350] == (True, True)


def test_micropython_engine_runs_the_built_images(tmp_path):
    """Each board runs its image from tools/build_images.py: every firmware module the boards
    loaded is a .mpy file (board.py excepted: the image carries the board definition as source)
    from that role's image, byte-identical to build/<board>/<role>/."""
    sc = scenario.load(os.path.join(SCEN, "comm_loss.json"))
    sim = engine.Simulation(sc, engine="micropython", workdir=str(tmp_path))
    try:
        fw = sim.fw
        assert fw.images == {"begin": "pico/begin", "between": "pico/between", "end": "pico_w/end"}
        assert "pico_w/end" in fw.link
        for role, board_role in fw.images.items():
            files = fw.files[role]
            assert "roles." + role in files and "roles.cell_board" in files and "core.frame" in files
            image = os.path.join(str(tmp_path), "images", role)
            built = os.path.join(os.path.dirname(SCEN), "..", "build", board_role)
            for mod, path in files.items():
                assert path.startswith(image + os.sep), (role, mod, path)
                if mod == "board":
                    assert path.endswith("board.py")
                    continue
                assert path.endswith(".mpy"), (role, mod, path)
                rel = os.path.relpath(path, image)
                with open(path, "rb") as a, open(os.path.join(built, rel), "rb") as b:
                    assert a.read() == b.read(), rel
        # each image only holds what its role needs: no brain on a Between board
        assert "core.brain" in fw.files["end"] and "core.brain" not in fw.files["between"]
        assert "roles.end" not in fw.files["begin"]
        sim.run(duration_s=20)
        assert sim.last_rec["comm_ok"] and sim.last_rec["charge_allowed"]
    finally:
        sim.close()


def test_image_boards_per_role():
    assert mp_engine.image_boards("pico", ["begin", "between", "end"]) == \
        {"begin": "pico", "between": "pico", "end": "pico_w"}
    assert mp_engine.image_boards("esp32c3_devkitm", ["begin", "between", "end"]) == \
        {"begin": "pico", "between": "esp32c3_devkitm", "end": "pico_w"}
    assert mp_engine.image_boards("esp32_devkitc", ["end"]) == {"end": "esp32_devkitc"}


def test_reset_on_micropython_sets_outputs_safe_at_once_and_drops_app_sessions(tmp_path):
    """sim.fw.reset(i, cause) at any instant: the host side's outputs go safe before the next
    cycle, the End board's app handler is a new one (clients dropped), the cause is the one given."""
    sc = scenario.load({"duration_s": 30, "pack": {"cells": 3, "capacity_ah": 40}, "charger": {"max_a": 5}})
    sim = engine.Simulation(sc, engine="micropython", workdir=str(tmp_path))
    def until(t_s):                 # (Simulation.run closes the engine at its end)
        while sim.t_ms < t_s * 1000:
            sim.step()
    try:
        until(12)
        assert sim.relays() == (True, True)
        app = sim.fw.app()
        sim.fw.reset(2, "soft")
        assert sim.relays() == (False, False)
        assert sim.fw.app() is not app and sim.end.reset_cause() == "soft"
        sim.step()
        assert sim.relays() == (False, False)           # not before ENABLE_SAMPLES good cycles
        sim.fw.power(1, False)
        sim.fw.reset(1, "watchdog")                     # a board without power stays off
        assert sim.boards[1].reset_cause() == "power"
        sim.fw.power(1, True)
        until(30)
        assert sim.last_rec["charge_allowed"] and sim.last_rec["load_allowed"]
        assert sim.last_rec["status"] is not None and len(sim.last_rec["status"]) == 3
    finally:
        sim.close()


def test_low_balance_switch_never_drains_on_micropython(tmp_path):
    """Issue 13, item 3 on the micropython engine (the built images): no board balances with a
    2.5 V switch on LiFePO4, the End board raises balance_switch_invalid at once."""
    from test_sim_scenarios import _low_switch_checks
    (header, states, _), _ = _run(tmp_path, "low_balance_switch", "micropython", duration=300)
    _low_switch_checks(header, states)


@pytest.mark.parametrize("eng", ["cpython", "micropython"])
def test_settings_event_with_two_fields_applies_both(tmp_path, eng):
    sc = scenario.load({"name": "two_fields", "duration_s": 8,
                        "pack": {"cells": 3, "chemistry": "lifepo4", "capacity_ah": 40, "soc_pct": 50},
                        "events": [{"t": 3, "settings": {"vmax_mv": 3620, "capacity_ah": 55}}]})
    path = str(tmp_path / "t.jsonl")
    engine.Simulation(sc, engine=eng, trace=path).run()
    header, _, _ = trace.read(path)
    with open(path) as f:
        changes = [ln for ln in f if '"settings"' in ln]
    assert len(changes) >= 2 and header["settings"]["vmax_mv"] != 3620
    assert '"vmax_mv":3620' in changes[-1] and '"capacity_ah":55' in changes[-1], changes[-1]


def test_micropython_engine_boards_light_sleep_between_frames_and_lose_none(tmp_path):
    """The images' own hal.loop.Loop and hal.sleep.LightSleep decide; a board that sleeps is
    deaf (as on the cpython engine): Begin and the Betweens sleep every period, the End (app
    transports) never, and no character reaches a sleeping board."""
    sc = scenario.load({"pack": {"cells": 4, "soc_pct": 50}, "duration_s": 30, "mode": "critical"})
    path = str(tmp_path / "t.jsonl")
    sim = engine.Simulation(sc, engine="micropython", trace=path, workdir=str(tmp_path / "w"))
    sim.run()
    fw = sim.fw
    assert min(fw.light_sleeps[:3]) >= 20 and fw.light_sleeps[3] == 0, fw.light_sleeps
    assert sum(fw.lost_asleep) == 0, fw.lost_asleep
    _, states, _ = trace.read(path)
    assert all(r["comm_ok"] for r in states[3:])
