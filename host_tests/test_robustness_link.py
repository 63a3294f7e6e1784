"""Robustness campaign (issue 9): link fuzzing of whole chains with the real role objects
(Begin, Between, End on sim/wire.py's virtual wire) and the real pack brain on the End board.

host_tests/test_link_fuzz.py fuzzes one Forwarder; here the corruption happens on a wire inside a
running chain, frame after frame, and the End board's snapshot, relays and break report are
judged: no crash, no corrupt value ever reaches the End board's snapshot, the End board never
closes a relay on corrupt data, the break is located, and the chain recovers once the wire is
good again. Mutation families: 1-3 bit flips (CRC-16 HD 4: always caught), bursts of up to 16
bits (always caught), truncation (a gap: the first board that saw the cut reports it in the next frame's LOST_AT), framing errors, and garbage instead
of the rest of the frame. Runs derandomised (a fixed set of examples: CI stays deterministic);
about 1500 corrupted frames and 40 noise streams in all.
"""
from hypothesis import Phase, given, settings, strategies as st

from core import alarms, codec, frame, options
from core import settings as cs
from core.brain import PackBrain
from sim.wire import Chain, FakeCell, FakePair

PHASES = (Phase.explicit, Phase.generate)   # no shrinking: a failure is reported as drawn, fast
CELLS_MV = [3300, 3310, 3900, 3320]       # cell 3 above V-max: a correct End never allows charging
SAFE_MV = [3300, 3310, 3305, 3320]
TEMP_DC = 250
W = min(32, options.cell_range(options.word_for(options.range_code_for_cells(4), 3400))[1])
FRAME_LEN = frame.frame_len(W)

mutation = st.one_of(
    st.tuples(st.just("flips"), st.lists(st.integers(0, FRAME_LEN * 8 - 1), min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("burst"), st.integers(0, FRAME_LEN * 8 - 16), st.integers(1, 0xFFFF)),
    st.tuples(st.just("truncate"), st.integers(0, FRAME_LEN - 1)),
    st.tuples(st.just("framing"), st.integers(0, FRAME_LEN - 1)),
    st.tuples(st.just("garbage"), st.integers(0, FRAME_LEN - 1),
              st.lists(st.integers(0, 255), min_size=FRAME_LEN, max_size=FRAME_LEN)),
)


def _brain():
    s = cs.preset(cs.LIFEPO4)
    s.capacity_ah = 40
    return PackBrain(s, True)


def _chain(cells_mv):
    word = options.word_for(options.range_code_for_cells(4), 3400)
    cells = [FakeCell(mv, TEMP_DC, 0) for mv in cells_mv]
    return Chain(4, word, cells, FakePair(0, 0), brain=_brain())


class Fuzzer:
    """Mutates the characters on one wire of a chain. ``plan(n)`` gives the mutation of the
    n-th frame on that wire (None = deliver intact)."""

    def __init__(self, wire, plan):
        self.wire = wire
        self.plan = plan
        self.k = 0              # byte offset in the current frame (frames are FRAME_LEN long)
        self.n = 0              # frame number
        self.corrupted = 0
        self.orig = wire._deliver
        wire._deliver = self.deliver

    def deliver(self, b):
        k, m = self.k, self.plan(self.n)
        self.k += 1
        if self.k == FRAME_LEN:
            self.k = 0
            self.n += 1
        if m is None:
            return self.orig(b)
        if k == 0:
            self.corrupted += 1
        kind = m[0]
        if kind == "flips":
            for bit in m[1]:
                if bit >> 3 == k:
                    b ^= 1 << (bit & 7)
        elif kind == "burst":
            start, pattern = m[1], m[2]
            for i in range(16):
                bit = start + i
                if bit >> 3 == k and pattern >> i & 1:
                    b ^= 1 << (bit & 7)
        elif kind == "truncate":
            if k >= m[1]:
                return None         # the line stays idle: the receiver sees a gap
        elif kind == "framing":
            if k == m[1]:
                b = codec.FRAMING
        elif kind == "garbage":
            if k >= m[1]:
                g = m[2][k]
                b = g if g != b else (g ^ 0x5A)
        return self.orig(b)


def _check_snapshot_is_truth(ch, truth_mv):
    """Everything in the End board's snapshot was sent by the boards (never invented): the
    aggregates are those of the whole chain, or of the boards from an originating board (after
    a break) to the End board; every detail value is the cell's own (or 0: never received)."""
    snap = ch.end.snap
    if not snap.valid:
        return
    assert snap.cell_count == 4
    part = None
    for j in range(4):
        t = truth_mv[j:]
        if snap.pack_mv == sum(t):
            part = t
    assert part is not None, snap.pack_mv
    assert snap.max_mv == max(part) and snap.max_mv_cell == truth_mv.index(max(part)) + 1
    assert snap.min_mv == min(part) and snap.min_mv_cell == truth_mv.index(min(part)) + 1
    assert snap.min_temp_dc == TEMP_DC and snap.max_temp_dc == TEMP_DC
    if len(part) == 4:
        assert snap.s1_ma == 0 and snap.s2_ma == 0
    for i in range(4):
        assert snap.cell_mv[i] in (0, truth_mv[i]), (i, snap.cell_mv[i])


WARM = 5    # clean cycles first: the relays are closed by then (every board measures once at
            # start, so even the first frames carry real cells)
OFF_CYCLES = 4   # comm_timeout_cycles (3) + 1: see test_robustness_harness.doc_timeout_ms


def _plan(plan):
    return lambda n: plan[n - WARM] if WARM <= n < WARM + len(plan) else None


def _run(ch, cycles, each):
    for _ in range(cycles):
        ch.run_cycles(1)
        each()


def test_clean_chains_are_a_fair_baseline():
    ch = _chain(SAFE_MV)
    ch.run_cycles(WARM)
    _run(ch, 6, lambda: _check_snapshot_is_truth(ch, SAFE_MV))
    assert ch.end.snap.comm_ok and ch.hws[3].charge and ch.hws[3].load
    ch = _chain(CELLS_MV)
    ch.run_cycles(WARM)
    _run(ch, 6, lambda: _check_snapshot_is_truth(ch, CELLS_MV))
    assert ch.end.snap.comm_ok and not ch.hws[3].charge and ch.hws[3].load
    assert ch.end.brain.alarms & alarms.OVER_VOLTAGE


@settings(max_examples=60, deadline=None, derandomize=True, phases=PHASES)
@given(st.lists(mutation, min_size=8, max_size=8))
def test_every_frame_corrupted_into_board_2_opens_the_relays_and_is_located(plan):
    _corrupt_into_board_2(plan, exact=False)


@settings(max_examples=60, deadline=None, derandomize=True, phases=PHASES)
@given(st.lists(mutation, min_size=8, max_size=8))
def test_every_frame_corrupted_into_board_2_is_located_exactly(plan):
    _corrupt_into_board_2(plan, exact=True)


def _corrupt_into_board_2(plan, exact):
    """Every frame on the wire Begin -> board 2 is corrupted: no relay ever closes on that, both
    open within the comm timeout, the End board's snapshot holds nothing invented, the break is
    reported at position 2, and the chain recovers once the wire is good."""
    ch = _chain(SAFE_MV)
    fz = Fuzzer(ch.wires[0], _plan(plan))
    hw = ch.hws[3]
    ch.run_cycles(WARM)
    assert hw.charge and hw.load
    state = {"c": 0, "prev": (True, True)}

    def each():
        _check_snapshot_is_truth(ch, SAFE_MV)
        now = (hw.charge, hw.load)
        assert not (now[0] and not state["prev"][0]) and not (now[1] and not state["prev"][1])
        state["prev"] = now
        state["c"] += 1
        if state["c"] >= OFF_CYCLES:
            assert now == (False, False) and not ch.end.snap.comm_ok
        assert ch.end.snap.break_position != 1          # never blamed upstream of the fault
        seen.add(ch.end.snap.break_position)
    seen = set()
    _run(ch, len(plan), each)
    assert fz.corrupted >= len(plan) - 1
    assert seen - {0}                                    # the break was reported
    if exact:
        assert seen <= {0, 2} and ch.end.snap.break_position == 2
    assert ch.end.brain.alarms & alarms.COMM_LOST
    _run(ch, 6, lambda: _check_snapshot_is_truth(ch, SAFE_MV))        # wire good again
    assert ch.end.snap.comm_ok and ch.end.snap.break_position == 0 and hw.charge and hw.load


@settings(max_examples=100, deadline=None, derandomize=True, phases=PHASES)
@given(st.lists(st.one_of(st.none(), mutation), min_size=12, max_size=12))
def test_corruption_into_the_end_board_never_lowers_an_over_voltage(plan):
    """Frames into the End board, some intact and some corrupted, all telling of cell 3 above
    V-max: no corrupted value may reach the snapshot, so the charge relay never closes."""
    ch = _chain(CELLS_MV)
    Fuzzer(ch.wires[2], _plan(plan))
    hw = ch.hws[3]
    ch.run_cycles(WARM)

    def each():
        _check_snapshot_is_truth(ch, CELLS_MV)
        assert not hw.charge
    _run(ch, len(plan) + 2, each)
    assert ch.end.brain.alarms & (alarms.OVER_VOLTAGE | alarms.COMM_LOST)


@settings(max_examples=40, deadline=None, derandomize=True, phases=PHASES)
@given(st.lists(st.integers(-3, 255), min_size=1, max_size=400), st.integers(0, 2))
def test_garbage_on_any_wire_never_crashes_or_closes_a_relay(stream, wire):
    """A wire carries only line noise (bytes, framing errors, gaps, idle) instead of frames."""
    ch = _chain(SAFE_MV)
    w = ch.wires[wire]
    w.broken = True                 # the upstream board's own frames never get through
    hw = ch.hws[3]
    for i in range(0, len(stream), 40):
        for v in stream[i:i + 40]:
            if v == codec.NONE:
                continue
            w.rx.q.append(v)
        if w.receiver is not None:
            w.receiver()
        ch.run_cycles(1)
        assert not hw.charge and not hw.load
        assert ch.end.snap.cell_count <= 4
    ch.run_cycles(3)
    assert not ch.end.snap.comm_ok and not hw.charge and not hw.load
