"""MQTT from the gateway board: the pack and the gateway's limits for Home Assistant, with the
same topics and discovery as the host bridge (``cellchain mqtt``, docs/gateway.md "MQTT").

``MqttPublisher(client, node)`` drives an umqtt.simple-style client (micropython-lib:
``set_last_will(topic, msg, retain, qos)``, ``connect()``, ``publish(topic, msg, retain)``,
``disconnect()``), injected by hal/gateway_hw.py. ``step(dt_ms, dec, law)`` is called by the
gateway's cycle: every ``period_ms`` (and at once when the data goes stale or fresh again) it
publishes availability (``online`` only with fresh pack data: the last will and stale data are
``offline``) and the state JSON; discovery goes out retained after every (re)connect. A network
error drops the connection and is retried after ``retry_ms``; it is counted, never raised: MQTT
runs beside the CAN path, never inside it. Publishing allocates (JSON text) once per period,
outside the per-frame byte path.
"""
import json

from micropython import const

from core import chargelaw, extin

PERIOD_MS = const(5000)
RETRY_MS = const(30000)

# (object id, name, unit, device class, state class)
_SENSORS = (
    ("voltage", "Pack voltage", "V", "voltage", "measurement"),
    ("current", "Current", "A", "current", "measurement"),
    ("power", "Power", "W", "power", "measurement"),
    ("soc", "State of charge", "%", "battery", "measurement"),
    ("soh", "State of health", "%", None, "measurement"),
    ("energy_in", "Energy charged", "kWh", "energy", "total_increasing"),
    ("energy_out", "Energy discharged", "kWh", "energy", "total_increasing"),
    ("min_cell", "Lowest cell", "V", "voltage", "measurement"),
    ("max_cell", "Highest cell", "V", "voltage", "measurement"),
    ("spread", "Cell spread", "mV", "voltage", "measurement"),
    ("cvl", "Charge voltage limit", "V", "voltage", "measurement"),
    ("ccl", "Charge current limit", "A", "current", "measurement"),
    ("dcl", "Discharge current limit", "A", "current", "measurement"),
    ("law", "Charge stage", None, None, None),
)
_BINARY = (("charge_relay", "Charge allowed", "power"), ("load_relay", "Discharge allowed", "power"),
           ("problem", "Alarm", "problem"))


class MqttPublisher:
    def __init__(self, client, node="pack", base="cellchain", prefix="homeassistant", period_ms=PERIOD_MS):
        self.client = client
        self.node = node
        self.topic = base + "/" + node
        self.prefix = prefix
        self.period_ms = period_ms
        self.connected = False
        self.online = None
        self.errors = 0
        self.published = 0
        self._wait_ms = 0
        self._since_ms = period_ms
        client.set_last_will(self.topic + "/availability", "offline", True, 1)

    def discovery(self):
        """[(topic, payload dict)] for every entity (the host bridge's, plus the gateway's limits)."""
        dev = {"identifiers": ["cellchain_" + self.node], "name": "cellchain " + self.node,
               "manufacturer": "cellchain", "model": "cellchain gateway"}
        out = []
        for obj, name, unit, dc, sc in _SENSORS:
            c = {"name": name, "unique_id": "cellchain_%s_%s" % (self.node, obj), "device": dev,
                 "availability_topic": self.topic + "/availability", "state_topic": self.topic + "/state",
                 "value_template": "{{ value_json.%s }}" % obj}
            if unit:
                c["unit_of_measurement"] = unit
            if dc:
                c["device_class"] = dc
            if sc:
                c["state_class"] = sc
            out.append(("%s/sensor/%s/%s/config" % (self.prefix, self.node, obj), c))
        for obj, name, dc in _BINARY:
            out.append(("%s/binary_sensor/%s/%s/config" % (self.prefix, self.node, obj),
                        {"name": name, "unique_id": "cellchain_%s_%s" % (self.node, obj), "device": dev,
                         "availability_topic": self.topic + "/availability", "state_topic": self.topic + "/state",
                         "value_template": "{{ value_json.%s }}" % obj, "payload_on": "ON", "payload_off": "OFF",
                         "device_class": dc}))
        return out

    @staticmethod
    def state(v, law):
        mv = v.pack_mv
        ma = v.current_ma if v.current_ok else 0
        f = v.flags
        return {
            "voltage": mv / 1000, "current": ma / 1000, "power": (mv // 10) * (ma // 10) // 10000,
            "soc": v.soc_pct, "soh": v.soh_pct, "energy_in": v.in_total_kwh, "energy_out": v.out_total_kwh,
            "min_cell": v.min_mv / 1000, "max_cell": v.max_mv / 1000, "spread": v.max_mv - v.min_mv,
            "cvl": law.cvl_mv / 1000, "ccl": law.ccl_da / 10, "dcl": law.dcl_da / 10,
            "law": chargelaw.MODE_NAMES[law.mode],
            "charge_relay": "ON" if f & extin.F_CHARGE_ALLOWED else "OFF",
            "load_relay": "ON" if f & extin.F_LOAD_ALLOWED else "OFF",
            "problem": "ON" if f & (extin.F_OVER_VOLTAGE | extin.F_UNDER_VOLTAGE | extin.F_OVER_TEMP
                                    | extin.F_UNDER_TEMP | extin.F_COMM_ERROR) else "OFF",
            "cells": v.cells,
        }

    def step(self, dt_ms, fresh, v, law):
        """Returns the number of messages published this call (0 while waiting or offline)."""
        if self._wait_ms > 0:
            self._wait_ms -= dt_ms
            return 0
        self._since_ms += dt_ms
        if fresh == self.online and self._since_ms < self.period_ms:
            return 0
        self._since_ms = 0
        n = 0
        c = self.client
        try:
            if not self.connected:
                c.connect()
                self.connected = True
                self.online = None
                for topic, payload in self.discovery():
                    c.publish(topic, json.dumps(payload), True)
                    n += 1
            if fresh != self.online:
                c.publish(self.topic + "/availability", "online" if fresh else "offline", True)
                self.online = fresh
                n += 1
            if fresh:
                c.publish(self.topic + "/state", json.dumps(self.state(v, law)), False)
                n += 1
        except OSError:
            self.errors += 1
            self.connected = False
            self._wait_ms = RETRY_MS
            try:
                c.disconnect()
            except OSError:
                pass
        self.published += n
        return n
