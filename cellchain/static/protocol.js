// The End board's app protocol (docs/ble-protocol.md) in the page: one session over any line
// transport. Used by the Web Bluetooth connection (Nordic UART service) and by the dashboard
// server's line relay (/api/raw), so both speak exactly the same lines.
"use strict";

const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";   // we write here
const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";   // the board notifies here
const STATUS_INT_KEYS = ["cells", "pack_mv", "current_ma", "soc_c", "soc_cal", "charge", "load", "comm", "pw_factory",
  "break", "soh", "cycles", "in_wh", "out_wh", "stored_wh", "pin_w", "pout_w", "min_mv", "max_mv", "uptime_s", "link", "rst"];
const CELL_STATUS_BITS = [[0x01, "balancing"], [0x02, "ntc_fault"], [0x04, "volt_fault"], [0x08, "derated"],
  [0x10, "upstream_lost"], [0x20, "not_calibrated"], [0x40, "watchdog_reset"], [0x80, "stale"]];

class ProtocolError extends Error {}

function cellFlags(status) { return CELL_STATUS_BITS.filter(([bit]) => status & bit).map(([, n]) => n); }

function parseStatus(text) {
  const out = {};
  for (const item of text.trim().split(/\s+/)) {
    const [k, v] = item.split("=");
    if (k === "alarms") out[k] = parseInt(v, 16) || 0;
    else if (STATUS_INT_KEYS.includes(k)) { const n = parseInt(v, 10); out[k] = Number.isNaN(n) ? null : n; }
    else out[k] = v;
  }
  return out;
}

function parseCell(text) {      // "<cell> <mV> <0.1 degC> <status hex>", X = no value
  const f = text.split(" ");
  const mv = f[1] === "X" ? null : parseInt(f[1], 10), t = f[2] === "X" ? null : parseInt(f[2], 10);
  const status = parseInt(f[3], 16);
  return { cell: parseInt(f[0], 10), mv: mv === 0 ? null : mv, temp_dc: t !== null && t <= -32768 ? null : t,
    status: status, flags: cellFlags(status) };
}

function parseAlarms(text) {    // "<mask hex> <break position> <names or ->"
  const f = text.split(" ");
  return { mask: parseInt(f[0], 16), break_position: parseInt(f[1], 10),
    names: f.length < 3 || f[2] === "-" ? [] : f[2].split(",") };
}

function parseSettings(lines) {
  const out = {};
  for (const l of lines) {
    const i = l.indexOf("=");
    const k = l.slice(0, i), v = l.slice(i + 1);
    out[k] = k === "name" ? v : parseInt(v, 10);
  }
  return out;
}

// A session: line transport with send(text) and onData(callback(text)).
class AppSession {
  constructor(transport, timeoutMs) {
    this.t = transport;
    this.timeoutMs = timeoutMs || 5000;
    this.buf = "";
    this.waiters = [];
    this.busy = Promise.resolve();
    transport.onData((text) => this.receive(text));
  }

  receive(text) {
    this.buf += text.replace(/\n/g, "");
    let i;
    while ((i = this.buf.indexOf("\r")) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (this.waiters.length) this.waiters[0](line);
    }
  }

  // Send one command; resolve with the lines starting with prefix before OK, reject on NA.
  request(line, prefix) {
    const run = () => new Promise((resolve, reject) => {
      const got = [];
      let reason = null;                    // an ERR: line gives the reason for the NA after it
      const timer = setTimeout(() => { this.waiters.shift(); reject(new ProtocolError("no reply to " + line)); },
        this.timeoutMs);
      const done = (fn, value) => { clearTimeout(timer); this.waiters.shift(); fn(value); };
      this.waiters.push((reply) => {
        if (reply === "OK") done(resolve, got);
        else if (reply.startsWith("ERR:")) reason = reply.slice(4);
        else if (reply === "NA" || reply.startsWith("NA ")) done(reject, new ProtocolError(reply.length > 3 ? reply.slice(3) : (reason || "refused")));
        else if (prefix && reply.startsWith(prefix)) got.push(reply.slice(prefix.length));
      });
      this.t.send(line + "\r");
    });
    const p = this.busy.then(run, run);      // one request at a time, in order
    this.busy = p.catch(() => {});
    return p;
  }

  // true on OK, false on the board's NA; a timeout (no reply: board unreachable) throws
  async login(password) {
    try { await this.request("PW" + password + "!"); return true; }
    catch (e) { if (e.message.startsWith("no reply")) throw e; return false; }
  }
  async snapshot() {
    const st = parseStatus((await this.request("ST?", "ST:"))[0] || "");
    const cells = (await this.request("CL?", "CL:")).map(parseCell);
    const alarms = parseAlarms((await this.request("A?", "A:"))[0] || "0000 0 -");
    return { t: Date.now() / 1000, status: st, cells: cells, alarms: alarms };
  }
  async settings() { return parseSettings(await this.request("S?", "S:")); }
  async firmware() { return (await this.request("F?", "F:"))[0]; }
  async events() {              // the End board's log (EV?), oldest first
    return (await this.request("EV?", "EV:")).map((l) => {
      const f = l.split(" ").map((x, i) => (i === 2 || i === 3) ? x : parseInt(x, 10));
      return { n: f[0], uptime_s: f[1], kind: f[2], what: f[3], min_mv: f[4], max_mv: f[5], current_ma: f[6],
        soc_c: f[7], break_position: f[8] };
    });
  }
  setSetting(name, value) { return this.request("S:" + name + "=" + value + "!"); }
  mode(m) { return this.request("MO:" + m + "!"); }
}

// Web Bluetooth: the Nordic UART service, writes cut to the 20-byte default MTU payload.
class WebBluetoothTransport {
  static available() { return typeof navigator !== "undefined" && !!navigator.bluetooth; }

  async connect() {
    this.device = await navigator.bluetooth.requestDevice({
      filters: [{ services: [NUS_SERVICE] }, { name: "123\\SmartBMS" }, { namePrefix: "cellchain" }],
      optionalServices: [NUS_SERVICE] });
    const server = await this.device.gatt.connect();
    const service = await server.getPrimaryService(NUS_SERVICE);
    this.rx = await service.getCharacteristic(NUS_RX);
    this.tx = await service.getCharacteristic(NUS_TX);
    this.decoder = new TextDecoder("ascii");
    this.tx.addEventListener("characteristicvaluechanged", (ev) => {
      if (this.cb) this.cb(this.decoder.decode(ev.target.value));
    });
    await this.tx.startNotifications();
    this.queue = Promise.resolve();
    return this;
  }
  name() { return this.device && this.device.name ? this.device.name : "Bluetooth"; }
  onData(cb) { this.cb = cb; }
  send(text) {
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i += 20) {
      const chunk = bytes.slice(i, i + 20);
      this.queue = this.queue.then(() => this.rx.writeValueWithResponse
        ? this.rx.writeValueWithResponse(chunk) : this.rx.writeValue(chunk));
    }
  }
  close() { if (this.device && this.device.gatt.connected) this.device.gatt.disconnect(); }
}

// The dashboard server's relay: each line goes to the board over the server's own connection.
class ServerLineTransport {
  // the session's token for state changes (X-CSRF-Token), set by the page after its login
  static csrf = "";
  onData(cb) { this.cb = cb; }
  async send(text) {
    const r = await fetch("/api/raw", { method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": ServerLineTransport.csrf || "" },
      body: JSON.stringify({ line: text.replace(/\r$/, "") }) });
    const d = await r.json();
    if (this.cb) this.cb((d.lines || ["NA " + (d.error || "no reply")]).join("\r") + "\r");
  }
}
