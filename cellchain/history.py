"""Pack history in one SQLite file (stdlib sqlite3): one row per recorded cycle, one row per
cell and cycle, relay/alarm events; downsampled queries for the dashboard, CSV export, and a
retention limit. Schema and units: docs/dashboard.md.

    store = HistoryStore("pack.sqlite", retention_days=30)
    store.record(snapshot, t=time.time())        # snapshot = PackLink.snapshot()
    store.series(t0, t1, points=600)              # pack V/I/SoC + every cell, bucket means
    store.daily_spread(t0, t1)                    # min/max cell voltage per day
    store.events(t0, t1)                          # relay and alarm changes
    store.write_csv(fileobj, t0, t1)

Every reading is one ``samples`` row (the cells packed into small blobs, ~150 bytes for 16
cells); a ``minutes`` row holds each minute's means for plots over days.
"""
import csv
import sqlite3
import sys
import threading
import time
from array import array

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    t REAL PRIMARY KEY,          -- Unix time, s (the reading's time)
    pack_mv INTEGER, current_ma INTEGER, soc_c INTEGER,
    min_mv INTEGER, max_mv INTEGER, stored_wh INTEGER,
    charge INTEGER, load INTEGER, comm INTEGER, alarms INTEGER, break_pos INTEGER,
    cell_mv BLOB,                -- uint16 little-endian per cell, 65535 = no value
    cell_temp_dc BLOB,           -- int16 little-endian per cell (0.1 degC), -32768 = no value
    cell_status BLOB             -- one byte per cell (core.snapshot.CellStatus bits)
);
CREATE TABLE IF NOT EXISTS minutes (
    t REAL PRIMARY KEY,          -- start of the minute, Unix time
    n INTEGER, pack_mv REAL, current_ma REAL, soc_c REAL, min_mv INTEGER, max_mv INTEGER,
    cell_mv BLOB,                -- mean per cell, uint16 as in samples
    pack_lo INTEGER, pack_hi INTEGER, current_lo INTEGER, current_hi INTEGER,
    soc_lo INTEGER, soc_hi INTEGER, -- the minute's extremes (envelopes for long views)
    cell_lo BLOB, cell_hi BLOB   -- per cell lowest / highest, uint16 as in samples
);
CREATE TABLE IF NOT EXISTS events (
    t REAL NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_t ON events (t);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
SCHEMA_VERSION = "3"          # 3: the minutes' extremes (issue 22); a version-2 file gets the columns
MINUTE_EXTREMES = (("pack_lo", "INTEGER"), ("pack_hi", "INTEGER"), ("current_lo", "INTEGER"),
                   ("current_hi", "INTEGER"), ("soc_lo", "INTEGER"), ("soc_hi", "INTEGER"),
                   ("cell_lo", "BLOB"), ("cell_hi", "BLOB"))
DAY_S = 86400
RAW_WINDOW_S = 6 * 3600      # longer windows are plotted from the per-minute table
NO_MV = 65535
NO_TEMP = -32768


def pack_cells(cells):
    """(cell_mv, cell_temp_dc, cell_status) blobs from PackLink cell dicts."""
    mv = array("H", (NO_MV if c["mv"] is None else max(0, min(NO_MV - 1, c["mv"])) for c in cells))
    temp = array("h", (NO_TEMP if c["temp_dc"] is None else max(NO_TEMP + 1, min(32767, c["temp_dc"]))
                       for c in cells))
    status = bytes(c["status"] & 0xFF for c in cells)
    if sys.byteorder != "little":
        mv.byteswap()
        temp.byteswap()
    return mv.tobytes(), temp.tobytes(), status


def unpack_mv(blob):
    a = array("H")
    a.frombytes(blob or b"")
    if sys.byteorder != "little":
        a.byteswap()
    return a


class HistoryStore:
    """Thread-safe (one connection behind a lock); ``retention_days`` None keeps everything."""

    def __init__(self, path, retention_days=30.0):
        self.path = path
        self.retention_s = None if retention_days is None else float(retention_days) * DAY_S
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")      # one reading per second: no fsync each
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(minutes)")}
        for col, kind in MINUTE_EXTREMES:          # a file from schema 2: add the columns
            if col not in have:
                self._db.execute("ALTER TABLE minutes ADD COLUMN %s %s" % (col, kind))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        self._db.commit()
        self._last = None          # (charge, load, alarms, comm) of the previous record
        self._minute = None        # running sums of the current minute
        self._last_prune = 0.0

    def close(self):
        with self._lock:
            self._db.close()

    # ---- writing ---------------------------------------------------------------------------
    def record(self, snap, t=None):
        """Store one snapshot (``PackLink.snapshot()``); relay/alarm/link changes become events."""
        t = time.time() if t is None else float(t)
        st = snap["status"]
        pack_mv, min_mv, max_mv = known_pack(st)
        row = (t, pack_mv, st.get("current_ma"), st.get("soc_c"), min_mv, max_mv, st.get("stored_wh"), int(bool(st.get("charge"))),
               int(bool(st.get("load"))), int(bool(st.get("comm"))), snap["alarms"]["mask"],
               snap["alarms"]["break_position"]) + pack_cells(snap["cells"])
        state = (row[7], row[8], row[10], row[9])
        with self._lock:
            db = self._db
            db.execute("INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
            self._roll_minute(t, row, snap["cells"])
            for kind, detail in self._changes(state, snap):
                db.execute("INSERT INTO events VALUES (?,?,?)", (t, kind, detail))
            if self.retention_s is not None and t - self._last_prune >= 3600:
                self._prune(t - self.retention_s)
                self._last_prune = t
            db.commit()
        self._last = state

    def _roll_minute(self, t, row, cells):
        """Keep the running mean of the current minute; write it when the minute is over."""
        minute = t - t % 60
        acc = self._minute
        if acc is not None and acc["t"] != minute:
            self._write_minute(acc)
            acc = None
        if acc is None or len(acc["cells"]) != len(cells):
            acc = self._minute = {"t": minute, "n": 0, "sums": [0.0, 0.0, 0.0], "counts": [0, 0, 0],
                                  "lo": [None] * 3, "hi": [None] * 3, "min_mv": None, "max_mv": None,
                                  "cells": [0] * len(cells), "cell_n": [0] * len(cells),
                                  "cell_lo": [None] * len(cells), "cell_hi": [None] * len(cells)}
        acc["n"] += 1
        for i, v in enumerate(row[1:4]):
            if v is not None:
                acc["sums"][i] += v
                acc["counts"][i] += 1
                acc["lo"][i] = v if acc["lo"][i] is None else min(acc["lo"][i], v)
                acc["hi"][i] = v if acc["hi"][i] is None else max(acc["hi"][i], v)
        if row[4] is not None:
            acc["min_mv"] = row[4] if acc["min_mv"] is None else min(acc["min_mv"], row[4])
        if row[5] is not None:
            acc["max_mv"] = row[5] if acc["max_mv"] is None else max(acc["max_mv"], row[5])
        for i, c in enumerate(cells):
            if c["mv"] is not None:
                acc["cells"][i] += c["mv"]
                acc["cell_n"][i] += 1
                lo, hi = acc["cell_lo"][i], acc["cell_hi"][i]
                acc["cell_lo"][i] = c["mv"] if lo is None else min(lo, c["mv"])
                acc["cell_hi"][i] = c["mv"] if hi is None else max(hi, c["mv"])
        self._write_minute(acc)     # the minute so far (replaced until it is complete)

    def _write_minute(self, acc):
        means = [None if acc["counts"][i] == 0 else acc["sums"][i] / acc["counts"][i] for i in range(3)]
        cells = [{"mv": None if n == 0 else int(round(total / n)), "temp_dc": None, "status": 0}
                 for total, n in zip(acc["cells"], acc["cell_n"], strict=True)]
        lo_cells = [{"mv": v, "temp_dc": None, "status": 0} for v in acc["cell_lo"]]
        hi_cells = [{"mv": v, "temp_dc": None, "status": 0} for v in acc["cell_hi"]]
        self._db.execute("INSERT OR REPLACE INTO minutes (t, n, pack_mv, current_ma, soc_c, min_mv, max_mv, cell_mv,"
                         " pack_lo, pack_hi, current_lo, current_hi, soc_lo, soc_hi, cell_lo, cell_hi)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (acc["t"], acc["n"], means[0], means[1], means[2], acc["min_mv"], acc["max_mv"],
                          pack_cells(cells)[0], acc["lo"][0], acc["hi"][0], acc["lo"][1], acc["hi"][1],
                          acc["lo"][2], acc["hi"][2], pack_cells(lo_cells)[0], pack_cells(hi_cells)[0]))

    def _changes(self, state, snap):
        prev = self._last
        out = []
        for i, name in ((0, "charge"), (1, "load")):
            if prev is None or prev[i] != state[i]:
                out.append(("relay", "%s %s" % (name, "on" if state[i] else "off")))
        if prev is None or prev[2] != state[2]:
            out.append(("alarms", ",".join(snap["alarms"]["names"]) or "none"))
        if prev is None or prev[3] != state[3]:
            out.append(("link", "ok" if state[3] else "lost at %d" % snap["alarms"]["break_position"]))
        return out

    def _prune(self, before):
        for table in ("samples", "minutes", "events"):
            self._db.execute("DELETE FROM %s WHERE t < ?" % table, (before,))

    def prune(self, now=None):
        """Drop everything older than the retention (also done hourly by ``record``)."""
        if self.retention_s is None:
            return
        with self._lock:
            self._prune((time.time() if now is None else now) - self.retention_s)
            self._db.commit()

    # ---- reading ---------------------------------------------------------------------------
    def span(self):
        """(first t, last t) or (None, None) when empty."""
        with self._lock:
            return tuple(self._db.execute("SELECT MIN(t), MAX(t) FROM samples").fetchone())

    def series(self, t0, t1, points=600):
        """Bucket means over [t0, t1] in at most ``points`` buckets: {"t": [...], "pack_v",
        "current_a", "soc_pct", "cells": {"1": [V...], ...}} (None where a bucket has no value:
        a link break is a gap, never a voltage), plus each bucket's extremes - "pack_v_lo",
        "pack_v_hi", "current_a_lo", "current_a_hi", "soc_pct_lo", "soc_pct_hi", "cells_lo",
        "cells_hi" - so a long view draws a min/max envelope instead of averaging a peak away
        (issue 22: the 24 h view lost the 100 % SoC peak). Windows longer than RAW_WINDOW_S come
        from the per-minute table (means and the minutes' extremes)."""
        points = max(1, int(points))
        bucket = max(1e-3, (t1 - t0) / points)
        raw = t1 - t0 <= RAW_WINDOW_S
        with self._lock:
            if raw:
                rows = self._db.execute("SELECT t, pack_mv, current_ma, soc_c, cell_mv, pack_mv, pack_mv,"
                                        " current_ma, current_ma, soc_c, soc_c, cell_mv, cell_mv FROM samples"
                                        " WHERE t BETWEEN ? AND ? ORDER BY t", (t0, t1)).fetchall()
            else:
                rows = self._db.execute("SELECT t, pack_mv, current_ma, soc_c, cell_mv, pack_lo, pack_hi,"
                                        " current_lo, current_hi, soc_lo, soc_hi, cell_lo, cell_hi FROM minutes"
                                        " WHERE t BETWEEN ? AND ? ORDER BY t", (t0, t1)).fetchall()
        buckets = {}
        order = []
        for t, pack_mv, current_ma, soc_c, blob, p_lo, p_hi, c_lo, c_hi, s_lo, s_hi, blo, bhi in rows:
            b = min(points - 1, int((t - t0) / bucket))
            acc = buckets.get(b)
            if acc is None:
                acc = buckets[b] = [0.0, 0, [0.0, 0.0, 0.0], [0, 0, 0], [], [], [None] * 3, [None] * 3, [], []]
                order.append(b)
            acc[0] += t
            acc[1] += 1
            for i, v in enumerate((pack_mv, current_ma, soc_c)):
                if v is not None:
                    acc[2][i] += v
                    acc[3][i] += 1
            for i, (lo, hi) in enumerate(((p_lo, p_hi), (c_lo, c_hi), (s_lo, s_hi))):
                if lo is not None:
                    acc[6][i] = lo if acc[6][i] is None else min(acc[6][i], lo)
                if hi is not None:
                    acc[7][i] = hi if acc[7][i] is None else max(acc[7][i], hi)
            mv = unpack_mv(blob)
            sums, counts, cl, ch = acc[4], acc[5], acc[8], acc[9]
            if len(sums) < len(mv):
                grow = len(mv) - len(sums)
                sums.extend([0] * grow)
                counts.extend([0] * grow)
                cl.extend([None] * grow)
                ch.extend([None] * grow)
            for i, v in enumerate(mv):
                if v != NO_MV:
                    sums[i] += v
                    counts[i] += 1
            for arr, blob2, pick in ((cl, blo, min), (ch, bhi, max)):
                for i, v in enumerate(unpack_mv(blob2)):
                    if v != NO_MV and i < len(arr):
                        arr[i] = v if arr[i] is None else pick(arr[i], v)
        ncell = max((len(buckets[b][4]) for b in order), default=0)
        out = {"t": [], "pack_v": [], "current_a": [], "soc_pct": [],
               "pack_v_lo": [], "pack_v_hi": [], "current_a_lo": [], "current_a_hi": [],
               "soc_pct_lo": [], "soc_pct_hi": [],
               "cells": {str(i + 1): [] for i in range(ncell)},
               "cells_lo": {str(i + 1): [] for i in range(ncell)},
               "cells_hi": {str(i + 1): [] for i in range(ncell)}}
        for b in order:
            acc = buckets[b]
            out["t"].append(round(acc[0] / acc[1], 1))
            for key, i, div, digits in (("pack_v", 0, 1000, 3), ("current_a", 1, 1000, 2), ("soc_pct", 2, 100, 1)):
                out[key].append(None if acc[3][i] == 0 else round(acc[2][i] / acc[3][i] / div, digits))
                out[key + "_lo"].append(_scaled(acc[6][i], div, digits))
                out[key + "_hi"].append(_scaled(acc[7][i], div, digits))
            for i in range(ncell):
                n = acc[5][i] if i < len(acc[5]) else 0
                k = str(i + 1)
                out["cells"][k].append(None if n == 0 else round(acc[4][i] / n / 1000, 3))
                out["cells_lo"][k].append(_scaled(acc[8][i] if i < len(acc[8]) else None, 1000, 3))
                out["cells_hi"][k].append(_scaled(acc[9][i] if i < len(acc[9]) else None, 1000, 3))
        return out

    def daily_spread(self, t0, t1, utc_offset_s=0):
        """[{"day": "YYYY-MM-DD", "min_v", "max_v", "spread_mv"}] per (local) day."""
        with self._lock:
            rows = self._db.execute(
                "SELECT date(t + ?, 'unixepoch') AS d, MIN(min_mv), MAX(max_mv), MAX(max_mv - min_mv)"
                " FROM samples WHERE t BETWEEN ? AND ? GROUP BY d ORDER BY d",
                (utc_offset_s, t0, t1)).fetchall()
        return [{"day": d, "min_v": _scaled(lo, 1000, 3), "max_v": _scaled(hi, 1000, 3), "spread_mv": sp}
                for d, lo, hi, sp in rows]

    def events(self, t0, t1, limit=500):
        with self._lock:
            rows = self._db.execute("SELECT t, kind, detail FROM events WHERE t BETWEEN ? AND ?"
                                    " ORDER BY t DESC, rowid DESC LIMIT ?", (t0, t1, limit)).fetchall()
        return [{"t": t, "kind": k, "detail": d} for t, k, d in rows]

    def write_csv(self, f, t0, t1):
        """One line per recorded cycle: UTC time, pack values, then every cell's mV."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM samples WHERE t BETWEEN ? AND ? ORDER BY t",
                                    (t0, t1)).fetchall()
        ncell = max((len(r[12] or b"") // 2 for r in rows), default=0)
        w = csv.writer(f)
        w.writerow(["time_utc", "t", "pack_mv", "current_ma", "soc_c", "min_mv", "max_mv", "stored_wh",
                    "charge", "load", "comm", "alarms", "break_pos"]
                   + ["cell%d_mv" % (i + 1) for i in range(ncell)])
        for r in rows:
            mv = ["" if v == NO_MV else v for v in unpack_mv(r[12])]
            w.writerow([time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[0])), round(r[0], 3)] + list(r[1:12])
                       + mv + [""] * (ncell - len(mv)))
        return len(rows)


def _alarm_bits():
    try:
        from sim import fw
        return {name: bit for bit, name in fw.core("alarms").NAMES}
    except ImportError:
        return {}


def trace_snapshot(rec, bits=None):
    """One virtual-pack trace state (docs/virtual-pack.md, "Trace") as the recorder's snapshot
    (``PackLink.snapshot()``): what the End board had - the measured cells, the brain's current
    and SoC, relays, alarms, link state. No pack voltage unless every cell was heard."""
    vm = rec.get("v_meas") or []
    comm = bool(rec.get("comm_ok"))
    cells = []
    for i, v in enumerate(vm):
        temps = rec.get("temp") or []
        st = rec.get("status") or []
        cells.append({"cell": i + 1, "mv": None if v is None or not comm else int(round(v * 1000)),
                      "temp_dc": int(round(temps[i] * 10)) if i < len(temps) and temps[i] is not None else None,
                      "status": (st[i] or 0) if i < len(st) else 0})
    mvs = [c["mv"] for c in cells]
    whole = comm and mvs and all(m is not None for m in mvs)
    cur = rec.get("current_meas")
    soc = rec.get("soc_est")
    names = list(rec.get("alarms") or [])
    bits = _alarm_bits() if bits is None else bits
    return {"status": {"pack_mv": sum(mvs) if whole else -1,
                       "current_ma": None if cur is None else int(round(cur * 1000)),
                       "soc_c": None if soc is None else int(round(soc * 100)),
                       "min_mv": min(mvs) if whole else -1, "max_mv": max(mvs) if whole else -1,
                       "stored_wh": None, "charge": int(bool(rec.get("charge_allowed"))),
                       "load": int(bool(rec.get("load_allowed"))), "comm": 1 if comm else 0},
            "cells": cells,
            "alarms": {"mask": sum(bits.get(n, 0) for n in names), "break_position": rec.get("break_position") or 0,
                       "names": names}}


def replay_trace(store, path, t_end=None, every_s=1):
    """Fill ``store`` from a virtual-pack trace (``.venv/bin/python -m sim run ... --trace FILE``)
    in virtual time: the trace's seconds are laid out so its last second is ``t_end`` (default
    now), so a simulated week shows as the last 7 days. Returns (readings, first t, last t)."""
    import json
    t_end = time.time() if t_end is None else float(t_end)
    states = []
    with open(path) as f:
        header = None
        for line in f:
            obj = json.loads(line)
            if header is None:
                header = obj
            elif "settings" not in obj and "t" in obj:
                states.append(obj)
    if not states:
        return 0, None, None
    offset = t_end - states[-1]["t"]
    bits = _alarm_bits()
    n = 0
    for rec in states:
        if rec["t"] % every_s:
            continue
        store.record(trace_snapshot(rec, bits), rec["t"] + offset)
        n += 1
    return n, states[0]["t"] + offset, states[-1]["t"] + offset


def known_pack(st):
    """(pack_mv, min_mv, max_mv) of an ``ST?`` status, each None when not known: during a link
    break, with a dead board or a stuck cell ADC the End board has no pack voltage (issue 22:
    never a partial sum of the cells still heard, which the history drew as a pack collapse).
    The history stores NULL there, so the plots break the line."""
    if st.get("comm") != 1:
        return None, None, None
    pack = st.get("pack_mv")
    lo, hi = st.get("min_mv"), st.get("max_mv")
    return (pack if pack is not None and pack > 0 else None,
            lo if lo is not None and lo >= 0 else None, hi if hi is not None and hi >= 0 else None)


def _scaled(value, div, digits):
    return None if value is None else round(value / div, digits)
