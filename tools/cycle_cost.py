"""Unix-port time per role call, to find where a board's cycle goes (run from the repo root):

    .venv/bin/micropython tools/cycle_cost.py [REPEATS]

Times, with time.ticks_us and the real role objects on allocation-free fake hardware:
  fw_byte_us          Forwarder.byte, per character (the cut-through path)
  originate_old_us    an originated 16-cell frame fed through Forwarder.byte byte by byte
                      (what the Between/Begin origination did before: the ~68 ms on RP2040)
  originate_us        the same frame through Forwarder.originate (CRCs once over the buffer)
  between_cycle_us    Between.cycle() after a forwarded frame (measure done before the frame)
  between_measure_us  CellBoard.measure(): the ADC bursts, in their own wake-up before a frame
  between_orig_us     Between.cycle() while originating (upstream silent), 8-deep TX FIFO,
                      the cell measured in the wake-up before (as tick() does)
  between_start_us    the next wake-up's poll(): Forwarder.originate and the first 8 characters
  between_pump_us     one later wake-up's poll() handing the next 8 characters (with CRCs)
  between_poll_us     Between.poll() for one forwarded 16-cell frame (118 characters)
  between_char_us     Between.poll() with one character waiting (a handler per character, as
                      on a board): the median character of the frame, the slowest one and its
                      offset, and the frame start / section-A end / section-B end characters
  end_cycle_us_N      End.cycle() at N cells with the real pack brain and services
Board time is roughly Unix-port time x 300 on an RP2040 at 125 MHz (docs/cell-board.md).
Prints one JSON line.
"""
import json
import sys
import time

sys.path.insert(0, "firmware")
sys.path.insert(0, "host_tests/core")

sys.path.append("sim")
import fw as fw_door  # noqa: E402  (sim/fw.py: the host tools' one door into core)

codec = fw_door.core("codec")
frame = fw_door.core("frame")
options = fw_door.core("options")
from roles import between, end  # noqa: E402
from roles.cell_board import CellBoard  # noqa: E402

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


class Def:
    NAME = "probe"
    CELL_DIVIDER_NUM = 2
    CELL_DIVIDER_DEN = 1
    ADC_VREF_UV = 3300000
    NTC_ADC_PIN = 27
    NTC_BETA = 3950
    NTC_R25_OHM = 10000
    NTC_SERIES_OHM = 10000
    NTC_SUPPLY_UV = 3300000
    LINK_CYCLE_MS = 1000


class Rx:
    def __init__(self):
        self.data = bytearray(frame.MAX_FRAME)
        self.n = 0
        self.i = 0
        self.gap = False

    def load(self, buf, n):
        for k in range(n):
            self.data[k] = buf[k]
        self.n = n
        self.i = 0
        self.gap = True

    def read(self):
        if self.i < self.n:
            v = self.data[self.i]
            self.i += 1
            return v
        if self.gap:
            self.gap = False
            return codec.GAP
        return codec.NONE


class Tx:
    """A transmitter FIFO of ``depth`` characters (PIO: 8); ``empty()`` = the line took them."""

    def __init__(self, depth=1000):
        self.depth = depth
        self.level = 0

    def write_byte(self, b):
        if self.level >= self.depth:
            return False
        self.level += 1
        return True

    def empty(self):
        self.level = 0


class Hw:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.link_rx = Rx()
        self.link_tx = Tx()
        self.extout_tx = None

    def read_cell_uv(self):
        return 1650000

    def read_temp_uv(self):
        return 1650000

    def set_balance_duty(self, p):
        pass

    def set_led(self, on):
        pass

    def reset_cause(self):
        return "power"

    def set_charge_relay(self, on):
        pass

    def set_load_relay(self, on):
        pass

    def set_charge_led(self, on):
        pass

    def set_load_led(self, on):
        pass


def per_call_us(fn, repeats=REPEATS, setup=None):
    """Median time of fn() in us over ``repeats`` calls (setup() before each, not timed)."""
    if setup is not None:
        setup()
    fn()
    ts = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.ticks_us()
        fn()
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    return ts[len(ts) // 2]


def _frame(cells, count=1):
    sw = options.word_for(options.range_code_for_cells(cells), 3400)
    w = frame.window_size(cells)
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, w, 1, sw, count, 1)
    return buf, n


class OneRx(Rx):
    """Hands one character per poll() (as the receiver's interrupt does on a board)."""

    def read(self):
        if self.gate:
            self.gate = False
            return Rx.read(self)
        return codec.NONE


def per_char_us(role, rx, buf, n, frames=None):
    """Between.poll() with one character available each time (a scheduled handler per
    character on the board): median over the frame's characters, the slowest one and where
    it is (EV_START at 0, section A ends at 34, section B at n - 1), over REPEATS frames."""
    frames = frames or max(5, REPEATS // 10)
    one = OneRx()
    role.port.rx = one
    per = [[] for _ in range(n)]
    for _ in range(frames):
        one.load(buf, n)
        for i in range(n):
            one.gate = True
            t0 = time.ticks_us()
            role.poll()
            per[i].append(time.ticks_diff(time.ticks_us(), t0))
        one.gate = True
        role.poll()                  # the gap after the frame
    med = []
    for ts in per:
        ts.sort()
        med.append(ts[len(ts) // 2])
    order = sorted(med)
    worst = 0
    for i in range(n):
        if med[i] > med[worst]:
            worst = i
    role.port.rx = rx
    return {"between_char_us": order[n // 2], "between_char_worst_us": med[worst],
            "between_char_worst_at": worst, "between_char_at_start_a_b_us": [med[0], med[frame.A_LEN - 1], med[n - 1]]}


def main():
    import os
    res = {}
    data = "/tmp/cellchain-cost-%d" % time.ticks_us()
    os.mkdir(data)
    buf, n16 = _frame(16)
    fw = frame.Forwarder()
    fw.set_own(3300, 250, 0)

    def bytes_through():
        fw.gap()
        for i in range(n16):
            fw.byte(buf[i])

    t = per_call_us(bytes_through)
    res["fw_byte_us"] = t // n16
    res["originate_old_us"] = t
    work = bytearray(frame.MAX_FRAME)

    def fast():
        frame.build_empty(work, 16, 1, 0, 0, 1)
        fw.originate(work, n16)

    res["originate_us"] = per_call_us(fast)

    hw = Hw(data)
    role = between.Between(hw, Def, CellBoard(hw, Def))

    def forward():
        hw.link_rx.load(buf, n16)
        while role.poll():
            pass

    res["between_poll_us"] = per_call_us(forward)
    res.update(per_char_us(role, hw.link_rx, buf, n16))

    def after_frame():
        forward()
        role._fresh = True          # measured just before the frame (in tick)

    res["between_cycle_us"] = per_call_us(lambda: role.cycle(1000), setup=after_frame)
    assert role.clock.ok and not role.lost
    res["between_measure_us"] = per_call_us(lambda: role.cell.measure(0))
    shw = Hw(data)
    shw.link_tx = Tx(8)                 # an 8-deep FIFO, as the RP2040 PIO transmitter
    silent = between.Between(shw, Def, CellBoard(shw, Def))
    silent.clock.silent = 10

    def idle_line():
        while silent.origin.busy():     # the last frame is out
            shw.link_tx.empty()
            silent.origin.pump()
        shw.link_tx.empty()
        silent._fresh = True            # measured in tick, before the fallback cycle

    res["between_orig_us"] = per_call_us(lambda: silent.cycle(1000), setup=idle_line)
    assert silent.originated > 0

    def queued():
        idle_line()
        silent.cycle(1000)

    res["between_start_us"] = per_call_us(silent.poll, setup=queued)

    def refill():
        if not silent.origin.busy():
            queued()
            silent.poll()
        shw.link_tx.empty()

    res["between_pump_us"] = per_call_us(silent.poll, setup=refill)
    cs = fw_door.core("settings")
    for cells in (16, 255):
        d = "%s/end%d" % (data, cells)
        os.mkdir(d)
        cs.save(d + "/settings.json", cs.preset(cs.LIFEPO4))
        ehw = Hw(d)
        e = end.make(ehw, Def)
        fbuf, fn = _frame(cells, cells - 1)

        def end_poll(ehw=ehw, e=e, fbuf=fbuf, fn=fn):
            ehw.link_rx.load(fbuf, fn)
            while e.poll():
                pass

        res["end_poll_us_%d" % cells] = per_call_us(end_poll, 50)
        res["end_cycle_us_%d" % cells] = per_call_us(lambda e=e: e.cycle(1000), 50, setup=end_poll)
        assert e.snap.comm_ok or not e.brain.settings_ok
    _rmtree(data)
    print(json.dumps(res))


def _rmtree(path):
    import os
    for name in os.listdir(path):
        p = path + "/" + name
        try:
            os.remove(p)
        except OSError:
            _rmtree(p)
    os.rmdir(path)


main()
