"""The gateway board in the virtual pack: the real ``roles/gateway.py`` reading the End
board's extended-output bytes, its CAN frames going to a virtual inverter (sim/inverter.py)
that then runs the charger and the loads (``python -m sim demo --gateway victron|pylon``,
``make sim GATEWAY=victron``).

Each simulation step (1 s) the End's new extended-output bytes reach the gateway, then the
gateway runs ten 100 ms wake-ups (poll, tick, cycle, as hal/loop.py drives it) with the
inverter ticking at each. The charger holds the pack at the inverter's CVL within its current
limit; the loads get at most DCL; both still need the End's relays (the last line).
"""
from sim import power
from sim.inverter import Inverter, kind_for_profile

_SUB_MS = 100
_GAP = -3
_NONE = -1


def gateway_text(rec):
    """The gateway's limits in a progress line ('' without a gateway)."""
    g = rec.get("gw")
    if not g:
        return ""
    return "  | CVL %.1f V CCL %.0f A DCL %.0f A %s, inverter %s" % (g["cvl_v"], g["ccl_a"], g["dcl_a"], g["mode"],
                                                                   g["inverter"])


class SimCan:
    """The gateway's CAN controller in the virtual pack: frames go straight to the inverter.
    Same interface as hal.mcp2515.MCP2515."""

    def __init__(self, bus):
        self.bus = bus
        self.running = False
        self.stopped = True
        self.sent = self.full = self.tec = self.error_passive = self.bus_off = self.restarts = 0

    def init(self):
        self.running = True
        self.stopped = False

    def send(self, can_id, buf, dlc):
        if not self.running:
            return False
        self.bus(can_id, bytes(buf[:dlc]))
        self.sent += 1
        return True

    def check(self, dt_ms):
        return 0

    def abort(self):
        pass

    def stop(self):
        self.running = False
        self.stopped = True


class SimRx:
    def __init__(self):
        self.q = []
        self.i = 0

    def push(self, data):
        self.q.extend(data)
        self.q.append(_GAP)

    def read(self):
        if self.i < len(self.q):
            c = self.q[self.i]
            self.i += 1
            if self.i == len(self.q):
                self.q = []
                self.i = 0
            return c
        return _NONE


class GatewayHw:
    def __init__(self, bus):
        self.can = SimCan(bus)
        self.extin_rx = SimRx()
        self.led = False

    def set_led(self, on):
        self.led = bool(on)

    def safe(self):
        self.led = False
        self.can.stop()


class _BoardDef:
    NAME = "virtual_gateway"


class InverterCharger(power.Charger):
    """The charger as the inverter runs it: CV at CVL, current within the inverter's limit."""

    def __init__(self, base, inverter):
        power.Charger.__init__(self, base.bulk_v, base.max_a, base.profile, base.schedule)
        self.sunrise, self.sunset, self.day_s = base.sunrise, base.sunset, base.day_s
        self.inverter = inverter
        self._bulk_v = base.bulk_v

    @property
    def bulk_v(self):
        cv, _ = self.inverter.charge()
        return self._bulk_v if cv is None else cv

    @bulk_v.setter
    def bulk_v(self, v):
        self._bulk_v = float(v)

    def available_a(self, t_s):
        a = power.Charger.available_a(self, t_s)
        cv, limit = self.inverter.charge()
        if cv is None:
            return 0.0
        return a if limit is None else min(a, limit)


class InverterLoad(power.Load):
    """The loads behind the inverter: at most DCL, nothing while the inverter is stopped."""

    def __init__(self, base, inverter):
        self.__dict__.update(base.__dict__)
        self.inverter = inverter

    def demand_a(self, t_s):
        return min(power.Load.demand_a(self, t_s), self.inverter.discharge_max_a())


class VirtualGateway:
    def __init__(self, sim, profile="victron", feed_in=True):
        from roles import gateway
        self.sim = sim
        self.profile = profile
        self.inverter = Inverter(kind_for_profile(profile), feed_in=feed_in)
        self.t_ms = sim.t_ms
        self.hw = GatewayHw(self._bus)
        self.role = gateway.Gateway(self.hw, _BoardDef, profile=profile)
        self._read = 0
        self._capture = None
        sim.charger = InverterCharger(sim.charger, self.inverter)
        sim.load = InverterLoad(sim.load, self.inverter)
        sim.cycle_hooks.append(self.on_cycle)
        self.top_over_target_mv = 0      # the highest cell above the law's target, worst case
        self.stop_after_end_death_s = None
        self._end_dead_t = None
        self._last_packet_t = 0.0

    def _bus(self, fid, data):
        self.inverter.receive(fid, data, self.t_ms / 1000.0)

    def on_cycle(self, dt_ms):
        sim = self.sim
        cap = sim.end.extout_tx
        if cap is not self._capture:
            self._capture = cap
            self._read = 0
        data = cap.data
        role = self.role
        t0 = sim.t_ms - dt_ms
        if len(data) > self._read:
            self.hw.extin_rx.push(data[self._read:])
            self._read = len(data)
            self._last_packet_t = (t0 + _SUB_MS) / 1000.0    # read at the first wake-up of the step
        end_on = sim.fw.powered()[-1]
        if not end_on and self._end_dead_t is None:
            self._end_dead_t = t0 / 1000.0
        elif end_on:
            self._end_dead_t = None
        for k in range(max(1, dt_ms // _SUB_MS)):
            self.t_ms = t0 + (k + 1) * _SUB_MS
            role.poll()
            role.tick(_SUB_MS)
            role.cycle(_SUB_MS)
            role.poll()
            was = self.inverter.running
            self.inverter.tick(self.t_ms / 1000.0)
            if was and not self.inverter.running and self._end_dead_t is not None \
                    and self.stop_after_end_death_s is None:
                # from the End's last packet: the worst case of its death (right after a packet)
                self.stop_after_end_death_s = round(self.t_ms / 1000.0 - self._last_packet_t, 3)
        law = role.law
        v = role.view
        if role.dec.fresh() and law.target_mv:
            over = v.max_mv - law.target_mv
            if over > self.top_over_target_mv:
                self.top_over_target_mv = over

    def record(self):
        law = self.role.law
        inv = self.inverter
        from sim import fw
        names = fw.core("chargelaw").MODE_NAMES
        return {"profile": self.profile, "fresh": bool(self.role.dec.fresh()),
                "cvl_v": law.cvl_mv / 1000.0, "ccl_a": law.ccl_da / 10.0, "dcl_a": law.dcl_da / 10.0,
                "target_v": law.target_mv / 1000.0, "mode": names[law.mode],
                "inverter": inv.why, "inverter_running": inv.running}
