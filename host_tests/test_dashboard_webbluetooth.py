"""The page's Web Bluetooth transport (Nordic UART service) against a stand-in
``navigator.bluetooth`` injected into headless Chromium: its characteristics carry the bytes,
in notifications of at most 20 bytes, to a session of its own on the virtual pack's app socket.
Login, live values equal to the board's state, a setting refused with the board's own reason."""
import json
import threading

import pytest

from dashboard_rig import PackRig, chromium_driver, wait_for

bottle = pytest.importorskip("bottle")

from cellchain import client  # noqa: E402

PACK = {"name": "ble4", "duration_s": 3600, "pack": {"cells": 4, "chemistry": "lifepo4", "capacity_ah": 100,
                                                       "soc_pct": 60}, "charger": {"max_a": 10}, "load": {"a": 0}}

# navigator.bluetooth as Chrome offers it, with the GATT bytes going through /test-ble/* below.
STAND_IN = r"""
(() => {
  const log = window.__ble = { writes: [], notifications: 0, request: null, connected: false };
  const hex = (bytes) => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
  class Characteristic extends EventTarget {
    constructor(uuid) { super(); this.uuid = uuid; this.value = null; }
    async writeValueWithResponse(data) {
      const bytes = new Uint8Array(data.buffer ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data);
      if (bytes.length > 20) throw new DOMException("longer than the MTU allows", "NotSupportedError");
      log.writes.push(bytes.length);
      await fetch("/test-ble/write", { method: "POST", body: JSON.stringify({ hex: hex(bytes) }) });
    }
    async startNotifications() {
      const poll = async () => {
        if (!log.connected) return;
        const d = await (await fetch("/test-ble/read")).json();
        for (let i = 0; i < d.hex.length; i += 40) {          // 20-byte notifications
          const chunk = d.hex.slice(i, i + 40), buf = new Uint8Array(chunk.length / 2);
          for (let j = 0; j < buf.length; j++) buf[j] = parseInt(chunk.substr(2 * j, 2), 16);
          this.value = new DataView(buf.buffer);
          log.notifications++;
          this.dispatchEvent(new Event("characteristicvaluechanged"));
        }
        setTimeout(poll, 30);
      };
      poll();
      return this;
    }
  }
  const chars = { "6e400002-b5a3-f393-e0a9-e50e24dcca9e": new Characteristic("rx"),
                  "6e400003-b5a3-f393-e0a9-e50e24dcca9e": new Characteristic("tx") };
  const service = { getCharacteristic: async (uuid) => chars[uuid] };
  const device = { name: "cellchain", gatt: {
    connected: false,
    connect: async function () {
      await fetch("/test-ble/open", { method: "POST" });
      this.connected = log.connected = true; return { getPrimaryService: async (uuid) => {
        if (uuid !== "6e400001-b5a3-f393-e0a9-e50e24dcca9e") throw new DOMException("no such service", "NotFoundError");
        return service; } };
    },
    disconnect: function () { this.connected = log.connected = false; fetch("/test-ble/close", { method: "POST" }); } } };
  Object.defineProperty(navigator, "bluetooth", { value: { requestDevice: async (opts) => { log.request = opts; return device; } } });
})();
"""


class BleBridge:
    """The stand-in's radio: one app-socket session of its own on the virtual pack."""

    def __init__(self, app, port):
        self.port = port
        self.t = None
        self.lock = threading.Lock()
        app.route("/test-ble/open", "POST", self.open)
        app.route("/test-ble/close", "POST", self.close)
        app.route("/test-ble/write", "POST", self.write)
        app.route("/test-ble/read", "GET", self.read)

    def open(self):
        with self.lock:
            self.t = client.SocketTransport("127.0.0.1", self.port)
        return {}

    def close(self):
        with self.lock:
            if self.t is not None:
                self.t.close()
                self.t = None
        return {}

    def write(self):
        data = bytes.fromhex(json.loads(bottle.request.body.read())["hex"])
        with self.lock:
            self.t.write(data)
        return {}

    def read(self):
        with self.lock:
            data = b"" if self.t is None else self.t.read(0.02)
        return {"hex": data.hex()}


@pytest.fixture
def browser(tmp_path):
    d = chromium_driver(tmp_path)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": STAND_IN})
    yield d
    d.quit()


def test_web_bluetooth_login_live_values_and_a_refusal(tmp_path, browser):
    rig = PackRig(tmp_path, PACK)
    bridge = BleBridge(rig.dash.app, rig.app.port)
    try:
        rig.advance(20)
        browser.get(rig.dash.url)
        wait_for(lambda: browser.find_element("id", "ble-btn").is_displayed(), what="Bluetooth button")
        box = browser.find_element("id", "password")
        box.send_keys("7777")
        browser.find_element("id", "ble-btn").click()
        wait_for(lambda: "refused" in browser.find_element("id", "login-error").text, what="wrong password")
        box.clear()
        box.send_keys(rig.password)
        browser.find_element("id", "ble-btn").click()
        wait_for(lambda: browser.find_element("id", "main").is_displayed(), what="main view over Bluetooth")
        assert not rig.link.logged_in                     # the server's own session never logged in
        assert browser.find_element("id", "transport").text == "Web Bluetooth: cellchain"
        assert not browser.find_element("id", "history").is_displayed()
        st = rig.sim.fw.state()
        want = ["%.3f V" % (mv / 1000) for mv in st["cell_mv"]]
        wait_for(lambda: [e.text for e in browser.find_elements("css selector", "#cells .cell .cell-v")] == want,
                 what="cell voltages %s" % want)
        assert browser.find_element("id", "soc").text == "%.1f %%" % (st["soc_c"] / 100)
        wait_for(lambda: browser.find_elements("id", "set-vmax_mv"), what="settings over Bluetooth")
        box = browser.find_element("id", "set-vmax_mv")
        box.clear()
        box.send_keys("3300")                             # below V-balance: the board refuses
        browser.find_element("css selector", "button.save[data-name='vmax_mv']").click()
        msg = wait_for(lambda: "refused" in browser.find_element("id", "settings-msg").text
                       and browser.find_element("id", "settings-msg").text, what="the board's refusal")
        assert msg == "refused: vmax_mv=3300: must be 3410..4000 mV (lifepo4 limit; at least vbal_mv + 10 and vnom_mv)"
        assert rig.sim.fw.state()["settings"]["vmax_mv"] == 3700
        box = browser.find_element("id", "set-name")
        box.clear()
        box.send_keys("cellchain-van-pack")               # a 27-byte line: two writes
        browser.find_element("css selector", "button.save[data-name='name']").click()
        wait_for(lambda: "saved" in browser.find_element("id", "settings-msg").text, what="name saved")
        assert rig.sim.fw.state()["settings"]["name"] == "cellchain-van-pack"
        log = browser.execute_script("return window.__ble")
        assert log["request"]["optionalServices"] == ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"]
        assert {"services": ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"]} in log["request"]["filters"]
        assert log["writes"] and max(log["writes"]) <= 20 and 20 in log["writes"]   # long lines were cut
        assert log["notifications"] > 10
    finally:
        bridge.close()
        rig.close()
