"""Host CLI and client against a local socket server wrapping the real AppProtocol, end to end
with the real pack brain: log in, read cells, change V-max, see the charge relay follow."""
import json
import os
import subprocess
import sys
import threading
import time

from cellchain import cli, client
from core import alarms, settings
from core.app_protocol import AppProtocol
from core.brain import PackBrain
from core.relays import RESTART_DWELL_MS
from test_app_protocol import ROUND_4S, Ctl, fill

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWNER = "135790"       # the owner's own password (the factory one must be changed first)


class BrainCtl(Ctl):
    """Controller with the real pack brain: settings changes reach it like on the End board."""

    def __init__(self, cells=4):
        super().__init__(cells)
        self.snap.cells_min, self.snap.cells_max = 2, 8
        self.snap.s1_ma, self.snap.s2_ma = 20000, 0   # charging hard: no "full" detection
        self.settings.mode = settings.CRITICAL        # charge on while all cells < V-max
        self.brain = PackBrain(self.settings, True)

    def apply_setting(self, name, value):
        msg = super().apply_setting(name, value)
        if msg is None:
            self.brain.set_settings(self.settings, True)
        return msg

    def cycle(self):
        self.brain.update(self.snap, 1000)


def serve(ctl, cycle_s=0.02, factory=False):
    if not factory:
        from core import password
        ctl.settings.pw_salt = "0011223344556677"
        ctl.settings.pw_hash = password.make_hash(ctl.settings.pw_salt, OWNER)
    app = AppProtocol(ctl)
    srv = client.serve_socket(app, "127.0.0.1", 0)
    lock = threading.Lock()
    srv.start_thread(cycle_s=cycle_s, on_cycle=getattr(ctl, "cycle", None), lock=lock)
    return srv, app, lock


def run(capsys, srv, *argv):
    pw = [] if "--password" in argv else ["--password", OWNER]
    code = cli.main(["--socket", "127.0.0.1:%d" % srv.port, "--timeout", "3"] + pw + list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_cells_settings_over_socket(capsys):
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    try:
        code, out, err = run(capsys, srv, "status")
        assert code == 0, err
        assert "cells      4   pack 14.000 V" in out
        assert "SoC        100.0 %" in out
        code, out, err = run(capsys, srv, "--json", "cells")
        cells = json.loads(out)
        assert [c["mv"] for c in cells] == [3500] * 4 and cells[0]["temp_dc"] == 240
        code, out, err = run(capsys, srv, "--json", "settings", "get")
        s = json.loads(out)
        assert s["vmax_mv"] == 3700 and s["name"] == "cellchain"
        code, out, err = run(capsys, srv, "settings", "get", "vbal_mv")
        assert out.strip() == "3400 mV"
        code, out, err = run(capsys, srv, "settings", "get")
        assert "tmin_charge_dc         20 (2.0 °C)" in out and "chemistry              1 (lifepo4)" in out
        assert "mode                   0 (normal)" in out and "capacity_ah            100 Ah" in out
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "3650")
        assert code == 0 and ctl.settings.vmax_mv == 3650
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "6000")
        assert code == 1 and "vmax_mv=6000: must be 1500..5000 mV" in err
        assert ctl.settings.vmax_mv == 3650
        # issue 13: in range for the field, out of range for LiFePO4 -> the reason, exit 1
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "5000")
        assert code == 1 and "refused: vmax_mv=5000: must be 3410..4000 mV" in err, err
        code, out, err = run(capsys, srv, "settings", "set", "tmax_dc", "850")
        assert code == 1 and "tmax_dc=850: must be -400..700" in err, err
        code, out, err = run(capsys, srv, "settings", "set", "comm_timeout_cycles", "30")
        assert code == 1 and "comm_timeout_cycles=30: must be 1..10 cycles" in err, err
        assert ctl.settings.vmax_mv == 3650 and ctl.settings.tmax_dc == 550
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "3660")
        assert code == 0 and out.strip() == "vmax_mv = 3660 mV"     # read back from the board
    finally:
        srv.close()


def test_wrong_password_and_password_change(capsys):
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    try:
        code, out, err = run(capsys, srv, "--password", "9999", "status")
        assert code == 1 and "login refused" in err          # docs: 1 = refused by the board
        code, out, err = run(capsys, srv, "--password", "9999", "version")
        assert code == 0 and "firmware 0.1.2" in out         # V@ and F? need no login
        code, out, err = run(capsys, srv, "password", "24681357")
        assert code == 0
        code, out, err = run(capsys, srv, "status")
        assert code == 1
        code, out, err = run(capsys, srv, "--password", "24681357", "alarms")
        assert code == 0 and "alarms 0000" in out
    finally:
        srv.close()


def test_mode_preset_calibrate_version(capsys):
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    try:
        assert run(capsys, srv, "mode", "critical")[0] == 0
        assert ctl.settings.mode == settings.CRITICAL
        code, out, err = run(capsys, srv, "preset", "nmc")       # a LiFePO4 pack: asks first
        assert code == 1 and "set up as lifepo4" in err and "--yes" in err
        assert ctl.settings.chemistry == settings.LIFEPO4
        assert run(capsys, srv, "preset", "lifepo4")[0] == 0     # the same chemistry: no question
        assert run(capsys, srv, "preset", "nmc", "--yes")[0] == 0
        assert ctl.settings.chemistry == settings.NMC
        assert run(capsys, srv, "calibrate")[0] == 0 and ctl.zeroed == 1
        code, out, err = run(capsys, srv, "version")
        assert code == 0 and "firmware 0.1.2" in out and "V@ 012_00_01_02_004_4A" in out
    finally:
        srv.close()


def test_watch_reads_rounds(capsys):
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    try:
        code, out, err = run(capsys, srv, "--json", "watch", "--rounds", "2")
        assert code == 0, err
        rounds = [json.loads(line) for line in out.strip().splitlines()]
        assert len(rounds) == 2
        r = rounds[1]
        assert [c["v"] for c in r["C"]] == [3.5] * 4
        assert r["U"]["pack_v"] == 14.0 and r["U"]["i_a"] == 1.0
        assert r["E"]["soc_pct"] == 100 and r["H"]["soh_pct"] == 95
        assert r["C"][0]["t_c"] == 24
        assert r["relays"] == {"charge": True, "load": True} and r["alarms"] == []
        code, out, err = run(capsys, srv, "watch", "--rounds", "1", "--json")   # --json after the command
        assert code == 0, err
        assert json.loads(out)["U"]["pack_v"] == 14.0
        code, out, err = run(capsys, srv, "watch", "--rounds", "1")
        pack, cells = out.strip().splitlines()
        assert "14.00 V  +1.00 A  SoC 100 %  cells 3.500..3.500 V  24..24 °C" in pack
        assert "charge ON load ON | alarms: none" in pack
        assert cells.split() == ["3.500B/24°C"] * 4          # the fake round: every cell balancing
    finally:
        srv.close()


def test_json_numbers_are_numbers_rounded_to_the_protocol_step(capsys):
    ctl = Ctl(4)
    fill(ctl.snap, 4, mv=3405)
    srv, app, lock = serve(ctl)
    try:
        st = json.loads(run(capsys, srv, "--json", "status")[1])
        assert st["pack_mv"] == 13620 and st["cells"] == 4 and isinstance(st["alarms"], int)
        r = json.loads(run(capsys, srv, "watch", "--json", "--rounds", "1")[1])
        assert [c["v"] for c in r["C"]] == [3.405] * 4 and r["U"]["pack_v"] == 13.62
        assert client.parse_data_line("U_0AF0_+0007_-0003_+000A")[1] == {
            "pack_v": 14.0, "i1_a": 0.35, "i_a": -0.15, "i2_a": 0.5}
    finally:
        srv.close()


def test_cells_show_status_names(capsys):
    ctl = Ctl(4)
    ctl.snap.cell_status[0] = 0x00
    ctl.snap.cell_status[1] = 0x21          # balancing + not calibrated
    ctl.snap.cell_status[2] = 0x02          # NTC fault: temperature X
    srv, app, lock = serve(ctl)
    try:
        code, out, err = run(capsys, srv, "cells")
        lines = out.strip().splitlines()
        assert lines[1].split()[-1] == "ok"
        assert lines[2].endswith("balancing, not calibrated")
        assert "--" in lines[3] and lines[3].endswith("ntc fault")
        cells = json.loads(run(capsys, srv, "--json", "cells")[1])
        assert cells[1]["flags"] == ["balancing", "not_calibrated"] and cells[2]["temp_dc"] is None
    finally:
        srv.close()


def test_scan_without_an_adapter_says_so(capsys, monkeypatch):
    def no_adapter(timeout_s):
        raise FileNotFoundError(2, "No such file or directory")
    monkeypatch.setattr(client, "scan", no_adapter)
    code = cli.main(["scan"])
    out, err = capsys.readouterr()
    assert code == 2 and "no Bluetooth adapter found" in err and "--serial" in err


def test_client_parses_exact_round():
    got = {}
    for line in ROUND_4S.decode().split("\r")[:-1]:
        tag, values = client.parse_data_line(line)
        got.setdefault(tag, []).append(values)
    assert len(got["C"]) == 4 and got["C"][3]["cell"] == 4 and got["C"][3]["count"] == 4
    assert got["V"][0]["vbal_v"] == 3.4 and got["T"][0]["max_c"] == 24
    assert got["M"][0]["time_to_go"] is None
    assert client.version_ok("012_00_01_02_004_4A")
    assert not client.version_ok("012_00_01_02_004_4B")
    assert client.parse_data_line("S:vmax_mv=3650") is None
    assert client.parse_data_line("U_XXXX_XXXXX_+0000_XXXXX")[1]["pack_v"] is None


def test_too_many_clients_refused():
    ctl = Ctl(4)
    app = AppProtocol(ctl, max_sessions=1)
    srv = client.serve_socket(app)
    srv.start_thread(cycle_s=0.05)
    try:
        a = client.Client(client.SocketTransport("127.0.0.1", srv.port), timeout_s=2)
        assert a.login("1234")
        b = client.SocketTransport("127.0.0.1", srv.port)
        data = b""
        end = time.monotonic() + 2
        while b"\r" not in data and time.monotonic() < end:
            try:
                data += b.read(0.2)
            except client.ProtocolError:
                break
        assert data.startswith(b"ERR:too many connections\rNA\r")
        b.close()
        a.close()
    finally:
        srv.close()


def test_end_to_end_vmax_change_switches_charge_relay(capsys):
    ctl = BrainCtl(4)
    srv, app, lock = serve(ctl)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if ctl.brain.charge_allowed:
                    break
            time.sleep(0.02)
        code, out, err = run(capsys, srv, "--json", "status")
        st = json.loads(out)
        assert st["charge"] == 1 and st["load"] == 1, st
        code, out, err = run(capsys, srv, "--json", "cells")
        assert [c["mv"] for c in json.loads(out)] == [3500] * 4
        # V-max below the cells' 3.500 V: the brain must stop charging
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "3450")
        assert code == 0, err
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if not ctl.brain.charge_allowed:
                    break
            time.sleep(0.02)
        code, out, err = run(capsys, srv, "--json", "status")
        st = json.loads(out)
        assert st["charge"] == 0 and st["load"] == 1, st
        assert "over_voltage" in st["alarm_names"]
        assert st["alarms"] & alarms.OVER_VOLTAGE
        # and back: V-max above the cells again, charging resumes
        assert run(capsys, srv, "settings", "set", "vmax_mv", "3650")[0] == 0
        with lock:
            fill(ctl.snap, 4, mv=3300)
            ctl.snap.s1_ma, ctl.snap.s2_ma = 20000, 0
            # the V-max trip latched: back only after the restart dwell below V-max - 2 %
            for _ in range(RESTART_DWELL_MS // 1000):
                ctl.brain.update(ctl.snap, 1000)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if ctl.brain.charge_allowed:
                    break
            time.sleep(0.02)
        assert ctl.brain.charge_allowed
    finally:
        srv.close()


def test_python_m_cellchain_entry_point():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    r = subprocess.run([sys.executable, "-m", "cellchain", "--help"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "watch" in r.stdout and "settings" in r.stdout
    r = subprocess.run([sys.executable, "-m", "cellchain", "--socket", "127.0.0.1:1", "status"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cellchain: board unreachable:" in r.stderr


def test_the_factory_password_must_be_changed_first(capsys):
    """Issue 21: the CLI refuses to work with the factory password 1234 until it is changed,
    to at least 6 digits."""
    ctl = Ctl(4)
    srv, app, lock = serve(ctl, factory=True)
    try:
        code, out, err = run(capsys, srv, "--password", "1234", "status")
        assert code == 1 and "factory password" in err and "password NEW" in err
        assert run(capsys, srv, "--password", "1234", "version")[0] == 0
        code, out, err = run(capsys, srv, "--password", "1234", "password", "5678")
        assert code == 1 and "6..16 digits" in err
        assert run(capsys, srv, "--password", "1234", "password", "24681357")[0] == 0
        code, out, err = run(capsys, srv, "--password", "24681357", "status")
        assert code == 0, err
    finally:
        srv.close()


def test_a_board_that_stops_answering_is_unreachable_not_a_refusal(capsys):
    """Issue 21: a lost board read as "login refused"; now exit 2 and "board unreachable"."""
    import socket
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)                       # accepts, never answers
    try:
        code = cli.main(["--socket", "127.0.0.1:%d" % lsn.getsockname()[1], "--timeout", "0.3",
                         "--password", OWNER, "status"])
        err = capsys.readouterr().err
        assert code == 2 and "board unreachable" in err and "refused" not in err
    finally:
        lsn.close()


def test_settings_set_chemistry_is_the_preset_and_asks_first(capsys):
    """Issue 20: `settings set chemistry 3` on a LiFePO4 pack was accepted silently; now it asks
    as `preset` does (refused without a terminal unless --yes) and applies the whole preset."""
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    try:
        before = ctl.settings.to_dict()
        code, out, err = run(capsys, srv, "settings", "set", "chemistry", "3")
        assert code == 1 and "chemistry is a preset" in err and "set up as lifepo4" in err and "--yes" in err
        code, out, err = run(capsys, srv, "settings", "set", "vmax_mv", "4200")
        assert code == 1 and "refused: vmax_mv=4200" in err, err
        assert ctl.settings.to_dict() == before
        code, out, err = run(capsys, srv, "settings", "set", "chemistry", "nmc", "--yes")
        assert code == 0, err
        s = ctl.settings
        assert (s.chemistry, s.vmin_mv, s.vmax_mv, s.tmax_dc) == (settings.NMC, 3490, 4150, 550)
        assert run(capsys, srv, "settings", "set", "chemistry", "7")[0] == 2
    finally:
        srv.close()


def test_status_says_unknown_not_a_partial_sum_and_cells_not_heard(capsys):
    """Issue 22: during a break `status` printed section A's running sum (9.902 V for a
    16.5 V pack) and `cells` printed unheard cells as "ok"."""
    ctl = Ctl(5)
    ctl.snap.hold()
    ctl.snap.comm_ok = False
    ctl.snap.cell_count = 3
    ctl.snap.pack_mv = 9902
    srv, app, lock = serve(ctl)
    try:
        code, out, err = run(capsys, srv, "status")
        assert code == 0, err
        assert "pack unknown   min unknown  max unknown" in out and "9.902" not in out
        code, out, err = run(capsys, srv, "--json", "status")
        assert json.loads(out)["pack_mv"] is None
        code, out, err = run(capsys, srv, "cells")
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) >= 5 and not any(ln.rstrip().endswith(" ok") for ln in lines), out
    finally:
        srv.close()


def test_settings_export_and_import_whole_file(capsys, tmp_path):
    """Issue 22: a backup before a firmware update. Export every setting, import it back; a
    file with one field out of range is refused whole (nothing written); a good file for
    another chemistry goes in in an order the board accepts."""
    from cellchain import settings_io
    ctl = Ctl(4)
    srv, app, lock = serve(ctl)
    f = tmp_path / "pack.json"
    try:
        code, out, err = run(capsys, srv, "settings", "export", str(f))
        assert code == 0, err
        saved = json.loads(f.read_text())
        assert saved["format"] == settings_io.FORMAT and saved["settings"]["vmax_mv"] == 3700
        assert "pw_hash" not in saved["settings"]
        before = ctl.settings.to_dict()
        bad = dict(saved["settings"], vmax_mv=3650, tmax_dc=850)      # one good change, one out of range
        f.write_text(json.dumps({"format": settings_io.FORMAT, "settings": bad}))
        code, out, err = run(capsys, srv, "settings", "import", str(f))
        assert code == 1 and "refused, nothing written: tmax_dc=850" in err, err
        assert ctl.settings.to_dict() == before
        nmc = dict(saved["settings"], chemistry=3, vnom_mv=3700, vmin_mv=3490, vbal_mv=4000, vmax_mv=4150)
        f.write_text(json.dumps({"format": settings_io.FORMAT, "settings": nmc}))
        code, out, err = run(capsys, srv, "settings", "import", str(f))
        assert code == 0, err
        assert (ctl.settings.chemistry, ctl.settings.vmax_mv, ctl.settings.vbal_mv) == (3, 4150, 4000)
        code, out, err = run(capsys, srv, "settings", "import", str(f))
        assert code == 0 and "nothing to change" in out
        f.write_text("not json")
        code, out, err = run(capsys, srv, "settings", "import", str(f))
        assert code == 1 and "not a settings file" in err
    finally:
        srv.close()
