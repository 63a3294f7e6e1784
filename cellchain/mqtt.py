"""``cellchain mqtt``: the pack on an MQTT broker, with Home Assistant discovery.

    .venv/bin/cellchain --socket 127.0.0.1:8123 --password 135790 mqtt --broker 127.0.0.1:1883   # virtual pack
    .venv/bin/cellchain --ble AA:BB:CC:DD:EE:FF --password 135790 mqtt --broker 192.168.1.10     # an End board
    .venv/bin/cellchain --serial /dev/ttyACM0 --password 135790 mqtt --broker mqtt.local:1883 --username ha

It reads the End board over the app protocol (``cellchain.pack_link.PackLink``: ``ST?``,
``CL?``, ``A?`` once per ``--interval``) and publishes (docs/gateway.md "MQTT"):

  <base>/<node>/availability  online | offline (retained; the broker's last will is offline,
                              and it goes offline as soon as a read fails or the End board
                              reports no cell communication: stale data is never shown as live)
  <base>/<node>/state         JSON: voltage, current, power, soc, soh, energy_in / energy_out
                              (kWh, total_increasing: the Energy dashboard), charge / load relay,
                              mode, alarms, lowest / highest cell, spread, cycles
  <base>/<node>/cells         JSON: every cell's voltage and temperature (the attributes of
                              one entity: 255 cells are one entity, not 510)
  <base>/<node>/event         JSON {"event_type": "alarm" | "cleared", "alarm": name}: one
                              message per alarm raised or cleared (an automation can notify)
  <discovery>/<component>/<node>/<object>/config   retained discovery, one device

The bridge writes nothing to the board: every control stays with the End board's own rules
(the app and the CLI, authenticated); nothing here can close a relay the brain opened.
The payloads are plain dicts built by ``Bridge`` (no broker needed to test them);
``run(args)`` connects them to paho-mqtt.
"""
import json
import time

ORIGIN = {"name": "cellchain", "support_url": "https://github.com/cellchain/cellchain"}
_STATUS_BITS = (("charge", "charge_relay"), ("load", "load_relay"))


def _sensor(key, name, unit=None, device_class=None, state_class=None, icon=None, category=None, precision=None):
    d = {"key": key, "name": name}
    if unit:
        d["unit_of_measurement"] = unit
    if device_class:
        d["device_class"] = device_class
    if state_class:
        d["state_class"] = state_class
    if icon:
        d["icon"] = icon
    if category:
        d["entity_category"] = category
    if precision is not None:
        d["suggested_display_precision"] = precision
    return d


SENSORS = (
    _sensor("voltage", "Pack voltage", "V", "voltage", "measurement", precision=2),
    _sensor("current", "Current", "A", "current", "measurement", precision=1),
    _sensor("power", "Power", "W", "power", "measurement", precision=0),
    _sensor("soc", "State of charge", "%", "battery", "measurement", precision=1),
    _sensor("soh", "State of health", "%", None, "measurement", "mdi:battery-heart-variant"),
    _sensor("energy_in", "Energy charged", "kWh", "energy", "total_increasing", precision=2),
    _sensor("energy_out", "Energy discharged", "kWh", "energy", "total_increasing", precision=2),
    _sensor("min_cell", "Lowest cell", "V", "voltage", "measurement", precision=3),
    _sensor("max_cell", "Highest cell", "V", "voltage", "measurement", precision=3),
    _sensor("spread", "Cell spread", "mV", "voltage", "measurement", precision=0),
    _sensor("cycles", "Charge cycles", None, None, "total_increasing", "mdi:battery-sync", "diagnostic"),
    _sensor("mode", "Mode", None, None, None, "mdi:cog", "diagnostic"),
    _sensor("alarms", "Alarms", None, None, None, "mdi:alert"),
)
BINARY = (
    ("charge_relay", "Charge allowed", "power"),
    ("load_relay", "Discharge allowed", "power"),
    ("problem", "Alarm", "problem"),
)
EVENT_TYPES = ("alarm", "cleared")
MODES = {"0": "normal", "1": "critical"}


class Bridge:
    """Pack snapshots (``PackLink.snapshot()``) -> (topic, payload text, retain) messages."""

    def __init__(self, node_id="pack", base="cellchain", discovery_prefix="homeassistant", name="cellchain pack",
                 sw_version=None):
        self.node = node_id
        self.base = "%s/%s" % (base, node_id)
        self.discovery_prefix = discovery_prefix
        self.name = name
        self.sw_version = sw_version
        self.avail_topic = self.base + "/availability"
        self.state_topic = self.base + "/state"
        self.cells_topic = self.base + "/cells"
        self.event_topic = self.base + "/event"
        self.online = None
        self.alarms = None          # the last alarm names seen (None: none seen yet)

    def device(self):
        d = {"identifiers": ["cellchain_%s" % self.node], "name": self.name, "manufacturer": "cellchain",
             "model": "cellchain BMS (End board)"}
        if self.sw_version:
            d["sw_version"] = self.sw_version
        return d

    def _common(self, obj, name):
        return {"name": name, "unique_id": "cellchain_%s_%s" % (self.node, obj),
                "availability_topic": self.avail_topic, "device": self.device(), "origin": ORIGIN}

    def discovery(self):
        """[(topic, payload dict)] for every entity (publish retained)."""
        out = []
        p = self.discovery_prefix
        for s in SENSORS:
            c = self._common(s["key"], s["name"])
            c["state_topic"] = self.state_topic
            c["value_template"] = "{{ value_json.%s }}" % s["key"]
            for k in ("unit_of_measurement", "device_class", "state_class", "icon", "entity_category",
                      "suggested_display_precision"):
                if k in s:
                    c[k] = s[k]
            if s["key"] == "spread":
                c["json_attributes_topic"] = self.cells_topic     # every cell: attributes of one entity
            out.append(("%s/sensor/%s/%s/config" % (p, self.node, s["key"]), c))
        for key, name, dc in BINARY:
            c = self._common(key, name)
            c.update({"state_topic": self.state_topic, "value_template": "{{ value_json.%s }}" % key,
                      "payload_on": "ON", "payload_off": "OFF", "device_class": dc})
            out.append(("%s/binary_sensor/%s/%s/config" % (p, self.node, key), c))
        c = self._common("alarm_event", "Alarm event")
        c.update({"state_topic": self.event_topic, "event_types": list(EVENT_TYPES)})
        out.append(("%s/event/%s/alarm_event/config" % (p, self.node), c))
        return out

    @staticmethod
    def state(snap):
        """The state JSON (dict) of one snapshot; None when it carries no live pack data."""
        st = snap["status"]
        if not st.get("comm") or not st.get("cells"):
            return None
        mv = st.get("pack_mv")
        ma = st.get("current_ma")
        names = snap.get("alarms", {}).get("names", []) if isinstance(snap.get("alarms"), dict) else []
        lo, hi = st.get("min_mv"), st.get("max_mv")
        soc = st.get("soc_c")
        return {
            "voltage": None if mv is None else round(mv / 1000.0, 3),
            "current": None if ma is None else round(ma / 1000.0, 2),
            "power": None if mv is None or ma is None else round(mv * ma / 1e6, 1),
            "soc": None if soc is None else round(soc / 100.0, 1),
            "soh": st.get("soh"),
            "energy_in": None if st.get("in_wh") is None else round(st["in_wh"] / 1000.0, 3),
            "energy_out": None if st.get("out_wh") is None else round(st["out_wh"] / 1000.0, 3),
            "min_cell": None if lo is None else lo / 1000.0,
            "max_cell": None if hi is None else hi / 1000.0,
            "spread": None if lo is None or hi is None else hi - lo,
            "cycles": st.get("cycles"),
            "mode": MODES.get(str(snap.get("mode")), "unknown"),
            "alarms": ", ".join(names) if names else "none",
            "charge_relay": "ON" if st.get("charge") else "OFF",
            "load_relay": "ON" if st.get("load") else "OFF",
            "problem": "ON" if any(n != "soc_not_calibrated" for n in names) else "OFF",
            "cells": st.get("cells"),
        }

    @staticmethod
    def cells(snap):
        out = {}
        for c in snap["cells"]:
            n = c.get("cell")
            out["cell_%d_v" % n] = None if c["mv"] is None else c["mv"] / 1000.0
            out["cell_%d_c" % n] = None if c["temp_dc"] is None else c["temp_dc"] / 10.0
        return out

    def messages(self, snap):
        """[(topic, text, retain)] for one read: snap = a snapshot, or None when the read failed."""
        out = []
        state = None if snap is None else self.state(snap)
        online = state is not None
        if online != self.online:
            self.online = online
            out.append((self.avail_topic, "online" if online else "offline", True))
        if not online:
            return out
        out.append((self.state_topic, json.dumps(state, separators=(",", ":")), False))
        out.append((self.cells_topic, json.dumps(self.cells(snap), separators=(",", ":")), False))
        names = set(snap.get("alarms", {}).get("names", []))
        if self.alarms is not None:
            for n in sorted(names - self.alarms):
                out.append((self.event_topic, json.dumps({"event_type": "alarm", "alarm": n}), False))
            for n in sorted(self.alarms - names):
                out.append((self.event_topic, json.dumps({"event_type": "cleared", "alarm": n}), False))
        self.alarms = names
        return out


def _host_port(text, default=1883):
    host, _, port = text.rpartition(":")
    if not host:
        return text, default
    return host, int(port)


def run(link, args, stop=None):
    """Bridge ``link`` (a logged-in PackLink) to the broker until Ctrl-C (or ``stop()`` True)."""
    import paho.mqtt.client as paho

    bridge = Bridge(args.node_id, args.base_topic, args.discovery_prefix, args.name,
                    sw_version=getattr(args, "sw_version", None))
    host, port = _host_port(args.broker)
    cl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cellchain-%s" % args.node_id)
    if args.username:
        cl.username_pw_set(args.username, args.mqtt_password)
    cl.will_set(bridge.avail_topic, "offline", qos=1, retain=True)
    cl.connect(host, port, keepalive=30)
    cl.loop_start()
    try:
        for topic, payload in bridge.discovery():
            cl.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)
        reads = 0
        mode = None
        while stop is None or not stop():
            t0 = time.monotonic()
            try:
                if reads % 60 == 0:
                    mode = link.settings().get("mode")       # the mode is a setting, not in ST?
                reads += 1
                snap = link.snapshot()
                snap["mode"] = mode
            except Exception as e:  # noqa: BLE001 - a lost link is "offline", never a crash
                print("cellchain mqtt: read failed: %s" % e)
                snap = None
            for topic, text, retain in bridge.messages(snap):
                cl.publish(topic, text, qos=1 if retain else 0, retain=retain)
            time.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    except KeyboardInterrupt:
        pass
    finally:
        cl.publish(bridge.avail_topic, "offline", qos=1, retain=True).wait_for_publish(2.0)
        cl.loop_stop()
        cl.disconnect()
    return 0
