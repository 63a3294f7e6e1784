"""``cellchain dashboard``: the pack in a browser (docs/dashboard.md).

A bottle app on a threaded stdlib WSGI server serves one page (cellchain/static/, plain
HTML/JS, no CDN) and a small JSON API; a recorder thread reads the End board once per cycle
through PackLink and writes every reading into the history store (SQLite).

    dash = Dashboard(link, store, host="127.0.0.1", port=8124)
    dash.start()            # HTTP server + recorder threads; dash.url
    dash.poll_once()        # one reading (the recorder calls this every interval_s)
    dash.close()
"""
import io
import json
import os
import secrets
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

from cellchain import client as _client
from cellchain.pack_link import cell_flags

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
COOKIE = "cellchain_session"
SETTINGS_EVERY = 10          # re-read the settings every N readings


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Dashboard:
    def __init__(self, link, store, host="127.0.0.1", port=8124, interval_s=1.0, clock=time.time,
                 transport_name=""):
        self.link = link
        self.store = store
        self.host = host
        self.port = port
        self.interval_s = interval_s
        self.clock = clock
        self.transport_name = transport_name
        self.tokens = set()
        self.latest = None
        self.settings = None
        self.error = None
        self.alarm_since = {}      # alarm name -> time first seen in the current run
        self.readings = 0
        self._stop = threading.Event()
        self._threads = []
        self._server = None
        self.app = self._routes()

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
            self.error = str(e)
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

    # ---- HTTP ------------------------------------------------------------------------------
    def _authorised(self):
        return bottle.request.get_cookie(COOKIE) in self.tokens

    def _need_login(self):
        if not self._authorised():
            bottle.abort(401, "login required")

    def _routes(self):
        app = bottle.Bottle()

        @app.get("/")
        def index():
            bottle.redirect("/static/dashboard.html")

        @app.get("/static/<name:path>")
        def static(name):
            return bottle.static_file(name, root=STATIC)

        @app.get("/api/info")
        def info():
            return {"logged_in": self._authorised(), "transport": self.transport_name}

        @app.post("/api/login")
        def login():
            body = bottle.request.json or {}
            password = str(body.get("password", ""))
            if not password.isdigit() or not self.link.login(password):
                bottle.response.status = 403
                return {"ok": False, "error": "login refused (wrong password, or locked after 5 failures)"}
            token = secrets.token_hex(16)
            self.tokens.add(token)
            bottle.response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            if self.latest is None:
                self.poll_once()
            return {"ok": True}

        @app.post("/api/logout")
        def logout():
            self.tokens.discard(bottle.request.get_cookie(COOKIE))
            bottle.response.delete_cookie(COOKIE, path="/")
            return {"ok": True}

        @app.get("/api/live")
        def live():
            self._need_login()
            return {"snapshot": self.latest, "settings": self.settings, "error": self.error,
                    "alarm_since": self.alarm_since, "now": self.clock(),
                    "events": self.store.events(0, float("inf"), limit=20)}

        @app.get("/api/limits")
        def limits():
            rules = self.link.rules
            if rules is None:
                return {"fields": []}
            return {"fields": [{"name": n, "min": lo, "max": hi, "unit": u} for n, lo, hi, u in rules.FIELDS]}

        @app.post("/api/settings")
        def set_setting():
            self._need_login()
            body = bottle.request.json or {}
            name, value = str(body.get("name", "")), body.get("value")
            why = self.link.set_setting(name, "" if value is None else str(value).strip())
            try:
                self.settings = self.link.settings()
            except (_client.ProtocolError, OSError):
                pass
            return {"ok": why is None, "error": why, "settings": self.settings}

        @app.post("/api/raw")
        def raw():
            self._need_login()
            body = bottle.request.json or {}
            try:
                return {"lines": self.link.raw(str(body.get("line", "")))}
            except (_client.ProtocolError, OSError) as e:
                return {"lines": ["NA %s" % e]}

        @app.post("/api/command")
        def command():
            self._need_login()
            body = bottle.request.json or {}
            why = self.link.command(str(body.get("kind", "")), str(body.get("arg", "")))
            return {"ok": why is None, "error": why}

        @app.get("/api/history")
        def history():
            self._need_login()
            t1, t0 = self._window()
            points = min(2000, max(10, int(bottle.request.query.get("points", 600))))
            return {"t0": t0, "t1": t1, "series": self.store.series(t0, t1, points),
                    "daily": self.store.daily_spread(t0, t1),
                    "events": self.store.events(t0, t1, limit=1000)}

        @app.get("/api/history.csv")
        def history_csv():
            self._need_login()
            t1, t0 = self._window()
            buf = io.StringIO()
            self.store.write_csv(buf, t0, t1)
            bottle.response.content_type = "text/csv"
            bottle.response.set_header("Content-Disposition", "attachment; filename=cellchain-history.csv")
            return buf.getvalue()

        @app.error(401)
        def unauthorised(err):
            bottle.response.content_type = "application/json"
            return json.dumps({"error": "login required"})

        return app

    def _window(self):
        """(t1, t0): the last ``hours`` of history, ending at the newest record."""
        hours = float(bottle.request.query.get("hours", 24))
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
    t = _client.open_transport(args.socket, args.serial, args.ble, args.baud)
    link = PackLink(_client.Client(t, timeout_s=args.timeout))
    store = HistoryStore(args.history, retention_days=args.retention_days)
    name = args.socket and "socket %s" % args.socket or args.serial and "serial %s" % args.serial \
        or "Bluetooth %s" % args.ble
    dash = Dashboard(link, store, host=args.host, port=args.port, interval_s=args.interval,
                     transport_name=name)
    if getattr(args, "password_given", False):
        link.login(args.password)     # record from the start, before anyone opens the page
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
