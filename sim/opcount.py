"""Count the bytecode instructions a call executes (sys.settrace with opcode events).

The virtual pack's board time in mode "counted" (sim/board_time.py): a board's time in a call
is the firmware's instructions x board ns per instruction. Unlike host time this does not
depend on the host's speed, load or caches (a short call between other boards' calls runs with
cold caches on the host, not on a board), and it is reproducible bit for bit.

``Counter(roots)``: only frames whose code lives under one of ``roots`` (path prefixes) are
counted instruction by instruction; a call from counted code into other Python code (the
virtual hardware: on a board a native method of machine/rp2) counts ``foreign`` instructions
and nothing inside it, or what ``costs`` gives for that code object (a virtual link end stands
for the board's HAL method: PioRx.read, PioTx.write_byte). ``roots=None`` counts every frame (tools/board_factor.py: the probe ran
all its Python on the chip).
"""
import sys

FOREIGN = 8      # instructions charged for a call into code outside the roots (a native call)


class Counter:
    def __init__(self, roots=None, foreign=FOREIGN, costs=None):
        self.roots = tuple(roots) if roots else None
        self.foreign = foreign
        self.costs = costs or {}
        self.n = 0
        self._mine = {}          # code object -> counted or not

    def _counted(self, code):
        got = self._mine.get(code)
        if got is None:
            got = self.roots is None or code.co_filename.startswith(self.roots)
            self._mine[code] = got
        return got

    def _local(self, frame, event, arg):
        if event == "opcode":
            self.n += 1
        return self._local

    def _global(self, frame, event, arg):
        if event != "call":
            return None
        if self._counted(frame.f_code):
            frame.f_trace_opcodes = True
            return self._local
        back = frame.f_back
        if back is not None and back.f_trace_opcodes:
            # counted code calling out: a native-like call, or the HAL method it stands for
            self.n += self.costs.get(frame.f_code, self.foreign)
        frame.f_trace_opcodes = False
        return None

    def run(self, fn):
        """Run fn() counting; returns the instructions counted."""
        self.n = 0
        old = sys.gettrace()
        sys.settrace(self._global)
        try:
            fn()
        finally:
            sys.settrace(old)
        return self.n
