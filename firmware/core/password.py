"""App password: salted SHA-256 hash, constant-time check, and a lockout for wrong guesses.

Passwords are ASCII digits (the gen3 login line is ``PW<digits>!``): a login takes 4..16 (a
password set by older firmware may have 4), a new password needs ``NEW_MIN_DIGITS`` (6) to 16.
The factory password is "1234". Settings keep ``pw_salt`` (hex, per board, made on the first
password change) and ``pw_hash`` (hex SHA-256 of ``salt ":" password``); an empty ``pw_hash``
means the factory password, so a button reset only has to clear the hash.

Lockout (docs/ble-protocol.md, Security): two limits, both must allow a guess.

* Per connection (so a stranger locks out only himself): the first ``FREE_FAILURES - 1`` wrong
  passwords on one connection cost nothing, the ``FREE_FAILURES``-th locks that connection for
  ``_BASE_LOCK_MS``, every further failure doubles its lock up to ``MAX_LOCK_MS``. Other
  connections are not affected; closing the connection forgets its count.
* Global backstop (so reconnecting or rebooting buys nothing): every wrong password on any
  connection counts; after ``GLOBAL_FREE_FAILURES``, each further failure locks *all* logins for
  ``GLOBAL_LOCK_MS`` doubling with every further failure up to ``GLOBAL_MAX_LOCK_MS`` (1 h). A
  correct password does *not* clear this count (else whoever knows the password - the
  dashboard's recorder logging in again - would wipe out a stranger's guesses); it leaks one
  failure per ``GLOBAL_LEAK_MS`` (1 h). An attacker who guesses whenever the lock ends gets
  about 24 guesses a day. The count is stored with core.store (``path``) and restored at boot;
  a restored count past the free budget starts that count's full lock. Writes are rate limited:
  at most one per ``SAVE_MIN_MS``, except when a global lock starts.
* The owner's way in that no stranger can block: a short press of the End board's button opens
  an owner window (``owner_window()``, ``OWNER_WINDOW_MS``) in which the global lock does not
  apply to the next ``OWNER_GUESSES`` logins (the per-connection limit still does). The 5 s
  button clears everything (and resets the password to the factory one).

Core has no clock: ``tick(dt_ms)`` counts the locks down, leaks the count and does deferred saves.
"""
import binascii
import hashlib

from micropython import const

FACTORY = "1234"
MIN_DIGITS = const(4)          # a login (older firmware let users set 4 digits)
NEW_MIN_DIGITS = const(6)      # a new password: 10^6 guesses at ~24 a day is ~57 years
MAX_DIGITS = const(16)

FREE_FAILURES = const(5)       # the 5th consecutive failure on a connection starts its lock
_BASE_LOCK_MS = const(5000)     # first lock: 5 s
MAX_LOCK_MS = const(900000)    # locks double up to 15 min
_MAX_SHIFT = const(8)          # 5 s << 8 > 15 min: stop shifting (keeps ints small)
GLOBAL_FREE_FAILURES = const(10)   # wrong passwords on all connections before the backstop
GLOBAL_LOCK_MS = const(30000)      # then the whole board locks for 30 s ...
GLOBAL_MAX_LOCK_MS = const(3600000)  # ... doubling with every failure up to 1 h
_GLOBAL_MAX_SHIFT = const(7)       # 30 s << 7 > 1 h: stop shifting (keeps ints small)
GLOBAL_LEAK_MS = const(3600000)    # one counted failure forgiven per hour
OWNER_WINDOW_MS = const(120000)    # short button press: 2 min in which ...
OWNER_GUESSES = const(3)           # ... 3 logins pass the global lock
SAVE_MIN_MS = const(10000)         # at most one lockout-file write per 10 s (flash wear)
_COUNT_MAX = const(100000)

FILE_KIND = "lockout"
FILE_VERSION = const(1)


def valid(pw):
    """True for a string of MIN_DIGITS..MAX_DIGITS ASCII digits."""
    if not isinstance(pw, str) or not MIN_DIGITS <= len(pw) <= MAX_DIGITS:
        return False
    for ch in pw:
        if not "0" <= ch <= "9":
            return False
    return True


def valid_new(pw):
    """True for a password that may be set: NEW_MIN_DIGITS..MAX_DIGITS digits."""
    return valid(pw) and len(pw) >= NEW_MIN_DIGITS


def global_lock_ms(count):
    """The global lock that the ``count``-th wrong password starts (0 within the free budget)."""
    if count <= GLOBAL_FREE_FAILURES:
        return 0
    shift = count - GLOBAL_FREE_FAILURES - 1
    if shift >= _GLOBAL_MAX_SHIFT:
        return GLOBAL_MAX_LOCK_MS
    ms = GLOBAL_LOCK_MS << shift
    return ms if ms < GLOBAL_MAX_LOCK_MS else GLOBAL_MAX_LOCK_MS


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
    """Wrong-password limits: per connection (``slot``) and a global, persisted backstop."""

    def __init__(self, slots=4, path=None):
        self.path = path
        self.failures = [0] * slots      # per connection, consecutive wrong passwords
        self.remaining = [0] * slots     # per connection lock, ms
        self.lock_ms = [0] * slots
        self.global_failures = 0         # all connections, since the last correct password
        self.global_remaining_ms = 0
        self.leak_ms = 0                 # time towards forgiving one global failure
        self.owner_ms = 0                # owner window (short button press) still open
        self.owner_left = 0              # logins that may still pass the global lock in it
        self.saves = 0
        self.save_errors = 0
        self._dirty = False
        self._since_save_ms = SAVE_MIN_MS
        self.load()

    # ---- persistence -------------------------------------------------------------------------
    def load(self):
        """Restore the global count; past the free budget, the global lock starts over."""
        if self.path is None:
            return
        from core import store
        values, status = store.load(self.path, FILE_KIND, FILE_VERSION)
        if status != store.OK:
            return
        n = values.get("global_failures", 0)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            self.global_failures = n if n < _COUNT_MAX else _COUNT_MAX
            self.global_remaining_ms = global_lock_ms(self.global_failures)

    def _save(self):
        self._since_save_ms = 0
        if self.path is None:
            self._dirty = False
            return
        from core import store
        try:
            store.save(self.path, FILE_KIND, FILE_VERSION, {"global_failures": self.global_failures})
            self._dirty = False
            self.saves += 1
        except (OSError, ValueError):
            self.save_errors += 1    # kept dirty: retried after SAVE_MIN_MS

    def _changed(self, now=False):
        self._dirty = True
        if now or self._since_save_ms >= SAVE_MIN_MS:
            self._save()

    # ---- state -------------------------------------------------------------------------------
    def reset(self):
        """Everything cleared (5 s button); saved at once."""
        for i in range(len(self.failures)):
            self.close(i)
        self.global_failures = 0
        self.global_remaining_ms = 0
        self.leak_ms = 0
        self._changed(True)

    def owner_window(self, ms=OWNER_WINDOW_MS, guesses=OWNER_GUESSES):
        """Short press of the End board's button: for ``ms`` the next ``guesses`` logins pass
        the global lock (a stranger's guesses cannot keep the owner out)."""
        self.owner_ms = ms
        self.owner_left = guesses

    def close(self, slot):
        """The connection is gone: forget its own count and lock (the global count stays)."""
        self.failures[slot] = 0
        self.remaining[slot] = 0
        self.lock_ms[slot] = 0

    def _owner_pass(self):
        return self.owner_ms > 0 and self.owner_left > 0

    def locked(self, slot=0):
        if self.remaining[slot] > 0:
            return True
        return self.global_remaining_ms > 0 and not self._owner_pass()

    def remaining_ms(self, slot=0):
        a = self.remaining[slot]
        b = 0 if self._owner_pass() else self.global_remaining_ms
        return a if a > b else b

    def fail(self, slot=0):
        """Count one wrong password on ``slot``; returns the lock now running there in ms."""
        n = self.failures[slot]
        if n < 1000:
            n += 1
            self.failures[slot] = n
        if n >= FREE_FAILURES:
            shift = n - FREE_FAILURES
            if shift >= _MAX_SHIFT:
                ms = MAX_LOCK_MS
            else:
                ms = _BASE_LOCK_MS << shift
                if ms > MAX_LOCK_MS:
                    ms = MAX_LOCK_MS
            self.lock_ms[slot] = ms
            self.remaining[slot] = ms
        if self.global_failures < _COUNT_MAX:
            self.global_failures += 1
        self.leak_ms = 0
        g = global_lock_ms(self.global_failures)
        if g:
            self.global_remaining_ms = g
            self._changed(True)
        else:
            self._changed()
        return self.remaining_ms(slot)

    def attempt(self, slot=0):
        """A login is tried while not ``locked``: it uses one of the owner window's passes
        when only the window let it through."""
        if self.global_remaining_ms > 0 and self._owner_pass() and self.remaining[slot] <= 0:
            self.owner_left -= 1
            return True
        return False

    def success(self, slot=0):
        """A correct password: this connection's lock is cleared. The global count is not: it
        only leaks (GLOBAL_LEAK_MS), so a login by whoever knows the password never wipes out
        the guesses of someone who does not."""
        self.close(slot)

    def tick(self, dt_ms):
        """Count the locks down by the elapsed time (negative or huge dt_ms are safe); do a
        deferred save once the write rate allows it."""
        if dt_ms <= 0:
            return
        rem = self.remaining
        for i in range(len(rem)):
            r = rem[i]
            if r > 0:
                rem[i] = r - dt_ms if r > dt_ms else 0
        g = self.global_remaining_ms
        if g > 0:
            self.global_remaining_ms = g - dt_ms if g > dt_ms else 0
        o = self.owner_ms
        if o > 0:
            self.owner_ms = o - dt_ms if o > dt_ms else 0
        if self.global_failures > 0:
            lk = self.leak_ms + dt_ms
            while lk >= GLOBAL_LEAK_MS and self.global_failures > 0:
                lk -= GLOBAL_LEAK_MS
                self.global_failures -= 1
                self._dirty = True
            self.leak_ms = lk if self.global_failures > 0 else 0
        if self._since_save_ms < SAVE_MIN_MS:
            self._since_save_ms += dt_ms
        if self._dirty and self._since_save_ms >= SAVE_MIN_MS:
            self._save()
