// Run a one-way chain of emulated RP2040 boards (rp2emu.js), each boundary through an opto
// model, and write what happened to OUTDIR/result.json (+ console logs).
//
//   node run_chain.js --fw FWDIR --out OUTDIR --seconds 90 \
//        --chain begin:IMG,between:IMG,between:IMG[:ROMFS] [--switch 0x52] [--opto ideal|pc817]
//        [--ton-us 4 --toff-us 18] [--speeds 1,1.02,0.98] [--cellv 3.30,3.40,3.50]
//        [--diag] [--log] [--ramp BOARD:V0:V1:T0:T1] [--slice-us 1000] [--repl 'cmd' ...]
//        [--flash-stall ERASE_MS:PROGRAM_MS] [--alive SECONDS] [--watch 0,1,25,16,17,20]
//
// cellchain's copy of ../shared/rp2emu/run_chain.js (chip_tier/README.md), grown with: flash
// stalls (--flash-stall: a real erase or program holds the CPU), the REPL-alive check (--alive:
// after --diag each board idles that long at its REPL, then answers `ALIVE`), more pins watched.
//
// FWDIR holds firmware.bin, firmware.sym (arm-none-eabi-nm -n) and bootrom.bin (build-firmware.sh).
// Times are global emulated time; a board with speed s runs its own clock s times as fast.
'use strict';
const fs = require('fs');
const path = require('path');
const { Chip, loadSyms } = require(path.join(__dirname, 'rp2emu.js'));

function args() {
  const a = { seconds: 10, opto: 'ideal', tonUs: 4, toffUs: 18, switch: 0x52, sliceUs: 1000, repl: [] };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i];
    const next = () => v[++i];
    switch (k) {
      case '--fw': a.fw = next(); break;
      case '--out': a.out = next(); break;
      case '--seconds': a.seconds = +next(); break;
      case '--chain': a.chain = next().split(',').map((s) => { const [role, img, romfs] = s.split(':'); return { role, img, romfs }; }); break;
      case '--switch': a.switch = parseInt(next()); break;
      case '--opto': a.opto = next(); break;
      case '--ton-us': a.tonUs = +next(); break;
      case '--toff-us': a.toffUs = +next(); break;
      case '--speeds': a.speeds = next().split(',').map(Number); break;
      case '--cellv': a.cellv = next().split(',').map(Number); break;
      case '--diag': a.diag = true; break;
      case '--log': a.log = true; break;
      case '--ramp': a.ramp = next(); break;
      case '--slice-us': a.sliceUs = +next(); break;
      case '--repl': a.repl.push(next()); break;
      case '--end-after': a.endAfter = +next(); break;
      case '--flash-stall': { const [e, p] = next().split(':').map(Number); a.flashStall = { eraseMs: e, programMs: p }; break; }
      case '--alive': a.alive = +next(); break;
      case '--watch': a.watch = next().split(',').map(Number); break;
      default: throw new Error('unknown argument ' + k);
    }
  }
  return a;
}

const A = args();
fs.mkdirSync(A.out, { recursive: true });
const fw = fs.readFileSync(path.join(A.fw, 'firmware.bin'));
const syms = loadSyms(fs.readFileSync(path.join(A.fw, 'firmware.sym'), 'utf8'));
const bootrom = new Uint32Array(new Uint8Array(fs.readFileSync(path.join(A.fw, 'bootrom.bin'))).buffer);
const logf = fs.openSync(path.join(A.out, 'console.log'), 'w');
const log = (s) => { fs.writeSync(logf, s + '\n'); if (A.log) console.log(s); };

const chips = A.chain.map((c, i) => {
  const cellV = (A.cellv && A.cellv[i]) || (3.3 + 0.1 * i);
  const inputs = { 1: 1 };  // LINK_IN idle high (opto off, pull-up)
  const pullHigh = [14];    // button (pull-up, not pressed)
  let ads = null;
  if (c.role === 'begin') {
    for (let s = 0; s < 8; s++) inputs[6 + s] = ((A.switch >> (7 - s)) & 1) ? 0 : 1;  // ON = closed = low
    ads = { ain: [1.725, 1.653, 1.575, 1.647] };  // S1 +1 A, S2 -1 A (low / high range)
  }
  const chip = new Chip({
    name: `${i}:${c.role}`, bootrom, firmware: fw, syms, fs: fs.readFileSync(c.img), fsOffset: 0xa0000,
    romfs: c.romfs ? fs.readFileSync(c.romfs) : null, romfsOffset: 0xa0000 - 256 * 1024,
    speed: (A.speeds && A.speeds[i]) || 1.0, seed: 1000 + i, adcVolts: [cellV / 2, 1.65, 0, 0, 0.706],
    inputs, pullHigh, ads1115: ads, log, watchPins: A.watch || [0, 1, 25, 16, 17, 20],
    flashStall: A.flashStall || null,
  });
  chip.role = c.role;
  return chip;
});

// opto links: chip k-1 GP0 -> (inverting opto) -> chip k GP1
const links = [];
for (let k = 1; k < chips.length; k++) {
  const src = chips[k - 1], dst = chips[k];
  const L = { last: 0, edges: 0 };
  const ton = A.opto === 'pc817' ? A.tonUs * 1000 : 0, toff = A.opto === 'pc817' ? A.toffUs * 1000 : 0;
  src.outListeners.push({
    pin: 0,
    fn: (lvl, t) => {
      // LED on (TX pin high) -> transistor pulls IN low after ton; LED off -> IN rises after toff
      let at = t + (lvl ? ton : toff);
      if (at < L.last) at = L.last;
      L.last = at; L.edges++;
      dst.scheduleInput(1, lvl ? 0 : 1, at);
    },
  });
  links.push(L);
}

// optional ADC ramp on one board: --ramp BOARD:V0:V1:T0:T1 (cell volts, seconds)
let ramp = null;
if (A.ramp) { const [b, v0, v1, t0, t1] = A.ramp.split(':').map(Number); ramp = { b, v0, v1, t0, t1 }; }

const slice = A.sliceUs * 1000;
const T = A.seconds * 1e9;
const perSecond = chips.map(() => []);
let lastSnap = chips.map((c) => ({ cyc: c.execCycles, idle: c.idleNs, deep: c.deepNs, light: c.lightNs }));
const wall0 = Date.now();

function runAll(toNs) {
  for (const chip of chips) chip.runTo(toNs);
}

let t = 0;
let nextSec = 1e9;
while (t < T) {
  t += slice;
  if (ramp) {
    const s = t / 1e9;
    if (s >= ramp.t0) {
      const f = Math.min(1, (s - ramp.t0) / (ramp.t1 - ramp.t0));
      chips[ramp.b].adcVolts[0] = (ramp.v0 + (ramp.v1 - ramp.v0) * f) / 2;
    }
  }
  runAll(t);
  if (t >= nextSec) {
    chips.forEach((c, i) => {
      const s = lastSnap[i];
      perSecond[i].push({ t: t / 1e9, awakeCycles: c.execCycles - s.cyc, idleNs: c.idleNs - s.idle, deepNs: c.deepNs - s.deep,
                          lightNs: c.lightNs - s.light });
      lastSnap[i] = { cyc: c.execCycles, idle: c.idleNs, deep: c.deepNs, light: c.lightNs };
    });
    if ((t / 1e9) % 5 === 0) {
      const line = `t=${(t / 1e9).toFixed(0)}s wall=${((Date.now() - wall0) / 1000).toFixed(0)}s ` +
        chips.map((c, i) => `${c.name} awake=${(perSecond[i][perSecond[i].length - 1].awakeCycles / 1.25e6).toFixed(1)}%`).join(' ');
      console.log(line); log(line);
    }
    nextSec += 1e9;
  }
}

// REPL phase: Ctrl-C every board, then diag.show() and counters
function replRun(chip, text, seconds) {
  chip.send(text);
  const end = chip.globalNs() + seconds * 1e9;
  for (let x = chip.globalNs(); x < end;) {
    x = Math.min(end, x + 1e8);
    const w = Date.now(), c0 = chip.execCycles;
    chip.runTo(x);
    if (process.env.RP2EMU_DEBUG) console.log('repl', chip.name, (x / 1e9).toFixed(2), 'wall', Date.now() - w, 'cyc', chip.execCycles - c0, chip.mcu.core.PC.toString(16), chip.mcu.core.waiting);
  }
}
const repl = {};
if (A.diag) {
  for (const chip of chips) {
    const before = chip.out.length;
    replRun(chip, '\x03', 0.3);
    replRun(chip, '\x03', 0.3);
    replRun(chip, "import gc; gc.collect(); print('HEAP', gc.mem_alloc(), gc.mem_free())\r", 0.4);
    replRun(chip, "from hal import loop as L; import gc; r=L.current_role; print('CNT', r.diag_counters() if hasattr(r, 'diag_counters') else None)\r", 0.4);
    replRun(chip, "st=L.current_loop.stats; print('LOOP', st.cycles, st.overruns, st.last_cycle_us, st.max_cycle_us, st.awake_permille, st.awake_avg_permille, st.sleeps, st.light_sleeps, st.sleep_errors)\r", 0.4);
    replRun(chip, "print('MEM0', gc.mem_free(), gc.mem_alloc()); import diag; diag.show()\r", 1.5);
    for (const cmd of A.repl) replRun(chip, cmd + '\r', 2);
    if (A.alive) {
      // the documented debugging workflow: the board stays up at the REPL after diag (a garbage
      // collection must not cancel the timer that feeds its watchdog)
      replRun(chip, 'gc.collect()\r', 0.3);
      replRun(chip, '', A.alive);
      replRun(chip, "print('ALIVE', gc.mem_free())\r", 0.5);
    }
    repl[chip.name] = chip.out.slice(before);
  }
}

const result = {
  args: A, wall_s: (Date.now() - wall0) / 1000,
  chips: chips.map((c, i) => ({
    name: c.name, role: c.role, speed: c.speed, boots: c.boots, resets: c.resets,
    execCycles: c.execCycles, idleNs: c.idleNs, deepNs: c.deepNs, lightNs: c.lightNs, lowClockNs: c.lowClockNs,
    pioGatedTicks: c.pioGatedTicks, flashOps: c.flashOps || 0, stalls: c.stalls,
    sm: c.smRunners[0].map((r) => r.stats),
    perSecond: perSecond[i], gc: c.gcEvents, rx: c.rxEvents, bursts: c.bursts,
    pins: c.pinLog, out: c.out, repl: repl[c.name] || '',
  })),
  links,
};
fs.writeFileSync(path.join(A.out, 'result.json'), JSON.stringify(result));
console.log('done', A.out, 'wall', result.wall_s.toFixed(0), 's');
