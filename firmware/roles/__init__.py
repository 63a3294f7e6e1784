"""Roles on the link: begin (originates), between (forwards), end (assembles the snapshot).

Each role module has ``make(hw, board_def)`` returning an object with ``cycle(dt_ms)`` (once per
link cycle), ``poll()`` (drain received characters: the byte path), ``tick(dt_ms)`` (LED and
button timing), ``safe()`` and ``cycle_ms``. The shared link plumbing lives here.
"""
from micropython import const

from core import codec, frame

DEFAULT_CYCLE_MS = const(1000)
_POLL_MAX = const(64)        # characters handled per poll() call (bounded work per wake-up)


def send_frame(fw, buf, n, tx):
    """Originate a frame: run the n bytes built in ``buf`` through this board's own forwarder
    (which adds its cell, updates the aggregates and CRCs) and send the result as one burst."""
    fw.gap()
    for i in range(n):
        fw.byte(buf[i])
    if tx is not None:
        tx.write(fw.out, n)


def cycle_ms_of(board_def):
    ms = getattr(board_def, "LINK_CYCLE_MS", DEFAULT_CYCLE_MS)
    return 500 if ms == 500 else DEFAULT_CYCLE_MS


class LinkPort:
    """Receiver -> Forwarder -> (optional) transmitter, character by character."""

    def __init__(self, rx, tx, on_event):
        self.rx = rx
        self.tx = tx
        self.fw = frame.Forwarder()
        self.on_event = on_event        # bound method of the role, called with the event code
        self.rx_chars = 0
        self._busy = False
        self._again = False             # a scheduled call found us busy: drain once more
        self._poll_ref = self.poll      # bound method made once: the receiver schedules it
        # receivers that can schedule us on arrival (PIO, soft) get forwarding within a
        # character time; the others (UART) rely on the loop waking often (wake_in_ms)
        self.interrupt_driven = rx is not None and hasattr(rx, "set_handler") and \
            getattr(rx, "interrupt_driven", True)
        if self.interrupt_driven:
            rx.set_handler(self._poll_ref)

    def poll(self):
        """Handle what the receiver has; returns the number of characters handled.

        A call that finds the port busy (the receiver's scheduled handler running while the loop
        is inside poll(), or the other way round) leaves a sticky re-check flag: the running
        drain loops once more before it returns, so a character that arrived meanwhile is
        handled now, not at the next character or loop wake-up (the lost wake-up)."""
        rx = self.rx
        if rx is None:
            return 0
        if self._busy:
            self._again = True
            return 0
        self._busy = True
        n = 0
        while True:
            self._again = False
            try:
                n += self._drain(rx)
            finally:
                self._busy = False
            # a call that came in after this check finds _busy False and drains by itself
            if not self._again:
                return n
            self._busy = True

    def _drain(self, rx):
        fw = self.fw
        tx = self.tx
        n = 0
        while n < _POLL_MAX:
            ev = rx.read()
            if ev == codec.NONE:
                break
            n += 1
            if ev == codec.GAP:
                if fw.gap():
                    # cut short: finish it here for our own events, but send none of it -
                    # downstream sees the same silence and cuts the frame at the same byte,
                    # whatever the race between its gap timer and our padding would give
                    while fw.in_frame():
                        fw.byte(codec.FRAMING)
                        if fw.event:
                            self.on_event(fw.event)
                continue
            o = fw.byte(ev)
            if o >= 0 and tx is not None:
                tx.write_byte(o)
            if fw.event:
                self.on_event(fw.event)
        self.rx_chars += n
        return n

    def wake_in_ms(self, other_ms):
        """How soon the board loop must run again: 1 ms while a receiver without arrival
        interrupts may have characters coming, else other_ms."""
        if self.rx is not None and not self.interrupt_driven:
            return 1
        return other_ms
