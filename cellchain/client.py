"""Host side of the app protocol (docs/ble-protocol.md): transports, a synchronous client, and
a TCP server that puts an AppProtocol handler on a local socket (the virtual pack, tests).

Transports (all give ``write(bytes)``, ``read(timeout_s) -> bytes``, ``close()``):
  SocketTransport("127.0.0.1", 7123)     the virtual pack (``--socket HOST:PORT``)
  SerialTransport("/dev/ttyACM0")         an End board's USB port running ``usb_app.run()``
  BleTransport("AA:BB:..")                an End board over Bluetooth LE (bleak, NUS)

Server for the simulator:
  srv = serve_socket(app, "127.0.0.1", 7123)    # app = core.app_protocol.AppProtocol
  srv.poll(timeout_s)   # in the simulation loop: accept, read, feed (single-threaded), or
  srv.start_thread(cycle_s=1.0, on_cycle=None, lock=None)   # background thread that also
                        # calls app.tick(dt_ms) and app.stream_round() every cycle_s
  srv.port, srv.close()
"""
import queue
import select
import socket
import threading
import time

NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"   # we write here
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"   # board notifies here
COMPAT_NAME = "123\\SmartBMS"
DATA_TAGS = ("C", "U", "V", "T", "E", "M", "H", "B")


class ProtocolError(Exception):
    """The board refused a request (``NA ...``) or did not answer."""


class LinkError(ProtocolError):
    """The link failed: no reply in time, a reply out of step with its request, the
    connection lost. The connection is not used again (``Client.broken``): a reply that comes
    late would be taken for the next request's. Reconnect and log in again."""


class Unreachable(LinkError):
    """No connection to the End board at all (socket refused, port or radio missing)."""


FENCE_CHARS = "0123456789abcdef"


# ---- transports -------------------------------------------------------------------------------

class SocketTransport:
    def __init__(self, host, port, timeout_s=5.0):
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        # short request lines: no Nagle delay (with the peer's delayed ACK, 40 ms per request)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data):
        self.sock.sendall(data)

    def read(self, timeout_s):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout_s))
        if not r:
            return b""
        data = self.sock.recv(4096)
        if not data:
            raise LinkError("connection closed by the board")
        return data

    def close(self):
        self.sock.close()


class SerialTransport:
    def __init__(self, port, baud=115200):
        import serial  # pyserial
        self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0)

    def write(self, data):
        self.ser.write(data)
        self.ser.flush()

    def read(self, timeout_s):
        end = time.monotonic() + timeout_s
        while True:
            data = self.ser.read(4096)
            if data or time.monotonic() >= end:
                return data
            time.sleep(0.01)

    def close(self):
        self.ser.close()


class BleTransport:
    """bleak in a background event loop, behind the same synchronous interface."""

    def __init__(self, address, timeout_s=10.0):
        import asyncio

        from bleak import BleakClient
        self._asyncio = asyncio
        self._rx = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = BleakClient(address, timeout=timeout_s)
        self._run(self._client.connect())
        self._run(self._client.start_notify(NUS_TX, lambda _c, data: self._rx.put(bytes(data))))
        mtu = getattr(self._client, "mtu_size", 23) or 23
        self._chunk = max(20, min(mtu - 3, 244))

    def _run(self, coro, timeout_s=20.0):
        fut = self._asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout_s)

    def write(self, data):
        for i in range(0, len(data), self._chunk):
            self._run(self._client.write_gatt_char(NUS_RX, data[i:i + self._chunk], response=True))

    def read(self, timeout_s):
        try:
            data = self._rx.get(timeout=max(0.001, timeout_s))
        except queue.Empty:
            return b""
        while not self._rx.empty():
            data += self._rx.get_nowait()
        return data

    def close(self):
        try:
            self._run(self._client.disconnect())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)


def scan(timeout_s=5.0):
    """[(address, name, rssi)] of advertisers offering the NUS service or a 123 name."""
    import asyncio

    from bleak import BleakScanner

    async def run():
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
        out = []
        for dev, adv in found.values():
            uuids = [u.lower() for u in (adv.service_uuids or [])]
            name = adv.local_name or dev.name or ""
            if NUS_SERVICE in uuids or name == COMPAT_NAME or name.startswith("cellchain"):
                out.append((dev.address, name, adv.rssi))
        return out
    return asyncio.run(run())


def open_transport(socket_addr=None, serial_port=None, ble_address=None, baud=115200):
    """A transport to the End board; raises Unreachable when there is none (connection
    refused, no such port, no adapter, ...), ProtocolError when none is given."""
    if not (socket_addr or serial_port or ble_address):
        raise ProtocolError("no connection given: use --socket HOST:PORT, --serial PORT or --ble ADDRESS")
    try:
        if socket_addr:
            host, _, port = socket_addr.rpartition(":")
            return SocketTransport(host or "127.0.0.1", int(port))
        if serial_port:
            return SerialTransport(serial_port, baud)
        return BleTransport(ble_address)
    except ValueError as e:
        raise ProtocolError("bad address: %s" % e) from e
    except Exception as e:   # OSError, serial.SerialException, bleak errors, timeouts
        raise Unreachable("%s (%s)" % (e, socket_addr or serial_port or ble_address)) from e


# ---- parsing ----------------------------------------------------------------------------------

def _hex(field):
    if not field or field[0] in "Xx":
        return None
    return int(field, 16)


def _shex(field):
    if not field or field.lstrip("+-")[:1] in ("X", "x", ""):
        return None
    sign = -1 if field[0] == "-" else 1
    return sign * int(field.lstrip("+-"), 16)


def _temp(field):
    raw = _hex(field)
    return None if raw is None else raw - 276


def _dec(field):
    return None if not field or field[0] in "Xx" else int(field)


def parse_cs_line(line):
    """cellchain's ``CS:fff_ssaa...`` line -> ("CS", {"first", "status": [..], "age": [..]})
    or None (docs/ble-protocol.md)."""
    head, _, body = line[3:].partition("_")
    try:
        first = int(head)
        if len(body) % 4:
            return None
        status = [int(body[i:i + 2], 16) for i in range(0, len(body), 4)]
        age = [int(body[i + 2:i + 4], 16) for i in range(0, len(body), 4)]
    except ValueError:
        return None
    return "CS", {"first": first, "status": status, "age": age}


def _units(steps, size, digits):
    """steps x step size, rounded to the step's resolution (3.405, not 3.4050000000000002)."""
    return None if steps is None else round(steps * size, digits)


def parse_data_line(line):
    """(tag, values dict) for a gen3 data line (or cellchain's CS line), in engineering
    units; None if not one."""
    if line.startswith("CS:"):
        return parse_cs_line(line)
    parts = line.split("_")
    tag = parts[0]
    if tag not in DATA_TAGS or len(parts) < 2:
        return None
    f = parts[1:]
    try:
        if tag == "C" and len(f) >= 5:
            mv = _hex(f[2])
            return tag, {"cell": int(f[0]), "count": int(f[1]),
                         "v": _units(mv, 0.005, 3), "t_c": _temp(f[3]),
                         "status": _hex(f[4])}
        if tag == "U" and len(f) >= 4:
            pv = _hex(f[0])
            a = [_shex(x) for x in f[1:4]]
            return tag, {"pack_v": _units(pv, 0.005, 3), "i1_a": _units(a[0], 0.05, 2),
                         "i_a": _units(a[1], 0.05, 2), "i2_a": _units(a[2], 0.05, 2)}
        if tag == "V" and len(f) >= 5:
            lo, hi, vb = _hex(f[0]), _hex(f[2]), _hex(f[4])
            return tag, {"min_v": _units(lo, 0.005, 3), "min_cell": _dec(f[1]),
                         "max_v": _units(hi, 0.005, 3), "max_cell": _dec(f[3]),
                         "vbal_v": _units(vb, 0.005, 3)}
        if tag == "T" and len(f) >= 4:
            return tag, {"min_c": _temp(f[0]), "min_cell": _dec(f[1]),
                         "max_c": _temp(f[2]), "max_cell": _dec(f[3])}
        if tag == "E" and len(f) >= 4:
            return tag, {"in_wh": _hex(f[0]), "stored_wh": _hex(f[1]), "out_wh": _hex(f[2]),
                         "soc_pct": _hex(f[3])}
        if tag == "M" and len(f) >= 3:
            return tag, {"in_w": _hex(f[0]), "out_w": _hex(f[1]),
                         "time_to_go": None if f[2].startswith("X") else f[2]}
        if tag == "H" and len(f) >= 1:
            return tag, {"soh_pct": _hex(f[0])}
        if tag == "B" and len(f) >= 1:
            return tag, {"capacity_ah": _hex(f[0])}
    except ValueError:
        return None
    return None


def version_ok(line):
    """True when a V@ reply's last field is the checksum of the bytes before it (no '_')."""
    body, _, ck = line.rpartition("_")
    if not body or len(ck) != 2:
        return False
    total = sum(ord(c) for c in body + "_" if c != "_") & 0xFF
    try:
        return int(ck, 16) == total
    except ValueError:
        return False


def _is_version_line(line):
    return len(line) > 4 and line[0] in "0123456789ABCDEF" and line[1] != "_" and "_" in line


def check_reply(line, got, prefix, fail):
    """The lines ``got`` between a request's fences must be one well-formed reply: any number
    of ``prefix`` lines, then ``OK``; or an optional ``ERR:`` reason line, then ``NA``. Returns
    the prefix lines (prefix cut off); raises ProtocolError on a refusal; calls ``fail(why)``
    (which raises) on anything else - a lost, doubled or foreign line."""
    if not got:
        fail("no answer to %s between its fences" % line)
    last = got[-1]
    body = got[:-1]
    if last == "OK":
        out = []
        for reply in body:
            if not (prefix and reply.startswith(prefix)):
                fail("unexpected line %r in the reply to %s" % (reply[:40], line))
            out.append(reply[len(prefix):])
        return out
    if last == "NA" or last.startswith("NA "):
        reason = last[3:] if last.startswith("NA ") else None
        if len(body) > 1 or (body and not body[0].startswith("ERR:")):
            fail("unexpected lines %r before NA in the reply to %s" % ([r[:40] for r in body], line))
        if body:
            reason = body[0][4:]
        raise ProtocolError(reason or "refused")
    fail("reply to %s out of step: %r" % (line, [r[:40] for r in got[:4]]))


def _kv(text):
    out = {}
    for item in text.split():
        k, _, v = item.partition("=")
        out[k] = v
    return out


# ---- client -----------------------------------------------------------------------------------

class Client:
    """Line-oriented, synchronous: one request at a time; data lines that arrive meanwhile
    are kept in ``data_lines`` for ``rounds()``.

    Every request goes out between two fences, ``ID:<a>?`` and ``ID:<b>?`` with fresh random
    tokens, which the board echoes as ``ID:<a>`` / ``ID:<b>`` (docs/ble-protocol.md). The reply
    is the lines between the two echoes, nothing else: whatever came before ``ID:<a>`` (a late
    reply to an earlier request, a stray line) is skipped, and the lines in between must be
    exactly one well-formed reply (one ``OK``/``NA`` at the end, only the request's own tag
    before it). A timeout or a reply out of that shape raises LinkError and marks the client
    ``broken``; it refuses every further request, so a reply can never be taken for another
    request's: reconnect (PackLink does) instead."""

    def __init__(self, transport, timeout_s=5.0):
        self.t = transport
        self.timeout_s = timeout_s
        self._buf = b""
        self.data_lines = []
        self.broken = None           # why the link is out of step (then no request goes out)
        self.fences = True

    def close(self):
        self.t.close()

    def send(self, line):
        self.t.write(line.encode("ascii") + b"\r")

    def readline(self, timeout_s=None):
        """The next line (without CR), or None after the timeout."""
        end = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while b"\r" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                self._buf += self.t.read(min(left, 0.5))
            except LinkError as e:
                self._break(str(e))
            except OSError as e:
                self._break("connection lost: %s" % e)
            if len(self._buf) > 65536 and b"\r" not in self._buf:
                self._buf = b""
                self._break("a line of over 64 kB from the board")
        line, _, self._buf = self._buf.partition(b"\r")
        return line.replace(b"\n", b"").decode("ascii", "replace")

    def _break(self, why):
        self.broken = why
        raise LinkError(why)

    @staticmethod
    def _token():
        import secrets
        return secrets.token_hex(6)

    def exchange(self, line):
        """Send one request line between two fences; returns the reply lines between the
        fences' echoes (streamed data lines go to ``data_lines``). LinkError on a timeout or a
        lost connection (the client is then ``broken``)."""
        if self.broken:
            raise LinkError("link out of step (%s): reconnect" % self.broken)
        if not line or len(line) > 64 or any(not 32 <= ord(c) < 127 or c == "$" for c in line):
            raise ProtocolError("not one request line: %r" % line)
        a, b = self._token(), self._token()
        try:
            self.t.write(("ID:%s?\r%s\rID:%s?\r" % (a, line, b)).encode("ascii"))
        except LinkError as e:
            self._break(str(e))
        except OSError as e:
            self._break("connection lost: %s" % e)
        end = time.monotonic() + self.timeout_s
        got = None
        while True:
            reply = self.readline(max(0.0, end - time.monotonic()))
            if reply is None:
                self._break("no reply to %s within %g s" % (line, self.timeout_s))
            if parse_data_line(reply):
                self.data_lines.append(reply)
            elif got is None:
                if reply == "ID:" + a:
                    got = []
            elif reply == "ID:" + b:
                return got
            elif reply == "ID:" + a:
                self._break("fence %s twice" % a)
            else:
                got.append(reply)
                if len(got) > 4096:
                    self._break("reply to %s too long" % line)

    def request(self, line, prefix=None):
        """Send a command; returns the lines starting with ``prefix`` before the closing OK.
        Raises ProtocolError on NA (with the ``ERR:`` reason), LinkError when the reply is
        not exactly one well-formed answer."""
        got = self.exchange(line)
        return check_reply(line, got, prefix, self._break)

    # gen3
    def login(self, password):
        """True only on the board's OK to this very ``PW`` (between its fences); False on its
        refusal; LinkError (not False) when the link failed."""
        try:
            self.request("PW%s!" % password)
            return True
        except LinkError:
            raise
        except ProtocolError:
            return False

    def _one(self, lines, line):
        if len(lines) != 1:
            self._break("%d answer lines to %s, not 1" % (len(lines), line))
        return lines[0]

    def version(self):
        got = self.exchange("V@")
        if len(got) != 1 or not _is_version_line(got[0]):
            self._break("reply to V@ out of step: %r" % got[:4])
        if not version_ok(got[0]):
            raise ProtocolError("bad version checksum: %s" % got[0])
        return got[0]

    def stream(self, on=True):
        self.request("E!" if on else "D!")

    def keepalive(self):
        self.t.write(b"$")

    # extensions
    def check_password(self, password):
        """``PV``: True when the board takes ``password`` (its lockout counts a wrong one), the
        session's login unchanged; False on a refusal (wrong, or locked)."""
        try:
            self.request("PV%s!" % password)
            return True
        except LinkError:
            raise
        except ProtocolError:
            return False

    def lock_status(self):
        """Password lockout: {"connection_ms", "global_ms", "global_failures"} (no login)."""
        def parse(lines):
            parts = self._one(lines, "LK?").split()
            return {"connection_ms": int(parts[0]), "global_ms": int(parts[1]),
                    "global_failures": int(parts[2])}
        return self._parsed("LK?", "LK:", parse)

    def firmware(self):
        return self._one(self.request("F?", "F:"), "F?")

    def _parsed(self, line, prefix, parse):
        lines = self.request(line, prefix)
        try:
            return parse(lines)
        except (ValueError, IndexError):
            self._break("malformed reply to %s: %r" % (line, [x[:40] for x in lines[:3]]))

    def settings(self):
        def parse(lines):
            out = {}
            for item in lines:
                k, _, v = item.partition("=")
                out[k] = v if k == "name" else int(v)
            return out
        return self._parsed("S?", "S:", parse)

    def set_setting(self, name, value):
        self.request("S:%s=%s!" % (name, value))

    def change_password(self, old, new):
        self.request("PC:%s:%s!" % (old, new))

    def preset(self, chemistry):
        self.request("CH:%s!" % chemistry)

    def mode(self, mode):
        self.request("MO:%s!" % mode)

    def calibrate(self):
        self.request("ZC!")

    def alarms(self):
        def parse(lines):
            text = self._one(lines, "A?").split(" ")
            names = [] if len(text) < 3 or text[2] == "-" else text[2].split(",")
            return {"mask": int(text[0], 16), "break_position": int(text[1]), "names": names}
        return self._parsed("A?", "A:", parse)

    def status(self):
        return _kv(self._one(self.request("ST?", "ST:"), "ST?"))

    def cells(self):
        def parse(lines):
            out = []
            for item in lines:
                f = item.split(" ")
                out.append({"cell": int(f[0]), "mv": None if f[1] == "X" else int(f[1]),
                            "temp_dc": None if f[2] == "X" else int(f[2]), "status": int(f[3], 16)})
            return out
        return self._parsed("CL?", "CL:", parse)

    def events(self):
        """The End board's event log (EV?), oldest first."""
        def parse(lines):
            out = []
            for item in lines:
                f = item.split(" ")
                if len(f) < 9:
                    continue
                out.append({"n": int(f[0]), "uptime_s": int(f[1]), "kind": f[2], "what": f[3],
                            "min_mv": int(f[4]), "max_mv": int(f[5]), "current_ma": int(f[6]),
                            "soc_c": int(f[7]), "break_position": int(f[8])})
            return out
        return self._parsed("EV?", "EV:", parse)

    def rounds(self, max_rounds=None, keepalive_s=0.5):
        """Yield one dict per streamed round (keys = tags; 'C' is the list of cells, 'CS' the
        list of cellchain's per-cell status/age lines), sending the ``$`` keep-alive as gen3
        readers do. A round ends after its B line and the CS lines behind it: at the next
        round's first line, or when the line goes quiet. Streaming must be on."""
        cur = {"C": [], "CS": []}
        n = 0
        last_ka = 0.0
        while max_rounds is None or n < max_rounds:
            if self.data_lines:
                line = self.data_lines.pop(0)
            else:
                if time.monotonic() - last_ka >= keepalive_s:
                    self.keepalive()
                    last_ka = time.monotonic()
                line = self.readline(keepalive_s)
                if line is None:
                    if "B" in cur:
                        yield cur
                        n += 1
                        cur = {"C": [], "CS": []}
                    continue
            parsed = parse_data_line(line)
            if parsed is None:
                continue
            tag, values = parsed
            if "B" in cur and tag != "CS":
                yield cur
                n += 1
                cur = {"C": [], "CS": []}
                if max_rounds is not None and n >= max_rounds:
                    self.data_lines.insert(0, line)
                    return
            if tag in ("C", "CS"):
                cur[tag].append(values)
            else:
                cur[tag] = values


# ---- the socket server (virtual pack, tests) ---------------------------------------------------

class AppSocketServer:
    """Serves one AppProtocol to TCP clients on a local port; each client is one session.

    Never blocks on a client: answers and streamed lines go into a per-client output buffer
    that ``poll()`` sends without blocking. A client that does not read (its buffer passes
    ``max_pending`` bytes, about 30 rounds of a 255-cell pack) is disconnected, so one stuck
    client can never stall the virtual pack or the other clients."""

    MAX_PENDING = 128 * 1024

    def __init__(self, app, host="127.0.0.1", port=0, max_pending=MAX_PENDING, sndbuf=65536):
        self.app = app
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.clients = {}          # socket -> session slot
        self.pending = {}          # socket -> bytearray not yet sent
        self.max_pending = max_pending
        self.sndbuf = sndbuf       # kernel send buffer per client (bounded, like the rest)
        self.dropped_slow = 0      # clients disconnected because they did not read
        self._slow = set()
        self._stop = threading.Event()
        self._thread = None

    def _writer(self, sock):
        out = bytearray()
        self.pending[sock] = out

        def write(buf, n):
            if sock in self._slow:
                return
            if len(out) + n > self.max_pending:
                self._slow.add(sock)       # not reading: disconnected at the next poll
                return
            out.extend(bytes(buf[:n]))
        return write

    def _flush(self, sock):
        """Send what the socket takes now without blocking; False when it is gone."""
        out = self.pending.get(sock)
        if not out:
            return True
        try:
            n = sock.send(out)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        del out[:n]
        return True

    def _drop_client(self, sock):
        slot = self.clients.pop(sock, None)
        self.pending.pop(sock, None)
        self._slow.discard(sock)
        if slot is not None and self.app is not None:
            self.app.close(slot)
        try:
            sock.close()
        except OSError:
            pass

    def forget(self, sock):
        """Close a client without telling the protocol (its handler is gone: board restart)."""
        self.clients.pop(sock, None)
        self.pending.pop(sock, None)
        self._slow.discard(sock)
        try:
            sock.close()
        except OSError:
            pass

    def flush(self):
        """Send buffered output to every client (non-blocking); drop slow or gone clients."""
        for sock in list(self.clients):
            if sock in self._slow:
                self.dropped_slow += 1
                self._drop_client(sock)
            elif not self._flush(sock):
                self._drop_client(sock)

    def poll(self, timeout_s=0.0, lock=None):
        """Accept new clients, read what arrived and feed it to the protocol, send buffered
        output. ``lock`` (if given) is held while the protocol runs, not while waiting."""
        self.flush()
        socks = [self.listener] + list(self.clients)
        writers = [c for c in self.clients if self.pending.get(c)]
        try:
            readable, _, _ = select.select(socks, writers, [], timeout_s)
        except (OSError, ValueError):
            return
        if readable:
            if lock is None:
                self._handle(readable)
            else:
                with lock:
                    self._handle(readable)
        self.flush()

    def _handle(self, readable):
        for s in readable:
            if s is self.listener:
                conn, _ = self.listener.accept()
                conn.setblocking(False)
                try:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
                except OSError:
                    pass
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # a reply is several lines
                slot = self.app.open(self._writer(conn))
                if slot < 0:
                    self.pending.pop(conn, None)
                    try:
                        conn.send(b"ERR:too many connections\rNA\r")
                    except OSError:
                        pass
                    conn.close()
                else:
                    self.clients[conn] = slot
                continue
            if s not in self.clients:
                continue
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self._drop_client(s)
            else:
                self.app.feed(data, len(data), self.clients[s])

    def start_thread(self, cycle_s=1.0, on_cycle=None, lock=None):
        """Serve from a background thread: poll continuously, and every ``cycle_s`` call
        ``on_cycle()`` (if given) then ``app.tick`` and ``app.stream_round``. ``lock`` (a
        threading.Lock shared with the simulation) is held while the protocol runs."""
        lock = lock or threading.Lock()

        def run():
            last = time.monotonic()
            while not self._stop.is_set():
                self.poll(min(0.05, cycle_s), lock)
                now = time.monotonic()
                with lock:
                    if now - last >= cycle_s:
                        dt_ms = int((now - last) * 1000)
                        last = now
                        if on_cycle is not None:
                            on_cycle()
                        self.app.tick(dt_ms)
                        self.app.stream_round()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self._thread

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for s in list(self.clients):
            self._drop_client(s)
        self.listener.close()


def serve_socket(app, host="127.0.0.1", port=0):
    """An AppSocketServer for ``app`` (port 0 = any free port; see ``.port``)."""
    return AppSocketServer(app, host, port)
