"""Password hashing, constant-time compare and the doubling lockout (both interpreters)."""
from core import password


def test_valid_passwords():
    assert password.valid("1234")
    assert password.valid("0000000000000000")  # 16 digits
    assert not password.valid("123")
    assert not password.valid("12345678901234567")  # 17
    assert not password.valid("12a4")
    assert not password.valid("")
    assert not password.valid(1234)
    assert not password.valid("12 34")


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
    assert lk.locked() and lk.remaining_ms == 1
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
    assert lk.fail() == password.MAX_LOCK_MS
    assert lk.failures <= 1000
    assert lk.lock_ms == 900000


def test_lockout_success_resets_and_tick_is_safe():
    lk = password.Lockout()
    for _ in range(5):
        lk.fail()
    assert lk.locked()
    lk.tick(-100)   # clock glitch: no change
    lk.tick(0)
    assert lk.remaining_ms == 5000
    lk.tick(10 ** 9)
    assert not lk.locked()
    lk.success()
    assert lk.failures == 0
    assert lk.fail() == 0
