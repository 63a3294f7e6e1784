"""Host decoder for the extended data output (the 58-byte 123\\SmartBMS gen3 packet).

    python -m cellchain.extout CAPTURE.bin          # a capture file ("-" = stdin); with its
                                                    # CAPTURE.gaps.json timing sidecar if present
    python -m cellchain.extout /dev/ttyUSB0          # a serial port (9600 8N1, pyserial URL ok)

Prints one JSON line per good packet on stdout: every field in engineering units (V, A, degC,
Wh, kWh, %), the rotating key/value pair, and the last complete key/value round. Rejected
data (checksum errors, truncated packets, bytes that are no packet) is reported on stderr,
with a count at the end. Exit status: 0 = packets decoded and nothing rejected, 1 = something
rejected or no packet at all, 2 = the file or port could not be opened.

Packet boundaries: from a serial port by the idle gap between packets (each packet is one
burst, then >= 400 ms silence); in a file by the checksum: sliding byte by byte, a 58-byte
window starts synchronisation when its checksum is right and either its content is
``plausible`` (sign bytes '+', '-' or 'X', ...) or the next two windows check too (a stream
from a device with other sign bytes). Random bytes pass either test about once in 10^8
positions. Once in step, each following window is a packet, or a checksum error when the
window after it checks (a damaged packet), or else the point where step was lost.
Byte layout: docs/extended-output.md. Written independently of firmware/core/extout.py so the
tests can check one against the other.
"""
import argparse
import json
import os
import sys
import time

PACKET_LEN = 58
KEY_OFFSET = 25
ROUND_KEYS = 19
SIGNS = {0x2B: 1, 0x2D: -1}   # '+', '-'; 'X' (0x58) = no value; anything else reads positive
SIGN_NONE = 0x58

FLAG_NAMES = (
    "charge_allowed", "discharge_allowed", "comm_error", "under_voltage",
    "over_voltage", "under_temp", "over_temp", "soc_not_calibrated",
)


class PacketError(ValueError):
    """A 58-byte window that is not a valid packet (wrong length or checksum)."""


def checksum_ok(data, offset=0):
    """True when data[offset:offset+58] is 58 bytes whose last byte is the sum of the rest."""
    if len(data) - offset < PACKET_LEN:
        return False
    return sum(data[offset:offset + PACKET_LEN - 1]) & 0xFF == data[offset + PACKET_LEN - 1]


def plausible(data, offset=0):
    """Content checks a lone window must pass to start synchronisation without a second
    packet behind it: the three sign bytes are '+', '-' or 'X' (a chance of about 1.6e-6 in
    random bytes), the detail cell is within the count and the SoC at most 100 %."""
    w = data[offset:offset + PACKET_LEN]
    if len(w) < PACKET_LEN:
        return False
    for off in (3, 6, 9):
        if w[off] not in (0x2B, 0x2D, SIGN_NONE):
            return False
    return w[24] <= w[25] and w[40] <= 100


def _u(data, off, size):
    v = 0
    for i in range(size):
        v = (v << 8) | data[off + i]
    return v


def volts(raw):
    """V16/V24 raw (5 mV units) -> V."""
    return round(raw * 0.005, 3)


def temp_c(raw):
    """T16 raw -> degC with the vendor readers' formula (degC = r x 0.857 - 232)."""
    return round(raw * 0.857 - 232, 3)


def current_a(data, off):
    """I24 -> A (None for the 'X' no-value sign)."""
    sign = data[off]
    if sign == SIGN_NONE:
        return None
    mag = _u(data, off + 1, 2) * 0.125
    return -mag if SIGNS.get(sign, 1) < 0 else mag


def decode_packet(data):
    """One packet (58 bytes) -> dict of fields in engineering units. Raises PacketError."""
    data = bytes(data)
    if len(data) != PACKET_LEN:
        raise PacketError("truncated packet: %d of %d bytes" % (len(data), PACKET_LEN))
    want = sum(data[:57]) & 0xFF
    if want != data[57]:
        raise PacketError("checksum error: byte 57 is 0x%02X, bytes 0-56 sum to 0x%02X" % (data[57], want))
    flags = data[30]
    key = data[47] - KEY_OFFSET if data[47] >= KEY_OFFSET else None
    p = {
        "pack_v": volts(_u(data, 0, 3)),
        "charge_a": current_a(data, 3),
        "discharge_a": current_a(data, 6),
        "battery_a": current_a(data, 9),
        "min_cell_v": volts(_u(data, 12, 2)),
        "min_cell": data[14],
        "max_cell_v": volts(_u(data, 15, 2)),
        "max_cell": data[17],
        "min_temp_c": temp_c(_u(data, 18, 2)),
        "min_temp_cell": data[20],
        "max_temp_c": temp_c(_u(data, 21, 2)),
        "max_temp_cell": data[23],
        "cell": data[24],
        "cells": data[25],
        "cell_v": volts(_u(data, 26, 2)),
        "cell_temp_c": temp_c(_u(data, 28, 2)),
        "flags": flags,
    }
    for bit, name in enumerate(FLAG_NAMES):
        p[name] = bool(flags & (1 << bit))
    p.update({
        "energy_in_today_wh": _u(data, 31, 3),
        "stored_wh": _u(data, 34, 3),
        "energy_out_today_wh": _u(data, 37, 3),
        "soc_pct": data[40],
        "energy_in_kwh": _u(data, 41, 3),
        "energy_out_kwh": _u(data, 44, 3),
        "key": key,
        "value": data[48] if key is not None else None,
        "capacity_kwh": round(_u(data, 49, 2) * 0.1, 1),
        "vmin_v": volts(_u(data, 51, 2)),
        "vmax_v": volts(_u(data, 53, 2)),
        "vbal_v": volts(_u(data, 55, 2)),
    })
    return p


def assemble_round(values):
    """Key -> value byte for keys 0..18 -> dict in engineering units."""
    v = values
    s2 = v[16]
    return {
        "soh_pct": v[0],
        "charge_efficiency_pct": v[1],
        "vlow_v": volts((v[2] << 8) | v[3]),
        "vnom_v": volts((v[4] << 8) | v[5]),
        "firmware": "%d.%d.%d" % (v[6] >> 4, v[6] & 0x0F, v[7]),
        "charge_cycles": (v[8] << 8) | v[9],
        "energy_in_kwh": (v[10] << 16) | (v[11] << 8) | v[12],
        "energy_out_kwh": (v[13] << 16) | (v[14] << 8) | v[15],
        "status2": s2,
        "load_relay": bool(s2 & 0x20),
        "charge_relay": bool(s2 & 0x10),
        "below_tmin_discharge": bool(s2 & 0x08),
        "below_tmin_charge": bool(s2 & 0x04),
        "early_warning": bool(s2 & 0x02),
        "vfull_v": volts((v[17] << 8) | v[18]),
    }


class ReaderRules:
    """What the third-party readers survive (issue 22), checked packet by packet on decoded
    packets: the vendor's Venus driver exits on a detail cell above N and, when N changes,
    rebuilds its cell table (a crash in one driver version, phantom cells in another); Solar
    Assistant rebuilds its table on a changed N; a detail cell 0 or N = 0 leaves a phantom
    "cell 0". So: N > 0 and constant for one chain, every cell number 1..N, a pack voltage
    that is never 0 V once one was sent, currents with a proper sign byte.
    ``check(p)`` returns the list of broken rules for this packet (empty = fine)."""

    def __init__(self):
        self.cells = None
        self.pack_seen = False
        self.violations = []

    def check(self, p):
        bad = []
        n = p["cells"]
        if n == 0:
            bad.append("N = 0 (readers keep a phantom cell 0)")
        elif self.cells is not None and n != self.cells:
            bad.append("cell count changed %d -> %d (readers rebuild or crash)" % (self.cells, n))
        if n:
            self.cells = n
        for key in ("cell", "min_cell", "max_cell", "min_temp_cell", "max_temp_cell"):
            if not 1 <= p[key] <= max(n, 1):
                bad.append("%s %d outside 1..%d" % (key, p[key], n))
        if p["pack_v"] > 0:
            self.pack_seen = True
        elif self.pack_seen:
            bad.append("pack voltage 0 V after a real one (a GX takes it as the system voltage)")
        self.violations.extend(bad)
        return bad


class RoundAssembler:
    """Collects the rotating pairs like the readers: key 0 starts a round, the round is
    complete when keys 0..18 have all arrived since."""

    def __init__(self):
        self.pending = None
        self.last = None      # last complete round (dict), None until the first
        self.rounds = 0

    def add(self, key, value):
        """Returns the round dict when this pair completed one, else None."""
        if key is None or not 0 <= key < ROUND_KEYS:
            return None
        if key == 0:
            self.pending = {}
        if self.pending is None:
            return None
        self.pending[key] = value
        if len(self.pending) == ROUND_KEYS:
            self.last = assemble_round(self.pending)
            self.rounds += 1
            self.pending = None
            return self.last
        return None


class Decoder:
    """Turns a byte stream into packets, counting what it rejects.

    ``feed_file(data)`` resynchronises on the checksum; ``feed_burst(chunk)`` takes one burst
    delimited by idle gaps (serial). Both yield decoded packet dicts (with "n" and, for files,
    "offset") and call ``self.report(message)`` for every rejection.
    """

    def __init__(self, report=None):
        self.report = report if report is not None else (lambda msg: None)
        self.rounds = RoundAssembler()
        self.packets = 0
        self.checksum_errors = 0
        self.truncated = 0
        self.skipped_bytes = 0
        self.bursts = 0

    @property
    def rejected(self):
        return self.checksum_errors + self.truncated + (1 if self.skipped_bytes else 0)

    def _packet(self, data, extra):
        p = decode_packet(data)
        self.packets += 1
        self.rounds.add(p["key"], p["value"])
        p["round"] = self.rounds.last
        out = {"n": self.packets}
        out.update(extra)
        out.update(p)
        return out

    def _skip(self, start, end, where):
        k = end - start
        if k <= 0:
            return
        if k < PACKET_LEN:
            self.truncated += 1
            self.report("truncated packet: %d bytes %s, rejected" % (k, where))
        else:
            self.skipped_bytes += k
            self.report("%d bytes %s hold no valid packet, skipped" % (k, where))

    def feed_file(self, data):
        data = bytes(data)
        n = len(data)
        pos = 0
        synced = False
        lost_at = 0
        while n - pos >= PACKET_LEN:
            if synced:
                if checksum_ok(data, pos):
                    yield self._packet(data[pos:pos + PACKET_LEN], {"offset": pos})
                    pos += PACKET_LEN
                    continue
                # corrupted packet in place (the next one still checks), or lost alignment
                if n - pos < 2 * PACKET_LEN or checksum_ok(data, pos + PACKET_LEN):
                    self.checksum_errors += 1
                    try:
                        decode_packet(data[pos:pos + PACKET_LEN])
                    except PacketError as e:
                        self.report("packet at byte %d: %s, rejected" % (pos, e))
                    pos += PACKET_LEN
                    continue
                synced = False
                lost_at = pos
                continue
            if checksum_ok(data, pos) and (plausible(data, pos) or (
                    checksum_ok(data, pos + PACKET_LEN) and checksum_ok(data, pos + 2 * PACKET_LEN))):
                self._skip(lost_at, pos, "before byte %d" % pos)
                synced = True
                continue
            pos += 1
        if synced:
            self._skip(pos, n, "at the end (byte %d)" % pos)
        else:
            self._skip(lost_at, n, "from byte %d to the end" % lost_at)

    def feed_burst(self, chunk, first=False):
        """One gap-delimited burst. ``first``: the burst that was on the line when reading
        started, which may legitimately be the tail of a packet (ignored when short)."""
        chunk = bytes(chunk)
        self.bursts += 1
        if len(chunk) == PACKET_LEN:
            try:
                yield self._packet(chunk, {})
            except PacketError as e:
                self.checksum_errors += 1
                self.report("burst %d: %s, rejected" % (self.bursts, e))
            return
        if len(chunk) < PACKET_LEN:
            if first:
                self.report("ignored %d bytes on the line when reading started" % len(chunk))
                return
            self.truncated += 1
            self.report("burst %d: truncated packet, %d of %d bytes, rejected"
                        % (self.bursts, len(chunk), PACKET_LEN))
            return
        # Longer than one packet: no gap between packets (or noise); fall back to the checksum.
        self.report("burst %d: %d bytes without an idle gap (a packet is %d): splitting on the checksum"
                    % (self.bursts, len(chunk), PACKET_LEN))
        for p in self.feed_file(chunk):
            p.pop("offset", None)
            yield p

    def summary(self):
        return ("%d packets decoded, %d checksum errors, %d truncated packets, %d bytes skipped, "
                "%d complete key/value rounds"
                % (self.packets, self.checksum_errors, self.truncated, self.skipped_bytes,
                   self.rounds.rounds))


def gaps_path(capture):
    """The timing sidecar of a capture file: CAPTURE.gaps.json (capture.bin -> capture.gaps.json)."""
    return os.path.splitext(capture)[0] + ".gaps.json"


def load_gaps(path):
    """The sidecar's bursts as [(start ms, offset, length)], sorted; raises ValueError/OSError."""
    with open(path) as f:
        d = json.load(f)
    bursts = d.get("bursts") if isinstance(d, dict) else None
    if not isinstance(bursts, list):
        raise ValueError("%s: no bursts list" % path)
    out = []
    for b in bursts:
        if not (isinstance(b, list) and len(b) == 3 and all(isinstance(x, int) and x >= 0 for x in b)):
            raise ValueError("%s: bad burst %r" % (path, b))
        out.append((b[0], b[1], b[2]))
    out.sort(key=lambda b: b[1])
    return out, d.get("baud", 9600)


def replay_bursts(data, bursts, baud=9600, gap_ms=200):
    """Replay a capture with its real line timing: yields (start ms, offset, bytes) per burst as
    a reader polling for ``gap_ms`` idle time would see it (bursts closer than that run
    together into one, as on the line). Bytes outside every burst are yielded on their own."""
    pos = 0
    cur = None                 # [start ms, offset, end offset, end ms]
    for t, off, n in bursts:
        if off > pos:          # bytes the sidecar does not time: their own burst
            if cur is not None:
                yield cur[0], cur[1], data[cur[1]:cur[2]]
                cur = None
            yield None, pos, data[pos:off]
        if off < pos:
            continue           # overlaps: ignore
        end_ms = t + n * 10000 // baud
        if cur is not None and t - cur[3] < gap_ms:
            cur[2] = off + n
            cur[3] = end_ms
        else:
            if cur is not None:
                yield cur[0], cur[1], data[cur[1]:cur[2]]
            cur = [t, off, off + n, end_ms]
        pos = off + n
    if cur is not None:
        yield cur[0], cur[1], data[cur[1]:cur[2]]
    if pos < len(data):
        yield None, pos, data[pos:]


def read_bursts(ser, gap_s=0.2, clock=time.monotonic, stop=None):
    """Yield gap-delimited bursts from a pyserial-like object (``read(n)`` returning what
    arrived within its timeout). Ends when ``stop()`` is true or the port fails (OSError,
    serial.SerialException); a pending burst is yielded first."""
    buf = bytearray()
    last = clock()
    while stop is None or not stop():
        try:
            data = ser.read(256)
        except (OSError, _serial_exception()) as e:
            if buf:
                yield bytes(buf)
            raise PortClosed(str(e)) from None
        now = clock()
        if data:
            buf.extend(data)
            last = now
        elif buf and now - last >= gap_s:
            yield bytes(buf)
            buf = bytearray()
    if buf:
        yield bytes(buf)


class PortClosed(Exception):
    """The serial port went away while reading."""


def _serial_exception():
    try:
        import serial
        return serial.SerialException
    except ImportError:  # pragma: no cover - pyserial is a dependency
        return OSError


def open_port(name, baud=9600):
    import serial
    return serial.serial_for_url(name, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=0.02)


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    ap = argparse.ArgumentParser(
        prog=".venv/bin/python -m cellchain.extout",
        description="Decode a cellchain / 123\\SmartBMS extended data output stream into JSON lines.")
    ap.add_argument("source", help="capture file ('-' = stdin) or serial port / pyserial URL")
    ap.add_argument("--port", action="store_true", help="treat SOURCE as a serial port even if a file has that name")
    ap.add_argument("--baud", type=int, default=9600, help="serial baud rate (default 9600)")
    ap.add_argument("--gap-ms", type=int, default=200, help="idle time that ends a packet on a port (default 200)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many packets (port or file; 0 = all / until Ctrl-C)")
    ap.add_argument("--seconds", type=float, default=0, help="stop reading a port after this long (0 = no limit)")
    ap.add_argument("--hex", action="store_true", help="add each packet's bytes as hex")
    ap.add_argument("--gaps", default=None,
                    help="timing sidecar of a capture file (default: CAPTURE.gaps.json if it exists)")
    args = ap.parse_args(argv)

    def report(msg):
        stderr.write("extout: %s\n" % msg)

    dec = Decoder(report)

    class _Enough(Exception):
        pass

    emitted = [0]

    def emit(p):
        stdout.write(json.dumps(p) + "\n")
        stdout.flush()
        emitted[0] += 1
        if args.count and emitted[0] >= args.count:
            raise _Enough()          # --count holds for files too (issue 22)

    is_file = args.source == "-" or (not args.port and os.path.isfile(args.source))
    try:
        if is_file:
            try:
                if args.source == "-":
                    data = sys.stdin.buffer.read()
                else:
                    with open(args.source, "rb") as f:
                        data = f.read()
            except OSError as e:
                report("cannot read %s: %s" % (args.source, e))
                return 2
            sidecar = args.gaps or (gaps_path(args.source) if args.source != "-" else None)
            if sidecar and (args.gaps or os.path.isfile(sidecar)):
                try:
                    bursts, baud = load_gaps(sidecar)
                except (OSError, ValueError) as e:
                    report("cannot read the timing sidecar %s: %s" % (sidecar, e))
                    return 2
                for t_ms, off, chunk in replay_bursts(data, bursts, baud, args.gap_ms):
                    for p in dec.feed_burst(chunk):
                        p["t_ms"] = t_ms
                        p["offset"] = off
                        if args.hex:
                            p["hex"] = chunk.hex() if len(chunk) == PACKET_LEN else None
                        emit(p)
            else:
                for p in dec.feed_file(data):
                    if args.hex:
                        p["hex"] = data[p["offset"]:p["offset"] + PACKET_LEN].hex()
                    emit(p)
        else:
            if not args.port and not _looks_like_port(args.source):
                report("no such file or port: %s" % args.source)
                return 2
            try:
                ser = open_port(args.source, args.baud)
            except (OSError, ValueError, _serial_exception()) as e:
                report("cannot open port %s: %s" % (args.source, e))
                return 2
            t0 = time.monotonic()

            def stop():
                if args.count and dec.packets >= args.count:
                    return True
                return bool(args.seconds) and time.monotonic() - t0 >= args.seconds

            first = True
            try:
                for burst in read_bursts(ser, args.gap_ms / 1000.0, stop=stop):
                    for p in dec.feed_burst(burst, first=first):
                        if args.hex:
                            p["hex"] = burst.hex() if len(burst) == PACKET_LEN else None
                        emit(p)
                    first = False
            except PortClosed as e:
                report("port closed: %s" % e)
            finally:
                ser.close()
    except (KeyboardInterrupt, _Enough):
        pass
    except BrokenPipeError:
        return 0
    report(dec.summary())
    if dec.packets == 0:
        report("no valid packet found: check wiring, polarity (EXTOUT_INVERT) and baud rate")
        return 1
    return 1 if dec.rejected else 0


def _looks_like_port(name):
    return "://" in name or name.startswith("/dev/") or name.upper().startswith("COM") or os.path.exists(name)


if __name__ == "__main__":
    sys.exit(main())
