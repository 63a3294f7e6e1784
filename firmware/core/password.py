"""App password: salted SHA-256 hash, constant-time check, and a lockout for wrong guesses.

Passwords are 4..16 ASCII digits (the gen3 login line is ``PW<digits>!``); the factory password
is "1234". Settings keep ``pw_salt`` (hex, per board, made on the first password change) and
``pw_hash`` (hex SHA-256 of ``salt ":" password``); an empty ``pw_hash`` means the factory
password, so a button reset only has to clear the hash.

The lockout is shared by every connection (reconnecting must not buy new guesses): the first
``FREE_FAILURES - 1`` wrong passwords cost nothing, the ``FREE_FAILURES``-th locks logins for
``BASE_LOCK_MS``, and every further failure doubles the lock, up to ``MAX_LOCK_MS``. A correct
password (or the 5 s button reset) clears the count. Core has no clock: ``tick(dt_ms)`` counts
the lock down.
"""
import binascii
import hashlib

from micropython import const

FACTORY = "1234"
MIN_DIGITS = const(4)
MAX_DIGITS = const(16)

FREE_FAILURES = const(5)       # the 5th consecutive failure starts the first lock
BASE_LOCK_MS = const(5000)     # first lock: 5 s
MAX_LOCK_MS = const(900000)    # locks double up to 15 min
_MAX_SHIFT = const(8)          # 5 s << 8 > 15 min: stop shifting (keeps ints small)


def valid(pw):
    """True for a string of MIN_DIGITS..MAX_DIGITS ASCII digits."""
    if not isinstance(pw, str) or not MIN_DIGITS <= len(pw) <= MAX_DIGITS:
        return False
    for ch in pw:
        if not "0" <= ch <= "9":
            return False
    return True


def new_salt(random_bytes=None):
    """A fresh per-board salt as 16 hex characters (from ``random_bytes`` or os.urandom)."""
    if random_bytes is None:
        import os
        random_bytes = os.urandom(8)
    return binascii.hexlify(random_bytes).decode()


def make_hash(salt, pw):
    """Hex SHA-256 of ``salt:pw``."""
    h = hashlib.sha256((salt + ":" + pw).encode())
    return binascii.hexlify(h.digest()).decode()


def equal(a, b):
    """Compare two strings in time that depends only on len(b) (the stored value), not on
    where they differ."""
    la = len(a)
    lb = len(b)
    diff = la ^ lb
    for i in range(lb):
        ca = ord(a[i]) if i < la else 0
        diff |= ca ^ ord(b[i])
    return diff == 0


def stored_hash(salt, pw_hash):
    """The hash to compare against: the stored one, or the factory password's when empty."""
    if pw_hash:
        return pw_hash
    return make_hash(salt, FACTORY)


def check(salt, pw_hash, pw):
    """True when ``pw`` is the password for (salt, pw_hash). Always hashes, so malformed
    input takes as long as a wrong password."""
    ok_format = valid(pw)
    cand = make_hash(salt, pw if ok_format else "")
    return equal(cand, stored_hash(salt, pw_hash)) and ok_format


class Lockout:
    """Wrong-password rate limit shared by all connections."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.failures = 0
        self.remaining_ms = 0
        self.lock_ms = 0

    def locked(self):
        return self.remaining_ms > 0

    def fail(self):
        """Count one wrong password; returns the lock now running in ms (0 = none)."""
        if self.failures < 1000:
            self.failures += 1
        if self.failures >= FREE_FAILURES:
            shift = self.failures - FREE_FAILURES
            if shift >= _MAX_SHIFT:
                ms = MAX_LOCK_MS
            else:
                ms = BASE_LOCK_MS << shift
                if ms > MAX_LOCK_MS:
                    ms = MAX_LOCK_MS
            self.lock_ms = ms
            self.remaining_ms = ms
        return self.remaining_ms

    def success(self):
        self.reset()

    def tick(self, dt_ms):
        """Count the lock down by the elapsed time (negative or huge dt_ms are safe)."""
        if self.remaining_ms > 0 and dt_ms > 0:
            if dt_ms >= self.remaining_ms:
                self.remaining_ms = 0
            else:
                self.remaining_ms -= dt_ms
