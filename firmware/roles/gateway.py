"""Gateway board (ground potential, beside the inverter): reads the End board's extended
output through an isolator, runs the closed-loop charge law (core.chargelaw) and speaks an
inverter's CAN BMS protocol (core.canbms) through an MCP2515 (hal.mcp2515).

Every ``cycle`` (CYCLE_MS): the law takes the newest packet; once a second the whole set goes
out, 0x351 first, handed to the controller's three transmit buffers by ``poll`` as they free
up. When the pack data goes stale (no good packet for ``core.extin.STALE_MS``, the End board's
communication flag, N = 0) the gateway sends one stop set (CCL 0, DCL 0, CVL at the pack
voltage, the inverter's stop alarms) and then nothing: within STALE_MS + CYCLE_MS (1.6 s)
of the End board's last packet, so the inverter stops on the alarm at once, or on its own
timeout (Victron: 3 s without 0x351) if the stop set is lost. The relays stay the last line.
``safe()`` (the loop's supervisor, a crash) puts the controller in configuration mode: silence.
With ``hw.mqtt`` (hal/gw_net.py, board definition ``GW_MQTT_BROKER``) the cycle also publishes
the pack and the limits to MQTT with Home Assistant discovery (core/mqttgw.py), after the CAN
frames; a network error is counted and retried, never raised.
"""
from micropython import const

from core import canbms, chargelaw, extin, mqttgw
from hal.mcp2515 import CanError

CYCLE_MS = const(100)
SET_PERIOD_MS = const(1000)
_POLL_MAX = const(64)         # characters per poll() (bounded work per wake-up)
_NONE = const(-1)             # core.codec.NONE, FRAMING, GAP
_FRAMING = const(-2)
_GAP = const(-3)
_LED_MS = const(50)


class Gateway:
    def __init__(self, hw, board_def, profile=None, cfg=None):
        self.hw = hw
        self.rx = hw.extin_rx
        self.can = hw.can
        name = profile if profile is not None else getattr(board_def, "GW_PROFILE", "victron")
        p = canbms.profile_of(name)
        if p < 0:
            raise ValueError("unknown inverter profile %r (victron, pylon, pylon13, sma)" % (name,))
        self.profile_name = name
        self.bms = canbms.CanBms(p)
        self.dec = extin.ExtInDecoder()
        self.view = self.dec.view
        self.law = chargelaw.ChargeLaw(cfg if cfg is not None else chargelaw.LawConfig().apply(board_def))
        self.cycle_ms = CYCLE_MS
        self.sending = False          # the inverter is being told (fresh data)
        self._since_set_ms = SET_PERIOD_MS
        self._law_ms = 0
        self._next = self.bms.count   # next frame of the queued set (count: nothing queued)
        self._led_ms = 0
        self.sets = 0                 # sets started (saturates)
        self.stops = 0                # stop sets sent
        m = getattr(hw, "mqtt", None)
        self.mqtt = None if m is None else mqttgw.MqttPublisher(m, getattr(board_def, "GW_MQTT_NODE", "pack"))
        self.can_ok = False
        try:
            self.can.init()
            self.can_ok = True
        except (CanError, OSError) as e:   # a missing controller must not stop the reader
            print("gateway: CAN controller:", e)   # (check() retries it every cycle)
            self.can.stopped = False

    def poll(self):
        rx = self.rx
        dec = self.dec
        for _ in range(_POLL_MAX):
            c = rx.read()
            if c == _NONE:
                break
            if c == _GAP:
                dec.gap()
            elif c == _FRAMING:
                dec.error()
            else:
                dec.feed(c)
        self._pump()

    def tick(self, dt_ms):
        self.dec.tick(dt_ms)
        if self._led_ms > 0:
            self._led_ms -= dt_ms
            if self._led_ms <= 0:
                self.hw.set_led(False)

    def cycle(self, dt_ms):
        dec = self.dec
        law = self.law
        self._law_ms += dt_ms
        if dec.fresh():
            if dec.new:
                dec.new = False
                law.update(self.view, self._law_ms)
                self._law_ms = 0
            if not self.sending:
                self.can.abort()      # an old stop set still pending: not after fresh limits
                self.sending = True
                self._since_set_ms = SET_PERIOD_MS
            self._since_set_ms += dt_ms
            if self._since_set_ms >= SET_PERIOD_MS and law.cvl_mv > 0:
                self._since_set_ms = 0
                self.bms.fill(self.view, law, False)
                self._next = 0
                if self.sets < 0x3FFFFFFF:
                    self.sets += 1
                self.hw.set_led(True)
                self._led_ms = _LED_MS
        elif self.sending:
            self.sending = False
            law.stop(self.view)
            if law.cvl_mv > 0:
                self.bms.fill(self.view, law, True)
                self._next = 0
                self.stops += 1
            else:
                self._next = self.bms.count
            law.reset()
        self.can.check(dt_ms)
        self._pump()
        if self.mqtt is not None:       # after the CAN frames: the network never delays them
            self.mqtt.step(dt_ms, dec.fresh(), self.view, law)

    def _pump(self):
        k = self._next
        bms = self.bms
        n = bms.count
        can = self.can
        while k < n and can.send(bms.ids[k], bms.bufs[k], bms.dlc[k]):
            k += 1
        self._next = k

    def tx_busy(self):
        return self._next < self.bms.count

    def safe(self):
        self._next = self.bms.count
        self.sending = False
        self.hw.safe()

    def diag_counters(self):
        c = self.can
        return {"profile": self.profile_name, "packets": self.view.packets, "bad_packets": self.dec.bad,
                "fresh": self.dec.fresh(), "age_ms": self.dec.age_ms, "sets": self.sets, "stops": self.stops,
                "mode": chargelaw.MODE_NAMES[self.law.mode], "cvl_mv": self.law.cvl_mv, "ccl_da": self.law.ccl_da,
                "dcl_da": self.law.dcl_da, "can_sent": c.sent, "can_full": c.full, "tec": c.tec,
                "error_passive": c.error_passive, "bus_off": c.bus_off, "can_restarts": c.restarts}


def make(hw, board_def):
    return Gateway(hw, board_def)
