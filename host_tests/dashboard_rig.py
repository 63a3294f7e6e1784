"""Test rig for the dashboard: the virtual pack (cpython engine) on its app socket, stepped on
demand by a driver thread that serves the socket in between, and a Dashboard reading it with the
pack's virtual clock; plus a headless Chromium (Debian's chromium + chromium-driver) via selenium."""
import os
import shutil
import threading
import time

import pytest

from cellchain import client, dashboard, history, pack_link
from sim import engine, scenario
from sim.app_server import serve

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
T0 = 1798761600.0     # 2027-01-01 00:00 UTC: the virtual pack's clock starts here
OWNER = "135790"      # the password the rig sets (the factory one must be changed at the first login)


class PackRig:
    def __init__(self, tmp_path, sc, retention_days=None, factory=False):
        self.sim = engine.Simulation(scenario.load(sc), workdir=str(tmp_path / "boards"))
        self.app = serve(self.sim, 0)
        self._pending = 0
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.start()
        if not factory:                 # the owner has set his own password
            c = client.Client(client.SocketTransport("127.0.0.1", self.app.port), timeout_s=10.0)
            assert c.login("1234")
            c.change_password("1234", OWNER)
            c.close()
        self.password = "1234" if factory else OWNER
        self.link = pack_link.PackLink(self.connect(), connect=self.connect)
        self.store = history.HistoryStore(str(tmp_path / "history.sqlite"), retention_days=retention_days)
        self.dash = dashboard.Dashboard(self.link, self.store, port=0, clock=self.now,
                                        transport_name="virtual pack").start(record=False)

    def connect(self):
        return client.Client(client.SocketTransport("127.0.0.1", self.app.port), timeout_s=10.0)

    def now(self):
        return T0 + self.sim.t_ms / 1000.0

    def _drive(self):
        while True:
            with self._cv:
                if self._stop:
                    return
                run = self._pending > 0
            if run:
                self.sim.step()
                with self._cv:
                    self._pending -= 1
                    self._cv.notify_all()
            else:
                self.app.wait(0.01)

    def advance(self, seconds, read_every_s=None):
        """Run the pack ``seconds`` simulated seconds; with ``read_every_s`` the dashboard reads
        (and records) the board that often in virtual time."""
        steps = int(seconds * 1000 // self.sim.cycle_ms)
        every = None if read_every_s is None else max(1, int(read_every_s * 1000 // self.sim.cycle_ms))
        done = 0
        while done < steps:
            n = steps - done if every is None else min(every, steps - done)
            with self._cv:
                self._pending = n
                self._cv.notify_all()
                while self._pending:
                    self._cv.wait(1.0)
            done += n
            if every is not None:
                self.read()

    def read(self):
        """One reading by the dashboard (logging it in with the rig's password if needed)."""
        if not self.link.logged_in:
            assert self.link.login(self.password)
        assert self.dash.poll_once(), self.dash.error
        return self.dash.latest

    def close(self):
        self.dash.close()
        with self._cv:
            self._stop = True
        self._thread.join(5)
        self.link.close()
        self.app.close()
        self.sim.close()
        self.store.close()


def chromium_driver(tmp_path, width=1280, height=1800):
    """A headless Chromium under selenium, or pytest.skip when Chromium is not installed."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Chromium not installed (Debian packages chromium and chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              "--user-data-dir=%s" % (tmp_path / "chromium-profile"), "--window-size=%d,%d" % (width, height)):
        opts.add_argument(a)
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    return webdriver.Chrome(options=opts, service=service)


def wait_for(fn, timeout_s=10.0, what="condition"):
    end = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:     # element not there yet: keep waiting
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def save_screenshot(driver, name):
    """The README's screenshots: docs/img/<name>.png, written by the browser test."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "docs", "img", name)
    tmp = path[:-4] + ".part.png"
    driver.save_screenshot(tmp)
    shutil.move(tmp, path)
    return path
