"""MQTT from the gateway (both interpreters): discovery after connect, availability online
only with fresh data, state every period, a network error counted and retried, never raised."""
import json

from core import chargelaw, extin, mqttgw
from gwpack import Pack, feed


class FakeClient:
    """umqtt.simple's MQTTClient as the publisher uses it."""

    def __init__(self):
        self.msgs = []
        self.will = None
        self.connects = 0
        self.fail = False

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain)

    def connect(self):
        if self.fail:
            raise OSError(113)
        self.connects += 1

    def publish(self, topic, msg, retain=False, qos=0):
        if self.fail:
            raise OSError(104)
        self.msgs.append((topic, msg, retain))

    def disconnect(self):
        pass


def setup():
    p = Pack(16)
    dec = extin.ExtInDecoder()
    feed(dec, p.packet())
    law = chargelaw.ChargeLaw()
    law.update(dec.view, 1000)
    c = FakeClient()
    return p, dec, law, c, mqttgw.MqttPublisher(c, "gw1")


def test_discovery_then_online_and_state():
    p, dec, law, c, pub = setup()
    assert c.will == ("cellchain/gw1/availability", "offline", True)
    n = pub.step(100, dec.fresh(), dec.view, law)
    disc = [m for m in c.msgs if m[0].startswith("homeassistant/")]
    assert len(disc) == 17 and all(m[2] for m in disc)
    assert ("cellchain/gw1/availability", "online", True) in c.msgs
    st = json.loads(c.msgs[-1][1])
    assert c.msgs[-1][0] == "cellchain/gw1/state"
    assert st["cvl"] == law.cvl_mv / 1000 and st["charge_relay"] == "ON" and st["cells"] == 16
    assert n == len(c.msgs)
    assert pub.step(1000, True, dec.view, law) == 0          # within the period: nothing
    assert pub.step(4000, True, dec.view, law) == 1          # the period: state only


def test_stale_goes_offline_at_once():
    p, dec, law, c, pub = setup()
    pub.step(100, True, dec.view, law)
    c.msgs.clear()
    assert pub.step(100, False, dec.view, law) == 1
    assert c.msgs == [("cellchain/gw1/availability", "offline", True)]


def test_network_error_is_counted_and_retried():
    p, dec, law, c, pub = setup()
    c.fail = True
    assert pub.step(100, True, dec.view, law) == 0
    assert pub.errors == 1 and not pub.connected
    c.fail = False
    assert pub.step(1000, True, dec.view, law) == 0          # waits RETRY_MS
    pub.step(mqttgw.RETRY_MS, True, dec.view, law)
    assert pub.step(100, True, dec.view, law) > 0 and pub.connected
