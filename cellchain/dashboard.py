"""``cellchain dashboard``: the pack in a browser (docs/dashboard.md).

A bottle app on a threaded stdlib WSGI server serves one page (cellchain/static/, plain
HTML/JS, no CDN) and a small JSON API; a recorder thread reads the End board once per cycle
through PackLink and writes every reading into the history store (SQLite).

    dash = Dashboard(link, store, host="127.0.0.1", port=8124)
    dash.start()            # HTTP server + recorder threads; dash.url
    dash.poll_once()        # one reading (the recorder calls this every interval_s)
    dash.close()

Security (docs/dashboard.md, Security): every request's Host (and Origin, if sent) must be
127.0.0.1, localhost, ::1, the bind address or an ``allowed_hosts`` name (else 403: DNS
rebinding); a login is checked by the board (``PV``/``PW``, its lockout counts it) behind a
per-client backoff (``LoginLimiter``, 429); sessions expire (idle 30 min, 12 h at most) and
every state change needs the session's ``X-CSRF-Token``; while the board has the factory
password only ``/api/password`` works. Bad input is a 400 with the reason, a board that cannot
be reached a 503 "board unreachable: ..."; no route answers a 5xx traceback or non-JSON (NaN).
"""
import io
import json
import math
import os
import secrets
import sys
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

from cellchain import client as _client
from cellchain.pack_link import FACTORY_PASSWORD, cell_flags, raw_refusal

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
COOKIE = "cellchain_session"
SETTINGS_EVERY = 10          # re-read the settings every N readings


def settings_limits(rules, current):
    """Each field's range: the field's own (``min``/``max``) and, given the board's current
    settings, the one the board accepts now (``allowed_min``/``allowed_max``/``rule``: the
    chemistry's limits and the ordering rules; issue 22: the page showed 1500..5000 mV)."""
    s = None
    if current:
        s = rules.Settings()
        for k in rules.FIELD_NAMES:
            if isinstance(current.get(k), int):
                setattr(s, k, current[k])
    out = []
    for n, lo, hi, u in rules.FIELDS:
        f = {"name": n, "min": lo, "max": hi, "unit": u, "allowed_min": lo, "allowed_max": hi, "rule": ""}
        if s is not None:
            try:
                a_lo, a_hi, _, rule = rules.allowed_range(s, n)
                f.update(allowed_min=max(lo, a_lo), allowed_max=min(hi, a_hi), rule=rule)
            except (KeyError, ValueError, TypeError):
                pass
        out.append(f)
    return out


def _reason(e):
    """The text for a failed link: "board unreachable: ..." (a user with the right password
    must never read it as a wrong one)."""
    text = str(e)
    if isinstance(e, _client.LinkError) and not text.startswith(("board unreachable", "logged out")):
        return "board unreachable: %s" % text
    return text


def _json_error(code, message, **extra):
    bottle.response.status = code
    bottle.response.content_type = "application/json"
    out = {"error": message}
    out.update(extra)
    return out


def _error_page(err):
    """bottle's error pages as JSON, without a traceback."""
    bottle.response.content_type = "application/json"
    msg = err.body if isinstance(err.body, str) and err.body and err.status_code != 500 else \
        ("internal error" if err.status_code == 500 else err.status_line)
    return json.dumps({"error": msg})


def _security_headers():
    bottle.response.set_header("X-Content-Type-Options", "nosniff")
    bottle.response.set_header("X-Frame-Options", "DENY")
    bottle.response.set_header("Content-Security-Policy", "frame-ancestors 'none'")
    bottle.response.set_header("Cache-Control", "no-store")


def _int_query(key, default, lo, hi):
    text = bottle.request.query.get(key)
    if text is None or text == "":
        return default
    if not text.isascii() or not text.lstrip("+-").isdigit() or len(text) > 12:
        raise _BadRequest("%s must be a whole number" % key)
    return min(hi, max(lo, int(text)))


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class LoginLimiter:
    """The page's own backoff on wrong passwords, per client address: ``FREE`` wrong ones
    cost nothing, then each further one makes that client wait 1 s, doubling up to ``MAX_S``.
    On top of the board's lockout, which counts every one of them too (PV/PW)."""

    FREE = 3
    MAX_S = 900.0
    MAX_CLIENTS = 1024

    def __init__(self, now=time.monotonic):
        self.now = now
        self.clients = {}        # address -> [failures, time of the next allowed try]

    def wait_s(self, who):
        c = self.clients.get(who)
        return 0.0 if c is None else max(0.0, c[1] - self.now())

    def fail(self, who):
        c = self.clients.get(who)
        if c is None:
            if len(self.clients) >= self.MAX_CLIENTS:      # bounded: forget the oldest
                self.clients.pop(next(iter(self.clients)))
            c = self.clients[who] = [0, 0.0]
        c[0] += 1
        over = c[0] - self.FREE
        c[1] = self.now() + (0.0 if over <= 0 else min(self.MAX_S, 2.0 ** min(over - 1, 20)))

    def success(self, who):
        self.clients.pop(who, None)


class _Session:
    __slots__ = ("csrf", "created", "seen", "must_change")

    def __init__(self, now, must_change):
        self.csrf = secrets.token_hex(16)
        self.created = now
        self.seen = now
        self.must_change = must_change


def _host_name(value):
    """The name part of a Host header or an Origin's authority (``[::1]:8124`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else None
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name


class _BadRequest(Exception):
    pass


class Dashboard:
    SESSION_IDLE_S = 1800.0        # a session ends after 30 min without a request ...
    SESSION_MAX_S = 12 * 3600.0    # ... and 12 h after the login in any case
    MAX_BODY = 4096
    MAX_SESSIONS = 64
    MAX_HOURS = 24 * 400

    def __init__(self, link, store, host="127.0.0.1", port=8124, interval_s=1.0, clock=time.time,
                 transport_name="", allowed_hosts=(), now_s=time.monotonic):
        self.link = link
        self.store = store
        self.host = host
        self.port = port
        self.interval_s = interval_s
        self.clock = clock
        self.now_s = now_s
        self.transport_name = transport_name
        self.allowed_hosts = {"127.0.0.1", "localhost", "::1"} | {h.lower() for h in allowed_hosts}
        if host not in ("0.0.0.0", "::", ""):
            self.allowed_hosts.add(host.lower())
        self.sessions = {}         # cookie token -> _Session
        self.limiter = LoginLimiter(now_s)
        self.latest = None
        self.settings = None
        self.error = None
        self.alarm_since = {}      # alarm name -> time first seen in the current run
        self.readings = 0
        self._stop = threading.Event()
        self._threads = []
        self._server = None
        self._lock = threading.Lock()
        self.app = self._routes()

    @property
    def tokens(self):
        return set(self.sessions)

    # ---- recording -------------------------------------------------------------------------
    def poll_once(self):
        """Read the pack once and record it; False (and ``error`` set) when the board did not answer."""
        if not self.link.logged_in:
            return False
        try:
            snap = self.link.snapshot()
            if self.settings is None or self.readings % SETTINGS_EVERY == 0:
                self.settings = self.link.settings()
        except (_client.ProtocolError, OSError) as e:
            self.error = _reason(e)
            return False
        now = self.clock()
        snap["t"] = now
        for name in snap["alarms"]["names"]:
            self.alarm_since.setdefault(name, now)
        for name in list(self.alarm_since):
            if name not in snap["alarms"]["names"]:
                del self.alarm_since[name]
        for c in snap["cells"]:
            c["flags"] = cell_flags(c["status"])
        self.store.record(snap, now)
        self.latest = snap
        self.error = None
        self.readings += 1
        return True

    def _record_loop(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.05, self.interval_s - (time.monotonic() - t0)))

    # ---- sessions --------------------------------------------------------------------------
    def _session(self):
        """The request's live session, or None (expired ones are removed)."""
        token = bottle.request.get_cookie(COOKIE)
        if not token:
            return None
        with self._lock:
            s = self.sessions.get(token)
            if s is None:
                return None
            now = self.now_s()
            if now - s.seen > self.SESSION_IDLE_S or now - s.created > self.SESSION_MAX_S:
                del self.sessions[token]
                return None
            s.seen = now
            return s

    def _prune(self):
        """Expired sessions out; at most MAX_SESSIONS (the oldest go first). Under ``_lock``."""
        now = self.now_s()
        for token, s in list(self.sessions.items()):
            if now - s.seen > self.SESSION_IDLE_S or now - s.created > self.SESSION_MAX_S:
                del self.sessions[token]
        while len(self.sessions) >= self.MAX_SESSIONS:
            del self.sessions[min(self.sessions, key=lambda t: self.sessions[t].seen)]

    def _authorised(self):
        return self._session() is not None

    def _need_login(self, change=False, allow_factory=False):
        """The session (401 without); ``change``: a state change, which also needs the session's
        token in the X-CSRF-Token header (403 without); with the factory password still set,
        everything but the password change answers 403."""
        s = self._session()
        if s is None:
            bottle.abort(401, "login required")
        if change and not secrets.compare_digest(bottle.request.get_header("X-CSRF-Token", ""), s.csrf):
            bottle.abort(403, "missing or wrong X-CSRF-Token header (log in again)")
        if s.must_change and not allow_factory:
            bottle.abort(403, "the board still has the factory password: set your own first")
        return s

    def _check_request(self):
        """Before every request: the Host (and Origin, when sent) must name this machine or the
        address the server was told to bind - a DNS-rebinding page has a foreign name there."""
        host = bottle.request.get_header("Host")
        if not host:
            bottle.abort(400, "Host header required")
        if _host_name(host) not in self.allowed_hosts:
            bottle.abort(403, "host %r not allowed (DNS rebinding?): use http://127.0.0.1:%d/" % (host[:80], self.port))
        origin = bottle.request.get_header("Origin")
        if origin is not None:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or _host_name(rest.split("/")[0]) not in self.allowed_hosts:
                bottle.abort(403, "origin %r not allowed" % origin[:80])
        try:
            n = int(bottle.request.get_header("Content-Length") or 0)
        except ValueError:
            bottle.abort(400, "bad Content-Length")
        if n > self.MAX_BODY or n < 0:
            bottle.abort(413, "request body over %d bytes" % self.MAX_BODY)

    @staticmethod
    def _body(*keys):
        """The request's JSON object (400 for anything else)."""
        if "json" not in (bottle.request.content_type or ""):
            raise _BadRequest("send a JSON object (Content-Type: application/json)")
        try:
            body = bottle.request.json
        except Exception:    # noqa: BLE001 - bottle raises HTTPError or ValueError on bad JSON
            raise _BadRequest("body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest("body must be a JSON object")
        return body

    @staticmethod
    def _str(body, key, max_len=64, default=None):
        v = body.get(key, default)
        if v is None:
            raise _BadRequest("%s missing" % key)
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise _BadRequest("%s must be a string" % key)
        v = str(v).strip()
        if len(v) > max_len:
            raise _BadRequest("%s longer than %d characters" % (key, max_len))
        return v

    @staticmethod
    def _digits(body, key, lo, hi):
        v = body.get(key)
        if not isinstance(v, str) or not v.isascii() or not v.isdigit() or not lo <= len(v) <= hi:
            raise _BadRequest("%s must be %d..%d digits" % (key, lo, hi))
        return v

    # ---- HTTP ------------------------------------------------------------------------------
    def _routes(self):
        app = bottle.Bottle()
        app.uninstall(bottle.JSONPlugin)
        app.install(bottle.JSONPlugin(json_dumps=lambda o: json.dumps(o, allow_nan=False)))
        dash = self

        def guard(callback):
            """Bad input -> 400 with the reason; the board not reachable -> 503 "board
            unreachable"; anything unforeseen -> 500 with a short JSON reason, no traceback."""
            def wrapper(*a, **kw):
                try:
                    return callback(*a, **kw)
                except bottle.HTTPResponse:
                    raise
                except _BadRequest as e:
                    return _json_error(400, str(e))
                except _client.LinkError as e:
                    return _json_error(503, _reason(e))
                except (_client.ProtocolError, OSError) as e:
                    return _json_error(502, "End board: %s" % e)
            return wrapper
        app.install(guard)
        app.add_hook("before_request", self._check_request)
        app.add_hook("after_request", _security_headers)

        @app.get("/")
        def index():
            bottle.redirect("/static/dashboard.html")

        @app.get("/static/<name:path>")
        def static(name):
            return bottle.static_file(name, root=STATIC)

        @app.get("/api/info")
        def info():
            s = dash._session()
            out = {"logged_in": s is not None, "transport": dash.transport_name}
            if s is not None:
                out["csrf"] = s.csrf
                out["must_change"] = s.must_change
            return out

        @app.post("/api/login")
        def login():
            body = dash._body()
            who = bottle.request.remote_addr or "?"
            wait = dash.limiter.wait_s(who)
            if wait > 0:
                bottle.response.set_header("Retry-After", str(int(wait + 0.999)))
                return _json_error(429, "too many wrong passwords from this client: try again in %d s"
                                   % int(wait + 0.999), ok=False)
            password = dash._digits(body, "password", 4, 16)
            if not dash.link.login(password):
                dash.limiter.fail(who)
                return _json_error(403, dash._refusal(), ok=False)
            dash.limiter.success(who)
            must_change = dash._factory(password)
            s = _Session(dash.now_s(), must_change)
            token = secrets.token_hex(16)
            with dash._lock:
                dash._prune()
                dash.sessions[token] = s
            bottle.response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            if dash.latest is None:
                dash.poll_once()
            return {"ok": True, "csrf": s.csrf, "must_change": must_change}

        @app.post("/api/password")
        def change_password():
            s = dash._need_login(change=True, allow_factory=True)
            body = dash._body()
            old = dash._digits(body, "old", 4, 16)
            new = dash._digits(body, "new", 6, 16)
            if new == FACTORY_PASSWORD:
                raise _BadRequest("new password must not be the factory one")
            who = bottle.request.remote_addr or "?"
            wait = dash.limiter.wait_s(who)
            if wait > 0:
                return _json_error(429, "too many wrong passwords from this client: try again in %d s"
                                   % int(wait + 0.999), ok=False)
            why = dash.link.change_password(old, new)
            if why is not None:
                if "wrong password" in why:
                    dash.limiter.fail(who)
                return _json_error(403, why, ok=False)
            with dash._lock:
                for other in dash.sessions.values():
                    other.must_change = False
            s.must_change = False
            return {"ok": True}

        @app.post("/api/logout")
        def logout():
            token = bottle.request.get_cookie(COOKIE)
            if token and dash._session() is not None:
                dash._need_login(change=True, allow_factory=True)
                with dash._lock:
                    dash.sessions.pop(token, None)
            bottle.response.delete_cookie(COOKIE, path="/")
            return {"ok": True}

        @app.get("/api/live")
        def live():
            dash._need_login()
            return {"snapshot": dash.latest, "settings": dash.settings, "error": dash.error,
                    "alarm_since": dash.alarm_since, "now": dash.clock(),
                    "events": dash.store.events(0, float("inf"), limit=20)}

        @app.get("/api/limits")
        def limits():
            rules = dash.link.rules
            if rules is None:
                return {"fields": []}
            return {"fields": settings_limits(rules, dash.settings)}

        @app.get("/api/settings/export")
        def settings_export():
            dash._need_login()
            from cellchain import settings_io
            text = settings_io.export_text(dash.link.settings())
            bottle.response.content_type = "application/json"
            bottle.response.set_header("Content-Disposition", "attachment; filename=cellchain-settings.json")
            return text

        @app.post("/api/settings/import")
        def settings_import():
            dash._need_login(change=True)
            from cellchain import settings_io
            text = dash._str(dash._body(), "text", dash.MAX_BODY)
            try:
                new = settings_io.parse(text)
                written = settings_io.import_settings(dash.link.settings(), new, dash.link.set_setting,
                                                      dash.link.rules,
                                                      lambda chem: dash.link.command("preset", chem))
                why = None
            except settings_io.ImportRefused as e:
                written, why = [], str(e)
            try:
                dash.settings = dash.link.settings()
            except (_client.ProtocolError, OSError):
                pass
            return {"ok": why is None, "error": why, "written": written, "settings": dash.settings}

        @app.post("/api/settings")
        def set_setting():
            dash._need_login(change=True)
            body = dash._body()
            name = dash._str(body, "name", 32)
            value = dash._str(body, "value", 32)
            if not name.replace("_", "").isalnum() or not name.isascii():
                raise _BadRequest("name must be a setting's name")
            if any(not 32 <= ord(ch) < 127 or ch in "$!" for ch in value):
                raise _BadRequest("value: printable ASCII only, no '$' or '!'")
            why = dash.link.set_setting(name, value)
            try:
                dash.settings = dash.link.settings()
            except (_client.ProtocolError, OSError):
                pass
            return {"ok": why is None, "error": why, "settings": dash.settings}

        @app.post("/api/raw")
        def raw():
            dash._need_login(change=True)
            body = dash._body()
            line = body.get("line")
            why = raw_refusal(line)
            if why is not None:
                raise _BadRequest(why)
            return {"lines": dash.link.raw(line)}

        @app.post("/api/command")
        def command():
            dash._need_login(change=True)
            body = dash._body()
            kind = dash._str(body, "kind", 16)
            arg = dash._str(body, "arg", 16)
            if kind not in ("mode", "preset"):
                raise _BadRequest("kind must be mode or preset")
            if not arg.isascii() or not arg.isalnum():
                raise _BadRequest("arg must be a word")
            why = dash.link.command(kind, arg)
            return {"ok": why is None, "error": why}

        @app.get("/api/history")
        def history():
            dash._need_login()
            t1, t0 = dash._window()
            points = _int_query("points", 600, 10, 2000)
            return {"t0": t0, "t1": t1, "series": dash.store.series(t0, t1, points),
                    "daily": dash.store.daily_spread(t0, t1),
                    "events": dash.store.events(t0, t1, limit=1000)}

        @app.get("/api/history.csv")
        def history_csv():
            dash._need_login()
            t1, t0 = dash._window()
            buf = io.StringIO()
            dash.store.write_csv(buf, t0, t1)
            bottle.response.content_type = "text/csv"
            bottle.response.set_header("Content-Disposition", "attachment; filename=cellchain-history.csv")
            return buf.getvalue()

        for code in (400, 401, 403, 404, 405, 413, 429, 500, 502, 503):
            app.error(code)(_error_page)
        return app

    def _refusal(self):
        """Why the board refused a password: locked (and for how long) or wrong."""
        try:
            lk = self.link.lock_status()
        except _client.LinkError:
            raise
        except _client.ProtocolError:
            return "login refused (wrong password, or locked after wrong passwords)"
        wait_ms = max(lk["connection_ms"], lk["global_ms"])
        if wait_ms:
            return "login refused: the End board is locked after wrong passwords, try again in %d s" % (
                (wait_ms + 999) // 1000)
        return "login refused: wrong password"

    def _factory(self, password):
        """True when the board still has the factory password (ST? pw_factory; older firmware:
        the password is 1234)."""
        try:
            st = self.link.status()
        except _client.LinkError:
            raise
        except _client.ProtocolError:
            return password == FACTORY_PASSWORD
        flag = st.get("pw_factory")
        return password == FACTORY_PASSWORD if flag is None else flag == "1"

    def _window(self):
        """(t1, t0): the last ``hours`` of history, ending at the newest record."""
        text = bottle.request.query.get("hours", "24")
        try:
            hours = float(text)
        except ValueError:
            raise _BadRequest("hours must be a number") from None
        if not math.isfinite(hours) or not 0 < hours <= self.MAX_HOURS:
            raise _BadRequest("hours must be more than 0 and at most %d" % self.MAX_HOURS)
        last = self.store.span()[1]
        t1 = last if last is not None else self.clock()
        return t1, t1 - hours * 3600

    # ---- life cycle ------------------------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d/" % (self.host, self.port)

    def start(self, record=True):
        self._server = make_server(self.host, self.port, self.app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_port
        th = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        th.start()
        self._threads.append(th)
        if record:
            rec = threading.Thread(target=self._record_loop, daemon=True)
            rec.start()
            self._threads.append(rec)
        return self

    def close(self):
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for th in self._threads:
            th.join(3)


def run(args):
    """The CLI's ``dashboard`` command: serve until Ctrl-C."""
    from cellchain.history import HistoryStore
    from cellchain.pack_link import PackLink

    def connect():
        return _client.Client(_client.open_transport(args.socket, args.serial, args.ble, args.baud),
                              timeout_s=args.timeout)
    try:
        first = connect()
    except _client.Unreachable as e:
        print("cellchain dashboard: board unreachable: %s (the page says so until it answers)" % e,
              file=sys.stderr, flush=True)
        first = None
    link = PackLink(first, connect=connect)
    store = HistoryStore(args.history, retention_days=args.retention_days)
    name = args.socket and "socket %s" % args.socket or args.serial and "serial %s" % args.serial \
        or "Bluetooth %s" % args.ble
    dash = Dashboard(link, store, host=args.host, port=args.port, interval_s=args.interval,
                     transport_name=name, allowed_hosts=getattr(args, "allow_host", None) or ())
    if getattr(args, "password_given", False):
        try:
            link.login(args.password)     # record from the start, before anyone opens the page
        except _client.LinkError as e:
            print("cellchain dashboard: %s" % _reason(e), file=sys.stderr, flush=True)
    dash.start()
    print("cellchain dashboard on %s  (End board: %s, history: %s) - Ctrl-C stops"
          % (dash.url, name, args.history), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        dash.close()
        link.close()
        store.close()
    return 0
