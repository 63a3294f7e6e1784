"""Bluetooth LE transport for the app protocol: Nordic UART Service on MicroPython's low-level
``bluetooth`` module (works on the Pico W and on generic ESP32/ESP32-C3 firmware, where aioble
is not frozen in).

    ble = hal.ble.make(board_def)          # hw.ble (hal.board.make_hw does this)
    ble.start(app, settings.name)          # app = core.app_protocol.AppProtocol
    loop: ble.poll()                       # often (every 10-50 ms): RX -> app.feed, TX -> notify

* Advertising: flags + the complete local name in the advertising packet, the NUS service UUID
  in the scan response (both together do not fit in 31 bytes). The name is the settings' name,
  or ``123\\SmartBMS`` with ``compat_123=True`` (or when the settings' name is set to it), so
  readers that discover a gen3 board by name (Home Assistant's BMS BLE) find this one.
* Up to ``max_conn`` centrals at once, each with its own protocol session; advertising restarts
  after every connect/disconnect while a slot is free.
* The IRQ handler only records connection changes and copies written bytes into the slot's
  preallocated RX ring (``gatts_read`` itself returns a new bytes object: the one allocation
  on the RX path, made by the stack's API). All protocol work happens in ``poll()``.
* TX: the protocol's writer copies each line into the slot's TX ring (a line that does not
  fit is dropped whole and counted); ``poll()`` sends it as notifications of at most the
  negotiated MTU - 3 bytes. A congested stack (OSError from gatts_notify) keeps the data for
  the next poll. The data round is pulled, not pushed: sessions are opened with ``pull=True``
  and ``poll()`` asks the protocol for the next lines of the round whenever the ring has room
  for one (``AppProtocol.pull_lines``), so a round larger than the ring (a 255-cell pack is
  about 3.3 kB) goes out whole, the summary lines included, at whatever rate the link drains.
"""
import bluetooth
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"   # central writes (board RX)
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"   # board notifies (board TX)
COMPAT_NAME = "123\\SmartBMS"

_DEFAULT_MTU = const(23)
_PREFERRED_MTU = const(247)
_MAX_PAYLOAD = const(244)          # _PREFERRED_MTU - 3
_ADV_INTERVAL_US = const(250000)
_MAX_NOTIFY_PER_POLL = const(48)   # per slot and poll: a 99-cell round at MTU 23 is ~120


def uuid_le(text):
    """The 16 bytes of a 128-bit UUID string, little-endian (advertising data order)."""
    hexs = text.replace("-", "")
    out = bytearray(16)
    for i in range(16):
        out[15 - i] = int(hexs[2 * i:2 * i + 2], 16)
    return bytes(out)


def adv_payload(name):
    """Advertising data: flags (LE general discoverable, no BR/EDR) and the local name, shortened
    (type 0x08) if it does not fit in 31 bytes."""
    raw = name.encode()
    room = 31 - 3 - 2
    kind = 0x09
    if len(raw) > room:
        raw = raw[:room]
        kind = 0x08
    return bytes((2, 0x01, 0x06, len(raw) + 1, kind)) + raw


def resp_payload():
    """Scan response: the complete list of 128-bit service UUIDs = the NUS service."""
    return bytes((17, 0x07)) + uuid_le(NUS_SERVICE)


def advertised_name(name, compat_123=False):
    return COMPAT_NAME if compat_123 else name


class _Ring:
    """Byte FIFO on a preallocated bytearray (single producer, single consumer)."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.size = size
        self.head = 0   # next write
        self.tail = 0   # next read
        self.dropped = 0

    def clear(self):
        self.head = 0
        self.tail = 0

    def used(self):
        return (self.head - self.tail) % self.size

    def free(self):
        return self.size - 1 - self.used()

    def put(self, data, n):
        """Append data[:n] only if all of it fits; returns True when stored."""
        if n > self.free():
            self.dropped += 1
            return False
        buf = self.buf
        h = self.head
        size = self.size
        for i in range(n):
            buf[h] = data[i]
            h += 1
            if h == size:
                h = 0
        self.head = h
        return True

    def get_into(self, out, limit):
        """Move up to ``limit`` bytes into ``out``; returns the count."""
        n = self.peek_into(out, limit)
        self.drop(n)
        return n

    def drop(self, n):
        self.tail = (self.tail + n) % self.size

    def peek_into(self, out, limit):
        """Like get_into without consuming."""
        buf = self.buf
        t = self.tail
        size = self.size
        n = 0
        while n < limit and t != self.head:
            out[n] = buf[t]
            n += 1
            t += 1
            if t == size:
                t = 0
        return n


class _SlotWriter:
    """The protocol's writer for one BLE slot: copies lines into that slot's TX ring."""

    def __init__(self, ring):
        self.ring = ring

    def write(self, buf, n):
        self.ring.put(buf, n)


class NusTransport:
    """Nordic UART Service peripheral serving an AppProtocol to several centrals."""

    def __init__(self, ble, max_conn=2, rx_size=256, tx_size=2048):
        self._ble = ble
        self.max_conn = max_conn
        self._conn = [-1] * max_conn          # conn_handle per slot (IRQ side)
        self._gen = [0] * max_conn            # bumped by the IRQ on connect/disconnect
        self._seen = [0] * max_conn           # generation poll() has handled
        self._session = [-1] * max_conn       # app session per slot (poll side)
        self._payload = [_DEFAULT_MTU - 3] * max_conn
        self._rx = [_Ring(rx_size) for _ in range(max_conn)]
        self._tx = [_Ring(tx_size) for _ in range(max_conn)]
        self._writers = [_SlotWriter(r).write for r in self._tx]   # bound once
        self._scratch = bytearray(_MAX_PAYLOAD)
        self._scratch_mv = memoryview(self._scratch)
        self._rx_handle = -1
        self._tx_handle = -1
        self._app = None
        self._adv = b""
        self._resp = b""
        self._advertising = False
        self.rejected = 0                     # connections refused (all slots busy)
        self.notify_errors = 0

    # ---- set-up --------------------------------------------------------------------------
    def start(self, app, name, compat_123=False):
        """Activate the radio, register the NUS service and advertise."""
        self._app = app
        ble = self._ble
        ble.active(True)
        adv_name = advertised_name(name, compat_123)
        try:
            ble.config(gap_name=adv_name)
        except (ValueError, OSError):
            pass  # some ports cannot rename the GAP device after activation
        try:
            ble.config(mtu=_PREFERRED_MTU)
        except (ValueError, OSError):
            pass
        ble.irq(self._irq)
        service = (
            bluetooth.UUID(NUS_SERVICE),
            (
                (bluetooth.UUID(NUS_TX), _FLAG_NOTIFY),
                (bluetooth.UUID(NUS_RX), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE),
            ),
        )
        ((self._tx_handle, self._rx_handle),) = ble.gatts_register_services((service,))
        ble.gatts_set_buffer(self._rx_handle, _MAX_PAYLOAD, False)
        self._adv = adv_payload(adv_name)
        self._resp = resp_payload()
        self._advertise()

    def stop(self):
        """Disconnect everyone and switch the radio off."""
        self.disconnect_all()
        try:
            self._ble.gap_advertise(None)
        except OSError:
            pass
        self._ble.active(False)
        self._advertising = False

    def disconnect_all(self):
        """Drop every central (button reset); they may reconnect and log in again."""
        for slot in range(self.max_conn):
            h = self._conn[slot]
            if h >= 0:
                try:
                    self._ble.gap_disconnect(h)
                except OSError:
                    pass

    def connections(self):
        n = 0
        for h in self._conn:
            if h >= 0:
                n += 1
        return n

    def _advertise(self):
        try:
            self._ble.gap_advertise(_ADV_INTERVAL_US, adv_data=self._adv, resp_data=self._resp,
                                    connectable=True)
            self._advertising = True
        except OSError:
            self._advertising = False

    # ---- IRQ: record and queue only ------------------------------------------------------
    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            handle = data[0]
            for slot in range(self.max_conn):
                if self._conn[slot] < 0:
                    self._conn[slot] = handle
                    self._payload[slot] = _DEFAULT_MTU - 3
                    self._rx[slot].clear()
                    self._tx[slot].clear()
                    self._gen[slot] += 1
                    return
            self.rejected += 1
            self._ble.gap_disconnect(handle)
        elif event == _IRQ_CENTRAL_DISCONNECT:
            slot = self._slot(data[0])
            if slot >= 0:
                self._conn[slot] = -1
                self._gen[slot] += 1
        elif event == _IRQ_GATTS_WRITE:
            slot = self._slot(data[0])
            if slot >= 0 and data[1] == self._rx_handle:
                value = self._ble.gatts_read(self._rx_handle)
                self._rx[slot].put(value, len(value))
        elif event == _IRQ_MTU_EXCHANGED:
            slot = self._slot(data[0])
            if slot >= 0:
                p = data[1] - 3
                self._payload[slot] = p if p < _MAX_PAYLOAD else _MAX_PAYLOAD

    def _slot(self, handle):
        for slot in range(self.max_conn):
            if self._conn[slot] == handle:
                return slot
        return -1

    # ---- main loop -----------------------------------------------------------------------
    def poll(self):
        """Handle connection changes, feed received bytes to the protocol, send queued TX."""
        app = self._app
        if app is None:
            return
        changed = False
        for slot in range(self.max_conn):
            gen = self._gen[slot]
            if gen != self._seen[slot]:
                self._seen[slot] = gen
                changed = True
                if self._session[slot] >= 0:
                    app.close(self._session[slot])
                    self._session[slot] = -1
                if self._conn[slot] >= 0:
                    self._session[slot] = app.open(self._writers[slot], True)
            session = self._session[slot]
            if session < 0:
                continue
            rx = self._rx[slot]
            while rx.used():
                n = rx.get_into(self._scratch, _MAX_PAYLOAD)
                app.feed(self._scratch, n, session)
            self._send(app, slot, session)
        if changed and self.connections() < self.max_conn:
            self._advertise()

    def _send(self, app, slot, session):
        tx = self._tx[slot]
        handle = self._conn[slot]
        if handle < 0:
            tx.clear()
            return
        limit = self._payload[slot]
        for _ in range(_MAX_NOTIFY_PER_POLL):
            if tx.used() < limit:
                app.pull_lines(session, tx.free())   # the next whole lines of the round
            n = tx.peek_into(self._scratch, limit)
            if n == 0:
                return
            data = self._scratch_mv if n == _MAX_PAYLOAD else self._scratch_mv[:n]
            try:
                self._ble.gatts_notify(handle, self._tx_handle, data)
            except OSError:
                self.notify_errors += 1
                return   # stack congested: retry on the next poll
            tx.drop(n)


def make(board_def, ble=None):
    """hw.ble for an End board with BLE (called by hal.board.make_hw). Does not switch the
    radio on: the End role calls start(app, name, compat_123) once its protocol exists."""
    if ble is None:
        ble = bluetooth.BLE()
    max_conn = getattr(board_def, "BLE_MAX_CONN", 2)
    return NusTransport(ble, max_conn=max_conn)
