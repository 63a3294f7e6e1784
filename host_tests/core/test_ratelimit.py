"""Settings-write budget (token bucket) and the per-cycle lockout tick: exact refill, no
allocation (both interpreters)."""
from core import password
from core.ratelimit import WriteBudget
from support import no_alloc, raises


def test_burst_then_one_per_refill():
    b = WriteBudget(3, 1000)
    assert b.take() and b.take() and b.take()
    assert not b.take() and b.refused == 1
    assert b.wait_ms() == 1000
    b.tick(999)
    assert not b.take() and b.wait_ms() == 1
    b.tick(1)
    assert b.take() and not b.take()
    b.tick(10 ** 9)                       # a long pause refills to the burst, never beyond
    assert b.tokens == 3 and b.elapsed_ms == 0
    b.tick(-5)
    assert b.tokens == 3


def test_partial_refill_keeps_the_remainder():
    b = WriteBudget(5, 100)
    for _ in range(5):
        b.take()
    b.tick(250)
    assert b.tokens == 2 and b.elapsed_ms == 50
    b.tick(50)
    assert b.tokens == 3 and b.elapsed_ms == 0


def test_bad_parameters_are_refused():
    raises(ValueError, WriteBudget, 0, 100)
    raises(ValueError, WriteBudget, 1, 0)


def test_per_cycle_ticks_allocate_nothing():
    b = WriteBudget(2, 1000)
    b.take()
    b.take()
    assert no_alloc(lambda: b.tick(10))
    lk = password.Lockout(4)
    for slot in range(4):
        for _ in range(password.FREE_FAILURES):
            lk.fail(slot)
    assert no_alloc(lambda: lk.tick(10))
