"""Atomic, checksummed record files for everything a board keeps in flash.

A record is one small text file:  ``cellchain <kind> <version> <crc16 hex>\\n<json body>``.
Writes go to ``<path>.tmp`` first and are renamed over the old file, so a write cut off at any
point leaves either the old record or the new one, never a mix. Loading checks kind, version and
CRC and returns a status code instead of raising, so a role can stay fail-safe on bad data.
Settings, calibration and SoC state each use their own file (firmware and data live apart).
"""
import json
import os

from micropython import const

from core.crc import crc16

OK = const(0)
MISSING = const(1)
CORRUPT = const(2)
WRONG_KIND = const(3)
WRONG_VERSION = const(4)

STATUS_NAMES = ("ok", "missing", "corrupt", "wrong kind", "wrong version")

_MAGIC = "cellchain"
_MAX_BYTES = const(4096)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def encode(kind, version, values):
    """The exact bytes of a record (header line + JSON body)."""
    body = json.dumps(values).encode()
    header = "%s %s %d %04x\n" % (_MAGIC, kind, version, crc16(body))
    return header.encode() + body


def decode(data, kind, version):
    """(values dict or None, status) from the bytes of a record."""
    nl = data.find(b"\n")
    if nl < 0:
        return None, CORRUPT
    try:
        parts = data[:nl].decode().split(" ")
    except UnicodeError:
        return None, CORRUPT
    if len(parts) != 4 or parts[0] != _MAGIC:
        return None, CORRUPT
    body = data[nl + 1:]
    try:
        want_crc = int(parts[3], 16)
        got_version = int(parts[2])
    except ValueError:
        return None, CORRUPT
    if crc16(body) != want_crc:
        return None, CORRUPT
    if parts[1] != kind:
        return None, WRONG_KIND
    if got_version != version:
        return None, WRONG_VERSION
    try:
        values = json.loads(body)
    except ValueError:
        return None, CORRUPT
    if not isinstance(values, dict):
        return None, CORRUPT
    return values, OK


def _read(path, kind, version):
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError:
        return None, MISSING
    if len(data) > _MAX_BYTES:
        return None, CORRUPT
    return decode(data, kind, version)


def load(path, kind, version):
    """Read a record: (values dict or None, status). Never raises on bad or missing files.

    When the record is missing or damaged but a complete, CRC-good ``<path>.tmp`` exists (a
    power cut between the steps of a save on a file system whose rename cannot replace a file),
    that new record is the one in force, so a save is "old or new", never "nothing"."""
    values, status = _read(path, kind, version)
    if status == MISSING or status == CORRUPT:
        tmp_values, tmp_status = _read(path + ".tmp", kind, version)
        if tmp_status == OK:
            return tmp_values, OK
    return values, status


def save(path, kind, version, values):
    """Write a record atomically (temporary file, then rename). Raises OSError if the file
    system refuses; the old record is then still intact."""
    data = encode(kind, version, values)
    if len(data) > _MAX_BYTES:
        raise ValueError("record too large")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    if _exists(path):
        # rename() replaces the target on littlefs and POSIX; remove first only where it cannot.
        try:
            os.rename(tmp, path)
            return
        except OSError:
            os.remove(path)
    os.rename(tmp, path)


def remove(path):
    """Delete a record and any leftover temporary file (factory reset)."""
    for p in (path, path + ".tmp"):
        if _exists(p):
            os.remove(p)
