"""One End board connection shared by the dashboard's threads: login, one snapshot per cycle
(``ST?``, ``CL?``, ``A?``), settings read/write with the board's own validation rules first.

    link = PackLink(client)            # cellchain.client.Client on any transport
    link.login("1234") -> True/False
    link.snapshot() -> {"t", "status", "cells", "alarms"}
    link.settings() -> {name: value};  link.set_setting(name, value) -> None or the refusal reason
"""
import os
import threading
import time

from cellchain import client as _client

STATUS_INT_KEYS = ("cells", "pack_mv", "current_ma", "soc_c", "soc_cal", "charge", "load", "comm",
                   "break", "soh", "cycles", "in_wh", "out_wh", "stored_wh", "pin_w", "pout_w",
                   "min_mv", "max_mv", "uptime_s", "pw_factory", "link", "rst")


NO_TEMP_DC = -32768
# core.snapshot.CellStatus bits (docs/ble-protocol.md, C lines and CL?)
CELL_STATUS_BITS = ((0x01, "balancing"), (0x02, "ntc_fault"), (0x04, "volt_fault"), (0x08, "derated"),
                    (0x10, "upstream_lost"), (0x20, "not_calibrated"), (0x40, "watchdog_reset"),
                    (0x80, "stale"))


def cell_flags(status):
    """Names of the status bits set (``[]`` for 0 or no value)."""
    return [name for bit, name in CELL_STATUS_BITS if (status or 0) & bit]


def core_settings():
    """firmware/core/settings.py (the board's own limits and rules) when this is a source checkout,
    else None (the board still validates every write)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "firmware", "core", "settings.py")):
        return None
    try:
        from sim import fw
        return fw.core("settings")
    except ImportError:
        return None


def parse_status(st):
    """ST? key=value strings -> ints where the protocol sends numbers (unknown keys kept as text)."""
    out = {}
    for k, v in st.items():
        if k == "alarms":
            out[k] = int(v, 16) if v else 0
            continue
        try:
            out[k] = int(v) if k in STATUS_INT_KEYS else v
        except ValueError:
            out[k] = None
    return out


def normalise_cell(c):
    """A cell whose board never reported comes as 0 mV / -32768: no value, like ``X``."""
    if c["mv"] == 0:
        c["mv"] = None
    if c["temp_dc"] is not None and c["temp_dc"] <= NO_TEMP_DC:
        c["temp_dc"] = None
    return c


FACTORY_PASSWORD = "1234"
# what the page's raw console may send (protocol.js): queries and the settings it shows; logins,
# password changes and streaming stay with the server
RAW_QUERIES = ("ST?", "CL?", "A?", "S?", "EV?", "F?", "LK?", "V@")
RAW_PREFIXES = ("S:", "MO:", "CH:")


def raw_refusal(line):
    """None when ``line`` may go over the page's raw relay, else why not. One request line only:
    a CR, LF or other control byte would make it two commands, and the board drops ``$``
    anywhere in a line (so ``P$W...`` would reach it as ``PW...``)."""
    if not isinstance(line, str) or not line:
        return "line must be a non-empty string"
    if len(line) > 64:
        return "line longer than 64 characters"
    for ch in line:
        if not 32 <= ord(ch) < 127:
            return "one command per request: no CR, LF or other control characters"
        if ch == "$":
            return "'$' is not allowed in a relayed line"
    if line in RAW_QUERIES:
        return None
    if line.endswith("!") and line.startswith(RAW_PREFIXES) and len(line) > 3:
        return None
    return "not over the relay: only %s and S:/MO:/CH:...!" % ", ".join(RAW_QUERIES)


class PackLink:
    """The dashboard's one connection to the End board, shared by its threads (``lock``).

    ``connect()`` (optional) builds a new Client: when a request fails on the link (timeout,
    a reply out of step, the connection lost - client.LinkError) the connection is dropped, and
    the next request connects again and logs in with the last accepted password, never guessing
    which reply belonged to which request. Reconnects back off (1 s doubling to 60 s); while the
    board cannot be reached requests raise client.Unreachable."""

    RETRY_MIN_S = 1.0
    RETRY_MAX_S = 60.0

    def __init__(self, client, connect=None, monotonic=time.monotonic):
        self.client = client
        self.connect = connect
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.password = None        # the last password the board accepted
        self.session = False        # the current connection is logged in
        self.rules = core_settings()
        self.last_error = None
        self.reconnects = 0
        self._retry_at = 0.0
        self._retry_s = 0.0

    def close(self):
        with self.lock:
            if self.client is not None:
                self.client.close()

    # ---- the connection ----------------------------------------------------------------------
    def _drop(self, why):
        self.last_error = why
        self.session = False
        c, self.client = self.client, None
        if c is not None:
            try:
                c.close()
            except Exception:    # noqa: BLE001 - a dead transport may fail any way it likes
                pass

    def _client(self):
        """The live Client (reconnecting and logging in again when the last one failed)."""
        c = self.client
        if c is not None and not c.broken:
            return c
        if c is not None:
            self._drop(c.broken)
        if self.connect is None:
            raise _client.Unreachable("board unreachable: %s" % (self.last_error or "no connection"))
        now = self.monotonic()
        if now < self._retry_at:
            raise _client.Unreachable("board unreachable (%s); next try in %d s"
                                      % (self.last_error or "no connection", int(self._retry_at - now + 0.999)))
        try:
            c = self.connect()
        except _client.ProtocolError as e:
            self._backoff(str(e))
            raise _client.Unreachable("board unreachable: %s" % e) from e
        except OSError as e:
            self._backoff(str(e))
            raise _client.Unreachable("board unreachable: %s" % e) from e
        self.client = c
        self.reconnects += 1
        self._retry_s = 0.0
        if self.password is not None:
            self._relogin(c)
        return c

    def _backoff(self, why):
        self.last_error = why
        self._retry_s = min(self.RETRY_MAX_S, max(self.RETRY_MIN_S, self._retry_s * 2))
        self._retry_at = self.monotonic() + self._retry_s

    def _relogin(self, c):
        """Log a new connection in with the saved password. Refused while the board is locked
        (kept, tried again at the next reconnect - a correct login never clears anybody's
        lockout on the board); refused with no lock running, the password has been changed
        elsewhere: forgotten, so the recorder never guesses."""
        if c.login(self.password):
            self.session = True
            return
        locked = True
        try:
            lk = c.lock_status()
            locked = lk["connection_ms"] > 0 or lk["global_ms"] > 0
        except _client.LinkError:
            raise
        except _client.ProtocolError:
            pass
        if not locked:                 # changed elsewhere: forget it, keep the connection
            self.password = None
            self.last_error = "the board refused the saved password (changed elsewhere?): log in again"
            raise _client.LinkError("logged out: " + self.last_error)
        self._drop("the board refused the saved password (locked)")
        self._backoff(self.last_error)
        raise _client.LinkError("logged out: " + self.last_error)

    def _run(self, fn):
        """fn(client) under the lock; a link failure drops the connection (LinkError raised)."""
        with self.lock:
            c = self._client()
            try:
                return fn(c)
            except _client.LinkError as e:
                self._drop(str(e))
                raise
            except _client.ProtocolError as e:
                if str(e) != "login required":
                    raise
                # the board logged this session out (its password changed elsewhere): connect
                # and log in again at the next request, never carry on as if logged in
                self._drop("logged out by the End board")
                raise _client.LinkError("logged out by the End board (password changed elsewhere?)") from e

    # ---- login -------------------------------------------------------------------------------
    def login(self, password):
        """Try a password on the board (its lockout counts every wrong one). With a session
        running, the password is checked with ``PV`` (the recorder stays logged in); without,
        with ``PW``. True only on the board's OK to that very request; LinkError when the board
        cannot be asked."""
        def attempt(c):
            if self.session and self.password is not None:
                return c.check_password(password)
            if c.login(password):
                self.session = True
                self.password = password
                return True
            return False
        return self._run(attempt)

    def lock_status(self):
        return self._run(lambda c: c.lock_status())

    def change_password(self, old, new):
        """PC on the board: None or the refusal. The new one is the saved password after."""
        def change(c):
            try:
                c.change_password(old, new)
            except _client.LinkError:
                raise
            except _client.ProtocolError as e:
                return str(e)
            self.password = new
            return None
        return self._run(change)

    @property
    def logged_in(self):
        return self.password is not None

    # ---- reading and writing -----------------------------------------------------------------
    def snapshot(self):
        """One consistent read of the pack (raises ProtocolError/LinkError on a lost link)."""
        def read(c):
            st = parse_status(c.status())
            cells = [normalise_cell(x) for x in c.cells()]
            al = c.alarms()
            return {"t": time.time(), "status": st, "cells": cells, "alarms": al}
        return self._run(read)

    def settings(self):
        return self._run(lambda c: c.settings())

    def status(self):
        """ST? as text values (the board's factory-password flag ``pw_factory`` included)."""
        return self._run(lambda c: c.status())

    def version(self):
        return self._run(lambda c: c.firmware())

    def check_setting(self, current, name, value):
        """The board's own rules on the whole set (core.settings.apply on a copy): None or why not."""
        if self.rules is None:
            return None
        s = self.rules.Settings()
        for k, v in current.items():
            if k in self.rules.FIELD_NAMES or k == "name":
                setattr(s, k, v)
        if name != "name":
            try:
                value = int(value)
            except (TypeError, ValueError):
                return "%s: must be a whole number" % name
        return self.rules.apply(s, name, value)

    def set_setting(self, name, value):
        """None when the board took it, else the reason (checked here first, then the board's
        own ``NA`` line, shown as it came)."""
        def write(c):
            current = c.settings()
            why = self.check_setting(current, name, value)
            if why is not None:
                return why
            try:
                c.set_setting(name, value)
            except _client.LinkError:
                raise
            except _client.ProtocolError as e:
                return str(e)
            return None
        return self._run(write)

    def raw(self, line):
        """One app-protocol request as the page sends it (its own protocol code, /api/raw): the
        board's reply lines between the request's fences (ending in ``OK`` / ``NA``). Raises
        ValueError (with the reason) for a line that may not be relayed."""
        why = raw_refusal(line)
        if why is not None:
            raise ValueError(why)

        def ask(c):
            got = c.exchange(line)
            if line == "V@":
                return got
            try:
                _client.check_reply(line, got, line.split(":")[0] + ":" if ":" in line else line[:-1] + ":",
                                    c._break)
            except _client.LinkError:
                raise
            except _client.ProtocolError:
                pass
            return got
        return self._run(ask)

    def command(self, kind, arg):
        """mode / preset: None or the board's refusal."""
        def run(c):
            try:
                if kind == "mode":
                    c.mode(arg)
                elif kind == "preset":
                    c.preset(arg)
                else:
                    return "unknown command %s" % kind
            except _client.LinkError:
                raise
            except _client.ProtocolError as e:
                return str(e)
            return None
        return self._run(run)
