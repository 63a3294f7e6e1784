"""The real role objects (firmware/roles/{begin,between,end}.py) on the virtual hardware, joined
by sim/wire.py in virtual time: every board's role is driven by hal/loop.py's own ``Loop`` -
each wake-up is ``Loop.step(now)`` on the board's clock, the next one follows after the wait it
returns (or its light sleep, through the board's real hal.sleep.LightSleep) - and an
interrupt-driven receiver's handler runs whenever a character reaches the board, with the real
CellBoard, SensorPair and PackBrain reading the pack model.

Every role is built with plain ``make(hw, board_def)`` as hal/loop.py builds it on a board, so the
End board brings its own services (roles/end_app.py: settings file, app protocol, extended
output, state saving, 5 s password reset); settings changes go through them."""
import gc

import numpy as np

from sim import board_time, fw
from sim import wire as wire_mod

codec = fw.core("codec")


BETWEEN_MS = 50           # virtual time between app-socket polls inside a cycle (AppPort.between)

class BurstWire(wire_mod.Wire):
    """sim/wire.py's Wire with one scheduler event per burst instead of per character: the
    characters written back to back are handed to the receiver together when the first one's
    stop bit ends (the receiver's poll drains them in one call). Line occupancy (bits_busy,
    free_at) is counted exactly as in Wire; only the delivery of a burst's later characters is
    early by at most the burst length. Several times faster for long chains."""

    def __init__(self, sched, baud=9600, proc_bits=2, gap_bits=30, line=None):
        wire_mod.Wire.__init__(self, sched, baud, proc_bits, gap_bits, line)
        self._batch = []
        self._starts = []
        self._flush_due = False

    def _send(self, b, now):
        start = now + self.proc_ns
        if start < self.free_at:
            start = self.free_at
        if self.fifo is not None:
            self._starts_q.append(start)
        end = start + self.char_ns
        self.free_at = end
        self.bits_busy += 10
        self.chars += 1
        if not self.broken:
            self._batch.append(b)
            self._starts.append(start)
            if not self._flush_due:
                self._flush_due = True
                self.sched.at(end, self._flush)
        return True

    def _flush(self, _arg=None):
        self._flush_due = False
        batch = self._batch
        starts = self._starts
        self._batch = []
        self._starts = []
        q = self.rx.q
        line = self.line
        if line is not None and not line.clean:
            # not a clean line: the whole burst bit by bit, as the receiver samples it
            chars = []
            for i in range(len(batch)):
                b = batch[i]
                if self.corrupt is not None and self._since_gap == self.corrupt[0]:
                    b ^= self.corrupt[1]
                self._since_gap += 1
                chars.append((starts[i] - starts[0], b))
            for v in line.decode(chars):
                q.append(line.hit(v))
            batch = ()
        for b in batch:
            if self.corrupt is not None and self._since_gap == self.corrupt[0]:
                b ^= self.corrupt[1]
            self._since_gap += 1
            if line is not None:
                b = line.hit(line.table[b])
            q.append(b)
        self._delivered += 1
        at = self.free_at if self.free_at > self.sched.now else self.sched.now
        self.sched.at(at + self.gap_ns, self._gap_check, self._delivered)
        if self.receiver is not None:
            self.receiver()


class RolesChain:
    """The pack's boards on the virtual wire, each driven by its own hal.loop.Loop (issue 19:
    no copy of the loop here): ``Loop.step`` at every wake-up (poll + tick + the cycle when
    ``cycle_due()``, Begin every cycle_ms), the wait it returns in virtual time; characters
    still start the receive handler of an interrupt-driven receiver when they arrive."""
    link = "wire"

    def __init__(self, sim):
        self.sim = sim
        self.n = n = len(sim.boards)
        self.sched = wire_mod.Scheduler()
        bd = sim.board_def
        baud = getattr(bd, "LINK_BAUD", 9600)
        backend = getattr(bd, "LINK_BACKEND", "pio")
        lk = sim.sc.link
        self.rates = board_rates(lk, n, sim.seed)
        self.lines = self._lines(lk, bd, baud, backend, sim.seed)
        # board time: every character reaches the receiver at its own stop bit (Wire), so a
        # busy board really falls behind; without it one event per burst (BurstWire) is enough
        self.time = board_time.BoardTime(sim.sc.board_time, getattr(bd, "CPU", "rp2040"), backend)
        wire_cls = BurstWire if self.time.zero else wire_mod.Wire
        self.wires = [wire_cls(self.sched, baud, line=self.lines[k]) for k in range(n - 1)]
        for w in self.wires:
            w.rx.interrupt_driven = backend in ("pio", "soft")   # as the board's receiver
            if not self.time.zero:
                w.fifo = self.time.tx_fifo      # write_byte refuses when the FIFO is full
        self.roles = [None] * n
        self.on = [True] * n
        self.broken_after = set()
        self.cycle_ns = sim.cycle_ms * 1000000
        self._bd = _CycleDef(bd, sim.cycle_ms)
        self.phase_ms = {int(k): float(v) for k, v in lk.get("phase_ms", {}).items()}
        # board time (sim/board_time.py)
        self.interrupt_driven = backend in ("pio", "soft")
        self.busy_until = [0] * n      # the board's loop is inside a call until then
        self.irq_busy = [0] * n        # an interrupt-driven receive handler runs until then
        self.stall_until = [0] * n     # a flash write: interrupts off until then
        self._stall_q = [0] * n        # receive queue length when the stall began
        self._rx_due = [False] * n     # a receive handler / loop poll is scheduled
        self.host_ns = None            # [per board] host CPU ns in role calls (calibration)
        self.host_calls = None
        self.rx_overruns = [0] * n     # characters lost in a full receive FIFO during a stall
        self.awake_ns = [0] * n        # board time spent in role calls
        self.loop_mode = True          # (always, since issue 19: kept for the bench's results)
        self.loops = [None] * n        # each board's hal.loop.Loop (new one per restart)
        self.clocks = [_BoardClock(self.sched, r) for r in self.rates]
        self.wakes = [0] * n           # wake-ups of each board's loop (Loop.step calls)
        self._gen = [0] * n            # a board's wake-up chain (new one per restart)
        self._flash_writes = 0
        self._ev_mask = [0] * n        # link events raised inside the current call
        # light sleep (loop mode, hal/sleep.py): the board's real LightSleep decides, on a machine
        # whose lightsleep does nothing; the pack makes the board deaf while it sleeps
        self.light_sleep = bool(lk.get("light_sleep", True)) and bool(getattr(bd, "LIGHT_SLEEP", False))
        self.wake_on_link = bool(getattr(bd, "LIGHT_SLEEP_WAKE_ON_LINK", False))
        self.sleepers = [None] * n
        self.asleep_ns = [0] * n       # time in light sleep
        self.light_sleeps = [0] * n
        self.sleep_wake_ns = [0] * n   # board time of the wake-ups out of light sleep
        self.lost_asleep = [0] * n     # characters that reached a deaf (sleeping) board
        self.early_wakes = [0] * n     # light sleeps ended by a character (wake on link)
        self._asleep_until = [0] * n
        self._deaf_until = [0] * n
        self._seq = [0] * n            # a board's current wake-up (an early wake replaces it)
        self._made_at = [0] * n        # when the board's role was made (its receiver runs)
        self._gc_off = False
        self._refresh_ns = 0
        self._patch_store()

    # --- the wire for each hop ---
    def _lines(self, lk, bd, baud, backend, seed):
        params = line_params(lk, bd, backend, seed, self.rates)
        if params is None:
            return [None] * (self.n - 1)
        ber = float(lk.get("byte_error_rate", 0.0))
        cache = {}
        lines = []
        for k, p in enumerate(params):
            key = (round(self.rates[k], 6), round(self.rates[k + 1], 6))
            line = cache.get(key) if not ber else None
            if line is None:
                line = make_line(baud, p)
                cache[key] = line
            lines.append(line)
        return lines

    def _patch_store(self):
        """Count settings/state writes (flash erases) made inside role calls."""
        store = fw.core("store")
        orig = getattr(store.save, "_cellchain_orig", store.save)
        chain = self

        def save(*a, **kw):
            chain._flash_writes += 1
            return orig(*a, **kw)
        save._cellchain_orig = orig
        store.save = save
        self._store = store
        self._store_orig = orig

    def boot(self):
        s = 12345 + 7919 * self.sim.seed if self.sim.sc.link.get("clock_spread_pct") else 12345
        for k in range(self.n):
            self._make(k)
        for k in range(self.n):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            phase = 0 if k == 0 else 1000 + s % self.cycle_ns
            if (k + 1) in self.phase_ms:
                phase = int(self.phase_ms[k + 1] * 1e6)
            self._loop_start(k, phase)

    # --- loop mode: the board loop of hal/loop.py in virtual time -----------------------------
    def _local_ms(self, k, t_ns):
        """Board k's own ms clock at scheduler time t_ns."""
        return int(t_ns * self.rates[k]) // 1000000

    def _loop_start(self, k, phase):
        """Board k's loop starts at ``phase`` (boot, power-up, reset): hal/loop.py's own Loop
        around its role, on the board's clock, the board's real hal.sleep.LightSleep (on a
        stand-in machine) as its sleeper."""
        from hal import loop as hal_loop
        self._gen[k] += 1
        self._seq[k] += 1
        self._asleep_until[k] = self._deaf_until[k] = 0
        clock = self.clocks[k]
        clock.pin(phase)
        lp = hal_loop.Loop(self.roles[k], self._bd, self.sim.boards[k], _SleepMachine, clock, self.sleepers[k])
        clock.pin(None)
        # the role's receiver runs from when it was made: its first tick counts from then
        lp._last_tick = self._local_ms(k, min(phase, self._made_at[k]))
        self.loops[k] = lp
        self.sched.at(phase, self._wake, (k, self._gen[k], self._seq[k]))

    def _wake(self, arg):
        """One wake-up of board k's loop: ``Loop.step`` at the board's own ms (poll, tick, the
        cycle when due - ``cycle_due()``, or every cycle_ms of a timed role), charged as board
        time; then what the step returned: a light sleep of its ``light_ms`` when the board's
        sleeper takes it (the board is deaf meanwhile), else the next wake-up after its wait."""
        k, gen, seq = arg
        if gen != self._gen[k] or seq != self._seq[k] or not self.on[k] or self.roles[k] is None:
            return
        lp = self.loops[k]
        now = self.sched.now
        if now < self.busy_until[k]:
            self.sched.at(self.busy_until[k], self._wake, arg)
            return
        self.wakes[k] += 1
        local = self._local_ms(k, now)
        c0 = lp.stats.cycles
        out = [0]

        def run():
            out[0] = lp.step(local)
        if not self.time.zero:
            self._call(k, run, "cycle", lambda: lp.stats.cycles != c0)
        elif self.host_ns is not None:           # calibration: host time of every wake-up
            t0 = self.time.now_ns()
            run()
            self.host_ns[k] += self.time.now_ns() - t0
        else:
            run()
        if lp.stats.cycles != c0 and self.host_calls is not None:
            self.host_calls[k] += 1
        wait = out[0]
        light = lp.light_ms
        if wait > 0 and light:
            r = lp.light(light)     # hal.sleep.LightSleep's checks; it may decline
            if r < 0:
                self._asleep(k, now, light)
                return
            if r < wait:
                wait = r
        from hal import loop as hal_loop
        wait = min(max(wait, 1), hal_loop.MAX_SLEEP_MS)
        at = max(now, self.busy_until[k]) + int(wait * 1e6 / self.rates[k])
        self.sched.at(at, self._wake, arg)

    def _asleep(self, k, now, light):
        """Board k light-sleeps ``light`` ms from the end of its wake-up: deaf until it is awake
        again (the wake-up, wake_ms, after the sleep ends); the next wake-up follows then."""
        sl = self.sleepers[k]
        start = max(now, self.busy_until[k])
        end = start + int(light * 1e6 / self.rates[k])
        wake_ns = int(sl.wake_ms * 1e6 / self.rates[k])
        self._asleep_until[k] = end
        self._deaf_until[k] = end + wake_ns
        self.asleep_ns[k] += end - start
        self.light_sleeps[k] += 1
        self._wake_after_sleep(k, end, wake_ns)

    def _wake_after_sleep(self, k, end, wake_ns):
        """The wake-up out of a light sleep ending at ``end``: board time ``wake_ns``, then the
        loop's next step (a new wake-up: one pending before is void)."""
        self.sleep_wake_ns[k] += wake_ns
        if end + wake_ns > self.busy_until[k]:
            self.busy_until[k] = end + wake_ns
        self._seq[k] += 1
        self.sched.at(end + wake_ns, self._wake, (k, self._gen[k], self._seq[k]))

    def _deaf(self, k):
        """A character reached board k while it sleeps or is waking up: lost (the PIO / UART
        has no clock); the line's idle GAP marks stay (the receiver's gap timer runs on the
        tick counter, which keeps counting). With LIGHT_SLEEP_WAKE_ON_LINK (ESP32 ext0) the
        first one ends the sleep: awake SLEEP_WAKE_MS later, deaf until then."""
        rx = self.wires[k - 1].rx
        q = rx.q
        keep = [v for v in q[rx.head:] if v < 0]
        lost = len(q) - rx.head - len(keep)
        self.lost_asleep[k] += lost
        del q[rx.head:]
        q.extend(keep)
        now = self.sched.now
        if lost and self.wake_on_link and now < self._asleep_until[k]:
            self.asleep_ns[k] -= self._asleep_until[k] - now
            wake_ns = int(self.sleepers[k].wake_ms * 1e6 / self.rates[k])
            self._asleep_until[k] = now
            self._deaf_until[k] = now + wake_ns
            self.busy_until[k] = now
            self.early_wakes[k] += 1
            self._wake_after_sleep(k, now, wake_ns)

    def _make(self, k):
        from roles import begin, between, end
        hw = self.sim.boards[k]
        if k < self.n - 1:
            hw.link_tx = self.wires[k]
        if k > 0:
            hw.link_rx = self.wires[k - 1].rx
            self.wires[k - 1].rx.q = []
            self.wires[k - 1].rx.head = 0
        if k == 0:
            role = begin.make(hw, self._bd)
        elif k < self.n - 1:
            role = between.make(hw, self._bd)
        else:
            role = end.make(hw, self._bd)
        self.roles[k] = role
        self._made_at[k] = self.sched.now
        self.sleepers[k] = self._sleeper(hw) if self.light_sleep else None
        port = getattr(role, "port", None)
        if port is not None and not self.time.zero:
            orig = port.on_event

            def on_event(ev, orig=orig, k=k):
                self._ev_mask[k] |= 1 << ev
                orig(ev)
            port.on_event = on_event
        if k > 0:
            self.wires[k - 1].receiver = self._receiver(k, role)

    def _sleeper(self, hw):
        """The board's hal.sleep.LightSleep on a machine whose lightsleep returns at once (the
        pack itself makes the board sleep), or None when the board definition does not allow it."""
        from hal import sleep as hal_sleep
        return hal_sleep.make(self._bd, hw, _SleepMachine, _SleepEsp32)

    # --- board calls ---
    def _receiver(self, k, role):
        drain = _drain(role)

        def on_chars():
            if self._deaf_until[k] > self.sched.now:
                self._deaf(k)
                return
            if not self.interrupt_driven:
                return                  # a polled receiver: the board's loop wake-ups read it
            if self.time.zero:
                if self.host_ns is None:
                    drain()
                    return
                t0 = self.time.now_ns()
                drain()
                self.host_ns[k] += self.time.now_ns() - t0
                return
            if self._rx_due[k]:
                return
            self._rx_due[k] = True
            now = self.sched.now
            if self.interrupt_driven:
                at = max(now, self.stall_until[k]) + self.time.irq_latency_ns
            else:
                at = self._next_wake(k, max(now, self.busy_until[k]))
            self.sched.at(at, self._rx_run, k)
        return on_chars

    def _next_wake(self, k, t):
        """The polled board's next loop wake-up at or after t (its wake grid, its own clock)."""
        role = self.roles[k]
        ms = self.time.loop_poll_ms
        if ms is None:
            w = getattr(role, "wake_in_ms", None)
            ms = w() if w is not None else getattr(self._bd, "LOOP_POLL_MS", 5)
        step = int(max(ms, 0.1) * 1e6 / self.rates[k])
        return ((t + step - 1) // step) * step

    def _rx_run(self, k):
        self._rx_due[k] = False
        role = self.roles[k]
        if role is None or not self.on[k]:
            return
        now = self.sched.now
        if now < self.stall_until[k]:
            self._rx_due[k] = True
            self.sched.at(self.stall_until[k], self._rx_run, k)
            return
        rx = self.wires[k - 1].rx
        # one call, as on the board: the receiver's scheduled handler is the port's poll (it
        # drains what has arrived, re-checking once if it was called meanwhile), a polled
        # receiver is read by the loop's role.poll() once per wake-up; what is left (more than
        # a poll takes, or arrived since) gets its own handler / the next wake-up below
        port = getattr(role, "port", None)
        fn = port.poll if self.interrupt_driven and port is not None else role.poll
        self._call(k, fn, "poll")
        if rx.head < len(rx.q):       # more arrived meanwhile
            self.wires[k - 1].receiver()

    def _call(self, k, fn, kind, extra=None):
        """Run fn() as board k, charge its board time; bytes it sends leave at their time inside
        it. ``extra()`` (after the call) adds to the kind of call for the measured costs."""
        tm = self.time
        out = self.wires[k] if k < self.n - 1 else None
        if out is not None:
            out.hold(tm.stamp)            # where inside the call each byte was written
        role = self.roles[k]
        port = getattr(role, "port", None)
        chars0 = port.rx_chars if port is not None else 0
        w0 = self._flash_writes
        hw = self.sim.boards[k]
        r0 = hw.cell_reads
        pre = (k == 0, k == self.n - 1, kind)
        instr = None
        s0 = tm.stamp_clock()
        t0 = tm.now_ns()
        try:
            instr = tm.run(pre, fn)
        finally:
            host = tm.now_ns() - t0
            s1 = tm.stamp_clock()
            if self.host_ns is not None:
                self.host_ns[k] += host
            writes = self._flash_writes - w0
            held = len(out._held) if out is not None else 0
            host = tm.net_ns(host, held)     # the host's clock reads are not board time
            key = (k == 0, self._ev_mask[k], min(held, 1), writes, hw.cell_reads != r0,
                   extra() if extra is not None else None)
            self._ev_mask[k] = 0
            if (hw.cell_reads != r0) if tm.mode == "fixed" else kind == "cycle":
                cost = tm.cycle_cost(self._role_name(k), host, key, instr, pre)
            else:
                chars = (port.rx_chars - chars0) if port is not None else 0
                cost = tm.poll_cost(chars, host, key, instr, pre)
            now = self.sched.now
            if kind != "poll":
                start = now
            elif self.interrupt_driven:
                start = max(now, self.irq_busy[k])   # one handler at a time
            else:
                start = max(now, self.busy_until[k])
            sent_at = start + cost
            if out is not None:
                offs = None
                if tm.counted:
                    offs = tm.write_offsets((self._role_name(k), kind, port.rx_chars - chars0 if port else 0) + key,
                                            out._held, instr is not None, pre, tm.call_nspi(pre, key))
                sent = out.release(self._write_times(start, cost, s0, s1, kind, offs))
                if sent > tm.tx_fifo and kind == "cycle":
                    cost += (sent - tm.tx_fifo) * out.char_ns    # blocked feeding the TX FIFO
            if writes:
                stall = writes * tm.flash_erase_ns
                self._stall_begin(k, sent_at, stall)
                cost += stall
            self.awake_ns[k] += cost
            end = start + cost
            if kind == "poll" and self.interrupt_driven:
                self.irq_busy[k] = end
            if end > self.busy_until[k]:
                self.busy_until[k] = end

    def _write_times(self, start, cost, s0, s1, kind, offs=None):
        """When each byte written inside a call leaves: counted - at the board time of the
        instructions before it (``offs``, from a counted call of the same kind); measured (and
        counted without offs) - at its place inside the call (``stamp_clock`` time since the
        call began over the call's, of its board time); fixed - a poll's bytes one per
        ``poll_us_per_char``, a cycle's at its end (counted without offs too: reproducible);
        never after the call."""
        tm = self.time
        if offs is not None:
            last = len(offs) - 1
            return lambda i, st: start + min(cost, offs[i if i < last else last])
        if tm.counted:
            return start + cost     # no counted call of this kind wrote yet: at its end
        if tm.mode in ("measured", "counted"):
            span = s1 - s0
            if span <= 0:
                return start
            return lambda i, st: start + min(cost, max(0, st - s0) * cost // span)
        if kind == "poll":
            per = tm.poll_ns_per_char
            return lambda i, st: start + min(cost, (i + 1) * per)
        return start + cost

    def _stall_begin(self, k, at, stall):
        self.stall_until[k] = at + stall
        if k > 0:
            rx = self.wires[k - 1].rx
            self._stall_q[k] = len(rx.q)
            self.sched.at(at + stall, self._stall_end, k)

    def _stall_end(self, k):
        """Interrupts back on: what arrived beyond the receive FIFO during the stall is lost."""
        rx = self.wires[k - 1].rx
        keep = self._stall_q[k] + self.time.rx_fifo
        if len(rx.q) > keep:
            lost = len(rx.q) - keep
            self.rx_overruns[k] += lost
            del rx.q[keep:]
            rx.q.append(codec.FRAMING)

    def _role_name(self, k):
        return "begin" if k == 0 else ("end" if k == self.n - 1 else "between")

    def cycle(self, dt_ms):
        if self.time.mode in ("measured", "counted"):
            # the host's garbage collector must not land inside a timed call (it would be
            # charged as board time): collect between simulation steps only
            if gc.isenabled():
                gc.disable()
                self._gc_off = True
            if self.sched.now >= self._refresh_ns:
                self._refresh_ns = self.sched.now + board_time.REFRESH_S * 1000000000
                self.time.refresh()
            self._run(dt_ms)
            gc.collect(0)
            return
        self._run(dt_ms)

    def _run(self, dt_ms):
        """The cycle's events; with ``sim.between_hooks`` (the app socket) they run in slices of
        BETWEEN_MS virtual time, each hook called between slices, so a simulation slower than
        real time still answers its clients within a slice, as a board's loop serves BLE at
        every wake-up (issue 22: once per cycle made aiobmsble's connect time out on 99/255
        cells). The events and their order are the same either way."""
        end = self.sched.now + dt_ms * 1000000
        hooks = getattr(self.sim, "between_hooks", None)
        if hooks:
            step = BETWEEN_MS * 1000000
            while self.sched.now + step < end:
                self.sched.run_until(self.sched.now + step)
                for hook in hooks:
                    hook()
        self.sched.run_until(end)

    def close(self):
        if self._store.save is not self._store_orig:
            self._store.save = self._store_orig
        if self._gc_off:
            gc.enable()
            self._gc_off = False

    def power(self, k, on):
        if not on and self.on[k]:
            self.on[k] = False
            self.sim.boards[k].power_off()
            if k > 0:
                self.wires[k - 1].receiver = None
            if k < self.n - 1:
                self.wires[k].broken = True
            self.roles[k] = None
        elif on and not self.on[k]:
            self.on[k] = True
            self.sim.boards[k].cause = "power"
            if k < self.n - 1:
                self.wires[k].broken = (k + 1) in self.broken_after
            self._make(k)
            self._loop_start(k, self.sched.now)

    def reset(self, k, cause="watchdog"):
        """Board k restarts at once (a watchdog reset): every output to its safe level first,
        what it was receiving is lost, then the role is built again by ``make`` from the board's
        data folder (settings, calibration, saved state) with ``hw.reset_cause()`` = cause.
        A board without power stays off."""
        if not self.on[k]:
            return
        hw = self.sim.boards[k]
        hw.safe()
        if k > 0:
            self.wires[k - 1].receiver = None
        self.roles[k] = None
        hw.cause = cause
        self._make(k)
        self._loop_start(k, self.sched.now)

    def link_break(self, position, broken):
        (self.broken_after.add if broken else self.broken_after.discard)(position)
        if self.on[position - 1]:
            self.wires[position - 1].broken = broken

    def end_role(self):
        """The End board's role object (None while it has no power)."""
        return self.roles[-1]

    def apply_setting(self, name, value):
        """A settings change through the End board's own validated, atomic path (as the app
        does): ``preset`` selects a chemistry preset, anything else one setting."""
        end = self.roles[-1]
        if end is None:
            return "End board has no power"
        if name == "preset":
            return end.services.select_preset(value)
        return end.services.apply_setting(name, value)


def _drain(role):
    poll = role.poll

    def drain():
        while poll():
            pass
    return drain


class _BoardClock:
    """The ``time`` module a board's Loop sees: the scheduler's time on the board's own clock
    (``rate``: 1.03 = 3 % fast). ``pin(t_ns)`` holds it at t_ns (None: follow the scheduler).
    ``sleep_ms`` is never called: the pack schedules the wake-ups from what Loop.step returns."""

    def __init__(self, sched, rate):
        self.sched = sched
        self.rate = rate
        self._pinned = None

    def pin(self, t_ns):
        self._pinned = t_ns

    def _ns(self):
        t = self.sched.now if self._pinned is None else self._pinned
        return int(t * self.rate)

    def ticks_ms(self):
        return self._ns() // 1000000

    def ticks_us(self):
        return self._ns() // 1000

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    @staticmethod
    def ticks_add(a, b):
        return a + b

    def sleep_ms(self, ms):
        raise RuntimeError("the virtual pack schedules the wake-ups (Loop.step)")


class _SleepPin:
    IN = 1

    def __init__(self, pin=None):
        self.pin = pin

    def init(self, mode):
        pass


class _SleepMachine:
    """What hal.sleep.LightSleep needs of ``machine`` in the virtual pack."""
    Pin = _SleepPin

    @staticmethod
    def lightsleep(ms):
        pass

    @staticmethod
    def freq(f=None):
        return 125000000


class _SleepEsp32:
    @staticmethod
    def wake_on_ext0(pin=None, level=0):
        pass


class _CycleDef:
    """The board definition with the scenario's cycle time (LINK_CYCLE_MS) on top."""

    def __init__(self, base, cycle_ms):
        self._base = base
        self.LINK_CYCLE_MS = cycle_ms

    def __getattr__(self, name):
        return getattr(self._base, name)


def line_params(lk, bd, backend, seed, rates):
    """Per hop, what sim/wire.py's Line needs (plain values: the micropython engine builds its
    Lines from them too): [tx_clock, rx_clock, byte_error_rate, seed, tx_inv, rx_inv, polarity,
    opto_on_ns or None, opto_off_ns, stop_at]. None: ideal wires."""
    if not lk.get("opto", True) and not lk.get("clock_spread_pct") and not lk.get("byte_error_rate"):
        return None
    polarity = lk.get("polarity", "ideal") == "board"
    tx_inv = rx_inv = False
    if polarity:
        from sim.link_probe import link_polarity
        tx_inv, rx_inv = link_polarity(bd)
    on_ns = off_ns = None
    if lk.get("opto", True):
        on_ns, off_ns = int(lk.get("opto_on_us", 4) * 1000), int(lk.get("opto_off_us", 20) * 1000)
    stop_at = list(wire_mod.PIO_STOP) if backend == "pio" else 9.5
    ber = float(lk.get("byte_error_rate", 0.0))
    return [[rates[k], rates[k + 1], ber, seed * 1000 + k + 1, bool(tx_inv), bool(rx_inv), polarity, on_ns, off_ns,
             stop_at] for k in range(len(rates) - 1)]


def make_line(baud, p, wire=wire_mod):
    """A sim/wire.py Line from one entry of ``line_params`` (also on the micropython side)."""
    tx_clock, rx_clock, ber, seed, tx_inv, rx_inv, polarity, on_ns, off_ns, stop_at = p
    opto = wire.OptoStage(on_ns, off_ns) if on_ns is not None else None
    return wire.Line(baud, tx_inv, rx_inv, opto, tx_clock, rx_clock, ber, seed, polarity,
                     tuple(stop_at) if isinstance(stop_at, list) else stop_at)


def board_rates(lk, n, seed):
    """Each board's clock rate (1.03 = 3 % fast) from the scenario's link section."""
    spread = float(lk.get("clock_spread_pct", 0.0)) / 100.0
    rng = np.random.default_rng(seed * 7 + 11)
    rates = [1.0 + float(rng.uniform(-spread, spread)) if spread else 1.0 for _ in range(n)]
    for b, pct in lk.get("clock_pct", {}).items():      # {"1": 3}: Begin's clock 3 % fast
        rates[int(b) - 1] = 1.0 + float(pct) / 100.0
    return rates
