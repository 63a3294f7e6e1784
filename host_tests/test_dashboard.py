"""Dashboard server and history store without a browser: the JSON API against the virtual pack
(login, live reading, settings refused with the reason, CSV), and the SQLite history (events,
downsampling, per-minute table, retention)."""
import csv
import http.cookiejar
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("bottle")

from cellchain import history, pack_link  # noqa: E402
from dashboard_rig import OWNER, T0, PackRig  # noqa: E402

PACK4 = {"name": "dash4", "duration_s": 3600, "pack": {"cells": 4, "chemistry": "lifepo4", "capacity_ah": 100,
                                                         "soc_pct": 60}, "charger": {"max_a": 10}, "load": {"a": 0}}


class Browser:
    """A cookie-keeping HTTP client for the API."""

    def __init__(self, base, headers=None):
        self.base = base
        self.op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.headers = dict(headers or {})
        self.csrf = None

    def get(self, path):
        try:
            r = self.op.open(urllib.request.Request(self.base + path.lstrip("/"), headers=self.headers), timeout=20)
            return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path, body, raw=None, content_type="application/json"):
        h = dict(self.headers, **{"Content-Type": content_type})
        if self.csrf:
            h["X-CSRF-Token"] = self.csrf
        req = urllib.request.Request(self.base + path.lstrip("/"),
                                     data=raw if raw is not None else json.dumps(body).encode(), headers=h)
        try:
            r = self.op.open(req, timeout=20)
            out = r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            out = e.code, json.loads(e.read() or b"{}")
        if path.endswith("/api/login") and out[0] == 200:
            self.csrf = out[1].get("csrf")
        return out


@pytest.fixture
def rig(tmp_path):
    r = PackRig(tmp_path, PACK4)
    yield r
    r.close()


def test_api_needs_the_boards_password(rig):
    b = Browser(rig.dash.url)
    assert b.get("/api/live")[0] == 401
    assert b.get("/api/history")[0] == 401
    assert b.post("/api/settings", {"name": "vmax_mv", "value": 3650})[0] == 401
    code, r = b.post("/api/login", {"password": "4321"})
    assert code == 403 and not r["ok"] and r["error"] == "login refused: wrong password"
    code, r = b.post("/api/login", {"password": "12x4"})
    assert code == 400 and "digits" in r["error"]
    code, r = b.post("/api/login", {"password": OWNER})
    assert code == 200 and r["ok"] and not r["must_change"]
    assert json.loads(b.get("/api/info")[1])["logged_in"] is True
    assert Browser(rig.dash.url).get("/api/live")[0] == 401        # another browser: no cookie


def test_live_reading_is_the_boards_state(rig):
    b = Browser(rig.dash.url)
    b.post("/api/login", {"password": OWNER})
    rig.advance(20)
    snap = rig.read()
    live = json.loads(b.get("/api/live")[1])
    st = rig.sim.fw.state()
    assert [c["mv"] for c in live["snapshot"]["cells"]] == st["cell_mv"]
    assert live["snapshot"]["status"]["soc_c"] == st["soc_c"]
    assert live["snapshot"]["status"]["current_ma"] == st["current_ma"]
    assert live["settings"]["vmax_mv"] == st["settings"]["vmax_mv"]
    assert live["snapshot"]["alarms"]["names"] == snap["alarms"]["names"]
    assert isinstance(live["snapshot"]["status"]["pack_mv"], int)
    for name in snap["alarms"]["names"]:
        assert live["alarm_since"][name] >= T0


def test_settings_are_checked_as_the_board_checks_them(rig):
    b = Browser(rig.dash.url)
    b.post("/api/login", {"password": OWNER})
    rig.advance(2)
    rig.read()
    assert b.post("/api/settings", {"name": "vmax_mv", "value": 3650})[1]["ok"]
    assert rig.sim.fw.state()["settings"]["vmax_mv"] == 3650
    r = b.post("/api/settings", {"name": "vbal_mv", "value": 3700})[1]
    assert not r["ok"] and r["error"] == "vbal_mv=3700: must be 3100..3640 mV (200 mV above vmin_mv, 10 mV below vmax_mv)"
    r = b.post("/api/settings", {"name": "capacity_ah", "value": "lots"})[1]
    assert not r["ok"] and "whole number" in r["error"]
    rig.link.rules = None          # the board's own refusal comes back as it answered
    r = b.post("/api/settings", {"name": "vbal_mv", "value": 3700})[1]
    assert not r["ok"] and "vbal_mv" in r["error"] and r["settings"]["vbal_mv"] != 3700
    assert rig.sim.fw.state()["settings"]["vbal_mv"] != 3700
    r = b.post("/api/command", {"kind": "mode", "arg": "critical"})[1]
    assert r["ok"] and rig.sim.fw.state()["settings"]["mode"] == 1
    r = b.post("/api/command", {"kind": "mode", "arg": "sideways"})[1]
    assert not r["ok"] and r["error"]


def test_history_api_and_csv_from_recorded_cycles(rig):
    b = Browser(rig.dash.url)
    b.post("/api/login", {"password": OWNER})
    rig.advance(300, read_every_s=10)
    h = json.loads(b.get("/api/history?hours=0.1&points=20")[1])
    assert 15 <= len(h["series"]["t"]) <= 20
    assert sorted(h["series"]["cells"]) == ["1", "2", "3", "4"]
    assert all(3.0 < v < 3.6 for v in h["series"]["cells"]["1"] if v is not None)
    assert any(e["kind"] == "relay" and e["detail"] == "charge on" for e in h["events"])
    code, text = b.get("/api/history.csv?hours=1")
    rows = list(csv.reader(io.StringIO(text)))
    assert code == 200 and rows[0][:3] == ["time_utc", "t", "pack_mv"] and rows[0][-1] == "cell4_mv"
    assert len(rows) == 1 + rig.dash.readings
    last = rows[-1]
    assert [int(x) for x in last[-4:]] == [c["mv"] for c in rig.dash.latest["cells"]]


def _snap(cells_mv, charge=1, alarms=0, names=()):
    return {"status": {"pack_mv": sum(v or 0 for v in cells_mv), "current_ma": 1500, "soc_c": 5000,
                       "min_mv": min(v for v in cells_mv if v), "max_mv": max(v for v in cells_mv if v),
                       "stored_wh": 100, "charge": charge, "load": 1, "comm": 1},
            "cells": [{"cell": i + 1, "mv": v, "temp_dc": 250, "status": 0} for i, v in enumerate(cells_mv)],
            "alarms": {"mask": alarms, "break_position": 0, "names": list(names)}}


def test_history_store_downsamples_rolls_minutes_and_keeps_retention(tmp_path):
    path = str(tmp_path / "h.sqlite")
    store = history.HistoryStore(path, retention_days=1)
    for i in range(3 * 3600):                       # 3 h at 1 s
        store.record(_snap([3300, 3310 + i % 2, None], charge=int(i < 3600)), T0 + i)
    s = store.series(T0, T0 + 3 * 3600, points=30)
    assert len(s["t"]) == 30 and s["cells"]["3"] == [None] * 30
    assert abs(s["cells"]["2"][5] - 3.3105) < 0.001
    assert s["pack_v"][0] == pytest.approx(6.6105, abs=0.001)
    day = store.series(T0 - 86400, T0 + 3 * 3600, points=100)        # > 6 h: the minutes table
    assert len(day["t"]) <= 100 and day["cells"]["1"][-1] == 3.3
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM minutes").fetchone()[0] == 180
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    ev = store.events(T0, T0 + 3 * 3600)
    assert [e["detail"] for e in ev if e["kind"] == "relay"] == ["charge off", "load on", "charge on"]
    assert store.daily_spread(T0, T0 + 3 * 3600) == [{"day": "2027-01-01", "min_v": 3.3, "max_v": 3.311,
                                                       "spread_mv": 11}]
    store.record(_snap([3300, 3300, 3300]), T0 + 2 * 86400)          # a day later: the old rows go
    assert store.span() == (T0 + 2 * 86400, T0 + 2 * 86400)
    store.close()


def test_cells_that_never_reported_have_no_value():
    c = pack_link.normalise_cell({"cell": 1, "mv": 0, "temp_dc": -32768, "status": 0})
    assert c["mv"] is None and c["temp_dc"] is None
    assert pack_link.parse_status({"pack_mv": "13200", "alarms": "0120", "break": "3"}) == {
        "pack_mv": 13200, "alarms": 0x120, "break": 3}


def events_at_one_position(ev):
    """Every entry made while comm_lost lasted names the same break position (issue 22)."""
    pos = None
    for e in ev:
        if e["kind"] == "alarm" and e["what"] == "comm_lost":
            pos = e["break_position"]
        elif e["kind"] == "cleared" and e["what"] == "comm_lost":
            pos = None
        elif pos is not None and e["break_position"] != pos:
            return False
    return True


def test_board_event_log_read_by_cellchain_events(tmp_path, capsys):
    from cellchain import cli
    r = PackRig(tmp_path, "comm_loss")           # the wire after board 2 breaks at t=100 s
    try:
        r.advance(130)
        code = cli.main(["--socket", "127.0.0.1:%d" % r.app.port, "--password", OWNER, "--timeout", "10", "--json", "events"])
        ev = json.loads(capsys.readouterr().out)
        assert code == 0
        lost = [e for e in ev if e["kind"] == "alarm" and e["what"] == "comm_lost"]
        assert lost and lost[-1]["break_position"] == 3 and 100 <= lost[-1]["uptime_s"] <= 110
        assert not any(e["what"] == "current_sensor_fault" for e in ev)
        assert any(e["kind"] == "relay" and e["what"] == "load_off" and e["uptime_s"] == lost[-1]["uptime_s"]
                   for e in ev)
        code = cli.main(["--socket", "127.0.0.1:%d" % r.app.port, "--password", OWNER, "--timeout", "10", "events"])
        out = capsys.readouterr().out
        assert code == 0 and "alarm    comm_lost" in out
        assert "break: board 2 or the wire after it (to board 3)" in out   # issue 22: not "the wire"
        assert events_at_one_position(ev)
    finally:
        r.close()


def _ctrl_c_works():
    """In the child before exec: SIGINT back to its default, so Python turns it into
    KeyboardInterrupt as at a terminal. A job started with ``&`` by a non-interactive shell
    (.ci/run runs the slow tier so) inherits SIGINT ignored, and Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_make_sim_prints_the_dashboard_url_and_serves_until_ctrl_c(tmp_path):
    """python -m sim demo (make sim): the URL is printed, and after the demo's charge/discharge
    the app socket and the dashboard keep serving until SIGINT (Ctrl-C)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, COLUMNS="250")
    p = subprocess.Popen([sys.executable, "-m", "sim", "demo", "--no-live", "--app-port", "0", "--dashboard-port", "0",
                          "--out", str(tmp_path / "demo.png"), "--trace", str(tmp_path / "demo.jsonl"),
                          "--history", str(tmp_path / "demo.sqlite")], cwd=root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_ctrl_c_works)
    out = []
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            if "demo done" in line:
                break
        text = "".join(out)
        assert "demo done" in text, text
        url = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", text).group(1)
        port = int(re.search(r"app protocol on 127\.0\.0\.1:(\d+)", text).group(1))
        time.sleep(3)                                    # the real-time phase: still serving
        b = Browser(url)
        r = b.post("/api/login", {"password": "1234"})[1]
        assert r["ok"] and r["must_change"]                # the factory password: change it first
        assert b.get("/api/live")[0] == 403
        assert b.post("/api/password", {"old": "1234", "new": OWNER})[1]["ok"]
        live = json.loads(b.get("/api/live")[1])
        assert len(live["snapshot"]["cells"]) == 16
        h = json.loads(b.get("/api/history?hours=24")[1])
        assert max(h["series"]["t"]) - min(h["series"]["t"]) > 3600      # the demo's hour or two, in virtual time
        from cellchain import client as cl
        c = cl.Client(cl.SocketTransport("127.0.0.1", port), timeout_s=10)
        assert c.login(OWNER) and int(c.status()["cells"]) == 16
        c.close()
        assert (tmp_path / "demo.png").exists()
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=120)[0]          # a loaded CI machine (the slow tier runs beside make test)
        assert p.returncode == 0, rest
        assert "stopped" in rest
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)                 # let it clean up its folders
            try:
                p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


def test_cellchain_dashboard_command_serves_until_ctrl_c(rig, tmp_path):
    rig.advance(5)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.Popen([sys.executable, "-m", "cellchain", "--socket", "127.0.0.1:%d" % rig.app.port,
                          "--password", OWNER, "dashboard", "--port", "0", "--history", str(tmp_path / "h.sqlite"),
                          "--retention-days", "2"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=_ctrl_c_works)
    try:
        line = p.stdout.readline()
        url = re.search(r"cellchain dashboard on (http://127\.0\.0\.1:\d+/)", line).group(1)
        b = Browser(url)
        assert json.loads(b.get("/api/info")[1]) == {"logged_in": False, "transport": "socket 127.0.0.1:%d" % rig.app.port}
        code, page = b.get("/")
        assert code == 200 and "<title>cellchain pack</title>" in page and 'src="protocol.js"' in page
        assert b.post("/api/login", {"password": OWNER})[1]["ok"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not json.loads(b.get("/api/live")[1])["snapshot"]:
            time.sleep(0.1)
        assert len(json.loads(b.get("/api/live")[1])["snapshot"]["cells"]) == 4
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    with sqlite3.connect(str(tmp_path / "h.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] >= 1     # it recorded from the start


def test_link_break_is_a_gap_in_the_history_not_a_voltage(tmp_path):
    """Issue 22: during a break the board's pack_mv was section A's partial sum (9921 for a
    16.5 V pack) and the plot drew a collapse. Now the board says -1 / comm 0; the history
    stores NULL there and the series has a gap (None), never a voltage."""
    store = history.HistoryStore(str(tmp_path / "h.sqlite"), retention_days=1)
    for i in range(300):
        snap = _snap([3300, 3300, 3300, 3300, 3300])
        if 100 <= i < 200:                     # the break: the End still counts 3 boards
            snap["status"].update({"pack_mv": 9921, "comm": 0})
            snap["alarms"]["break_position"] = 4
            snap["cells"] = [{"cell": c + 1, "mv": None, "temp_dc": None, "status": 0x80} for c in range(5)]
        elif 200 <= i < 220:                   # a stuck ADC: the chain is heard, the pack is not known
            snap["status"]["pack_mv"] = -1
        store.record(snap, T0 + i)
    s = store.series(T0, T0 + 300, points=30)
    assert s["pack_v"][:10] == [16.5] * 10
    assert s["pack_v"][10:22] == [None] * 12                 # a gap, never 9.921 V
    assert s["pack_v"][22:] == [16.5] * 8
    assert all(v is None for v in s["cells"]["1"][10:20])
    with sqlite3.connect(str(tmp_path / "h.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM samples WHERE pack_mv IS NULL").fetchone()[0] == 120
        assert db.execute("SELECT COUNT(*) FROM samples WHERE comm = 0").fetchone()[0] == 100
    store.close()
    assert history.known_pack({"comm": 1, "pack_mv": -1, "min_mv": -1, "max_mv": -1}) == (None, None, None)
    assert history.known_pack({"comm": 0, "pack_mv": 9921, "min_mv": 3300, "max_mv": 3300}) == (None, None, None)


def test_long_views_keep_the_peaks_in_an_envelope_and_old_files_migrate(tmp_path):
    """Issue 22: the 24 h view averaged the 100 % SoC peak away. Each bucket carries its
    extremes; a schema-2 file gets the minutes' extreme columns when opened."""
    path = str(tmp_path / "h.sqlite")
    with sqlite3.connect(path) as db:                 # a version-2 file
        db.executescript(history.SCHEMA.split("CREATE TABLE IF NOT EXISTS minutes")[0]
                         + "CREATE TABLE minutes (t REAL PRIMARY KEY, n INTEGER, pack_mv REAL, current_ma REAL,"
                           " soc_c REAL, min_mv INTEGER, max_mv INTEGER, cell_mv BLOB);"
                           "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                           "INSERT INTO meta VALUES ('schema_version', '2');")
    store = history.HistoryStore(path, retention_days=None)
    for i in range(24 * 60):                          # a day, one reading a minute
        snap = _snap([3300 + (30 if i == 700 else 0), 3300, 3300])
        snap["status"]["soc_c"] = 10000 if i == 700 else 5000        # one minute at 100 %
        store.record(snap, T0 + 60 * i)
    s = store.series(T0, T0 + 86400, points=100)
    assert max(v for v in s["soc_pct"] if v is not None) < 60          # the means lose it ...
    assert max(v for v in s["soc_pct_hi"] if v is not None) == 100.0   # ... the envelope keeps it
    assert max(v for v in s["cells_hi"]["1"] if v is not None) == 3.33
    assert min(v for v in s["cells_lo"]["1"] if v is not None) == 3.3
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    store.close()


def test_replay_fills_the_history_from_a_trace_in_virtual_time(tmp_path, capsys):
    """Issue 22: `cellchain dashboard --replay TRACE` lays a virtual-pack trace into the
    history (ending now), link breaks as gaps, relay changes as events."""
    from cellchain import cli
    from sim import engine, scenario
    trace = str(tmp_path / "t.jsonl")
    sc = {"name": "replay", "duration_s": 60, "pack": {"cells": 4, "chemistry": "lifepo4", "capacity_ah": 40,
                                                      "soc_pct": 50},
          "charger": {"max_a": 5}, "load": {"a": 2}, "faults": [{"t": 25, "until": 40, "kind": "link_break",
                                                                "position": 2}]}
    engine.Simulation(scenario.load(sc), trace=trace).run()
    db = str(tmp_path / "h.sqlite")
    code = cli.main(["dashboard", "--replay", trace, "--replay-every", "1", "--history", db])
    out = capsys.readouterr().out
    assert code == 0 and "60 readings" in out and "--history %s" % db in out
    store = history.HistoryStore(db, retention_days=None)
    first, last = store.span()
    assert abs(last - time.time()) < 60 and round(last - first) == 59
    s = store.series(first, last, points=60)
    assert any(v is None for v in s["pack_v"][30:38])          # the break: a gap
    assert all(v is not None and v > 12 for v in s["pack_v"][5:20])
    assert any(e["kind"] == "link" for e in store.events(first, last))
    store.close()
