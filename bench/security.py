"""Password guessing (issue 21): how many guesses a day an attacker gets, over Bluetooth and
through the dashboard page, from the code that ships, in virtual time (a few seconds of CPU).

* ``ble``: the End board's lockout (firmware/core/password.py ``Lockout``) alone. The attacker
  reconnects after every guess (so the per-connection count never builds up) and guesses the
  moment no lock stops him; the board's clock runs in 1 s ticks. Also the same attacker on one
  connection, and the owner: trying once a minute on his own connection for 6 h while the
  attacker goes on, with and without the End board's short button press (owner window).
* ``page``: the real dashboard (cellchain.dashboard.Dashboard, its WSGI app) with its PackLink
  and Client on the real firmware handler (core.app_protocol.AppProtocol) in process, the
  dashboard's clock and the board's ticks virtual. A client posts a wrong password to
  ``/api/login`` whenever the page lets it (no 429); the board's lockout and the page's own
  per-client backoff both apply. Counted: the guesses the board checked (a login refused
  because the board is locked tells the attacker nothing), and the logins the page took.

Figures per day (the first day, with the free guesses, and the mean of days 2..N), and the
expected time to find a 4-digit and a 6-digit password at the steady rate (half the space).
"""
import io
import json
import os
import tempfile
from wsgiref.util import setup_testing_defaults

from sim import fw

password = fw.core("password")
DAY_S = 86400


def _ble_attacker(days, reconnect=True):
    lk = password.Lockout(slots=2)
    per_day = []
    for _ in range(days):
        n = 0
        for _ in range(DAY_S):
            if not lk.locked(1):
                lk.attempt(1)
                lk.fail(1)
                n += 1
                if reconnect:
                    lk.close(1)
            lk.tick(1000)
        per_day.append(n)
    return per_day, lk


def _owner(button, hours=6):
    """The owner tries once a minute on slot 0 while the attacker (slot 1) goes on; returns how
    many of his tries got in."""
    _, lk = _ble_attacker(1)
    ok = 0
    for _minute in range(hours * 60):
        for s in range(60):
            if s == 30:
                if button:
                    lk.owner_window()
                if not lk.locked(0):
                    lk.attempt(0)
                    lk.success(0)
                    ok += 1
            if not lk.locked(1):
                lk.attempt(1)
                lk.fail(1)
                lk.close(1)
            lk.tick(1000)
    return ok


class _Brain:
    """The pack brain's values the protocol reads (all 0: only the login path matters here)."""

    def __getattr__(self, name):
        return 0


class _Ctl:
    """The End role's controller as core.app_protocol sees it, with nothing to control."""

    def __init__(self):
        settings = fw.core("settings")
        snapshot = fw.core("snapshot")
        self.settings = settings.preset(settings.LIFEPO4)
        self.snap = snapshot.PackSnapshot()
        self.brain = _Brain()
        self.firmware_version = (0, 0, 0)

    def set_password_hash(self, salt, pw_hash):
        self.settings.pw_salt, self.settings.pw_hash = salt, pw_hash


class _Direct:
    """A transport straight into the AppProtocol (no socket, no thread)."""

    def __init__(self, app):
        self.app = app
        self.buf = bytearray()
        self.slot = app.open(lambda b, n: self.buf.extend(bytes(b[:n])))

    def write(self, data):
        self.app.feed(data, len(data), self.slot)

    def read(self, timeout_s):
        out, self.buf[:] = bytes(self.buf), b""
        return out

    def close(self):
        self.app.close(self.slot)


def _page_attacker(days, workdir):
    from cellchain import client, dashboard, history, pack_link
    AppProtocol = fw.core("app_protocol").AppProtocol

    ctl = _Ctl()
    salt = "0011223344556677"
    ctl.settings.pw_salt, ctl.settings.pw_hash = salt, password.make_hash(salt, "135790")
    app = AppProtocol(ctl)
    now = [0.0]
    clock = lambda: now[0]                                   # noqa: E731

    def connect():
        return client.Client(_Direct(app), timeout_s=0.5)
    link = pack_link.PackLink(connect(), connect=connect, monotonic=clock)
    store = history.HistoryStore(os.path.join(workdir, "h.sqlite"))
    dash = dashboard.Dashboard(link, store, port=8124, now_s=clock, clock=clock)
    assert link.login("135790")                              # the recorder is logged in

    def post_login(guess):
        env = {}
        setup_testing_defaults(env)
        body = json.dumps({"password": guess}).encode()
        env.update(REQUEST_METHOD="POST", PATH_INFO="/api/login", CONTENT_TYPE="application/json",
                   CONTENT_LENGTH=str(len(body)), HTTP_HOST="127.0.0.1:8124", REMOTE_ADDR="127.0.0.1")
        env["wsgi.input"] = io.BytesIO(body)
        got = {}
        b"".join(dash.app(env, lambda status, headers, exc=None: got.setdefault("s", int(status[:3]))))
        return got["s"]

    checked = [0]                      # guesses the board actually checked (not refused as locked)
    fail = app.lockout.fail

    def counting_fail(slot=0):
        checked[0] += 1
        return fail(slot)
    app.lockout.fail = counting_fail
    per_day = []
    posts = []
    guess = 0
    for _ in range(days):
        before = checked[0]
        n = 0
        for _ in range(DAY_S):
            if dash.limiter.wait_s("127.0.0.1") <= 0:
                assert post_login("%06d" % guess) == 403
                guess += 1
                n += 1
            now[0] += 1.0
            app.tick(1000)
        per_day.append(checked[0] - before)
        posts.append(n)
    store.close()
    return per_day, posts


def _summary(per_day):
    first = per_day[0]
    rest = per_day[1:] or per_day
    steady = sum(rest) / float(len(rest))
    return {"first_day": first, "per_day": round(steady, 1), "days": len(per_day),
            "pin4_expected_days": round(10 ** 4 / 2.0 / steady, 1),
            "pin6_expected_years": round(10 ** 6 / 2.0 / steady / 365.0, 1)}


def measure(days=3):
    ble, _ = _ble_attacker(days)
    one_conn, _ = _ble_attacker(days, reconnect=False)
    with tempfile.TemporaryDirectory(prefix="cellchain-bench-security-") as d:
        page, posts = _page_attacker(days, d)
    page_fig = _summary(page)
    page_fig["logins_posted_first_day"] = posts[0]
    page_fig["logins_posted_per_day"] = round(sum(posts[1:] or posts) / float(len(posts[1:] or posts)), 1)
    return {"ble": _summary(ble), "ble_one_connection": _summary(one_conn), "page": page_fig,
            "owner_6h_once_a_minute": {"without_button": _owner(False), "with_button": _owner(True),
                                        "tries": 360},
            "lockout": {"global_free_failures": password.GLOBAL_FREE_FAILURES,
                        "global_lock_s": password.GLOBAL_LOCK_MS // 1000,
                        "global_max_lock_s": password.GLOBAL_MAX_LOCK_MS // 1000,
                        "leak_s": password.GLOBAL_LEAK_MS // 1000, "new_password_min_digits": password.NEW_MIN_DIGITS}}


def run(results, days=3):
    results["security"] = measure(days)
