"""Virtual daisy-chain wire in virtual time (host side; also runs on the MicroPython Unix port).

A ``Wire`` joins one board's link OUT to the next board's link IN. A character written at
virtual time t starts when the line is free and the board's processing delay has passed, takes
10 bit times (8N1) and is delivered to the receiver when its stop bit ends. Everything is counted
in bit times (``bits_busy``) so latencies come from what the code actually waits for. The line
going idle for ``gap_bits`` after a character is delivered as codec.GAP, as a real receiver does.

``Chain`` builds Begin -> Between... -> End from the real role classes with small fakes for the
cell boards, switches and current sensors, and runs them on a ``Scheduler``: every board's
``cycle`` at its own phase every ``cycle_ms``, ``poll`` whenever a character arrives.
Faults: ``wire.broken`` (nothing gets through), ``wire.corrupt = (offset, xor)`` (flip bits of
the character at that offset of every frame), ``chain.remove(k)`` (a board dies).
"""
import heapq

from core import codec, frame
from core.snapshot import CellStatus

NS_PER_S = 1000000000


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
    """The receiving board's ``hw.link_rx``: ``read()`` -> byte, codec.FRAMING/GAP/NONE."""

    def __init__(self):
        self.q = []
        self.head = 0

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

    def __init__(self, sched, baud=9600, proc_bits=2, gap_bits=30):
        self.sched = sched
        self.baud = baud
        self.bit_ns = NS_PER_S // baud
        self.char_ns = codec.BITS_PER_CHAR * self.bit_ns
        self.proc_ns = proc_bits * self.bit_ns
        self.gap_ns = gap_bits * self.bit_ns
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
    def write_byte(self, b):
        now = self.sched.now
        start = now + self.proc_ns
        if start < self.free_at:
            start = self.free_at
        end = start + self.char_ns
        self.free_at = end
        self.bits_busy += codec.BITS_PER_CHAR
        self.chars += 1
        if not self.broken:
            self.sched.at(end, self._deliver, b)
        return True

    def write(self, buf, n):
        for i in range(n):
            self.write_byte(buf[i])

    def pending(self):
        return 1 if self.free_at > self.sched.now else 0

    # --- line ---
    def _deliver(self, b):
        if self.corrupt is not None and self._since_gap == self.corrupt[0]:
            b ^= self.corrupt[1]
        self._since_gap += 1
        self._delivered += 1
        self.rx.q.append(b)
        self.sched.at(self.sched.now + self.gap_ns, self._gap_check, self._delivered)
        if self.receiver is not None:
            self.receiver()

    def _gap_check(self, token):
        if token == self._delivered:
            self._since_gap = 0
            self.rx.q.append(codec.GAP)
            if self.receiver is not None:
                self.receiver()


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

    def balance(self, vbal_mv, link_ok, dt_ms):
        self.vbal_mv = vbal_mv
        self.link_ok = link_ok
        self.balancing = bool(link_ok and vbal_mv and self.cell_mv > vbal_mv)
        if self.balancing:
            self.status |= CellStatus.BALANCING
        else:
            self.status &= ~CellStatus.BALANCING

    def frame_seen(self):
        self.frames += 1

    def tick(self, dt_ms):
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
        self.sched = Scheduler()
        self.n = n
        self.cycle_ms = cycle_ms
        bd = BoardDef(cycle_ms)
        self.cells = cells if cells is not None else [FakeCell() for _ in range(n)]
        self.pair = pair if pair is not None else FakePair()
        self.wires = [Wire(self.sched, baud, proc_bits) for _ in range(n - 1)]
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
        s = seed
        cyc_ns = cycle_ms * 1000000
        for k in range(n):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            phase = 0 if k == 0 else 1000 + s % cyc_ns
            self.sched.at(phase, self._cycle, k)
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

    def _cycle(self, k):
        self.sched.at(self.sched.now + self.cycle_ms * 1000000, self._cycle, k)
        if not self.alive[k]:
            return
        self.boards[k].cycle(self.cycle_ms)
        if k == 0:
            self.frame_start_ns[self.begin.seq] = self.sched.now
        if k > 0:
            self.boards[k].poll()

    def remove(self, k):
        """Board k stops working: sends nothing, forwards nothing."""
        self.alive[k] = False
        if k > 0:
            self.wires[k - 1].receiver = None
        if k < self.n - 1:
            self.wires[k].broken = True

    def run_cycles(self, cycles):
        self.sched.run_until(self.sched.now + cycles * self.cycle_ms * 1000000)
