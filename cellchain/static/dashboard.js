// cellchain dashboard page: plain JS, no libraries. Talks to the dashboard server's JSON API
// (docs/dashboard.md); every value shown is what the End board answered.
"use strict";
const $ = (id) => document.getElementById(id);
const INFO_FLAGS = ["not_calibrated", "derated"];   // cell status bits that are no fault
const state = { limits: {}, settings: null, timer: null, mode: null, session: null, ticks: 0,
  seen: {}, server: false };

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { showLogin(); throw new Error("login required"); }
  return Object.assign({ httpStatus: r.status }, data);
}

function fmt(value, div, digits, unit) {
  if (value === null || value === undefined) return "--";
  return (value / div).toFixed(digits) + (unit ? " " + unit : "");
}
function clock(t) { return new Date(t * 1000).toLocaleString(); }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- login: through the dashboard server, or straight to the board over Web Bluetooth ------
function showLogin() {
  $("login").hidden = false; $("main").hidden = true; $("logout-btn").hidden = true;
  $("login-btn").hidden = !state.server;
  const ble = WebBluetoothTransport.available();
  $("ble-btn").hidden = !ble; $("ble-note").hidden = !ble;
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
}
function showMain() {
  $("login").hidden = true; $("main").hidden = false; $("logout-btn").hidden = false;
  $("history").hidden = state.mode !== "server";
  state.settings = null; state.ticks = 0; $("settings").tBodies[0].textContent = "";
  if (!state.timer) state.timer = setInterval(refresh, 1000);
  refresh();
  if (state.mode === "server") loadHistory();
}
$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await api("/api/login", { password: $("password").value });
  if (r.ok) {
    $("login-error").textContent = ""; $("password").value = "";
    state.mode = "server"; state.session = new AppSession(new ServerLineTransport(), 10000);
    showMain();
  } else $("login-error").textContent = r.error || "login refused";
});
$("ble-btn").addEventListener("click", async () => {
  let t;
  try {
    t = await new WebBluetoothTransport().connect();
  } catch (e) { $("login-error").textContent = "Bluetooth: " + e.message; return; }
  const session = new AppSession(t, 5000);
  if (!(await session.login($("password").value))) {
    t.close();
    $("login-error").textContent = "login refused (wrong password, or locked after 5 failures)";
    return;
  }
  $("login-error").textContent = ""; $("password").value = "";
  state.mode = "ble"; state.session = session; state.ble = t;
  $("transport").textContent = "Web Bluetooth: " + t.name();
  showMain();
});
$("logout-btn").addEventListener("click", async () => {
  if (state.mode === "ble") state.ble.close(); else await api("/api/logout", {});
  state.mode = null; state.session = null; showLogin();
});

// ---- live view ---------------------------------------------------------------------------
async function refresh() {
  if (state.refreshing) return;          // a slow link: never two readings at once
  state.refreshing = true;
  try { await readAndRender(); } finally { state.refreshing = false; }
}

async function readAndRender() {
  // the live values come from the page's own protocol code (protocol.js) on either transport;
  // the server adds what only it has: alarm times and events from the history
  let d = {}, snap;
  try {
    if (state.mode === "server") d = await api("/api/live");
    snap = await state.session.snapshot();
    if (!state.settings || state.ticks % 10 === 0) renderSettings(await state.session.settings());
    if (state.ticks % 5 === 0) renderBoardEvents(await state.session.events().catch(() => []));
    state.ticks++;
  } catch (e) {
    $("link-error").textContent = "End board: " + e.message;
    return;
  }
  $("link-error").textContent = d.error ? "End board: " + d.error : "";
  const since = d.alarm_since || trackAlarms(snap.alarms.names);
  const s = snap.status, set = state.settings || {};
  $("soc").textContent = fmt(s.soc_c, 100, 1, "%");
  $("soc-cal").textContent = s.soc_cal ? "" : "not calibrated";
  // during a comm loss the End board's pack voltage is the sum of the cells still heard: not the
  // pack's (the extended output sends N = 0 and BLE "X" there), so none is shown
  const packMv = s.comm ? s.pack_mv : null;
  $("pack-v").textContent = fmt(packMv, 1000, 2, "V");
  $("current").textContent = fmt(s.current_ma, 1000, 2, "A");
  const w = (packMv !== null && s.current_ma !== null) ? packMv * s.current_ma / 1e6 : null;
  $("power").textContent = w === null ? "--" : w.toFixed(0) + " W";
  $("energy-stored").textContent = s.stored_wh === null ? "--" : s.stored_wh + " Wh";
  $("energy-io").textContent = "in " + s.in_wh + " Wh, out " + s.out_wh + " Wh";
  $("relay-charge").className = "relay" + (s.charge ? " on" : "");
  $("relay-load").className = "relay" + (s.load ? " on" : "");
  $("relay-charge").textContent = "charge " + (s.charge ? "ON" : "off");
  $("relay-load").textContent = "load " + (s.load ? "ON" : "off");
  $("mode").textContent = set.mode === 1 ? "critical mode" : (set.mode === 0 ? "normal mode" : "");
  const brk = snap.alarms.break_position;
  $("link-state").textContent = s.comm ? "ok" : (brk ? "broken before board " + brk : "lost");
  $("link-state").className = "big " + (s.comm ? "ok" : "bad");
  renderCells(snap.cells, set);
  renderChain(snap.cells, s.comm, brk);
  renderAlarms(snap.alarms.names, since);
  renderEvents($("events"), d.events || []);
  $("main").dataset.updated = String(state.ticks);
}

function renderBoardEvents(list) {
  const body = $("board-events").tBodies[0];
  body.textContent = "";
  for (const e of list.slice().reverse()) {
    const row = body.insertRow();
    const up = e.uptime_s, hms = [Math.floor(up / 3600), Math.floor(up / 60) % 60, up % 60]
      .map((x) => String(x).padStart(2, "0")).join(":");
    for (const v of [e.n, hms, e.kind, e.what.replace(/_/g, " ") + (e.break_position ? " (break at " + e.break_position + ")" : ""),
      (e.min_mv / 1000).toFixed(3) + ".." + (e.max_mv / 1000).toFixed(3) + " V", (e.current_ma / 1000).toFixed(2) + " A",
      (e.soc_c / 100).toFixed(1) + " %"]) row.insertCell().textContent = String(v);
  }
}

function trackAlarms(names) {      // Web Bluetooth: the time this page first saw each alarm
  for (const n of names) if (!(n in state.seen)) state.seen[n] = Date.now() / 1000;
  for (const n of Object.keys(state.seen)) if (!names.includes(n)) delete state.seen[n];
  return state.seen;
}

function renderCells(cells, set) {
  const lo = Math.min(set.vmin_mv || 2500, ...cells.map(c => c.mv || 99999)) - 100;
  const hi = Math.max(set.vmax_mv || 3700, ...cells.map(c => c.mv || 0)) + 100;
  const pos = (mv) => (100 * (mv - lo) / (hi - lo)).toFixed(2) + "%";
  const box = $("cells");
  box.textContent = "";
  for (const c of cells) {
    const row = el("div", "cell"); row.dataset.cell = c.cell;
    row.appendChild(el("span", "cell-n", String(c.cell)));
    const bar = el("div", "bar");
    const fill = el("div", "fill");
    if (c.mv !== null) {
      fill.style.width = pos(c.mv);
      if (set.vmin_mv && c.mv <= set.vmin_mv) fill.classList.add("low");
      if (set.vmax_mv && c.mv >= set.vmax_mv) fill.classList.add("high");
    }
    bar.appendChild(fill);
    for (const [key, cls] of [["vmin_mv", "vmin"], ["vbal_mv", "vbal"], ["vmax_mv", "vmax"]]) {
      if (set[key]) { const m = el("span", "mark " + cls); m.style.left = pos(set[key]); m.title = key; bar.appendChild(m); }
    }
    row.appendChild(bar);
    row.appendChild(el("span", "cell-v", c.mv === null ? "--" : (c.mv / 1000).toFixed(3) + " V"));
    row.appendChild(el("span", "cell-t", c.temp_dc === null ? "--" : (c.temp_dc / 10).toFixed(1) + " °C"));
    const flags = el("span", "cell-flags");
    for (const f of c.flags || []) {
      const kind = f === "balancing" ? "balancing" : (INFO_FLAGS.includes(f) ? "info" : "fault");
      flags.appendChild(el("span", "flag " + kind, f === "balancing" ? "B" : f.replace(/_/g, " ")));
    }
    row.appendChild(flags);
    box.appendChild(row);
  }
  const mvs = cells.map(c => c.mv).filter(v => v !== null);
  $("cell-range").textContent = mvs.length ? "spread " + (Math.max(...mvs) - Math.min(...mvs)) + " mV" : "";
}

function renderChain(cells, comm, brk) {
  const box = $("chain");
  box.textContent = "";
  cells.forEach((c, i) => {
    if (i > 0) box.appendChild(el("span", "wire" + (!comm && brk === c.cell ? " broken" : "")));
    const lost = !comm && brk && c.cell < brk;   // upstream of the break: no frames reach the End
    const name = i === 0 ? "B" : (i === cells.length - 1 ? "E" : String(c.cell));
    const b = el("span", "board" + (lost ? " lost" : ""), name);
    b.title = "board " + c.cell + (c.flags && c.flags.length ? ": " + c.flags.join(", ") : "");
    box.appendChild(b);
  });
  $("chain-text").textContent = comm ? "every board's frame arrives at the End board"
    : (brk ? "chain broken between board " + (brk - 1) + " and board " + brk + ": check that wire and opto stage"
      : "no cell data reaches the End board");
}

function renderAlarms(names, since) {
  const ul = $("alarms");
  ul.textContent = "";
  if (!names.length) ul.appendChild(el("li", "ok", "none"));
  for (const n of names) ul.appendChild(el("li", "bad", n.replace(/_/g, " ") + " since " + clock(since[n])));
}

function renderEvents(ul, events) {
  ul.textContent = "";
  for (const e of events || []) ul.appendChild(el("li", "", clock(e.t) + "  " + e.kind + ": " + e.detail));
}

// ---- settings ----------------------------------------------------------------------------
function checkLocally(name, text) {
  const lim = state.limits[name];
  if (name === "name") return (text.length >= 1 && text.length <= 20 && text.indexOf("$") < 0) ? null : "name: must be 1..20 characters (no $)";
  if (!/^-?\d+$/.test(text)) return name + ": must be a whole number";
  const v = parseInt(text, 10);
  if (lim && (v < lim.min || v > lim.max)) return name + "=" + v + ": must be " + lim.min + ".." + lim.max + " " + lim.unit;
  return null;
}

function renderSettings(settings) {
  state.settings = settings;
  const body = $("settings").tBodies[0];
  if (body.rows.length) {       // update values in place (keep what the user is typing)
    for (const row of body.rows) {
      const inp = row.querySelector("input");
      if (document.activeElement !== inp) inp.value = settings[inp.name];
    }
    return;
  }
  for (const [name, value] of Object.entries(settings)) {
    const row = body.insertRow();
    row.insertCell().textContent = name;
    const inp = el("input"); inp.name = name; inp.value = value; inp.id = "set-" + name;
    row.insertCell().appendChild(inp);
    const lim = state.limits[name];
    row.insertCell().textContent = lim ? lim.min + ".." + lim.max + " " + lim.unit : "";
    const btn = el("button", "save", "save"); btn.dataset.name = name;
    btn.addEventListener("click", () => saveSetting(name, inp.value.trim()));
    row.insertCell().appendChild(btn);
  }
}

async function saveSetting(name, text) {
  // server: checked there with the firmware's own rules, then by the board; Bluetooth: by the board
  const msg = $("settings-msg");
  const local = checkLocally(name, text);
  if (local) { msg.className = "bad"; msg.textContent = "refused: " + local; return; }
  let r;
  if (state.mode === "server") r = await api("/api/settings", { name: name, value: text });
  else {
    try { await state.session.setSetting(name, text); r = { ok: true }; } catch (e) { r = { ok: false, error: e.message }; }
    r.settings = await state.session.settings();
  }
  msg.className = r.ok ? "ok" : "bad";
  msg.textContent = r.ok ? name + " = " + text + " saved on the board" : "refused: " + r.error;
  if (r.settings) { $("settings").tBodies[0].textContent = ""; renderSettings(r.settings); }
}

for (const b of document.querySelectorAll("button.cmd")) {
  b.addEventListener("click", async () => {
    let r;
    if (state.mode === "server") r = await api("/api/command", { kind: b.dataset.kind, arg: b.dataset.arg });
    else {
      try { await state.session.mode(b.dataset.arg); r = { ok: true }; } catch (e) { r = { ok: false, error: e.message }; }
    }
    $("settings-msg").className = r.ok ? "ok" : "bad";
    $("settings-msg").textContent = r.ok ? b.dataset.kind + " " + b.dataset.arg : "refused: " + r.error;
  });
}

// ---- history -----------------------------------------------------------------------------
const COLOURS = ["#4a78c2", "#c2492a", "#1b7f2a", "#e08a00", "#7b3fb0", "#00838f", "#ad1457", "#5d4037"];

// One series as a polyline (null = a gap); returns the points drawn.
function strokeSeries(g, t, values, x, y) {
  let pen = false, drawn = 0;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    if (pen) g.lineTo(x(t[i]), y(v)); else { g.moveTo(x(t[i]), y(v)); pen = true; }
    drawn++;
  });
  g.stroke();
  return drawn;
}

function drawChart(canvas, t, series) {
  // series: [{name, values, colour, unit}], each on its own vertical scale (labelled)
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height, L = 8, R = 8, T = 18, B = 18;
  g.clearRect(0, 0, W, H);
  g.font = "11px sans-serif";
  if (!t.length) { g.fillText("no history yet", W / 2 - 40, H / 2); return 0; }
  const t0 = t[0], t1 = t[t.length - 1] === t0 ? t0 + 1 : t[t.length - 1];
  const x = (v) => L + (W - L - R) * (v - t0) / (t1 - t0);
  let drawn = 0, legendX = L;
  for (const s of series) {
    const vals = s.values.filter(v => v !== null);
    if (!vals.length) continue;
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    g.strokeStyle = s.colour; g.lineWidth = 1.2; g.beginPath();
    drawn += strokeSeries(g, t, s.values, x, y);
    if (s.legend !== false) {
      const label = s.name + " " + lo.toFixed(s.digits) + ".." + hi.toFixed(s.digits) + " " + s.unit;
      g.fillStyle = s.colour; g.fillText(label, legendX, 12); legendX += g.measureText(label).width + 14;
    }
  }
  g.fillStyle = "#555";
  g.fillText(new Date(t0 * 1000).toLocaleString(), L, H - 4);
  const end = new Date(t1 * 1000).toLocaleString();
  g.fillText(end, W - R - g.measureText(end).width, H - 4);
  return drawn;
}

function drawCells(canvas, t, cells) {
  // all cells on one shared voltage scale
  const all = [].concat(...Object.values(cells)).filter(v => v !== null);
  const g = canvas.getContext("2d");
  if (!all.length) return drawChart(canvas, t, []);
  const lo = Math.min(...all), hi = Math.max(...all);
  const series = Object.keys(cells).map((k, i) => ({ name: "cell " + k, values: cells[k], colour: COLOURS[i % COLOURS.length], legend: false }));
  // pad each series' range to the shared one with two invisible anchors
  const W = canvas.width, H = canvas.height, L = 8, R = 8, T = 18, B = 18;
  g.clearRect(0, 0, W, H);
  const t0 = t[0], t1 = t[t.length - 1] === t0 ? t0 + 1 : t[t.length - 1];
  const span = hi - lo < 1e-6 ? 0.01 : hi - lo;
  const x = (v) => L + (W - L - R) * (v - t0) / (t1 - t0), y = (v) => T + (H - T - B) * (1 - (v - lo) / span);
  let drawn = 0;
  for (const s of series) {
    g.strokeStyle = s.colour; g.lineWidth = 1; g.beginPath();
    drawn += strokeSeries(g, t, s.values, x, y);
  }
  g.fillStyle = "#555"; g.font = "11px sans-serif";
  g.fillText(series.length + " cells " + lo.toFixed(3) + ".." + hi.toFixed(3) + " V", L, 12);
  return drawn;
}

async function loadHistory() {
  const hours = $("history-hours").value;
  $("csv").href = "/api/history.csv?hours=" + hours;
  const started = performance.now();
  let d;
  try { d = await api("/api/history?points=600&hours=" + hours); } catch (e) { return; }
  const s = d.series;
  const n = drawChart($("chart-pack"), s.t, [
    { name: "pack", values: s.pack_v, colour: COLOURS[0], unit: "V", digits: 2 },
    { name: "current", values: s.current_a, colour: COLOURS[1], unit: "A", digits: 1 },
    { name: "SoC", values: s.soc_pct, colour: COLOURS[2], unit: "%", digits: 1 }]);
  const m = drawCells($("chart-cells"), s.t, s.cells);
  const daily = $("daily").tBodies[0];
  daily.textContent = "";
  for (const r of d.daily) {
    const row = daily.insertRow();
    for (const v of [r.day, r.min_v === null ? "--" : r.min_v.toFixed(3) + " V", r.max_v === null ? "--" : r.max_v.toFixed(3) + " V",
      r.spread_mv === null ? "--" : r.spread_mv + " mV"]) row.insertCell().textContent = v;
  }
  renderEvents($("relay-events"), d.events.filter(e => e.kind === "relay"));
  const ms = performance.now() - started;
  const status = $("history-status");
  status.textContent = s.t.length + " points, " + Object.keys(s.cells).length + " cells, drawn in " + ms.toFixed(0) + " ms";
  status.dataset.points = s.t.length; status.dataset.cellPoints = m; status.dataset.packPoints = n;
  status.dataset.ms = ms.toFixed(0);
}
$("history-load").addEventListener("click", loadHistory);

// ---- start -------------------------------------------------------------------------------
(async () => {
  try {          // served by cellchain dashboard?  (opened as a file: Web Bluetooth only)
    const lim = await api("/api/limits");
    for (const f of lim.fields || []) state.limits[f.name] = f;
    const info = await api("/api/info");
    state.server = true;
    $("transport").textContent = info.transport || "";
    if (info.logged_in) {
      state.mode = "server"; state.session = new AppSession(new ServerLineTransport(), 10000);
      showMain();
      return;
    }
  } catch (e) { state.server = false; }
  showLogin();
})();
