// rp2emu: one emulated RP2040 (rp2040js 1.4.1) running a MicroPython rp2 firmware, with the
// fixes the measurements need. Used by run_chain.js. No fetched code in this file.
//
//  * PIO: an own state-machine interpreter, stepped by clock alarms at clk_sys / CLKDIV, with
//    delay cycles, side-set, stalls (WAIT / blocking PUSH / PULL / IRQ wait), 8-deep joined
//    FIFOs, and the clock gated during a deep sleep (SCR.SLEEPDEEP + CLOCKS.SLEEP_EN0 bit 12/13
//    clear, as machine.lightsleep sets them). The stock rp2040js PIO runs off setTimeout in wall
//    time and ignores CLKDIV and delays.
//  * CPU loop: executed cycles are counted (awake), WFI/WFE time is skipped (idle), and
//    cycle time follows clk_sys (rp2040js models the clock tree: lightsleep runs at 12 MHz).
//  * USB CDC host: an OUT buffer is held until there is data (NAK), not completed empty.
//  * Flash: pico-sdk flash_range_erase / flash_range_program are intercepted at their entry
//    (symbols from firmware.sym) and done on the flash array (the stock SSI is a stub).
//  * Watchdog / machine.reset(): the chip is rebuilt with its flash, SCRATCH and REASON kept.
//  * ADC noise (+-2 LSB, seeded), pull-ups driven by the harness, an ADS1115 at 0x48 on I2C0.
//  * Speed factor: a chip whose crystal is off runs its local time at `speed` x global time.
//  * Flash stall (cellchain addition, opts.flashStall): an erase or program holds the CPU for the
//    time a real QSPI flash takes (XIP is unavailable and pico-sdk runs them with interrupts
//    off): the clock runs on with the CPU stopped, so PIO state machines keep shifting and their
//    FIFOs fill or drain as on the silicon; pending interrupts are taken afterwards.
'use strict';
const rp = require('rp2040js');
const { RP2040, USBCDC, FIFO, ConsoleLogger, LogLevel } = rp;
const path = require('path');
// not in the package's exports map: load the file by path
const { SimulationClock } = require(path.join(path.dirname(require.resolve('rp2040js')), 'clock', 'simulation-clock.js'));

const SM_CYCLE_LOG = false;

function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function loadSyms(text) {
  const syms = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([0-9a-f]{8}) \w (\S+)$/);
    if (m) syms[m[2]] = parseInt(m[1], 16);
  }
  return syms;
}

// ---------------------------------------------------------------------------------------------
// PIO state machine interpreter (RP2040 datasheet 3.4)
class SMRunner {
  constructor(chip, pio, sm, pioIndex) {
    this.chip = chip; this.pio = pio; this.sm = sm; this.pioIndex = pioIndex;
    this.delay = 0;
    this.alarm = null;
    this.scheduled = false;
    this.stats = { pushes: 0, pushStallCycles: 0, maxRx: 0, maxTx: 0, pulls: 0, rxDrops: 0 };
    this.onPush = null;
  }
  reset() { this.delay = 0; }
  periodNs() {
    const sm = this.sm;
    const div = (sm.clockDivInt === 0 ? 65536 : sm.clockDivInt) + sm.clockDivFrac / 256;
    return div * 1e9 / this.chip.mcu.clkSys;
  }
  ensureScheduled() {
    if (!this.sm.enabled || this.scheduled) return;
    if (!this.alarm) this.alarm = this.chip.clock.createAlarm(() => this.tick());
    this.scheduled = true;
    this.alarm.schedule(this.periodNs());
  }
  tick() {
    this.scheduled = false;
    const sm = this.sm;
    if (!sm.enabled) return;
    let n = 1;
    if (this.chip.pioGated(this.pioIndex)) {
      this.chip.pioGatedTicks++;
    } else if (this.delay > 0) {
      n = this.delay; this.delay = 0;
    } else {
      n = this.step();
    }
    this.scheduled = true;
    this.alarm.schedule(n * this.periodNs());
  }
  // one SM clock of instruction execution; returns cycles until the next instruction step
  step() {
    const sm = this.sm, pio = this.pio;
    let op, fromExec = false;
    if (sm.execValid) { op = sm.execOpcode; sm.execValid = false; fromExec = true; } else op = pio.instructions[sm.pc];
    const r = this.exec(op, fromExec);
    pio.checkChangedPins();
    if (r < 0) return 1;  // stalled: try again next cycle
    return 1 + r;
  }
  pins() {
    const gpio = this.chip.mcu.gpio;
    let v = 0;
    for (let i = 0; i < 30; i++) if (gpio[i].inputValue) v |= 1 << i;
    return v >>> 0;
  }
  inPins() {
    const v = this.pins(); const b = (this.sm.pinCtrl >>> 15) & 0x1f;
    return b ? ((v >>> b) | (v << (32 - b))) >>> 0 : v;
  }
  setPinsField(value, base, count, dirs) {
    if (count <= 0) return;
    for (let i = 0; i < count; i++) {
      const pin = (base + i) % 32;
      const bit = (value >>> i) & 1;
      if (dirs) this.pio.pinDirectionsChanged(bit, pin, 1); else this.pio.pinValuesChanged(bit, pin, 1);
    }
  }
  irqIndex(idx) {
    if (idx & 0x10) return (idx & 4) | (((idx & 3) + this.sm.index) & 3);
    return idx & 7;
  }
  // returns delay cycles (>= 0) when the instruction completed, -1 when stalled
  exec(op, fromExec) {
    const sm = this.sm, pio = this.pio;
    const pinCtrl = sm.pinCtrl >>> 0, execCtrl = sm.execCtrl >>> 0, shiftCtrl = sm.shiftCtrl >>> 0;
    const ssCount = (pinCtrl >>> 29) & 7;
    const sideEn = (execCtrl >>> 30) & 1;
    const dsField = (op >>> 8) & 0x1f;
    const delay = dsField & ((1 << (5 - ssCount)) - 1);
    if (ssCount && (!sideEn || (dsField & 0x10))) {
      const n = ssCount - sideEn;
      const val = (dsField >>> (5 - ssCount)) & ((1 << n) - 1);
      this.setPinsField(val, (pinCtrl >>> 10) & 0x1f, n, (execCtrl >>> 29) & 1);
    }
    const arg = op & 0xff;
    let jumped = false;
    switch (op >>> 13) {
      case 0: { // JMP
        const cond = (arg >>> 5) & 7, addr = arg & 0x1f;
        let take = false;
        switch (cond) {
          case 0: take = true; break;
          case 1: take = sm.x === 0; break;
          case 2: take = sm.x !== 0; sm.x = (sm.x - 1) >>> 0; break;
          case 3: take = sm.y === 0; break;
          case 4: take = sm.y !== 0; sm.y = (sm.y - 1) >>> 0; break;
          case 5: take = (sm.x >>> 0) !== (sm.y >>> 0); break;
          case 6: take = !!this.chip.mcu.gpio[(execCtrl >>> 24) & 0x1f].inputValue; break;
          case 7: { const th = ((shiftCtrl >>> 25) & 0x1f) || 32; take = sm.outputShiftCount < th; break; }
        }
        if (take) { sm.pc = addr; jumped = true; }
        break;
      }
      case 1: { // WAIT
        const pol = (arg >>> 7) & 1, src = (arg >>> 5) & 3, idx = arg & 0x1f;
        let ok;
        if (src === 0) ok = (this.chip.mcu.gpio[idx].inputValue ? 1 : 0) === pol;
        else if (src === 1) ok = ((this.inPins() >>> idx) & 1) === pol;
        else if (src === 2) {
          const i = this.irqIndex(idx);
          ok = ((pio.irq >>> i) & 1) === pol;
          if (ok && pol) { pio.irq &= ~(1 << i); pio.irqUpdated(); }
        } else ok = true;
        if (!ok) return -1;
        break;
      }
      case 2: { // IN
        const src = (arg >>> 5) & 7; let n = arg & 0x1f; if (!n) n = 32;
        let v;
        switch (src) {
          case 0: v = this.inPins(); break;
          case 1: v = sm.x; break;
          case 2: v = sm.y; break;
          case 6: v = sm.inputShiftReg; break;
          case 7: v = sm.outputShiftReg; break;
          default: v = 0;
        }
        const mask = n === 32 ? 0xffffffff : ((1 << n) - 1);
        v = (v & mask) >>> 0;
        if ((shiftCtrl >>> 18) & 1) { // right
          sm.inputShiftReg = n === 32 ? v : (((sm.inputShiftReg >>> n) | (v << (32 - n))) >>> 0);
        } else {
          sm.inputShiftReg = n === 32 ? v : (((sm.inputShiftReg << n) | v) >>> 0);
        }
        sm.inputShiftCount = Math.min(32, sm.inputShiftCount + n);
        break;
      }
      case 3: { // OUT
        const dst = (arg >>> 5) & 7; let n = arg & 0x1f; if (!n) n = 32;
        let v;
        if ((shiftCtrl >>> 19) & 1) { // right
          v = n === 32 ? sm.outputShiftReg : (sm.outputShiftReg & ((1 << n) - 1));
          sm.outputShiftReg = n === 32 ? 0 : (sm.outputShiftReg >>> n);
        } else {
          v = n === 32 ? sm.outputShiftReg : (sm.outputShiftReg >>> (32 - n));
          sm.outputShiftReg = n === 32 ? 0 : ((sm.outputShiftReg << n) >>> 0);
        }
        v >>>= 0;
        sm.outputShiftCount = Math.min(32, sm.outputShiftCount + n);
        switch (dst) {
          case 0: this.setPinsField(v, pinCtrl & 0x1f, (pinCtrl >>> 20) & 0x3f, false); break;
          case 1: sm.x = v; break;
          case 2: sm.y = v; break;
          case 4: this.setPinsField(v, pinCtrl & 0x1f, (pinCtrl >>> 20) & 0x3f, true); break;
          case 5: sm.pc = v & 0x1f; jumped = true; break;
          case 6: sm.inputShiftReg = v; sm.inputShiftCount = n; break;
          case 7: sm.execOpcode = v & 0xffff; sm.execValid = true; break;
        }
        break;
      }
      case 4: { // PUSH / PULL
        const isPull = (arg >>> 7) & 1, ifFlag = (arg >>> 6) & 1, block = (arg >>> 5) & 1;
        if (!isPull) {
          const th = ((shiftCtrl >>> 20) & 0x1f) || 32;
          if (ifFlag && sm.inputShiftCount < th) break;
          if (sm.rxFIFO.full) {
            if (block) { this.stats.pushStallCycles++; pio.fdebug |= 1 << sm.index; return -1; }
            this.stats.rxDrops++; pio.fdebug |= 1 << sm.index;
          } else {
            sm.rxFIFO.push(sm.inputShiftReg >>> 0);
            this.stats.pushes++;
            const c = sm.rxFIFO.itemCount; if (c > this.stats.maxRx) this.stats.maxRx = c;
            if (this.onPush) this.onPush(sm.inputShiftReg >>> 0, c);
            sm.updateDMARx(); pio.checkInterrupts();
          }
          sm.inputShiftReg = 0; sm.inputShiftCount = 0;
        } else {
          const th = ((shiftCtrl >>> 25) & 0x1f) || 32;
          if (ifFlag && sm.outputShiftCount < th) break;
          if (sm.txFIFO.empty) {
            if (block) { pio.fdebug |= 1 << (24 + sm.index); return -1; }
            sm.outputShiftReg = sm.x >>> 0;
          } else {
            const c = sm.txFIFO.itemCount; if (c > this.stats.maxTx) this.stats.maxTx = c;
            sm.outputShiftReg = sm.txFIFO.pull() >>> 0;
            this.stats.pulls++;
            sm.updateDMATx(); pio.checkInterrupts();
          }
          sm.outputShiftCount = 0;
        }
        break;
      }
      case 5: { // MOV
        const dst = (arg >>> 5) & 7, opx = (arg >>> 3) & 3, src = arg & 7;
        let v;
        switch (src) {
          case 0: v = this.inPins(); break;
          case 1: v = sm.x; break;
          case 2: v = sm.y; break;
          case 3: v = 0; break;
          case 5: {
            const n = execCtrl & 0xf;
            v = ((execCtrl >>> 4) & 1) ? (sm.rxFIFO.itemCount < n ? 0xffffffff : 0) : (sm.txFIFO.itemCount < n ? 0xffffffff : 0);
            break;
          }
          case 6: v = sm.inputShiftReg; break;
          case 7: v = sm.outputShiftReg; break;
          default: v = 0;
        }
        v >>>= 0;
        if (opx === 1) v = (~v) >>> 0;
        else if (opx === 2) { let r = 0; for (let i = 0; i < 32; i++) r = (r << 1) | ((v >>> i) & 1); v = r >>> 0; }
        switch (dst) {
          case 0: this.setPinsField(v, pinCtrl & 0x1f, (pinCtrl >>> 20) & 0x3f, false); break;
          case 1: sm.x = v; break;
          case 2: sm.y = v; break;
          case 4: sm.execOpcode = v & 0xffff; sm.execValid = true; break;
          case 5: sm.pc = v & 0x1f; jumped = true; break;
          case 6: sm.inputShiftReg = v; sm.inputShiftCount = 0; break;
          case 7: sm.outputShiftReg = v; sm.outputShiftCount = 0; break;
        }
        break;
      }
      case 6: { // IRQ
        const clr = (arg >>> 6) & 1, wait = (arg >>> 5) & 1, i = this.irqIndex(arg & 0x1f);
        if (this._irqWaiting) {
          if ((pio.irq >>> i) & 1) return -1;
          this._irqWaiting = false; break;
        }
        if (clr) { pio.irq &= ~(1 << i); pio.irqUpdated(); break; }
        pio.irq |= 1 << i; pio.irqUpdated();
        if (wait) { this._irqWaiting = true; return -1; }
        break;
      }
      case 7: { // SET
        const dst = (arg >>> 5) & 7, data = arg & 0x1f;
        const cnt = (pinCtrl >>> 26) & 7, base = (pinCtrl >>> 5) & 0x1f;
        switch (dst) {
          case 0: this.setPinsField(data, base, cnt, false); break;
          case 1: sm.x = data; break;
          case 2: sm.y = data; break;
          case 4: this.setPinsField(data, base, cnt, true); break;
        }
        break;
      }
    }
    if (!jumped && !fromExec) {
      const top = (execCtrl >>> 12) & 0x1f, bottom = (execCtrl >>> 7) & 0x1f;
      sm.pc = sm.pc === top ? bottom : ((sm.pc + 1) & 0x1f);
    }
    return delay;
  }
}

// ---------------------------------------------------------------------------------------------
class Chip {
  /**
   * opts: name, bootrom (Buffer), firmware (Buffer), syms ({name: addr}), fs (Buffer|null),
   * fsOffset, romfs (Buffer|null), romfsOffset, speed (1.0 nominal), seed, adcVolts ([v0..v4]), pullHigh ([pins]), inputs ({pin: level}),
   * ads1115 (null | {ain: [v0..v3]}), adcNoiseLsb (2), log (fn)
   */
  constructor(opts) {
    this.opts = opts;
    this.name = opts.name;
    this.speed = opts.speed || 1.0;
    this.rand = mulberry32(opts.seed || 1);
    this.flash = new Uint8Array(16 * 1024 * 1024).fill(0xff);
    this.flash.set(opts.firmware, 0);
    if (opts.fs) this.flash.set(opts.fs, opts.fsOffset);
    if (opts.romfs) this.flash.set(opts.romfs, opts.romfsOffset);  // ROMFS firmware: the partition below the filesystem
    this.adcVolts = (opts.adcVolts || [1.65, 1.65, 0, 0, 0.706]).slice();
    this.inputs = Object.assign({}, opts.inputs || {});
    this.out = '';           // console text (all boots)
    this.lineBuf = '';
    this.boots = 0;
    this.execCycles = 0;     // cycles executed (not in WFI/WFE), all boots
    this.idleNs = 0;
    this.deepNs = 0;         // idle ns with SCR.SLEEPDEEP set
    this.lightNs = 0;        // idle ns in a light sleep proper: SLEEPDEEP set and the PIO clock gated
    //                          (SLEEP_EN0 bit 12 clear), as machine.lightsleep sets it
    this.lowClockNs = 0;     // awake ns at clk_sys < 100 MHz
    this.pioGatedTicks = 0;
    this.resets = [];
    this.outListeners = [];  // (pin, level, globalNs)
    this.rxEvents = [];      // RX pushes of the link SM: [ns, fifoCount]
    this.rxPulls = [];
    this.burst = null;
    this.bursts = [];
    this.hooks = {};
    this.watchPins = opts.watchPins || [0, 25];
    this.gcEvents = [];      // [globalNs, durationNs, cycles]
    this.stalls = [];        // flash stalls: [globalNs, durationNs, 'erase' | 'program']
    this.gcOpen = null;
    this.pinLog = {};        // pin -> [[globalNs, level]]
    for (const p of this.watchPins) this.pinLog[p] = [];
    this.boot(0);
  }

  globalNs() { return this.clock.nanos / this.speed; }

  boot(startNanos, reason, scratch) {
    this.boots++;
    this.clock = new SimulationClock();
    this.clock.nanosCounter = startNanos;
    const mcu = new RP2040(this.clock);
    this.mcu = mcu;
    mcu.logger = new ConsoleLogger(LogLevel.Error);
    mcu.loadBootrom(this.opts.bootrom);
    mcu.flash.set(this.flash);
    this.flash = mcu.flash;
    this.nsPerCycle = 1e9 / mcu.clkSys;
    mcu.addClockListener((f) => { this.nsPerCycle = 1e9 / f; });
    const wd = mcu.peripherals[0x40058];
    if (scratch) wd.scratchData.set(scratch);
    if (reason !== undefined) wd.reason = reason;
    this.resetPending = false;
    // the stock Timer32PeriodicAlarm re-fires at once forever once the count is 0: stop it
    wd.onWatchdogTrigger = () => { this.resetPending = true; wd.alarm.enable = false; wd.timer.enable = false; };
    // SCB SCR and CLOCKS SLEEP_EN0/1
    this.scr = 0;
    const ppb = mcu.ppb;
    const pr = ppb.readUint32.bind(ppb), pw = ppb.writeUint32.bind(ppb);
    ppb.readUint32 = (off) => (off === 0xd10 ? this.scr : pr(off));
    ppb.writeUint32 = (off, v) => { if (off === 0xd10) this.scr = v >>> 0; else pw(off, v); };
    this.sleepEn0 = 0xffffffff; this.sleepEn1 = 0xffffffff;
    const clk = mcu.clocks;
    const cr = clk.readUint32.bind(clk), cw = clk.writeUint32.bind(clk);
    // SLEEP_EN0 0xa8, SLEEP_EN1 0xac (PIO0 = bit 12, PIO1 = bit 13 of SLEEP_EN0)
    clk.readUint32 = (off) => (off === 0xa8 ? this.sleepEn0 : off === 0xac ? this.sleepEn1 : cr(off));
    clk.writeUint32 = (off, v) => {
      if (off === 0xa8) this.sleepEn0 = v >>> 0; else if (off === 0xac) this.sleepEn1 = v >>> 0; else cw(off, v);
    };
    this.setupPio();
    this.setupUsb();
    this.setupAdc();
    this.setupPins();
    if (this.opts.ads1115) this.setupAds(this.opts.ads1115);
    const s = this.opts.syms;
    this.hookErase = s.flash_range_erase; this.hookProgram = s.flash_range_program;
    this.gcStartAddr = s.gc_collect_start; this.gcEndAddr = s.gc_collect_end;
    mcu.core.PC = 0x10000000;
  }

  pioGated(i) {
    if (!this.mcu.core.waiting || !(this.scr & 4)) return false;
    return !((this.sleepEn0 >>> (12 + i)) & 1);
  }

  setupPio() {
    this.smRunners = [];
    this.mcu.pio.forEach((pio, pi) => {
      pio.run = () => {};
      pio.stopped = true;
      const runners = pio.machines.map((sm) => new SMRunner(this, pio, sm, pi));
      this.smRunners.push(runners);
      pio.machines.forEach((sm, i) => {
        const r = runners[i];
        const restart = sm.restart.bind(sm);
        sm.restart = () => { restart(); r.reset(); r._irqWaiting = false; };
        const w = sm.writeUint32.bind(sm);
        sm.writeUint32 = (off, v) => {
          const old = sm.shiftCtrl >>> 0;
          w(off, v);
          if (off === 8 && ((old ^ v) >>> 30) & 3) { // SHIFTCTRL: FJOIN changed (FIFOs cleared)
            const jr = (v >>> 31) & 1, jt = (v >>> 30) & 1;
            sm.rxFIFO = new FIFO(jr ? 8 : 4); sm.txFIFO = new FIFO(jt ? 8 : 4);
            sm.updateDMARx(); sm.updateDMATx();
          }
        };
      });
      const pw = pio.writeUint32.bind(pio);
      pio.writeUint32 = (off, v) => {
        pw(off, v);
        if (off === 0) runners.forEach((r) => r.ensureScheduled());
      };
    });
    // the link RX state machine (PIO0 SM1) — per-character events
    const rx = this.smRunners[0][1];
    rx.onPush = (v, count) => { this.rxEvents.push([this.globalNs(), count, this.execCycles]); };
  }

  setupUsb() {
    const cdc = new USBCDC(this.mcu.usbCtrl);
    this.cdc = cdc;
    const usb = this.mcu.usbCtrl;
    this.pendingRead = -1;
    usb.onEndpointRead = (ep, size) => {
      if (ep === cdc.outEndpoint) {
        if (cdc.txFIFO.empty) { this.pendingRead = size; return; }
        this.completeRead(size);
      }
    };
    cdc.onDeviceConnected = () => { this.usbUp = true; };
    cdc.onSerialData = (buf) => {
      const t = String.fromCharCode(...buf);
      this.out += t;
      if (this.opts.log) {
        this.lineBuf += t;
        let i;
        while ((i = this.lineBuf.indexOf('\n')) >= 0) {
          this.opts.log(`[${this.name} ${(this.globalNs() / 1e9).toFixed(3)}] ${this.lineBuf.slice(0, i).replace(/\r/g, '')}`);
          this.lineBuf = this.lineBuf.slice(i + 1);
        }
      }
    };
  }
  completeRead(size) {
    const cdc = this.cdc;
    const buffer = new Uint8Array(Math.min(size, cdc.txFIFO.itemCount));
    for (let i = 0; i < buffer.length; i++) buffer[i] = cdc.txFIFO.pull();
    this.mcu.usbCtrl.endpointReadDone(cdc.outEndpoint, buffer);
  }
  send(text) {
    for (const ch of text) this.cdc.sendSerialByte(typeof ch === 'number' ? ch : ch.charCodeAt(0));
    if (this.pendingRead >= 0) { const s = this.pendingRead; this.pendingRead = -1; this.completeRead(s); }
  }

  setupAdc() {
    const adc = this.mcu.adc;
    // the node behind each ADC input has a source resistance (the cell board's divider, the NTC's
    // series resistor || NTC): a pad pull (RP2040 ~50-80 kOhm) moves it - the input self-test's
    // load (core/probe.py). An ideal source would read a live input as frozen.
    const srcOhm = this.opts.adcSourceOhm || [50000, 5000, 0, 0, 0];
    const pullOhm = this.opts.padPullOhm || 65000;
    adc.onADCRead = (ch) => {
      adc.currentChannel = ch;            // the sample alarm completes with channelValues[currentChannel]
      let v = this.adcVolts[ch] || 0;
      const pad = ch < 4 ? this.mcu.gpio[26 + ch] : null;
      const src = srcOhm[ch] || 0;
      if (pad && src > 0) {
        if (pad.pulldownEnabled && !pad.pullupEnabled) v = v * pullOhm / (pullOhm + src);
        else if (pad.pullupEnabled && !pad.pulldownEnabled) v = v + (3.3 - v) * src / (pullOhm + src);
      }
      const noise = this.opts.adcNoiseLsb === undefined ? 2 : this.opts.adcNoiseLsb;
      let code = Math.round(v / 3.3 * 4095 + (noise ? Math.round((this.rand() * 2 - 1) * noise) : 0));
      code = Math.max(0, Math.min(4095, code));
      adc.channelValues[ch] = code;
      adc.sampleAlarm.schedule(adc.sampleTime * 1000);
    };
  }

  setupPins() {
    const gpio = this.mcu.gpio;
    for (const p of this.opts.pullHigh || []) gpio[p].setInputValue(true);
    for (const [p, lvl] of Object.entries(this.inputs)) gpio[+p].setInputValue(!!lvl);
    for (const p of this.watchPins) {
      gpio[p].addListener(() => {
        const lvl = gpio[p].outputValue && gpio[p].outputEnable ? 1 : 0;
        const log = this.pinLog[p];
        const t = this.globalNs();
        if (!log.length || log[log.length - 1][1] !== lvl) log.push([t, lvl]);
        for (const l of this.outListeners) if (l.pin === p) l.fn(lvl, t);
      });
    }
  }
  setInput(pin, level) {
    this.inputs[pin] = level;
    this.mcu.gpio[pin].setInputValue(!!level);
  }
  // schedule an input edge at a global time (>= now)
  scheduleInput(pin, level, globalNs) {
    const local = globalNs * this.speed;
    const dt = Math.max(0, local - this.clock.nanos);
    const a = this.clock.createAlarm(() => this.setInput(pin, level));
    a.schedule(dt);
  }

  setupAds(cfg) {
    const i2c = this.mcu.i2c[0];
    const st = { ptr: 0, idx: 0, regs: [0, 0x8583, 0x8000, 0x7fff], addr: false, write: true, hi: 0 };
    this.ads = st;
    i2c.onStart = () => { st.idx = 0; i2c.completeStart(); };
    i2c.onConnect = (addr, mode) => {
      st.addr = addr === 0x48; st.write = mode === 0; st.idx = 0;
      i2c.completeConnect(st.addr);
    };
    i2c.onWriteByte = (b) => {
      if (st.idx === 0) st.ptr = b & 3;
      else if (st.idx === 1) st.hi = b;
      else if (st.idx === 2) {
        const v = (st.hi << 8) | b;
        if (st.ptr === 1) {
          st.regs[1] = v | 0x8000;  // conversion done at once
          if (v & 0x8000) {
            const ch = ((v >>> 12) & 7) - 4;
            const volts = (cfg.ain && cfg.ain[ch]) || 0;
            st.regs[0] = Math.max(-32768, Math.min(32767, Math.round(volts * 1e6 / 125))) & 0xffff;
          }
        } else st.regs[st.ptr] = v;
      }
      st.idx++;
      i2c.completeWrite(true);
    };
    i2c.onReadByte = () => {
      const v = st.regs[st.ptr];
      const b = st.idx === 0 ? (v >>> 8) & 0xff : v & 0xff;
      st.idx++;
      i2c.completeRead(b);
    };
    i2c.onStop = () => { i2c.completeStop(); };
  }

  flashOp(kind) {
    const core = this.mcu.core;
    const r0 = core.registers[0] >>> 0, r1 = core.registers[1] >>> 0, r2 = core.registers[2] >>> 0;
    if (kind === 'erase') {
      this.flash.fill(0xff, r0, r0 + r1);
    } else {
      const mcu = this.mcu;
      for (let i = 0; i < r2; i++) this.flash[r0 + i] &= mcu.readUint8((r1 + i) >>> 0);
    }
    this.flashOps = (this.flashOps || 0) + 1;
    core.PC = core.registers[14] & ~1;  // return to LR
    const fs = this.opts.flashStall;
    if (fs) {
      // W25Q16JV: sector erase 45 ms typical per 4 KiB, page program 0.7 ms typical per 256 B
      const ns = kind === 'erase' ? Math.ceil(r1 / 4096) * fs.eraseMs * 1e6 : Math.ceil(r2 / 256) * fs.programMs * 1e6;
      this.stall(ns, kind);
    }
  }

  // the CPU held for ns of local time (interrupts off, counted awake); alarms (PIO, timer) run on
  stall(ns, kind) {
    const clock = this.clock;
    const end = clock.nanos + ns;
    const t0 = this.globalNs();
    while (clock.nanos < end) {
      let dt = clock.nanosToNextAlarm;
      const rem = end - clock.nanos;
      if (dt <= 0 || dt > rem) dt = rem;
      clock.tick(dt);
    }
    const cycles = Math.round(ns / this.nsPerCycle);
    this.execCycles += cycles;
    if (!this.burst) this.burst = [t0, 0];
    this.burst[1] += cycles;
    this.stalls.push([t0, ns, kind]);
  }

  // run until the chip's local clock reaches globalNs * speed
  runTo(globalNs) {
    const target = globalNs * this.speed;
    while (this.clock.nanos < target) {
      if (this.resetPending) this.doReset();
      const mcu = this.mcu, core = mcu.core, clock = this.clock;
      const he = this.hookErase, hp = this.hookProgram, g0 = this.gcStartAddr, g1 = this.gcEndAddr;
      let n = 0;
      while (clock.nanos < target && !this.resetPending) {
        if (core.waiting) {
          if (this.burst) { this.bursts.push(this.burst); this.burst = null; }
          let dt = clock.nanosToNextAlarm;
          const rem = target - clock.nanos;
          if (dt <= 0 || dt > rem) dt = rem;
          clock.tick(dt);
          this.idleNs += dt;
          if (this.scr & 4) {
            this.deepNs += dt;
            if (!((this.sleepEn0 >>> 12) & 1)) this.lightNs += dt;
          }
        } else {
          const pc = core.PC;
          if (pc === he) { this.flashOp('erase'); continue; }
          if (pc === hp) { this.flashOp('program'); continue; }
          if (pc === g0) this.gcOpen = [this.globalNs(), this.execCycles];
          else if (pc === g1 && this.gcOpen) {
            this.gcEvents.push([this.gcOpen[0], this.globalNs() - this.gcOpen[0], this.execCycles - this.gcOpen[1]]);
            this.gcOpen = null;
          }
          const cycles = core.executeInstruction();
          this.execCycles += cycles;
          if (this.nsPerCycle > 10) this.lowClockNs += cycles * this.nsPerCycle;
          if (!this.burst) this.burst = [this.globalNs(), 0];
          this.burst[1] += cycles;
          clock.tick(cycles * this.nsPerCycle);
        }
      }
    }
  }

  doReset() {
    const wd = this.mcu.peripherals[0x40058];
    const scratch = new Uint32Array(wd.scratchData);
    const reason = wd.reason;
    this.resets.push([this.globalNs(), reason]);
    const flash = this.flash;
    const now = this.clock.nanos;
    this.opts.fs = null;
    this.opts.firmware = new Uint8Array(0);
    const keep = new Uint8Array(flash);
    this.flash = keep;
    this.boot(now, reason, scratch);
    this.flash.set(keep);
  }
}

module.exports = { Chip, loadSyms, mulberry32 };
