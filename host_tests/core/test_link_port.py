"""roles.LinkPort: the byte path from a receiver through the Forwarder to the transmitter,
and the lost wake-up (a scheduled call that finds the port busy)."""
from core import codec, frame
from roles import LinkPort


class ScheduledRx:
    """A receiver whose characters arrive while the port is draining: after ``late_after``
    reads it runs the scheduled handler (as micropython.schedule would at a bytecode boundary)
    and only then makes the next character readable."""

    def __init__(self, data, late_after):
        self.q = list(data[:late_after])
        self.late = list(data[late_after:])
        self.handler = None
        self.reads = 0

    def set_handler(self, fn):
        self.handler = fn

    def read(self):
        self.reads += 1
        if self.q:
            return self.q.pop(0)
        if self.late:
            # the handler fires now, finds the port busy, and returns at once; the character
            # it was called for becomes readable right after
            self.handler()
            self.q.append(self.late.pop(0))
            return codec.NONE
        return codec.NONE


class Tx:
    def __init__(self):
        self.sent = []

    def write_byte(self, b):
        self.sent.append(b)
        return True


def _frame():
    buf = bytearray(frame.MAX_FRAME)
    n = frame.build_empty(buf, 4, 1, 0x80, 1, 1)
    return bytes(buf[:n])


def test_character_arriving_during_a_drain_is_handled_by_that_drain():
    data = _frame()
    k = len(data) - 1                       # the last byte of the frame arrives late
    rx = ScheduledRx(data, k)
    tx = Tx()
    events = []
    port = LinkPort(rx, tx, events.append)
    assert rx.handler is not None           # receiver with arrival interrupts: scheduled poll
    n = port.poll()
    assert n == len(data)                   # nothing waits for the next wake-up
    assert len(tx.sent) == len(data)
    assert frame.EV_B in events             # the frame ended in this very poll
    assert port.poll() == 0


def test_busy_call_returns_zero_and_leaves_the_recheck_flag():
    rx = ScheduledRx(b"", 0)
    port = LinkPort(rx, None, lambda ev: None)
    port._busy = True
    assert port.poll() == 0
    assert port._again
    port._busy = False
    assert port.poll() == 0 and not port._again


def test_without_the_recheck_the_late_byte_would_wait():
    """The same receiver, the late byte arriving after the drain's last read: the scheduled
    call for it runs once the port is free and handles it itself."""
    data = _frame()
    rx = ScheduledRx(data, len(data))
    port = LinkPort(rx, Tx(), lambda ev: None)
    assert port.poll() == len(data)


class ListRx:
    def __init__(self):
        self.q = []

    def read(self):
        return self.q.pop(0) if self.q else codec.NONE


def test_folded_codes_are_the_codec_codes():
    """roles folds codec.NONE / GAP into its own consts (on MicroPython they are compiled in
    and not module attributes: checked on the host)."""
    import sys
    import roles
    if sys.implementation.name != "micropython":
        assert roles._NONE == codec.NONE and roles._GAP == codec.GAP


def test_one_poll_drains_every_character_and_a_cut_frame_is_finished_locally():
    data = _frame()
    rx = ListRx()
    tx = Tx()
    events = []
    port = LinkPort(rx, tx, events.append)
    rx.q.extend(list(data[:10]) + [codec.GAP])
    assert port.poll() == 11                    # ten characters and the gap, one call
    assert len(tx.sent) == 10 and tx.sent[0] == frame.SYNC and port.cut_frames == 1
    assert not port.fw.in_frame() and frame.EV_B in events      # its sections ended as CUT
    rx.q.extend(list(data) + [codec.FRAMING])
    port.poll()
    assert port.fw.frames == 1 and port.framing_errors == 1 and port.rx_chars == 11 + len(data) + 1
