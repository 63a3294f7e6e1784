"""Virtual daisy-chain wire in virtual time (host side; also runs on the MicroPython Unix port).

A ``Wire`` joins one board's link OUT to the next board's link IN. A character written at
virtual time t starts when the line is free and the board's processing delay has passed, takes
10 bit times (8N1) and is delivered to the receiver when its stop bit ends. Everything is counted
in bit times (``bits_busy``) so latencies come from what the code actually waits for. The line
going idle for ``gap_bits`` after a character is delivered as codec.GAP, as a real receiver does.

``Chain`` builds Begin -> Between... -> End from the real role classes with small fakes for the
cell boards, switches and current sensors, and runs them on a ``Scheduler``: every board driven
by hal/loop.py's own ``Loop`` (``Loop.step`` at each wake-up from its own phase, the next one
after the wait it returns), the role's ``poll`` (its receiver's handler) whenever a character
arrives.
Faults: ``wire.broken`` (nothing gets through), ``wire.corrupt = (offset, xor)`` (flip bits of
the character at that offset of every frame), ``chain.remove(k)`` (a board dies).
"""
import heapq
import math
import sys

if sys.implementation.name == "micropython":     # sim/mp_board.py, chain tests: sim/ is on the path
    import fw  # type: ignore[import-not-found, no-redef]
else:
    from sim import fw

codec = fw.core("codec")
frame = fw.core("frame")
CellStatus = fw.core("snapshot").CellStatus

NS_PER_S = 1000000000


def _no_stamp():
    return 0


class Scheduler:
    """Events in virtual time (ns)."""

    def __init__(self):
        self.now = 0
        self._heap = []
        self._seq = 0

    def at(self, t, fn, arg=None):
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, arg))

    def run_until(self, t_end):
        heap = self._heap
        while heap and heap[0][0] <= t_end:
            t, _, fn, arg = heapq.heappop(heap)
            self.now = t
            fn(arg)
        self.now = t_end


class WireRx:
    """The receiving board's ``hw.link_rx``: ``read()`` -> byte, codec.FRAMING/GAP/NONE.

    ``interrupt_driven`` (False by default) tells roles.LinkPort whether the board's real
    receiver schedules its handler on arrival (PIO, soft) or is polled by the loop (UART); the
    simulator calls the role's poll itself, the handler given to ``set_handler`` is only kept."""

    def __init__(self, interrupt_driven=False):
        self.q = []
        self.head = 0
        self.interrupt_driven = interrupt_driven
        self.handler = None

    def set_handler(self, fn):
        self.handler = fn

    def read(self):
        if self.head >= len(self.q):
            if self.head:
                self.q = []
                self.head = 0
            return codec.NONE
        v = self.q[self.head]
        self.head += 1
        return v


class Wire:
    """One one-way link; ``self`` is also the sending board's ``hw.link_tx``."""

    def __init__(self, sched, baud=9600, proc_bits=2, gap_bits=30, line=None):
        self.sched = sched
        self.baud = baud
        self.line = line              # a Line (opto, polarity, clocks, bit errors) or None: ideal
        self.bit_ns = NS_PER_S // baud
        tx_bit = line.tx_bit_ns if line is not None else self.bit_ns
        rx_bit = line.rx_bit_ns if line is not None else self.bit_ns
        self.char_ns = int(codec.BITS_PER_CHAR * tx_bit)
        self.proc_ns = proc_bits * self.bit_ns
        self.gap_ns = int(gap_bits * rx_bit)   # the receiver's idle timer runs on its clock
        self.fifo = None              # transmitter FIFO depth for write_byte (None: unlimited)
        self._starts_q = []           # start times of characters not yet on the line (fifo)
        self.holding = False          # the sender is inside a charged call: bytes wait (release)
        self._held = []
        self._stamp = None
        self.rx = WireRx()
        self.receiver = None          # callable run after a delivery (the board's poll)
        self.free_at = 0
        self.bits_busy = 0
        self.chars = 0
        self.broken = False
        self.corrupt = None           # (offset in frame, xor mask)
        self._delivered = 0
        self._since_gap = 0

    # --- transmitter side (hw.link_tx) ---
    def hold(self, stamp=None):
        """Bytes written from now on wait for ``release`` (the board is busy in a call whose
        board time is known only when it returns); ``stamp()`` (host time) is kept with each."""
        self.holding = True
        self._stamp = stamp if stamp is not None else _no_stamp

    def release(self, at_ns):
        """Send the held bytes: ``at_ns`` is one time for all, or a function (index, host
        stamp) -> time; returns how many."""
        self.holding = False
        held = self._held
        if not held:
            return 0
        self._held = []
        for i in range(len(held)):
            b, st = held[i]
            self._send(b, at_ns(i, st) if callable(at_ns) else at_ns)
        return len(held)

    def write_byte(self, b):
        """One character; False (dropped) when a transmitter FIFO of ``fifo`` characters is
        full, as PioTx.write_byte does. Lean: while a board's call is timed this is charged as
        board time, and a PIO FIFO write is two native calls on the board."""
        fifo = self.fifo
        if fifo is not None and len(self._starts_q) + len(self._held) >= fifo and self._queued() >= fifo:
            return False
        if self.holding:
            self._held.append((b, self._stamp()))
            return True
        return self._send(b, self.sched.now)

    def _put(self, b):
        if self.holding:
            self._held.append((b, self._stamp()))
            return True
        return self._send(b, self.sched.now)

    def _queued(self):
        """Characters written that have not started on the line yet (held ones included)."""
        q = self._starts_q
        now = self.sched.now
        i = 0
        while i < len(q) and q[i] <= now:
            i += 1
        if i:
            del q[:i]
        return len(q) + len(self._held)

    def _send(self, b, now):
        start = now + self.proc_ns
        if start < self.free_at:
            start = self.free_at
        if self.fifo is not None:
            self._starts_q.append(start)
        end = start + self.char_ns
        self.free_at = end
        self.bits_busy += codec.BITS_PER_CHAR
        self.chars += 1
        if not self.broken:
            self.sched.at(end, self._deliver, b)
        return True

    def write(self, buf, n):
        """A burst: blocks until every character is in (PioTx.write), so none is dropped."""
        for i in range(n):
            self._put(buf[i])

    def pending(self):
        return 1 if (self._held or self.free_at > self.sched.now) else 0

    # --- line ---
    def _deliver(self, b):
        if self.corrupt is not None and self._since_gap == self.corrupt[0]:
            b ^= self.corrupt[1]
        self._since_gap += 1
        self._delivered += 1
        line = self.line
        if line is None:
            self.rx.q.append(b)
        elif line.clean:
            self.rx.q.append(line.hit(line.table[b]))
        else:
            for v in line.decode([(0, b)]):
                self.rx.q.append(line.hit(v))
        self.sched.at(self.sched.now + self.gap_ns, self._gap_check, self._delivered)
        if self.receiver is not None:
            self.receiver()

    def _gap_check(self, token):
        if token == self._delivered:
            self._since_gap = 0
            self.rx.q.append(codec.GAP)
            if self.receiver is not None:
                self.receiver()


class _Clock:
    """The ``time`` a Chain board's hal.loop.Loop sees: the scheduler's time."""

    def __init__(self, sched):
        self.sched = sched

    def ticks_ms(self):
        return self.sched.now // 1000000

    def ticks_us(self):
        return self.sched.now // 1000

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b


class FakeCell:
    """Stand-in for roles.cell_board.CellBoard with settable true values."""

    def __init__(self, cell_mv=3300, temp_dc=250, status=0):
        self.cell_mv = cell_mv
        self.temp_dc = temp_dc
        self.status = status
        self.frames = 0
        self.link_ok = None
        self.vbal_mv = 0
        self.balancing = False
        self.is_safe = False

    def measure(self, dt_ms):
        pass

    def balance(self, vbal_mv, link_ok, dt_ms, charging):
        self.vbal_mv = vbal_mv
        self.link_ok = link_ok
        self.balancing = bool(link_ok and charging and vbal_mv and self.cell_mv > vbal_mv)
        if self.balancing:
            self.status |= CellStatus.BALANCING
        else:
            self.status &= ~CellStatus.BALANCING

    def frame_seen(self):
        self.frames += 1

    def tick(self, dt_ms):
        pass

    def take_long_press(self):
        return False

    short_press = False

    def confirm(self):
        pass

    def safe(self):
        self.is_safe = True
        self.balancing = False
        self.status &= ~CellStatus.BALANCING


class FakePair:
    def __init__(self, s1_ma=0, s2_ma=0, s1_flags=1, s2_flags=1):
        self.s1_ma = s1_ma
        self.s2_ma = s2_ma
        self.s1_flags = s1_flags
        self.s2_flags = s2_flags
        self.updates = 0

    def update(self, hw):
        self.updates += 1


class FakeHw:
    def __init__(self, switches=0):
        self.switches = switches
        self.link_tx = None
        self.link_rx = None
        self.charge = False
        self.load = False
        self.feeds = 0

    def feed_watchdog(self):
        self.feeds += 1

    def read_switches(self):
        return self.switches

    def set_charge_relay(self, on):
        self.charge = on

    def set_load_relay(self, on):
        self.load = on

    def set_charge_led(self, on):
        pass

    def set_load_led(self, on):
        pass


class BoardDef:
    def __init__(self, cycle_ms=1000):
        self.LINK_CYCLE_MS = cycle_ms


class Chain:
    """n >= 2 boards: index 0 Begin, n-1 End. ``cells`` gives each board's FakeCell."""

    def __init__(self, n, switches, cells=None, pair=None, baud=9600, proc_bits=2, cycle_ms=1000,
                 brain=None, comm_timeout_cycles=3, seed=1):
        from roles import begin, between, end
        from hal.loop import Loop
        self.sched = Scheduler()
        self.n = n
        self.cycle_ms = cycle_ms
        bd = BoardDef(cycle_ms)
        self.cells = cells if cells is not None else [FakeCell() for _ in range(n)]
        self.pair = pair if pair is not None else FakePair()
        self.wires = [Wire(self.sched, baud, proc_bits) for _ in range(n - 1)]
        for w in self.wires:
            w.rx.interrupt_driven = True     # its handler (the role's poll) runs on arrival
        self.hws = [FakeHw(switches) for _ in range(n)]
        self.boards = []
        for k in range(n):
            hw = self.hws[k]
            if k < n - 1:
                hw.link_tx = self.wires[k]
            if k > 0:
                hw.link_rx = self.wires[k - 1].rx
            if k == 0:
                b = begin.Begin(hw, bd, self.cells[k], self.pair)
            elif k < n - 1:
                b = between.Between(hw, bd, self.cells[k], comm_timeout_cycles)
            else:
                b = end.End(hw, bd, self.cells[k], brain, None, comm_timeout_cycles)
            self.boards.append(b)
            if k > 0:
                self.wires[k - 1].receiver = b.poll
        self.begin = self.boards[0]
        self.end = self.boards[-1]
        self.alive = [True] * n
        self.clock = _Clock(self.sched)
        self.loops = [Loop(b, bd, self.hws[k], None, self.clock) for k, b in enumerate(self.boards)]
        s = seed
        cyc_ns = cycle_ms * 1000000
        for k in range(n):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            phase = 0 if k == 0 else 1000 + s % cyc_ns
            self.sched.at(phase, self._wake, k)
        self.frame_start_ns = {}     # Begin's seq -> when Begin handed the frame to its wire
        self.a_done_ns = {}          # seq -> when End had section A of it checked OK
        self.b_done_ns = {}          # seq -> when End had the whole frame checked OK
        end_port = self.end.port
        orig = end_port.on_event
        fw = end_port.fw

        def spy(ev):
            if ev == frame.EV_A and fw.a_result == frame.OK and fw.out[frame.O_LOST] == 0:
                self.a_done_ns[fw.out[frame.O_SEQ]] = self.sched.now       # not originated
            elif ev == frame.EV_B and fw.b_result == frame.OK and fw.out[frame.O_BRK] == 0:
                self.b_done_ns[fw.out[frame.O_SEQ]] = self.sched.now
            orig(ev)
        end_port.on_event = spy

    def _wake(self, k):
        """One wake-up of board k: its hal.loop.Loop.step; the next one after the wait it returns."""
        if not self.alive[k]:
            return
        w = self.wires[0]
        sent = w.chars
        wait = self.loops[k].step(self.sched.now // 1000000)
        if k == 0 and w.chars > sent and self.begin.seq not in self.frame_start_ns:
            self.frame_start_ns[self.begin.seq] = self.sched.now    # its frame starts going out
        self.sched.at(self.sched.now + (wait if wait > 0 else 1) * 1000000, self._wake, k)

    def remove(self, k):
        """Board k stops working: sends nothing, forwards nothing."""
        self.alive[k] = False
        if k > 0:
            self.wires[k - 1].receiver = None
        if k < self.n - 1:
            self.wires[k].broken = True

    def run_cycles(self, cycles):
        self.sched.run_until(self.sched.now + cycles * self.cycle_ms * 1000000)


# --- the line: opto stage, polarity, clocks, bit errors -------------------------------------------

def char_bits(b):
    """The ten logic levels of one 8N1 character (1 = mark): start, 8 data bits LSB first, stop."""
    bits = [0]
    for i in range(8):
        bits.append((b >> i) & 1)
    bits.append(1)
    return bits


def logic_edges(chars, bit_ns):
    """Transmitter logic level changes [(ns, level)] for characters [(start_ns, byte)] (idle =
    mark = 1 before, between and after them)."""
    edges = []
    level = 1
    for start, b in chars:
        bits = char_bits(b)
        for i in range(10):
            v = bits[i]
            if v != level:
                edges.append((start + i * bit_ns, v))
                level = v
    return edges


class OptoStage:
    """LINK_OUT -> opto LED -> transistor -> LINK_IN with its pull-up (docs/wiring.md).

    The stage inverts (LED on pulls LINK_IN low). ``on_ns``: delay from the LED switching on to
    LINK_IN falling through the logic threshold (transistor turn-on, PC817 tf); ``off_ns``: from
    the LED switching off to LINK_IN rising through it (storage time plus the pull-up charging the
    collector, PC817 ts + tr at 4.7 kOhm). A pulse shorter than the difference disappears."""

    def __init__(self, on_ns=4000, off_ns=20000, inverts=True):
        self.on_ns = on_ns
        self.off_ns = off_ns
        self.inverts = inverts

    def out_edges(self, pin_edges):
        """LINK_IN changes for LINK_OUT changes [(ns, level)]."""
        out = []
        for t, v in pin_edges:
            lvl = (v ^ 1) if self.inverts else v
            # LINK_IN falls when the LED switches on (or, not inverting, when the pin falls)
            t2 = t + (self.on_ns if lvl == 0 else self.off_ns)
            if out and t2 <= out[-1][0]:
                out.pop()           # the pulse before was swallowed by the slow edge
                continue
            out.append((t2, lvl))
        return out


PIO_STOP = (9.25, 9.4375, 9.625, 9.875)   # hal/link_pio.py RX: the stop bit at 9.25 bits, ready
#      for the next start from 9.44; a second look at 9.625, then ready from 9.88 (Line's stop_at)


def uart_decode(edges, level0, bit_ns, stop_at=9.5, ready_at=9.56, again=None):
    """What a receiver sampling at the middle of each bit makes of a line: ``edges`` [(ns, level)]
    of the receiver's logic level (after its own inversion), ``level0`` before the first edge.
    The start is level-triggered (RP2040 PIO ``wait 0 pin``): the first time the line is space
    (0) once the receiver is ready; data bits at 1.5 .. 8.5 bits, the stop bit at ``stop_at``
    bits; ready for the next start ``ready_at`` bits after the start. A stop bit at space gives
    codec.FRAMING and the receiver waits for mark first; ``again`` (stop, ready) gives a stop bit
    still at space a second look at ``stop`` bits, then ready at ``ready`` bits (the RP2040 PIO
    program, hal/link_pio.py). Returns the list of values."""
    out = []
    n = len(edges)
    i = 0            # edges[:i] are at or before the time looked at
    level = level0
    t = -(1 << 62)

    def first_at(t, want, i, level):
        # first time >= t with the line at ``want`` -> (time, i, level) or (None, ...)
        while i < n and edges[i][0] <= t:
            level = edges[i][1]
            i += 1
        if level == want:
            return t, i, level
        while i < n:
            tt, lvl = edges[i]
            i += 1
            level = lvl
            if lvl == want:
                return tt, i, level
        return None, i, level

    def level_at(t, i, level):
        while i < n and edges[i][0] <= t:
            level = edges[i][1]
            i += 1
        return i, level

    while True:
        ts, i, level = first_at(t, 0, i, level)
        if ts is None:
            return out
        v = 0
        j, lv = i, level
        for k in range(8):
            j, lv = level_at(ts + int((k + 1.5) * bit_ns), j, lv)
            v |= lv << k
        j, lv = level_at(ts + int(stop_at * bit_ns), j, lv)
        ready = ready_at
        if lv != 1 and again is not None:
            j, lv = level_at(ts + int(again[0] * bit_ns), j, lv)
            ready = again[1]
        i, level = j, lv
        if lv == 1:
            out.append(v)
            t = ts + int(ready * bit_ns)
        else:
            out.append(codec.FRAMING)
            t2, i, level = first_at(ts + int(stop_at * bit_ns), 1, i, level)
            if t2 is None:
                return out
            t = t2


class ErrorDice:
    """Reproducible byte errors (xorshift32, no allocation per byte): ``hit()`` is True for a
    byte hit by a bit error, on average ``rate`` of them; ``bit()`` which of its ten bits."""

    def __init__(self, rate, seed):
        self.rate = float(rate)
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
        self.left = self._draw() if self.rate > 0 else -1

    def _next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def _draw(self):
        # bytes until the next hit: geometric with p = rate
        u = (self._next() + 1) / 4294967297.0
        return int(math.log(u) / math.log(1.0 - self.rate)) if self.rate < 1 else 0

    def hit(self):
        if self.left < 0:
            return False
        if self.left == 0:
            self.left = self._draw()
            return True
        self.left -= 1
        return False

    def bit(self):
        return self._next() % 10


class Line:
    """One hop's physical layer: the sender's transmitter polarity and clock, the opto stage,
    the receiver's polarity and clock, bit errors.

    ``tx_invert`` / ``rx_invert``: whether the sending board drives LINK_OUT inverted and the
    receiving board inverts LINK_IN (sim/link_probe.py reads both from the real hal/link.py);
    ``polarity=False`` ignores both and the opto's inversion (the idealised wire of the earlier
    virtual pack). ``tx_clock`` / ``rx_clock``: the boards' clock rates (1.01 = 1 % fast).
    ``opto``: an OptoStage or None (a plain wire). Every character is decoded bit by bit
    (``uart_decode``) once per byte value: ``table[b]`` is what the receiver gets for a lone
    ``b`` (one value; None when it makes more or none of it). ``clean`` says the table also holds
    for characters back to back (the receiver is ready for the next start bit in time, polarity
    matches); otherwise ``decode(chars)`` decodes a whole burst bit by bit."""

    def __init__(self, baud=9600, tx_invert=False, rx_invert=False, opto=None, tx_clock=1.0,
                 rx_clock=1.0, byte_error_rate=0.0, seed=1, polarity=True, stop_at=9.5):
        self.bit_ns = NS_PER_S / baud
        self.tx_bit_ns = self.bit_ns / tx_clock
        self.rx_bit_ns = self.bit_ns / rx_clock
        self.opto = opto
        self.polarity = polarity
        self.tx_invert = bool(tx_invert) if polarity else False
        self.rx_invert = bool(rx_invert) if polarity else False
        # stop_at: the stop-bit sample in bits (ready 9.56 bits after the start), or PIO_STOP's
        # (stop, ready, second look, ready after it)
        if isinstance(stop_at, tuple):
            self.stop_at, self.ready_at, self.again = stop_at[0], stop_at[1], (stop_at[2], stop_at[3])
        else:
            self.stop_at, self.ready_at, self.again = stop_at, 9.56, None
        self.dice = ErrorDice(byte_error_rate, seed)
        self.errors = 0
        self.table = [self._lone(b) for b in range(256)]
        matched = self.rx_level(1) == 1
        # the next start edge (10 sender bits later, delayed alike) must find the receiver ready
        self.clean = matched and 10 * self.tx_bit_ns > self.ready_at * self.rx_bit_ns and \
            all(self.table[b] == b for b in range(256))

    def rx_level(self, logic):
        """The receiver's logic level for a steady transmitter logic level."""
        pin = logic ^ (1 if self.tx_invert else 0)
        if self.opto is not None and (self.opto.inverts and self.polarity):
            pin ^= 1
        return pin ^ (1 if self.rx_invert else 0)

    def rx_edges(self, chars):
        """Receiver logic level changes for characters [(start_ns, byte)] sent by the sender."""
        edges = logic_edges(chars, self.tx_bit_ns)
        tx = 1 if self.tx_invert else 0
        pin = [(t, v ^ tx) for t, v in edges]
        if self.opto is not None:
            if self.polarity:
                pin = self.opto.out_edges(pin)
            else:
                # idealised wire: the opto's edge times, not its inversion
                pin = self.opto.out_edges([(t, v ^ 1) for t, v in pin])
        rx = 1 if self.rx_invert else 0
        return [(int(t), v ^ rx) for t, v in pin]

    def decode(self, chars):
        """Values the receiver gets for a burst [(start_ns, byte)], bit by bit."""
        return uart_decode(self.rx_edges(chars), self.rx_level(1), self.rx_bit_ns, self.stop_at,
                           self.ready_at, self.again)

    def _lone(self, b):
        got = self.decode([(0, b)])
        return got[0] if len(got) == 1 else None

    def hit(self, v):
        """``v`` (a delivered value) after the bit-error dice: a flipped data bit, or FRAMING for
        a hit start or stop bit."""
        if not self.dice.hit():
            return v
        self.errors += 1
        k = self.dice.bit()
        if k == 0 or k == 9 or v < 0:
            return codec.FRAMING
        return v ^ (1 << (k - 1))
