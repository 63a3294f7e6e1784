"""Issue 21: nobody gets in who should not - the dashboard's link to the board, its login, the
Host check, malformed requests and a board that does not answer. The dashboard runs against
the real firmware handler (core.app_protocol.AppProtocol) on a local socket; HTTP requests go
straight into its WSGI app (no browser, no server thread), so each costs about a millisecond."""
import io
import json
import socket
import threading
from wsgiref.util import setup_testing_defaults

import pytest

pytest.importorskip("bottle")

from cellchain import client, dashboard, history, pack_link  # noqa: E402
from core import password  # noqa: E402
from core.app_protocol import AppProtocol  # noqa: E402
from test_app_protocol import Ctl  # noqa: E402

OWNER = "135790"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _strict_json(text):
    def no_constant(name):
        raise ValueError("not JSON: %s" % name)
    return json.loads(text, parse_constant=no_constant)


class Page:
    """A browser at the dashboard's WSGI app: keeps its cookie and CSRF token."""

    def __init__(self, app, host="127.0.0.1:8124", remote="127.0.0.1"):
        self.app = app
        self.host = host
        self.remote = remote
        self.cookie = None
        self.csrf = None

    def call(self, method, path, body=None, raw=None, content_type="application/json", headers=None,
             csrf=True):
        env = {}
        setup_testing_defaults(env)
        path, _, qs = path.encode("utf-8").decode("latin-1").partition("?")   # as a WSGI server gives it
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        env.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=qs, REMOTE_ADDR=self.remote,
                   CONTENT_TYPE=content_type, CONTENT_LENGTH=str(len(data)), HTTP_HOST=self.host)
        env["wsgi.input"] = io.BytesIO(data)
        if self.cookie:
            env["HTTP_COOKIE"] = "cellchain_session=" + self.cookie
        if csrf and self.csrf:
            env["HTTP_X_CSRF_TOKEN"] = self.csrf
        for k, v in (headers or {}).items():
            key = "HTTP_" + k.upper().replace("-", "_")
            if v is None:
                env.pop(key, None)
            else:
                env[key] = v
        got = {}

        def start_response(status, hdrs, exc_info=None):
            got["status"] = int(status.split()[0])
            got["headers"] = hdrs
        text = b"".join(self.app(env, start_response)).decode("utf-8", "replace")
        for k, v in got["headers"]:
            if k.lower() == "set-cookie" and v.startswith("cellchain_session="):
                value = v.split(";")[0].split("=", 1)[1]
                self.cookie = value.strip('"') or None
        return got["status"], text

    def get(self, path, **kw):
        code, text = self.call("GET", path, **kw)
        return code, (_strict_json(text) if path.startswith("/api/") and "csv" not in path else text)

    def post(self, path, body=None, **kw):
        code, text = self.call("POST", path, body, **kw)
        out = _strict_json(text) if text else {}
        if path == "/api/login" and code == 200:
            self.csrf = out.get("csrf")
        return code, out


class DirectTransport:
    """Straight into the AppProtocol, in this thread (no socket, no server thread): for the fuzz
    test, where thousands of requests must stay cheap."""

    def __init__(self, app):
        self.app = app
        self.buf = bytearray()
        self.slot = app.open(lambda b, n: self.buf.extend(bytes(b[:n])))

    def write(self, data):
        self.app.feed(data, len(data), self.slot)

    def read(self, timeout_s):
        out = bytes(self.buf)
        del self.buf[:]
        return out

    def close(self):
        self.app.close(self.slot)


class Rig:
    """The real AppProtocol behind a socket server (or ``direct``: in process), a PackLink that
    reconnects, a Dashboard."""

    def __init__(self, tmp_path, factory=False, transport=None, direct=False):
        self.ctl = Ctl(4)
        if not factory:
            self.ctl.settings.pw_salt = "0011223344556677"
            self.ctl.settings.pw_hash = password.make_hash(self.ctl.settings.pw_salt, OWNER)
        self.app = AppProtocol(self.ctl)
        self.lock = threading.Lock()
        self.direct = direct
        self.srv = None
        if not direct:
            self.srv = client.serve_socket(self.app, "127.0.0.1", 0)
            self.srv.start_thread(cycle_s=0.05, lock=self.lock)
        self.transport = transport or client.SocketTransport
        self.clock = Clock()
        self.link = pack_link.PackLink(self.connect(), connect=self.connect, monotonic=self.clock)
        self.store = history.HistoryStore(str(tmp_path / "h.sqlite"))
        self.dash = dashboard.Dashboard(self.link, self.store, port=8124, now_s=self.clock,
                                        clock=lambda: 1.8e9 + self.clock.t)
        self.password = "1234" if factory else OWNER

    def connect(self):
        if self.direct:
            return client.Client(DirectTransport(self.app), timeout_s=0.5)
        return client.Client(self.transport("127.0.0.1", self.srv.port), timeout_s=0.5)

    def page(self, **kw):
        return Page(self.dash.app, **kw)

    def lockout(self):
        with self.lock:
            lk = self.app.lockout
            return lk.global_failures, lk.global_remaining_ms

    def close(self):
        self.link.close()
        if self.srv is not None:
            self.srv.close()
        self.store.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def _login(rig, page=None):
    page = page or rig.page()
    code, r = page.post("/api/login", {"password": rig.password})
    assert code == 200 and r["ok"], r
    return page


class StallTransport(client.SocketTransport):
    """A slow link: while ``stall`` is set nothing arrives (the reply comes later)."""
    stall = False

    def read(self, timeout_s):
        if StallTransport.stall:
            return b""
        return super().read(timeout_s)


# ---- 1. the link cannot slip --------------------------------------------------------------

def test_a_line_with_a_cr_is_refused_and_no_reply_slips(rig):
    """Issue 21, item 1: ``ST?\\rST?`` through the raw console left a reply in the buffer; from
    then on a wrong password without a cookie got a session and the owner's got 403."""
    owner = _login(rig)
    for line in ("ST?\rST?", "ST?\nPW0000!", "P$W0000!", "PW" + OWNER + "!", "PC:1:2!", "E!", "", "X" * 65):
        code, r = owner.post("/api/raw", {"line": line})
        assert code == 400 and r["error"], (line, code, r)
    code, r = owner.post("/api/raw", {"line": "ST?"})
    assert code == 200 and r["lines"][0].startswith("ST:cells=4") and r["lines"][-1] == "OK"
    stranger = rig.page()
    code, r = stranger.post("/api/login", {"password": "0000"})
    assert code == 403 and stranger.cookie is None
    assert _login(rig).cookie
    assert owner.post("/api/settings", {"name": "capacity_ah", "value": 120})[1]["ok"]
    assert rig.ctl.settings.capacity_ah == 120


def test_a_reply_that_comes_late_drops_the_link_and_nothing_slips(tmp_path):
    """Issue 21, item 1: a slow link that timed out one reply did the same as the CR."""
    StallTransport.stall = False
    rig = Rig(tmp_path, transport=StallTransport)
    try:
        owner = _login(rig)
        assert rig.dash.poll_once()
        StallTransport.stall = True
        assert not rig.dash.poll_once()                   # the reply is late: the link is dropped
        assert rig.dash.error.startswith("board unreachable")
        StallTransport.stall = False
        stranger = rig.page()
        assert stranger.post("/api/login", {"password": "0000"})[0] == 403
        assert stranger.cookie is None
        assert rig.dash.poll_once()                       # reconnected, logged in again
        assert rig.link.reconnects >= 1
        assert _login(rig).cookie
        code, r = owner.post("/api/settings", {"name": "capacity_ah", "value": 110})
        assert code == 200 and r["ok"] and r["settings"]["capacity_ah"] == 110
    finally:
        StallTransport.stall = False
        rig.close()


# ---- 2. the page's login is limited and counted ---------------------------------------------

def test_guessing_through_the_page_is_limited_and_counted_on_the_board(rig):
    """Issue 21, item 2: 40 wrong guesses in 0.4 s, then ``LK:0 0 0``: every refused guess was
    followed by the recorder's login with the saved password, which cleared the board's count."""
    _login(rig)
    assert rig.dash.poll_once()
    stranger = rig.page()
    codes = [stranger.post("/api/login", {"password": "%04d" % i})[0] for i in range(40)]
    reached = codes.count(403)
    assert reached == dashboard.LoginLimiter.FREE + 1 and codes.count(429) == 40 - reached, codes
    assert rig.lockout()[0] == reached                    # every guess that reached it is counted
    assert rig.dash.poll_once()                           # and the recorder still records
    code, r = stranger.post("/api/login", {"password": "1111"})
    assert code == 429 and "try again in" in r["error"]
    rig.clock.t += 1.0                                    # the wait doubles: 1 s, 2 s, 4 s ...
    assert stranger.post("/api/login", {"password": "1112"})[0] == 403
    assert stranger.post("/api/login", {"password": "1113"})[0] == 429
    rig.clock.t += 1.9
    assert stranger.post("/api/login", {"password": "1113"})[0] == 429
    rig.clock.t += 0.2
    assert stranger.post("/api/login", {"password": "1113"})[0] == 403
    before = rig.lockout()[0]
    rig.link._drop("test: the link went down")            # the recorder logs in again ...
    rig.clock.t += 120
    assert rig.dash.poll_once()
    assert rig.lockout()[0] == before                     # ... which clears nobody's count


def test_the_boards_own_lock_stops_the_page_too(rig):
    _login(rig)
    with rig.lock:
        for _ in range(password.GLOBAL_FREE_FAILURES + 1):
            rig.app.lockout.fail(3)
            rig.app.lockout.close(3)
    code, r = rig.page(remote="10.0.0.9").post("/api/login", {"password": OWNER})
    assert code == 403 and "locked" in r["error"] and "try again in 30 s" in r["error"]


def test_sessions_expire(rig):
    page = _login(rig)
    assert page.get("/api/live")[0] == 200
    rig.clock.t += dashboard.Dashboard.SESSION_IDLE_S + 1
    assert page.get("/api/live")[0] == 401
    page = _login(rig)
    for _ in range(int(dashboard.Dashboard.SESSION_MAX_S // 1000) + 1):
        rig.clock.t += 1000
        page.get("/api/info")
    assert page.get("/api/live")[0] == 401


def test_state_changes_need_the_sessions_token(rig):
    page = _login(rig)
    for path, body in (("/api/settings", {"name": "vmax_mv", "value": 3600}),
                       ("/api/command", {"kind": "mode", "arg": "critical"}),
                       ("/api/raw", {"line": "S?"})):
        code, r = page.post(path, body, csrf=False)
        assert code == 403 and "CSRF" in r["error"]
        code, r = page.post(path, body, headers={"X-CSRF-Token": "0" * 32}, csrf=False)
        assert code == 403
    assert rig.ctl.settings.vmax_mv != 3600
    code, r = page.post("/api/logout")
    assert code == 200 and page.get("/api/live")[0] == 401


# ---- 3. DNS rebinding ------------------------------------------------------------------------

def test_a_foreign_host_or_origin_gets_403(tmp_path):
    """Issue 21, item 3: with a foreign Host header the dashboard answered as usual, and with the
    factory password a web page set V-max to 4.0 V and critical mode."""
    rig = Rig(tmp_path, factory=True)
    try:
        evil = rig.page(host="attacker.example:8124")
        for method, path, body in (("GET", "/api/info", None), ("POST", "/api/login", {"password": "1234"}),
                                   ("POST", "/api/settings", {"name": "vmax_mv", "value": 4000}),
                                   ("POST", "/api/command", {"kind": "mode", "arg": "critical"}),
                                   ("GET", "/static/dashboard.html", None)):
            code, text = evil.call(method, path, body)
            assert code == 403 and "not allowed" in _strict_json(text)["error"], (path, code, text)
        assert rig.ctl.settings.vmax_mv != 4000 and rig.ctl.settings.mode == 0
        page = rig.page(host="localhost:8124")
        code, text = page.call("GET", "/api/info", headers={"Origin": "http://attacker.example"})
        assert code == 403
        assert page.call("GET", "/api/info", headers={"Origin": "http://localhost:8124"})[0] == 200
        assert rig.page(host="[::1]:8124").get("/api/info")[0] == 200
        assert page.call("GET", "/api/info", headers={"Host": None})[0] == 400
        dash = dashboard.Dashboard(rig.link, rig.store, host="192.168.1.5", port=8124)
        assert Page(dash.app, host="192.168.1.5:8124").get("/api/info")[0] == 200
        assert Page(dash.app, host="192.168.1.6:8124").get("/api/info")[0] == 403
        dash = dashboard.Dashboard(rig.link, rig.store, port=8124, allowed_hosts=("pack.lan",))
        assert Page(dash.app, host="pack.lan:8124").get("/api/info")[0] == 200
    finally:
        rig.close()


def test_the_factory_password_must_be_replaced_first(tmp_path):
    rig = Rig(tmp_path, factory=True)
    try:
        page = rig.page()
        code, r = page.post("/api/login", {"password": "1234"})
        assert code == 200 and r["must_change"]
        assert page.get("/api/info")[1]["must_change"] is True
        assert page.get("/api/live")[0] == 403
        code, r = page.post("/api/settings", {"name": "vmax_mv", "value": 3600})
        assert code == 403 and "factory password" in r["error"]
        assert page.post("/api/password", {"old": "1234", "new": "56789"})[0] == 400
        assert page.post("/api/password", {"old": "1234", "new": "567890"}, csrf=False)[0] == 403
        code, r = page.post("/api/password", {"old": "1234", "new": "567890"})
        assert code == 200 and r["ok"]
        assert page.get("/api/live")[0] == 200
        assert rig.link.password == "567890"
        assert rig.page().post("/api/login", {"password": "1234"})[0] == 403
        code, r = rig.page().post("/api/login", {"password": "567890"})
        assert code == 200 and not r["must_change"]
    finally:
        rig.close()


# ---- 5. malformed requests -------------------------------------------------------------------

def test_malformed_requests_get_400_with_a_reason(rig):
    """Issue 21, item 5: 500s with tracebacks, and ``"t0": NaN``."""
    page = _login(rig)
    for q in ("hours=1e308", "hours=nan", "hours=inf", "hours=-1", "hours=0", "hours=abc", "hours=",
              "points=abc", "points=1e3", "points=%00"):
        for path in ("/api/history?", "/api/history.csv?"):
            if q.startswith("points") and "csv" in path:
                continue                                   # the CSV has no points
            code, text = page.call("GET", path + q)
            assert code == 400 and _strict_json(text)["error"], (q, code, text[:200])
    code, r = page.get("/api/history?hours=0.5&points=")
    assert code == 200 and r["t1"] - r["t0"] == 1800
    page2 = rig.page()
    for raw in (b"[1, 2]", b'"1234"', b"null", b"{", b"\xff\xfe", b'{"password": 1234}', b'{"password": ["1"]}',
                b'{"password": "1234567890123456789"}'):
        code, r = page2.post("/api/login", raw=raw)
        assert code == 400 and r["error"], raw
    assert page2.post("/api/login", {"password": OWNER}, content_type="text/plain")[0] == 400
    for raw in (b"[1, 2]", b'{"name": ["vmax_mv"], "value": 1}', b'{"name": "vmax_mv"}', b'{"name": "a b", "value": 1}',
                b'{"name": "vmax_mv", "value": {"x": 1}}', b'{"name": "vmax_mv", "value": "1!"}'):
        code, r = page.post("/api/settings", raw=raw)
        assert code == 400 and r["error"], raw
    for raw in (b'{"kind": "mode"}', b'{"kind": "boom", "arg": "x"}', b'{"kind": "mode", "arg": "a!b"}', b"[]"):
        assert page.post("/api/command", raw=raw)[0] == 400, raw
    code, r = page.post("/api/settings", {"name": "vmax_mv", "value": "lots"})
    assert code == 200 and not r["ok"] and "whole number" in r["error"]
    assert page.call("POST", "/api/login", raw=b"{" * 5000)[0] == 413
    assert page.get("/api/nothing")[0] == 404
    assert page.call("PUT", "/api/login")[0] == 405


# ---- 6. board unreachable ----------------------------------------------------------------------

def test_an_unreachable_board_is_its_own_message(tmp_path):
    """Issue 21, item 6: "login refused" (HTTP 500, a BrokenPipeError traceback) when the End
    board could not be reached."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()                                       # nothing listens there

    def connect():
        return client.Client(client.open_transport("127.0.0.1:%d" % port), timeout_s=0.2)
    clock = Clock()
    link = pack_link.PackLink(None, connect=connect, monotonic=clock)
    store = history.HistoryStore(str(tmp_path / "h.sqlite"))
    try:
        dash = dashboard.Dashboard(link, store, port=8124, now_s=clock)
        page = Page(dash.app)
        code, r = page.post("/api/login", {"password": OWNER})
        assert code == 503 and r["error"].startswith("board unreachable") and "login refused" not in r["error"]
        code, r = page.post("/api/login", {"password": OWNER})
        assert code == 503 and "next try in" in r["error"]        # reconnects back off
        assert not dash.limiter.clients                            # not counted as a wrong password
    finally:
        store.close()


def test_a_board_that_goes_away_is_unreachable_not_a_wrong_password(rig):
    page = _login(rig)
    rig.srv.close()                                    # the board is gone
    code, r = page.post("/api/settings", {"name": "capacity_ah", "value": 130})
    assert code == 503 and r["error"].startswith("board unreachable")
    code, r = rig.page().post("/api/login", {"password": OWNER})
    assert code == 503 and r["error"].startswith("board unreachable")


def test_a_password_changed_elsewhere_logs_the_recorder_out_cleanly(rig):
    """PC on another connection logs every other session out: the dashboard then connects
    again, finds its saved password refused, forgets it (it never guesses) and says so."""
    page = _login(rig)
    assert rig.dash.poll_once()
    other = client.Client(client.SocketTransport("127.0.0.1", rig.srv.port), timeout_s=1)
    assert other.login(OWNER)
    other.change_password(OWNER, "24681357")
    other.close()
    failures = rig.lockout()[0]
    assert not rig.dash.poll_once() and "logged out" in rig.dash.error
    rig.clock.t += 5
    assert not rig.dash.poll_once()                     # reconnects: the saved one is refused
    assert not rig.link.logged_in                       # ... and forgotten, not tried again
    assert rig.lockout()[0] == failures + 1             # one try, counted like any other
    code, r = page.post("/api/settings", {"name": "capacity_ah", "value": 90})
    assert code in (401, 503) or not r.get("ok")
    code, r = rig.page().post("/api/login", {"password": "24681357"})
    assert code == 200 and rig.dash.poll_once()


def test_sessions_are_bounded(rig):
    pages = [_login(rig) for _ in range(dashboard.Dashboard.MAX_SESSIONS + 5)]
    assert len(rig.dash.sessions) == dashboard.Dashboard.MAX_SESSIONS
    assert pages[-1].get("/api/live")[0] == 200 and pages[0].get("/api/live")[0] == 401
