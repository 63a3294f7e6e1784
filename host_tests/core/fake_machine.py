"""Fake hardware for the link backends, in virtual time (runs on CPython and the Unix port).

    clock = Clock()
    m = make_machine(clock)            # m.Pin, m.Timer, m.UART classes, m.pins[id], m.connect()
    rp2 = make_rp2(clock)              # rp2.asm_pio (a real assembler to 16-bit words),
                                       # rp2.PIO, rp2.StateMachine (cycle-level simulator)

* ``Clock``: integer nanoseconds; ``ticks_us`` / ``ticks_diff`` for the backends; devices
  (timers, state machines, waveforms: ``live``, ``next_ns``, ``fire()``) fire in time order in ``run_until`` / ``advance_us``;
  callbacks handed to ``clock.schedule`` (micropython.schedule stand-in, preallocated queue,
  RuntimeError when full like MicroPython's) run after each event when ``auto_run`` is set.
* ``Pin``: level, mode, ``irq(handler, trigger, hard)``; an output pin ``connect``-ed to input
  pins drives them, calling their IRQ handler on each edge at the current virtual time;
  ``history`` holds (ns, level) of every change when ``record`` is set.
* ``Timer``: periodic callback at ``freq`` (k-th call at start + k * 1e9 // freq ns).
* ``UART``: records what is written with the time each character starts on the wire
  (characters take 10 bit times, back to back while the TX buffer holds more); ``receive``
  queues bytes for ``any`` / ``readinto``.
* rp2: ``asm_pio`` runs the decorated function against its own emitter (the names ``pull``,
  ``set``, ``x`` ... are put in the function's globals for the call, as MicroPython's does) and
  encodes RP2040 PIO instruction words; ``StateMachine`` executes those words cycle by cycle:
  jmp, wait (pin), in, out, push, pull, mov, irq, set, delays and (optional) side-set.
"""
from array import array

NS = 1000000000


class Clock:
    def __init__(self, queue=16):
        self.ns = 0
        self.devices = []
        self.auto_run = True
        self._fns = [None] * queue
        self._args = [0] * queue
        self._n = 0

    # -- time for the backends -----------------------------------------------------------------
    def ticks_us(self):
        return self.ns // 1000

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    # -- micropython.schedule stand-in (no allocation: preallocated slots) ----------------------
    def schedule(self, fn, arg):
        if self._n >= len(self._fns):
            raise RuntimeError("schedule queue full")
        self._fns[self._n] = fn
        self._args[self._n] = arg
        self._n += 1

    def run_scheduled(self):
        i = 0
        while i < self._n:
            fn = self._fns[i]
            arg = self._args[i]
            self._fns[i] = None
            i += 1
            fn(arg)
        self._n = 0

    # -- virtual time ------------------------------------------------------------------------------
    def add(self, dev):
        self.devices.append(dev)

    def run_until(self, t_ns):
        while True:
            nxt = None
            for d in self.devices:
                if d.live and d.next_ns <= t_ns and (nxt is None or d.next_ns < nxt.next_ns):
                    nxt = d
            if nxt is None:
                break
            if nxt.next_ns > self.ns:
                self.ns = nxt.next_ns
            nxt.fire()
            if self.auto_run and self._n:
                self.run_scheduled()
        if t_ns > self.ns:
            self.ns = t_ns
        if self.auto_run and self._n:
            self.run_scheduled()

    def advance_us(self, us):
        self.run_until(self.ns + us * 1000)


class Waveform:
    """Drives ``pin`` through ``edges`` [(ns, level), ...] as virtual time passes."""

    def __init__(self, clock, pin, edges):
        self.pin = pin
        self.edges = sorted(edges)
        self.i = 0
        self.live = bool(self.edges)
        self.next_ns = self.edges[0][0] if self.edges else 0
        clock.add(self)

    def fire(self):
        self.pin.drive(self.edges[self.i][1])
        self.i += 1
        if self.i < len(self.edges):
            self.next_ns = self.edges[self.i][0]
        else:
            self.live = False


def char_edges(data, t0_ns, bit_ns, invert=False, jitter=None):
    """Line changes [(ns, level)] for 8N1 characters sent back to back from t0_ns with a bit
    time of bit_ns (a float is fine: clock error); ``jitter(k)`` -> ns added to edge k."""
    edges = []
    level = 0 if invert else 1
    k = 0
    for i in range(len(data)):
        bits = ((data[i] & 0xFF) << 1) | 0x200
        if invert:
            bits ^= 0x3FF
        for b in range(10):
            v = (bits >> b) & 1
            if v != level:
                t = t0_ns + (i * 10 + b) * bit_ns
                if jitter is not None:
                    t += jitter(k)
                edges.append((int(t), v))
                level = v
                k += 1
    return edges


def make_machine(clock):
    """A fresh fake ``machine`` module bound to ``clock``."""

    class M:
        pass

    m = M()
    m.clock = clock
    m.pins = {}
    m.timers = []
    m.uarts = []

    class Pin:
        IN = 0
        OUT = 1
        PULL_UP = 1
        PULL_DOWN = 2
        IRQ_FALLING = 4
        IRQ_RISING = 8

        def __init__(self, pid, mode=-1, pull=-1, value=None):
            self.id = pid
            self.mode = mode
            self.level = 0 if value is None else value
            self.handler = None
            self.trigger = 0
            self.hard = None
            self.sinks = []
            self.record = False
            self.history = []
            m.pins[pid] = self

        def value(self, v=None):
            if v is None:
                return self.level
            self.drive(1 if v else 0)
            return None

        def drive(self, v):
            """Set the level (output written, or the line seen by an input) at clock.ns."""
            if v == self.level:
                return
            self.level = v
            if self.record:
                self.history.append((clock.ns, v))
            for s in self.sinks:
                s.drive(v)
            h = self.handler
            if h is not None and self.trigger & (self.IRQ_RISING if v else self.IRQ_FALLING):
                h(self)

        def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
            self.handler = handler
            self.trigger = trigger
            self.hard = hard

    class Timer:
        PERIODIC = 1
        ONE_SHOT = 0

        def __init__(self, tid=-1):
            self.id = tid
            self.live = False
            self.next_ns = 0
            self.freq = 0
            self.hard = None
            self.callback = None
            m.timers.append(self)
            clock.add(self)

        def init(self, mode=PERIODIC, freq=None, period=None, callback=None, hard=None):
            if freq is None:
                freq = 1000 // period
            self.mode = mode
            self.freq = freq
            self.callback = callback
            self.hard = hard
            self._start = clock.ns
            self._k = 1
            self.next_ns = self._start + NS // freq
            self.live = True

        def fire(self):
            if self.mode == self.PERIODIC:
                self._k += 1
                self.next_ns = self._start + self._k * NS // self.freq
            else:
                self.live = False
            self.callback(self)

        def deinit(self):
            self.live = False

    class UART:
        INV_TX = 1
        INV_RX = 2

        def __init__(self, uid, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                     invert=0, txbuf=256, rxbuf=256):
            self.id = uid
            self.baudrate = baudrate
            self.bits = bits
            self.parity = parity
            self.stop = stop
            self.tx = tx
            self.rx = rx
            self.invert = invert
            self.txbuf = txbuf
            self.rxbuf = rxbuf
            self.sent = bytearray()
            self.starts = []          # ns at which each sent character's start bit begins
            self._end_ns = 0
            self.inbox = bytearray()
            self.dropped = 0
            m.uarts.append(self)

        def char_ns(self):
            return 10 * NS // self.baudrate

        def write(self, buf):
            # characters still in the TX buffer (not yet started) limit what is accepted
            waiting = 0
            for t in self.starts:
                if t > clock.ns:
                    waiting += 1
            n = min(len(buf), self.txbuf - waiting)
            for i in range(n):
                start = self._end_ns if self._end_ns > clock.ns else clock.ns
                self.starts.append(start)
                self.sent.append(buf[i])
                self._end_ns = start + self.char_ns()
            return n

        def txdone(self):
            return clock.ns >= self._end_ns

        def receive(self, data):
            for b in data:
                if len(self.inbox) < self.rxbuf:
                    self.inbox.append(b)
                else:
                    self.dropped += 1

        def any(self):
            return len(self.inbox)

        def readinto(self, buf, n=None):
            if n is None:
                n = len(buf)
            n = min(n, len(self.inbox))
            for i in range(n):
                buf[i] = self.inbox[i]
            self.inbox = self.inbox[n:]
            return n

    def connect(out_id, in_id):
        """Wire output pin out_id to input pin in_id (the input takes its level now)."""
        src = m.pins[out_id]
        dst = m.pins[in_id]
        src.sinks.append(dst)
        dst.level = src.level

    m.Pin = Pin
    m.Timer = Timer
    m.UART = UART
    m.connect = connect
    return m


# ---- rp2: PIO assembler and state-machine simulator ------------------------------------------

class PIOASMError(Exception):
    pass


class _PIO:
    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2


class Program:
    """An assembled program: ``words`` (16-bit), ``wrap_target``, ``wrap``, side-set bits
    (``sideset_bits`` counts the enable bit when ``sideset_opt``), ``labels`` and the
    asm_pio options in ``opts``."""

    def __init__(self, opts):
        self.opts = opts
        self.words = []
        self.labels = {}
        self.wrap_target = 0
        self.wrap = -1
        self.sideset_bits = 0
        self.sideset_opt = False
        self.source = []          # (name, args) per instruction, for readable failures


class _Instr:
    def __init__(self, asm):
        self.asm = asm

    def side(self, value):
        self.asm._side(value)
        return self

    def delay(self, d):
        self.asm._delay(d)
        return self

    def __getitem__(self, d):
        return self.delay(d)


class _Asm:
    """Two passes over the program function: labels and side-set use, then words."""

    def __init__(self, opts):
        self.opts = opts
        ss = opts.get("sideset_init")
        self.ss_pins = 0 if ss is None else (1 if isinstance(ss, int) else len(ss))
        self.prog = Program(opts)
        self.instr = _Instr(self)

    def start(self, pass_):
        if pass_ == 1:
            p = self.prog
            if p.wrap < 0:
                p.wrap = self.count - 1
            bits = self.ss_pins
            if bits:
                p.sideset_opt = self.n_side != self.count
                if p.sideset_opt:
                    bits += 1
            p.sideset_bits = bits
            self.delay_max = 31 >> bits
        self.pass_ = pass_
        self.count = 0
        self.n_side = 0
        self.prog.words = []
        self.prog.source = []

    def _emit(self, word, name, args):
        if self.pass_ == 1:
            self.prog.words.append(word)
            self.prog.source.append((name, args))
        self.count += 1
        return self.instr

    def _side(self, value):
        self.n_side += 1
        if self.pass_ == 1:
            p = self.prog
            if not self.ss_pins:
                raise PIOASMError("no sideset")
            if value >> self.ss_pins:
                raise PIOASMError("sideset too large")
            w = p.words[-1] | (value << (13 - p.sideset_bits))
            if p.sideset_opt:
                w |= 1 << 12
            p.words[-1] = w

    def _delay(self, d):
        if self.pass_ == 1:
            if d > self.delay_max:
                raise PIOASMError("delay too large")
            self.prog.words[-1] |= d << 8

    def _addr(self, label):
        if isinstance(label, int):
            return label                 # an absolute address
        if self.pass_ == 0:
            return 0
        if label not in self.prog.labels:
            raise PIOASMError("unknown label %r" % (label,))
        return self.prog.labels[label]

    def names(self):
        a = self

        def label(name):
            if a.pass_ == 0:
                if name in a.prog.labels:
                    raise PIOASMError("duplicate label")
                a.prog.labels[name] = a.count

        def wrap_target():
            a.prog.wrap_target = a.count

        def wrap():
            a.prog.wrap = a.count - 1

        def jmp(cond, label=None):
            if label is None:
                label = cond
                cond = 0
            return a._emit(0x0000 | (cond << 5) | a._addr(label), "jmp", (cond, label))

        def wait(polarity, src, index):
            if src == 6:               # `pin` (shared name with the jmp condition)
                src = 1
            elif src is irq:
                src = 2
            return a._emit(0x2000 | (polarity << 7) | (src << 5) | index, "wait", (polarity, src, index))

        def in_(src, count):
            return a._emit(0x4000 | (src << 5) | (count & 0x1F), "in", (src, count))

        def out(dst, count):
            if dst == 8:
                dst = 7
            return a._emit(0x6000 | (dst << 5) | (count & 0x1F), "out", (dst, count))

        def push(value=0, value2=0):
            value |= value2
            if not value & 1:
                value |= 0x20
            return a._emit(0x8000 | (value & 0x60), "push", (value,))

        def pull(value=0, value2=0):
            value |= value2
            if not value & 1:
                value |= 0x20
            return a._emit(0x8080 | (value & 0x60), "pull", (value,))

        def mov(dst, src):
            if dst == 8:
                dst = 4
            return a._emit(0xA000 | (dst << 5) | (src & 0x1F), "mov", (dst, src))

        def irq(mod, index=None):
            if index is None:
                index = mod
                mod = 0
            return a._emit(0xC000 | (mod & 0x60) | index, "irq", (mod, index))

        def set(dst, data):
            return a._emit(0xE000 | (dst << 5) | data, "set", (dst, data))

        def nop():
            return a._emit(0xA042, "nop", ())

        return {
            "gpio": 0, "pins": 0, "x": 1, "y": 2, "null": 3, "pindirs": 4, "pc": 5, "status": 5,
            "isr": 6, "osr": 7, "exec": 8,
            "invert": lambda v: v | 0x08, "reverse": lambda v: v | 0x10,
            "not_x": 1, "x_dec": 2, "not_y": 3, "y_dec": 4, "x_not_y": 5, "pin": 6, "not_osre": 7,
            "noblock": 0x01, "block": 0x21, "iffull": 0x40, "ifempty": 0x40, "clear": 0x40,
            "rel": lambda v: v | 0x10,
            "label": label, "wrap_target": wrap_target, "wrap": wrap, "jmp": jmp, "wait": wait,
            "in_": in_, "out": out, "push": push, "pull": pull, "mov": mov, "irq": irq, "set": set,
            "nop": nop,
        }


def asm_pio(**opts):
    """Decorator: assemble the function into a Program (see the module doc)."""

    def deco(fn):
        asm = _Asm(opts)
        g = fn.__globals__
        saved = dict(g)
        names = asm.names()
        try:
            for pass_ in (0, 1):
                asm.start(pass_)
                g.update(names)
                fn()
                g.clear()
                g.update(saved)
        finally:
            g.clear()
            g.update(saved)
        return asm.prog

    return deco


def decode_fields(word, sideset_bits, sideset_opt):
    """(opcode 0..7, arg bits 7..0, delay, side value or None) of one instruction word."""
    field = (word >> 8) & 0x1F
    side = None
    delay = field
    if sideset_bits:
        dbits = 5 - sideset_bits
        delay = field & ((1 << dbits) - 1)
        if sideset_opt:
            if field & 0x10:
                side = (field >> dbits) & ((1 << (sideset_bits - 1)) - 1)
        else:
            side = field >> dbits
    return word >> 13, word & 0xFF, delay, side


def make_rp2(clock):
    """A fresh fake ``rp2`` module on ``clock``. ``rp2.machines[id]`` are the state machines;
    ``rp2.clock_scale[id]`` (e.g. 1.03 = 3 % fast) and ``rp2.phase_ns[id]`` set a state
    machine's clock before it is made."""

    class R:
        pass

    r = R()
    r.PIO = _PIO
    r.PIOASMError = PIOASMError
    r.asm_pio = asm_pio
    r.machines = {}
    r.clock_scale = {}
    r.phase_ns = {}

    class StateMachine:
        def __init__(self, sm_id, prog, freq=125000000, in_base=None, out_base=None,
                     set_base=None, jmp_pin=None, sideset_base=None):
            self.id = sm_id
            self.prog = prog
            self.freq = freq
            self.in_base = in_base
            self.out_base = out_base
            self.set_base = set_base
            self.jmp_pin = jmp_pin
            self.sideset_base = sideset_base
            o = prog.opts
            join = o.get("fifo_join", 0)
            self.tx_depth = 8 if join == _PIO.JOIN_TX else (0 if join == _PIO.JOIN_RX else 4)
            self.rx_depth = 8 if join == _PIO.JOIN_RX else (0 if join == _PIO.JOIN_TX else 4)
            self.in_right = o.get("in_shiftdir", 0) == _PIO.SHIFT_RIGHT
            self.out_right = o.get("out_shiftdir", 0) == _PIO.SHIFT_RIGHT
            if o.get("autopush") or o.get("autopull"):
                raise PIOASMError("autopush/autopull not simulated")
            self.txf = []
            self.rxf = []
            self.x = 0
            self.y = 0
            self.isr = 0
            self.isr_n = 0
            self.osr = 0
            self.osr_n = 32
            self.pc = 0
            self.delay_left = 0
            self.cycles = 0
            self.stalls = 0
            self.handler = None
            self.active_flag = False
            self.live = False
            self.next_ns = 0
            self._k = 0
            self._ns_per_cycle = NS / (freq * r.clock_scale.get(sm_id, 1.0))
            self._start = 0
            # pin levels from the program's *_init options
            for key, pin_ in (("sideset_init", sideset_base), ("out_init", out_base),
                              ("set_init", set_base)):
                init = o.get(key)
                if init is not None and pin_ is not None and not isinstance(init, (tuple, list)):
                    if init in (_PIO.OUT_HIGH, _PIO.OUT_LOW):
                        pin_.value(1 if init == _PIO.OUT_HIGH else 0)
            r.machines[sm_id] = self
            clock.add(self)

        # -- MicroPython API ------------------------------------------------------------------
        def active(self, v=None):
            if v is None:
                return self.active_flag
            self.active_flag = bool(v)
            self.live = self.active_flag
            if self.live:
                self._start = clock.ns + r.phase_ns.get(self.id, 0)
                self._k = 0
                self.next_ns = self._start
            return None

        def put(self, value, shift=0):
            while len(self.txf) >= self.tx_depth:      # blocks: let virtual time pass
                clock.run_until(self.next_ns)
            self.txf.append((value << shift) & 0xFFFFFFFF)

        def get(self, buf=None, shift=0):
            while not self.rxf:
                clock.run_until(self.next_ns)
            return self.rxf.pop(0) >> shift

        def tx_fifo(self):
            return len(self.txf)

        def rx_fifo(self):
            return len(self.rxf)

        def irq(self, handler=None, trigger=1, hard=False):
            self.handler = handler

        # -- simulation ------------------------------------------------------------------------
        def fire(self):
            self.step()
            self._k += 1
            self.next_ns = self._start + int(self._k * self._ns_per_cycle)

        def _src(self, src):
            if src == 0:
                return self.in_base.value()
            if src == 1:
                return self.x
            if src == 2:
                return self.y
            if src == 3:
                return 0
            if src == 6:
                return self.isr
            if src == 7:
                return self.osr
            raise PIOASMError("source %d not simulated" % src)

        def step(self):
            self.cycles += 1
            if self.delay_left:
                self.delay_left -= 1
                return
            p = self.prog
            w = p.words[self.pc]
            op, arg, delay, side = decode_fields(w, p.sideset_bits, p.sideset_opt)
            done, jumped = self._exec(op, arg)
            if side is not None:              # side-set happens even while stalled, and wins
                self.sideset_base.value(side & 1)
            if not done:
                self.stalls += 1
                return
            if not jumped:
                self.pc = p.wrap_target if self.pc == p.wrap else self.pc + 1
            self.delay_left = delay

        def _exec(self, op, arg):
            hi = arg >> 5
            lo = arg & 0x1F
            if op == 0:                                       # JMP
                if hi == 0:
                    take = True
                elif hi == 1:
                    take = self.x == 0
                elif hi == 2:
                    take = self.x != 0
                    self.x = (self.x - 1) & 0xFFFFFFFF
                elif hi == 3:
                    take = self.y == 0
                elif hi == 4:
                    take = self.y != 0
                    self.y = (self.y - 1) & 0xFFFFFFFF
                elif hi == 5:
                    take = self.x != self.y
                elif hi == 6:
                    take = self.jmp_pin.value() == 1
                else:
                    take = self.osr_n < 32
                if take:
                    self.pc = lo
                return True, take
            if op == 1:                                       # WAIT
                pol = arg >> 7
                src = (arg >> 5) & 3
                if src != 1 or lo != 0:
                    raise PIOASMError("only wait(pol, pin, 0) is simulated")
                return self.in_base.value() == pol, False
            if op == 2:                                       # IN
                n = lo or 32
                v = self._src(hi) & ((1 << n) - 1)
                if self.in_right:
                    self.isr = ((self.isr >> n) | (v << (32 - n))) & 0xFFFFFFFF
                else:
                    self.isr = ((self.isr << n) | v) & 0xFFFFFFFF
                self.isr_n = min(32, self.isr_n + n)
                return True, False
            if op == 3:                                       # OUT
                n = lo or 32
                if self.out_right:
                    v = self.osr & ((1 << n) - 1)
                    self.osr = self.osr >> n
                else:
                    v = self.osr >> (32 - n)
                    self.osr = (self.osr << n) & 0xFFFFFFFF
                self.osr_n = min(32, self.osr_n + n)
                if hi == 0:
                    self.out_base.value(v & 1)
                elif hi == 1:
                    self.x = v
                elif hi == 2:
                    self.y = v
                elif hi == 3:
                    pass
                else:
                    raise PIOASMError("out destination %d not simulated" % hi)
                return True, False
            if op == 4:                                       # PUSH / PULL
                if_flag = arg & 0x40
                block = arg & 0x20
                if arg & 0x80:                                # PULL
                    if if_flag and self.osr_n < 32:
                        return True, False
                    if not self.txf:
                        if block:
                            return False, False
                        self.osr = self.x
                    else:
                        self.osr = self.txf.pop(0)
                    self.osr_n = 0
                    return True, False
                if if_flag and self.isr_n < 32:
                    return True, False
                if len(self.rxf) >= self.rx_depth:
                    if block:
                        return False, False
                else:
                    self.rxf.append(self.isr)
                self.isr = 0
                self.isr_n = 0
                return True, False
            if op == 5:                                       # MOV
                v = self._src(lo & 7) if (lo & 7) != 5 else 0
                if lo & 0x08:
                    v = ~v & 0xFFFFFFFF
                elif lo & 0x10:
                    rv = 0
                    for i in range(32):
                        rv |= ((v >> i) & 1) << (31 - i)
                    v = rv
                if hi == 0:
                    self.out_base.value(v & 1)
                elif hi == 1:
                    self.x = v
                elif hi == 2:
                    self.y = v
                elif hi == 5:
                    self.pc = v & 0x1F
                    return True, True
                elif hi == 6:
                    self.isr = v
                    self.isr_n = 0
                elif hi == 7:
                    self.osr = v
                    self.osr_n = 0
                else:
                    raise PIOASMError("mov destination %d not simulated" % hi)
                return True, False
            if op == 6:                                       # IRQ (set, no wait)
                if arg & 0x60:
                    raise PIOASMError("irq wait/clear not simulated")
                if self.handler is not None:
                    clock.schedule(self.handler, self)        # soft IRQ: scheduled
                return True, False
            # SET
            if hi == 0:
                self.set_base.value(lo & 1)
            elif hi == 1:
                self.x = lo
            elif hi == 2:
                self.y = lo
            elif hi != 4:
                raise PIOASMError("set destination %d not simulated" % hi)
            return True, False

    r.StateMachine = StateMachine
    return r


def words_of(values):
    """array('H') of instruction words (helper for tests that compare encodings)."""
    return array("H", values)
