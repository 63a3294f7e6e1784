"""Token bucket for rare, costly actions (settings writes to flash): a burst, then a steady rate.

``WriteBudget(burst, refill_ms)`` starts full; ``take()`` spends one token (False when none is
left), ``tick(dt_ms)`` adds one token every ``refill_ms``, up to ``burst``. ``wait_ms()`` is the
time until the next token. Clock-free and allocation-free.
"""


class WriteBudget:
    def __init__(self, burst, refill_ms):
        if burst < 1 or refill_ms < 1:
            raise ValueError("burst >= 1, refill_ms >= 1")
        self.burst = burst
        self.refill_ms = refill_ms
        self.tokens = burst
        self.elapsed_ms = 0     # towards the next token
        self.refused = 0

    def take(self):
        if self.tokens > 0:
            self.tokens -= 1
            return True
        if self.refused < 0x3FFFFFFF:
            self.refused += 1
        return False

    def wait_ms(self):
        if self.tokens > 0:
            return 0
        return self.refill_ms - self.elapsed_ms

    def tick(self, dt_ms):
        if dt_ms <= 0:
            return
        if self.tokens >= self.burst:
            self.elapsed_ms = 0
            return
        e = self.elapsed_ms + dt_ms
        if e >= self.refill_ms:
            n = e // self.refill_ms
            t = self.tokens + n
            if t >= self.burst:
                self.tokens = self.burst
                e = 0
            else:
                self.tokens = t
                e -= n * self.refill_ms
        self.elapsed_ms = e
