"""Password hashing, constant-time compare and the doubling lockout (both interpreters)."""
from core import password
from support import tmpdir


def test_valid_passwords():
    assert password.valid("1234")
    assert password.valid("0000000000000000")  # 16 digits
    assert not password.valid("123")
    assert not password.valid("12345678901234567")  # 17
    assert not password.valid("12a4")
    assert not password.valid("")
    assert not password.valid(1234)
    assert not password.valid("12 34")


def test_a_new_password_needs_six_digits():
    assert not password.valid_new("1234")
    assert not password.valid_new("12345")
    assert password.valid_new("123456")
    assert password.valid_new("1" * 16)
    assert not password.valid_new("1" * 17)
    assert not password.valid_new("12a456")


def test_hash_is_salted_sha256_hex():
    h1 = password.make_hash("00ff", "1234")
    h2 = password.make_hash("00fe", "1234")
    assert len(h1) == 64 and h1 != h2
    # known value: sha256(b"abc:1234")
    assert password.make_hash("abc", "1234") == \
        "1755a2d5b309d75bede226f2b6cf858bb14287b917e76ad3b943de0dda4683fb"


def test_factory_password_when_hash_empty():
    assert password.check("", "", "1234")
    assert password.check("a1b2", "", "1234")
    assert not password.check("a1b2", "", "4321")
    assert not password.check("a1b2", "", "12345")


def test_check_stored_hash_longer_password():
    salt = password.new_salt(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    assert salt == "0102030405060708"
    h = password.make_hash(salt, "98765432")
    assert password.check(salt, h, "98765432")
    assert not password.check(salt, h, "9876543")
    assert not password.check(salt, h, "1234")  # factory no longer works
    assert not password.check(salt, h, "abcdefgh")
    assert not password.check(salt, h, "")


def test_new_salt_random():
    a = password.new_salt()
    b = password.new_salt()
    assert len(a) == 16 and a != b


def test_equal_compares_whole_string():
    assert password.equal("abcd", "abcd")
    assert not password.equal("abce", "abcd")
    assert not password.equal("xbcd", "abcd")
    assert not password.equal("abc", "abcd")
    assert not password.equal("abcde", "abcd")
    assert not password.equal("", "abcd")
    assert password.equal("", "")


def test_lockout_starts_at_fifth_failure_and_doubles():
    lk = password.Lockout()
    for _ in range(4):
        assert lk.fail() == 0
        assert not lk.locked()
    assert lk.fail() == 5000
    assert lk.locked()
    lk.tick(4999)
    assert lk.locked() and lk.remaining_ms() == 1
    lk.tick(1)
    assert not lk.locked()
    assert lk.fail() == 10000
    lk.tick(10000)
    assert lk.fail() == 20000
    lk.tick(20000)
    assert lk.fail() == 40000


def test_lockout_capped_and_ints_stay_small():
    lk = password.Lockout()
    for _ in range(2000):
        lk.fail()
        lk.tick(password.MAX_LOCK_MS)
    assert lk.fail() == password.GLOBAL_MAX_LOCK_MS   # the global lock is the longer one now
    assert lk.remaining[0] == password.MAX_LOCK_MS
    assert lk.failures[0] <= 1000
    assert lk.lock_ms[0] == 900000
    assert lk.global_failures == 2001


def test_lockout_success_resets_and_tick_is_safe():
    lk = password.Lockout()
    for _ in range(5):
        lk.fail()
    assert lk.locked()
    lk.tick(-100)   # clock glitch: no change
    lk.tick(0)
    assert lk.remaining_ms() == 5000
    lk.tick(10 ** 9)
    assert not lk.locked()
    lk.success()
    assert lk.failures[0] == 0 and lk.global_failures == 0   # the huge tick leaked them all
    assert lk.fail() == 0


def test_a_correct_password_never_clears_the_global_count():
    """Issue 21: the dashboard's recorder logging in again with the saved password after every
    guess of the page cleared the count; now only time (GLOBAL_LEAK_MS) forgives a failure."""
    lk = password.Lockout(slots=2)
    for _ in range(password.GLOBAL_FREE_FAILURES - 1):
        lk.fail(1)
        lk.close(1)
        lk.success(0)                             # the recorder logs in again
    assert lk.global_failures == password.GLOBAL_FREE_FAILURES - 1
    lk.fail(1)
    lk.close(1)
    assert lk.fail(1) == password.GLOBAL_LOCK_MS
    lk.success(0)
    assert lk.locked(0) and lk.locked(1)
    lk.tick(password.GLOBAL_LOCK_MS)
    n = lk.global_failures
    lk.tick(password.GLOBAL_LEAK_MS - password.GLOBAL_LOCK_MS)   # an hour since the last failure
    assert lk.global_failures == n - 1


def test_a_stranger_locks_out_only_his_own_connection():
    lk = password.Lockout(slots=2)
    for _ in range(password.FREE_FAILURES):
        lk.fail(1)
    assert lk.locked(1) and not lk.locked(0)
    lk.success(0)                                 # the owner logs in meanwhile
    assert lk.locked(1)                           # ...and the stranger stays locked
    lk.close(1)                                   # a new connection in slot 1
    assert not lk.locked(1)


def test_reconnecting_buys_no_guesses_global_backstop():
    """A fresh connection per guess: the global count still reaches the backstop, after which
    every further wrong password locks all logins, the lock doubling up to an hour."""
    lk = password.Lockout(slots=2)
    for _ in range(password.GLOBAL_FREE_FAILURES):
        assert lk.fail(1) == 0
        lk.close(1)
    assert not lk.locked(0) and not lk.locked(1)
    assert lk.fail(1) == password.GLOBAL_LOCK_MS
    lk.close(1)
    assert lk.locked(0) and lk.locked(1)
    lk.tick(password.GLOBAL_LOCK_MS - 1)
    assert lk.locked(1)
    lk.tick(1)
    assert not lk.locked(0)
    assert lk.fail(1) == 2 * password.GLOBAL_LOCK_MS   # doubling (issue 21: was a flat 30 s)
    for _ in range(20):
        lk.tick(lk.global_remaining_ms)           # he guesses whenever the lock ends
        lk.fail(1)
        lk.close(1)
    assert lk.global_remaining_ms == password.GLOBAL_MAX_LOCK_MS


def _guesses_per_day(lk, reconnect=True):
    """An attacker who guesses (a fresh connection each time) whenever no lock stops him, for
    one day in 1 s steps of virtual time."""
    n = 0
    for _ in range(86400):
        if not lk.locked(1):
            lk.fail(1)
            n += 1
            if reconnect:
                lk.close(1)
        lk.tick(1000)
    return n


def test_an_attacker_who_reconnects_gets_few_guesses_a_day():
    """Issue 21: 2880 a day (a flat 30 s backstop) put a 4-digit PIN in reach in 3.4 days."""
    lk = password.Lockout(slots=2)
    first = _guesses_per_day(lk)
    second = _guesses_per_day(lk)
    assert first <= 45 and second <= 26, (first, second)
    assert 10 ** 6 // 2 // second > 50 * 365            # a 6-digit password: decades on average


def test_the_owner_gets_in_by_the_button_whatever_a_stranger_does():
    """Issue 21: an owner trying once a minute for 6 h while a stranger guessed got in 0 of 360
    times. A short press of the End button lets his next logins past the global lock."""
    lk = password.Lockout(slots=2)
    for _ in range(200):                          # the stranger has built a long lock
        lk.fail(1)
        lk.close(1)
    assert lk.locked(0)
    lk.owner_window()
    assert not lk.locked(0)                       # the owner's connection (slot 0) may try
    assert lk.attempt(0)                          # ... using one of the window's passes
    lk.success(0)
    for _ in range(password.OWNER_GUESSES):       # the stranger uses up the rest
        if not lk.locked(1):
            lk.attempt(1)
            lk.fail(1)
            lk.close(1)
    assert lk.locked(1) and lk.locked(0)          # the window gives nobody unlimited guesses
    lk.owner_window()
    lk.tick(password.OWNER_WINDOW_MS)
    assert lk.locked(0)                           # and it closes after 2 min


def test_global_count_survives_a_reboot_with_rate_limited_writes():
    d = tmpdir()
    path = d + "/lockout.json"
    lk = password.Lockout(2, path)
    lk.fail(1)                                    # first change: written at once
    assert lk.saves == 1
    for _ in range(password.GLOBAL_FREE_FAILURES - 1):
        lk.fail(1)
    assert lk.saves == 1                          # within SAVE_MIN_MS: deferred
    lk.tick(password.SAVE_MIN_MS)
    assert lk.saves == 2
    assert password.Lockout(2, path).global_failures == password.GLOBAL_FREE_FAILURES
    lk.fail(0)                                    # the backstop starts: written at once
    assert lk.saves == 3
    again = password.Lockout(2, path)             # reboot
    assert again.global_failures == password.GLOBAL_FREE_FAILURES + 1
    assert again.locked(0) and again.remaining_ms(0) == password.GLOBAL_LOCK_MS
    again.success(0)
    again.tick(password.GLOBAL_LEAK_MS)           # forgiven by time, not by the login
    assert password.Lockout(2, path).global_failures == password.GLOBAL_FREE_FAILURES


def test_lockout_file_damage_or_write_failure_never_raises():
    d = tmpdir()
    path = d + "/lockout.json"
    with open(path, "wb") as f:
        f.write(b"cellchain lockout 1 0000\n{garbage")
    lk = password.Lockout(1, path)
    assert lk.global_failures == 0
    bad = password.Lockout(1, d + "/no/such/dir/lockout.json")
    bad.fail()
    assert bad.save_errors == 1 and bad.global_failures == 1
    bad.tick(password.SAVE_MIN_MS)
    assert bad.save_errors == 2                   # retried, still no exception
