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
                   "min_mv", "max_mv", "uptime_s")


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


class PackLink:
    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.password = None        # the last password the board accepted
        self.rules = core_settings()

    def close(self):
        with self.lock:
            self.client.close()

    def login(self, password):
        """Try a password on the board (its lockout applies). A refused one logs the board
        session out, so the last accepted password is sent again to keep recording."""
        with self.lock:
            if self.client.login(password):
                self.password = password
                return True
            if self.password is not None:
                self.client.login(self.password)
            return False

    @property
    def logged_in(self):
        return self.password is not None

    def snapshot(self):
        """One consistent read of the pack (raises ProtocolError/OSError on a lost link)."""
        with self.lock:
            st = parse_status(self.client.status())
            cells = [normalise_cell(c) for c in self.client.cells()]
            al = self.client.alarms()
        return {"t": time.time(), "status": st, "cells": cells, "alarms": al}

    def settings(self):
        with self.lock:
            return self.client.settings()

    def version(self):
        with self.lock:
            return self.client.firmware()

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
        with self.lock:
            current = self.client.settings()
            why = self.check_setting(current, name, value)
            if why is not None:
                return why
            try:
                self.client.set_setting(name, value)
            except _client.ProtocolError as e:
                return str(e)
        return None

    def raw(self, line):
        """One app-protocol request as the page sends it (its own protocol code, /api/raw): the
        reply lines up to and including ``OK`` / ``NA ...``. Logins stay with ``login()``."""
        if line[:2] in ("PW", "PC") or line in ("E!", "D!") or not line or len(line) > 64:
            return ["NA not over the relay"]
        with self.lock:
            c = self.client
            c.send(line)
            out = []
            end = time.monotonic() + c.timeout_s
            while time.monotonic() < end:
                reply = c.readline(max(0.0, end - time.monotonic()))
                if reply is None:
                    break
                if _client.parse_data_line(reply):
                    continue                      # streamed data (not asked for) is not a reply
                out.append(reply)
                if reply == "OK" or reply == "NA" or reply.startswith("NA ") or _client.version_ok(reply):
                    return out
            out.append("NA no reply from the board")
            return out

    def command(self, kind, arg):
        """mode / preset: None or the board's refusal."""
        with self.lock:
            try:
                if kind == "mode":
                    self.client.mode(arg)
                elif kind == "preset":
                    self.client.preset(arg)
                else:
                    return "unknown command %s" % kind
            except _client.ProtocolError as e:
                return str(e)
        return None
