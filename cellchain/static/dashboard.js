// cellchain dashboard page: plain JS, no libraries. Talks to the dashboard server's JSON API
// (docs/dashboard.md); every value shown is what the End board answered.
"use strict";
const $ = (id) => document.getElementById(id);
const INFO_FLAGS = ["not_calibrated", "derated"];   // cell status bits that are no fault
const state = { limits: {}, settings: null, timer: null, mode: null, session: null, ticks: 0,
  seen: {}, server: false, csrf: "", oldPassword: null };

function setCsrf(token) { state.csrf = token || ""; ServerLineTransport.csrf = state.csrf; }

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify(body) };
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
  $("change-pw").hidden = true;
  $("login-btn").hidden = !state.server;
  const ble = WebBluetoothTransport.available();
  $("ble-btn").hidden = !ble; $("ble-note").hidden = !ble;
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
}
// the factory password 1234 must be replaced before anything else (server: must_change; over
// Bluetooth: the board's ST? pw_factory flag)
function showChangePassword() {
  $("login").hidden = true; $("main").hidden = true; $("logout-btn").hidden = false;
  $("change-pw").hidden = false; $("change-pw-error").textContent = "";
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
}
$("change-pw-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const a = $("new-password").value, b = $("new-password2").value, err = $("change-pw-error");
  if (!/^[0-9]{6,16}$/.test(a)) { err.textContent = "6 to 16 digits"; return; }
  if (a !== b) { err.textContent = "the two entries differ"; return; }
  if (a === "1234") { err.textContent = "not the factory password"; return; }
  let r;
  if (state.mode === "server") r = await api("/api/password", { old: state.oldPassword || "1234", new: a });
  else {
    try { await state.session.request("PC:" + (state.oldPassword || "1234") + ":" + a + "!"); r = { ok: true }; }
    catch (e) { r = { ok: false, error: e.message }; }
  }
  if (!r.ok) { err.textContent = "refused: " + (r.error || "the board said no"); return; }
  state.oldPassword = null; $("new-password").value = ""; $("new-password2").value = "";
  $("change-pw").hidden = true;
  showMain();
});

function showMain() {
  $("login").hidden = true; $("main").hidden = false; $("logout-btn").hidden = false;
  $("change-pw").hidden = true;
  $("history").hidden = state.mode !== "server";
  state.settings = null; state.ticks = 0; $("settings").tBodies[0].textContent = "";
  if (!state.timer) state.timer = setInterval(refresh, 1000);
  refresh();
  if (state.mode === "server") loadHistory();
}
$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const typed = $("password").value;
  const r = await api("/api/login", { password: typed });
  if (r.ok) {
    $("login-error").textContent = ""; $("password").value = "";
    setCsrf(r.csrf);
    state.mode = "server"; state.session = new AppSession(new ServerLineTransport(), 10000);
    if (r.must_change) { state.oldPassword = typed; showChangePassword(); } else showMain();
  } else $("login-error").textContent = r.error || ("login refused (HTTP " + r.httpStatus + ")");
});
$("ble-btn").addEventListener("click", async () => {
  let t;
  try {
    t = await new WebBluetoothTransport().connect();
  } catch (e) { $("login-error").textContent = "Bluetooth: " + e.message; return; }
  const session = new AppSession(t, 5000);
  const typed = $("password").value;
  let ok;
  try { ok = await session.login(typed); }
  catch (e) { t.close(); $("login-error").textContent = "End board unreachable over Bluetooth: " + e.message; return; }
  if (!ok) {
    t.close();
    $("login-error").textContent = "login refused (wrong password, or locked after wrong passwords)";
    return;
  }
  $("login-error").textContent = ""; $("password").value = "";
  state.mode = "ble"; state.session = session; state.ble = t;
  $("transport").textContent = "Web Bluetooth: " + t.name();
  let factory = false;
  try { factory = (await session.snapshot()).status.pw_factory === 1; } catch (e) { factory = false; }
  if (factory) { state.oldPassword = typed; showChangePassword(); } else showMain();
});
$("logout-btn").addEventListener("click", async () => {
  if (state.mode === "ble") state.ble.close(); else await api("/api/logout", {});
  state.mode = null; state.session = null; state.oldPassword = null; setCsrf(""); showLogin();
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
  // unknown ("--") unless every cell is heard and trusted: the board sends pack_mv -1 then
  // (issue 22: never a partial sum of the cells still heard)
  const packMv = (s.comm && s.pack_mv !== null && s.pack_mv >= 0) ? s.pack_mv : null;
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
  const an = snap.alarms.names || [];
  const why = an.includes("link_never_up") ? "never came up" :
    (an.includes("link_quality") ? "held open: the link keeps failing" : (brk ? "broken before board " + brk : "lost"));
  $("link-state").textContent = (s.comm ? "ok" : why) + (s.rst ? ", board " + s.rst + " keeps restarting" : "");
  // the link quality figure: good frames among the End's last 64 frame slots (ST: link=)
  $("link-state").title = s.link !== undefined && s.link !== null ? "link quality " + s.link + "/64 good frames" : "";
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
    const boot = e.kind === "boot";     // a board start (the log is in flash): no pack values
    if (boot) row.className = "boot";
    for (const v of [e.n, hms, e.kind, e.what.replace(/_/g, " ") + (e.break_position ? " (" + breakText(e.break_position) + ")" : ""),
      boot ? "--" : (e.min_mv / 1000).toFixed(3) + ".." + (e.max_mv / 1000).toFixed(3) + " V",
      boot ? "--" : (e.current_ma / 1000).toFixed(2) + " A", boot ? "--" : (e.soc_c / 100).toFixed(1) + " %"])
      row.insertCell().textContent = String(v);
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
    : (brk ? (brk > 1 ? "no frames past board " + (brk - 1) + ": check board " + (brk - 1)
        + " (powered, running) or the wire after it to board " + brk : "no frames from board 1 (Begin)")
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

// where a break is, as a person checks it (same words as core.events.break_text, issue 22)
function breakText(pos) {
  if (pos <= 1) return "board 1 (Begin)";
  return "board " + (pos - 1) + " or the wire after it (to board " + pos + ")";
}

// ---- settings ----------------------------------------------------------------------------
// Grouped, labelled, enumerations as drop-downs, the range the board accepts now (for this
// chemistry) beside each field (issue 22: the page showed 1500..5000 mV and raw names).
const SETTING_GROUPS = [
  ["Cell voltages", ["vmin_mv", "vbal_mv", "vmax_mv", "vnom_mv"]],
  ["Temperatures", ["tmin_charge_dc", "tmin_discharge_dc", "tmax_dc"]],
  ["Pack", ["chemistry", "capacity_ah", "mode", "charge_restart_pct", "discharge_restart_pct"]],
  ["Current sensors and link", ["sensors", "loop_count", "comm_timeout_cycles", "cycle_ms", "name"]],
];
const SETTING_LABELS = {
  vmin_mv: "V-min (load off below)", vbal_mv: "V-balance (full)", vmax_mv: "V-max (charge off above)",
  vnom_mv: "nominal cell voltage", tmin_charge_dc: "T-min for charging", tmin_discharge_dc: "T-min for discharging",
  tmax_dc: "T-max", chemistry: "chemistry", capacity_ah: "capacity", mode: "relay mode",
  charge_restart_pct: "charge restarts below SoC", discharge_restart_pct: "load restarts above SoC",
  sensors: "current sensors", loop_count: "turns through the sensor", comm_timeout_cycles: "link timeout",
  cycle_ms: "cycle time", name: "Bluetooth name",
};
const SETTING_ENUMS = {
  chemistry: [[0, "not set"], [1, "LiFePO4"], [2, "LTO"], [3, "NMC"], [4, "NCA"]],
  mode: [[0, "normal"], [1, "critical"]],
  sensors: [[1, "1 sensor"], [2, "2 sensors"]],
  loop_count: [[1, "1 turn"], [2, "2 turns"], [4, "4 turns"]],
  cycle_ms: [[500, "500 ms"], [1000, "1000 ms"]],
};
const UNIT_TEXT = { "0.1 degC": "0.1 °C" };

function fieldRange(name) {
  const lim = state.limits[name];
  if (!lim) return null;
  const lo = lim.allowed_min !== undefined ? lim.allowed_min : lim.min;
  const hi = lim.allowed_max !== undefined ? lim.allowed_max : lim.max;
  return { lo: lo, hi: hi, unit: UNIT_TEXT[lim.unit] || lim.unit, rule: lim.rule || "" };
}

function checkLocally(name, text) {
  if (name === "name") return (text.length >= 1 && text.length <= 20 && text.indexOf("$") < 0) ? null : "name: must be 1..20 characters (no $)";
  if (!/^-?\d+$/.test(text)) return name + ": must be a whole number";
  const v = parseInt(text, 10), r = fieldRange(name);
  if (r && !SETTING_ENUMS[name] && (v < r.lo || v > r.hi))
    return name + "=" + v + ": must be " + r.lo + ".." + r.hi + " " + r.unit + (r.rule ? " (" + r.rule + ")" : "");
  return null;
}

function rangeText(name) {
  if (SETTING_ENUMS[name]) return "";
  const r = fieldRange(name);
  if (!r) return "";
  let t = r.lo + ".." + r.hi + " " + r.unit;
  if (r.unit === "0.1 °C") t += " (" + (r.lo / 10).toFixed(1) + ".." + (r.hi / 10).toFixed(1) + " °C)";
  return t;
}

function settingInput(name, value) {
  let inp;
  if (SETTING_ENUMS[name]) {
    inp = el("select");
    for (const [v, label] of SETTING_ENUMS[name]) {
      const o = el("option", "", label); o.value = String(v); inp.appendChild(o);
    }
  } else {
    inp = el("input");
    if (name !== "name") inp.inputMode = "numeric";
  }
  inp.name = name; inp.id = "set-" + name; inp.value = String(value);
  return inp;
}

function renderSettings(settings) {
  const changed = !state.settings || JSON.stringify(state.settings) !== JSON.stringify(settings);
  state.settings = settings;
  const body = $("settings").tBodies[0];
  if (body.rows.length) {       // update values in place (keep what the user is typing)
    for (const inp of body.querySelectorAll("input, select")) {
      if (document.activeElement !== inp && !inp.dataset.dirty) inp.value = String(settings[inp.name]);
    }
    for (const cell of body.querySelectorAll("td.range")) cell.textContent = rangeText(cell.dataset.name);
    if (changed && state.mode === "server") refreshLimits();
    return;
  }
  const listed = new Set();
  const groups = SETTING_GROUPS.map(([title, names]) => [title, names.filter((n) => n in settings)]);
  const rest = Object.keys(settings).filter((n) => !SETTING_GROUPS.some(([, names]) => names.includes(n)));
  if (rest.length) groups.push(["Other", rest]);
  for (const [title, names] of groups) {
    if (!names.length) continue;
    const head = body.insertRow(); head.className = "group";
    const th = el("th", "", title); th.colSpan = 4; head.appendChild(th);
    for (const name of names) {
      listed.add(name);
      const row = body.insertRow();
      const label = row.insertCell(); label.className = "label";
      label.appendChild(el("span", "", SETTING_LABELS[name] || name));
      label.appendChild(el("small", "raw", name));
      const inp = settingInput(name, settings[name]);
      inp.addEventListener("input", () => { inp.dataset.dirty = "1"; });
      inp.addEventListener("change", () => { inp.dataset.dirty = "1"; });
      row.insertCell().appendChild(inp);
      const range = row.insertCell(); range.className = "range"; range.dataset.name = name;
      range.textContent = rangeText(name);
      const btn = el("button", "save", "save"); btn.dataset.name = name;
      btn.addEventListener("click", () => saveSetting(name, inp.value.trim()));
      row.insertCell().appendChild(btn);
    }
  }
  if (state.mode === "server") refreshLimits();
}

async function refreshLimits() {
  try {
    const lim = await api("/api/limits");
    for (const f of lim.fields || []) state.limits[f.name] = f;
    for (const cell of $("settings").querySelectorAll("td.range")) cell.textContent = rangeText(cell.dataset.name);
  } catch (e) { /* keep the last ranges */ }
}

async function writeSetting(name, text) {
  if (state.mode === "server") return api("/api/settings", { name: name, value: text });
  const r = {};
  try { await state.session.setSetting(name, text); r.ok = true; } catch (e) { r.ok = false; r.error = e.message; }
  r.settings = await state.session.settings();
  return r;
}

function redraw(settings) {
  if (!settings) return;
  $("settings").tBodies[0].textContent = "";
  state.settings = null;
  renderSettings(settings);
}

async function saveSetting(name, text) {
  // server: checked there with the firmware's own rules, then by the board; Bluetooth: by the board
  const msg = $("settings-msg");
  const local = checkLocally(name, text);
  if (local) { msg.className = "bad"; msg.textContent = "refused: " + local; return; }
  const r = await writeSetting(name, text);
  msg.className = r.ok ? "ok" : "bad";
  msg.textContent = r.ok ? name + " = " + text + " saved on the board" : "refused: " + r.error;
  redraw(r.settings);
}

// save all: every field whose value differs from the board's, one by one, stops at a refusal
$("settings-save-all").addEventListener("click", async () => {
  const msg = $("settings-msg"), done = [];
  for (const inp of $("settings").querySelectorAll("input, select")) {
    const text = inp.value.trim();
    if (String(state.settings[inp.name]) === text) continue;
    const local = checkLocally(inp.name, text);
    const r = local ? { ok: false, error: local } : await writeSetting(inp.name, text);
    if (!r.ok) {
      msg.className = "bad";
      msg.textContent = "refused: " + r.error + (done.length ? " (saved before it: " + done.join(", ") + ")" : "");
      redraw(r.settings || state.settings);
      return;
    }
    done.push(inp.name);
    if (r.settings) state.settings = r.settings;
  }
  msg.className = "ok";
  msg.textContent = done.length ? "saved on the board: " + done.join(", ") : "nothing changed";
  redraw(state.settings);
});

// export / import all settings as a file (a backup before a firmware update)
$("settings-export").addEventListener("click", () => {
  const body = {};
  for (const [k, v] of Object.entries(state.settings || {})) if (k !== "pw_hash" && k !== "pw_salt") body[k] = v;
  const text = JSON.stringify({ format: "cellchain-settings/1", settings: body }, null, 1) + "\n";
  const a = el("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  a.download = "cellchain-settings.json";
  document.body.appendChild(a); a.click(); a.remove();
  $("settings-export").dataset.text = text;       // for the browser test
});
$("settings-import").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  const text = await file.text();
  ev.target.value = "";
  await importSettings(text);
});
async function importSettings(text) {
  const msg = $("settings-msg");
  let r;
  if (state.mode === "server") r = await api("/api/settings/import", { text: text });
  else {          // Bluetooth: the board checks each write; stops at the first refusal
    r = { ok: true, written: [] };
    try {
      const d = JSON.parse(text);
      for (const [k, v] of Object.entries(d.settings || {})) {
        if (String(state.settings[k]) === String(v)) continue;
        const w = await writeSetting(k, String(v));
        if (!w.ok) { r = { ok: false, error: k + ": " + w.error, written: r.written }; break; }
        r.written.push(k);
      }
    } catch (e) { r = { ok: false, error: "not a settings file" }; }
    r.settings = await state.session.settings();
  }
  msg.className = r.ok ? "ok" : "bad";
  msg.textContent = r.ok ? "imported: " + (r.written.length ? r.written.join(", ") : "nothing to change")
    : "import refused: " + r.error;
  redraw(r.settings);
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
// Plots a person can read (issue 22): each panel has a y-axis with its unit and time ticks,
// a link break is a gap (no value is recorded there), long views draw the min..max envelope
// of each bucket around the mean, cells share one scale (auto, or fixed V-min..V-max) with a
// colour per cell, a legend and a hover read-out (cell number and value).
const COLOURS = ["#4a78c2", "#c2492a", "#1b7f2a", "#e08a00", "#7b3fb0", "#00838f", "#ad1457", "#5d4037"];
const cellColour = (i, n) => "hsl(" + Math.round(360 * i / Math.max(n, 1)) + ", 70%, " + (i % 2 ? 35 : 48) + "%)";
const plots = {};      // canvas id -> what was drawn (for the hover read-out)

function niceTicks(lo, hi, n) {
  const span = hi - lo, raw = span / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(k => k * mag).find(k => k >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return { ticks: out, step: step };
}
function timeLabel(t, span) {
  const d = new Date(t * 1000);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return span > 36 * 3600 ? d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm : hm;
}

// One series as a polyline (null = a gap); returns the points drawn.
function strokeSeries(g, t, values, x, y) {
  let pen = false, drawn = 0;
  g.beginPath();
  values.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return; }
    if (pen) g.lineTo(x(t[i]), y(v)); else { g.moveTo(x(t[i]), y(v)); pen = true; }
    drawn++;
  });
  g.stroke();
  return drawn;
}
// The band between lo and hi (null = a gap).
function fillBand(g, t, lo, hi, x, y) {
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      g.beginPath();
      run.forEach((i, k) => (k ? g.lineTo(x(t[i]), y(hi[i])) : g.moveTo(x(t[i]), y(hi[i]))));
      for (let k = run.length - 1; k >= 0; k--) g.lineTo(x(t[run[k]]), y(lo[run[k]]));
      g.closePath(); g.fill();
    }
    run = [];
  };
  t.forEach((_, i) => { if (lo[i] === null || hi[i] === null || lo[i] === undefined) flush(); else run.push(i); });
  flush();
}

// One panel: rect {x, y, w, h}; series [{name, values, lo, hi, colour, unit, digits}] on one
// y-axis (range = the values and envelopes, or ``range`` [lo, hi] when fixed).
function drawPanel(g, rect, t, series, opt) {
  const L = rect.x + 52, R = rect.x + rect.w - 8, T = rect.y + 16, B = rect.y + rect.h - 18;
  g.font = "11px sans-serif"; g.fillStyle = "#333";
  g.fillText(opt.title, rect.x + 4, rect.y + 11);
  const t0 = t[0], t1 = t[t.length - 1] === t0 ? t0 + 1 : t[t.length - 1];
  let vals = [];
  for (const s of series) for (const arr of [s.values, s.lo || [], s.hi || []]) for (const v of arr) if (v !== null && v !== undefined) vals.push(v);
  if (!vals.length && !opt.range) { g.fillStyle = "#888"; g.fillText("no value in this window", L + 10, (T + B) / 2); return { drawn: 0 }; }
  let lo = opt.range ? opt.range[0] : Math.min(...vals), hi = opt.range ? opt.range[1] : Math.max(...vals);
  if (hi - lo < (opt.minSpan || 1e-9)) { const m = (hi + lo) / 2, h = (opt.minSpan || 1) / 2; lo = m - h; hi = m + h; }
  const pad = (hi - lo) * 0.04; lo -= pad; hi += pad;
  const x = (v) => L + (R - L) * (v - t0) / (t1 - t0), y = (v) => B - (B - T) * (v - lo) / (hi - lo);
  // axes: y ticks with the unit, time ticks
  g.strokeStyle = "#e4e4e4"; g.lineWidth = 1; g.fillStyle = "#555";
  const yt = niceTicks(lo, hi, Math.max(2, Math.floor((B - T) / 28)));
  const dig = Math.max(0, -Math.floor(Math.log10(yt.step) + 1e-9));
  for (const v of yt.ticks) {
    g.beginPath(); g.moveTo(L, y(v)); g.lineTo(R, y(v)); g.stroke();
    const label = v.toFixed(dig) + " " + opt.unit;
    g.fillText(label, L - 4 - g.measureText(label).width, y(v) + 4);
  }
  const nx = Math.max(2, Math.floor((R - L) / 110)), xt = niceTicks(t0, t1, nx);
  const stepS = [60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].find(k => k >= (t1 - t0) / nx) || xt.step;
  for (let v = Math.ceil(t0 / stepS) * stepS; v <= t1; v += stepS) {
    g.beginPath(); g.moveTo(x(v), T); g.lineTo(x(v), B); g.stroke();
    const label = timeLabel(v, t1 - t0);
    g.fillText(label, Math.min(R - g.measureText(label).width, Math.max(L, x(v) - g.measureText(label).width / 2)), B + 13);
  }
  g.strokeStyle = "#999"; g.beginPath(); g.moveTo(L, T); g.lineTo(L, B); g.lineTo(R, B); g.stroke();
  let drawn = 0;
  for (const s of series) {
    if (s.lo && s.hi && opt.envelope) {
      g.fillStyle = s.band || "rgba(74,120,194,.18)"; fillBand(g, t, s.lo, s.hi, x, y);
    }
  }
  for (const s of series) { g.strokeStyle = s.colour; g.lineWidth = s.width || 1.3; drawn += strokeSeries(g, t, s.values, x, y); }
  return { drawn: drawn, x: x, y: y, t0: t0, t1: t1, L: L, R: R, T: T, B: B, lo: lo, hi: hi, series: series, unit: opt.unit };
}

function drawChart(canvas, t, series, envelope) {
  // one panel per series (each its own y-axis and unit), stacked
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  g.clearRect(0, 0, W, H);
  g.font = "11px sans-serif";
  if (!t.length) { g.fillStyle = "#555"; g.fillText("no history yet", W / 2 - 40, H / 2); return 0; }
  const h = H / series.length;
  let drawn = 0;
  plots[canvas.id] = [];
  series.forEach((s, k) => {
    const p = drawPanel(g, { x: 0, y: k * h, w: W, h: h }, t, [s], { title: s.name + " (" + s.unit + ")", unit: s.unit,
      envelope: envelope, minSpan: s.minSpan });
    drawn += p.drawn;
    plots[canvas.id].push(p);
  });
  plots[canvas.id].t = t;
  return drawn;
}

function drawCells(canvas, t, cells, lo, hi, range, envelope) {
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  g.clearRect(0, 0, W, H);
  const keys = Object.keys(cells);
  if (!t.length || !keys.length) { g.font = "11px sans-serif"; g.fillText("no history yet", W / 2 - 40, H / 2); return 0; }
  const series = keys.map((k, i) => ({ name: "cell " + k, cell: k, values: cells[k], colour: cellColour(i, keys.length), width: 1 }));
  if (envelope && lo && hi) {     // the lowest and highest cell in each bucket: one band
    const n = t.length, bandLo = [], bandHi = [];
    for (let i = 0; i < n; i++) {
      const l = keys.map(k => lo[k][i]).filter(v => v !== null), h = keys.map(k => hi[k][i]).filter(v => v !== null);
      bandLo.push(l.length ? Math.min(...l) : null); bandHi.push(h.length ? Math.max(...h) : null);
    }
    series[0].lo = bandLo; series[0].hi = bandHi; series[0].band = "rgba(120,120,120,.18)";
  }
  const p = drawPanel(g, { x: 0, y: 0, w: W, h: H }, t, series,
    { title: keys.length + " cells (V)" + (range ? ", fixed V-min..V-max" : ""), unit: "V", range: range, envelope: envelope, minSpan: 0.002 });
  p.t = t;
  plots[canvas.id] = [p];
  plots[canvas.id].t = t;
  const legend = $("cells-legend");
  legend.textContent = "";
  series.forEach((s) => { const e = el("span", "", s.name); e.style.setProperty("--c", s.colour); legend.appendChild(e); });
  return p.drawn;
}

// hover: the nearest reading in time; for cells the cell nearest the pointer, with its number
function hover(canvas, ev) {
  const tip = $(canvas.id + "-tip"), panels = plots[canvas.id];
  if (!tip || !panels || !panels.t || !panels.t.length) return;
  const r = canvas.getBoundingClientRect(), sx = canvas.width / r.width, sy = canvas.height / r.height;
  const mx = (ev.clientX - r.left) * sx, my = (ev.clientY - r.top) * sy;
  const p = panels.find(q => q.series && my >= q.T - 16 && my <= q.B + 18);
  if (!p || mx < p.L || mx > p.R) { tip.hidden = true; return; }
  const t = panels.t, tv = p.t0 + (mx - p.L) / (p.R - p.L) * (p.t1 - p.t0);
  let i = 0;
  for (let k = 1; k < t.length; k++) if (Math.abs(t[k] - tv) < Math.abs(t[i] - tv)) i = k;
  let best = null;
  for (const s of p.series) {
    const v = s.values[i];
    if (v === null || v === undefined) continue;
    if (!best || Math.abs(p.y(v) - my) < Math.abs(p.y(best.v) - my)) best = { s: s, v: v };
  }
  const when = new Date(t[i] * 1000).toLocaleString();
  tip.textContent = best ? best.s.name + ": " + best.v + " " + p.unit + " at " + when
    + (best.s.lo && best.s.lo[i] !== null && best.s.lo[i] !== undefined && p.series.length === 1 ? " (" + best.s.lo[i] + ".." + best.s.hi[i] + ")" : "")
    : "no value at " + when + " (link lost or not recorded)";
  tip.hidden = false;
  tip.style.left = Math.min(r.width - 200, Math.max(0, (ev.clientX - r.left) + 12)) + "px";
  tip.style.top = ((ev.clientY - r.top) + 12) + "px";
  tip.dataset.cell = best && best.s.cell ? best.s.cell : "";
}
for (const id of ["chart-pack", "chart-cells"]) {
  $(id).addEventListener("mousemove", (ev) => hover($(id), ev));
  $(id).addEventListener("mouseleave", () => { $(id + "-tip").hidden = true; });
}

async function loadHistory() {
  const hours = $("history-hours").value;
  $("csv").href = "/api/history.csv?hours=" + hours;
  const started = performance.now();
  let d;
  try { d = await api("/api/history?points=600&hours=" + hours); } catch (e) { return; }
  const s = d.series, long = Number(hours) > 6;
  state.history = d;
  const n = drawChart($("chart-pack"), s.t, [
    { name: "pack voltage", values: s.pack_v, lo: s.pack_v_lo, hi: s.pack_v_hi, colour: COLOURS[0], unit: "V", minSpan: 0.05 },
    { name: "current", values: s.current_a, lo: s.current_a_lo, hi: s.current_a_hi, colour: COLOURS[1], unit: "A", minSpan: 1 },
    { name: "SoC", values: s.soc_pct, lo: s.soc_pct_lo, hi: s.soc_pct_hi, colour: COLOURS[2], unit: "%", minSpan: 2 }], long);
  const set = state.settings || {};
  const fixed = $("cell-scale").value === "fixed" && set.vmin_mv && set.vmax_mv ? [set.vmin_mv / 1000, set.vmax_mv / 1000] : null;
  const m = drawCells($("chart-cells"), s.t, s.cells, s.cells_lo, s.cells_hi, fixed, long);
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
  status.textContent = s.t.length + " points, " + Object.keys(s.cells).length + " cells, drawn in " + ms.toFixed(0) + " ms"
    + (long ? "; shaded: each interval's lowest..highest" : "");
  status.dataset.points = s.t.length; status.dataset.cellPoints = m; status.dataset.packPoints = n;
  status.dataset.ms = ms.toFixed(0);
}
$("history-load").addEventListener("click", loadHistory);
$("cell-scale").addEventListener("change", loadHistory);

// ---- start -------------------------------------------------------------------------------
(async () => {
  try {          // served by cellchain dashboard?  (opened as a file: Web Bluetooth only)
    const lim = await api("/api/limits");
    for (const f of lim.fields || []) state.limits[f.name] = f;
    const info = await api("/api/info");
    state.server = true;
    $("transport").textContent = info.transport || "";
    if (info.logged_in) {
      setCsrf(info.csrf);
      state.mode = "server"; state.session = new AppSession(new ServerLineTransport(), 10000);
      if (info.must_change) showChangePassword(); else showMain();
      return;
    }
  } catch (e) { state.server = false; }
  showLogin();
})();
