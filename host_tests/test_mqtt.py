"""``cellchain mqtt``: discovery and state from the virtual pack reach a real mosquitto broker
(Debian's, started here on a free port in tmp_path), every discovery payload validates against
Home Assistant's MQTT discovery schema (host_tests/ha_discovery.py), alarms come as events, and
availability goes offline when the End board stops answering."""
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from cellchain import client as cclient
from cellchain import mqtt, pack_link
from ha_discovery import validate
from simlink import step_beside
from sim import engine, scenario
from sim.app_server import serve

paho = pytest.importorskip("paho.mqtt.client")

SNAP = {"t": 0, "status": {"cells": 4, "pack_mv": 13280, "current_ma": -5200, "soc_c": 6550, "comm": 1,
                           "charge": 1, "load": 1, "soh": 98, "cycles": 12, "in_wh": 152300, "out_wh": 140100,
                           "min_mv": 3300, "max_mv": 3350},
        "cells": [{"cell": i + 1, "mv": 3300 + 10 * i, "temp_dc": 250, "status": 0} for i in range(4)],
        "alarms": {"mask": 0, "break_position": 0, "names": []}, "mode": 0}


def test_discovery_payloads_validate_against_home_assistants_schema():
    b = mqtt.Bridge("pack1", sw_version="1.2.3")
    msgs = b.discovery()
    assert len(msgs) == len(mqtt.SENSORS) + len(mqtt.BINARY) + 1
    ids = set()
    for topic, payload in msgs:
        cfg = validate(topic, json.loads(json.dumps(payload)))
        ids.add(cfg["unique_id"])
    assert len(ids) == len(msgs)                       # one unique id per entity, one device
    energy = [p for t, p in msgs if p.get("device_class") == "energy"]
    assert len(energy) == 2 and all(p["state_class"] == "total_increasing" for p in energy)


def test_state_events_and_availability_messages():
    b = mqtt.Bridge("pack1")
    out = b.messages(SNAP)
    assert out[0] == (b.avail_topic, "online", True)
    state = json.loads(out[1][1])
    assert state["voltage"] == 13.28 and state["current"] == -5.2 and state["power"] == -69.1
    assert state["soc"] == 65.5 and state["energy_in"] == 152.3 and state["charge_relay"] == "ON"
    assert state["mode"] == "normal" and state["spread"] == 50 and state["problem"] == "OFF"
    cells = json.loads(out[2][1])
    assert cells["cell_4_v"] == 3.33 and cells["cell_1_c"] == 25.0
    hot = json.loads(json.dumps(SNAP))
    hot["alarms"]["names"] = ["over_temp"]
    ev = [json.loads(t) for topic, t, r in b.messages(hot) if topic == b.event_topic]
    assert ev == [{"event_type": "alarm", "alarm": "over_temp"}]
    ev = [json.loads(t) for topic, t, r in b.messages(SNAP) if topic == b.event_topic]
    assert ev == [{"event_type": "cleared", "alarm": "over_temp"}]
    stale = json.loads(json.dumps(SNAP))
    stale["status"]["comm"] = 0
    assert b.messages(stale) == [(b.avail_topic, "offline", True)]   # no cell data: offline, no state
    assert b.messages(None) == []                                     # still offline
    assert b.messages(SNAP)[0] == (b.avail_topic, "online", True)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def broker(tmp_path):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if shutil.os.path.exists("/usr/sbin/mosquitto") else None)
    if exe is None:
        pytest.skip("Debian's mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    p = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("mosquitto did not start")
        yield port
    finally:
        p.terminate()
        p.wait(10)


class Args:
    node_id = "vpack"
    base_topic = "cellchain"
    discovery_prefix = "homeassistant"
    name = "virtual pack"
    username = None
    mqtt_password = None
    interval = 0.2
    sw_version = None


def test_virtual_pack_to_a_real_mosquitto(broker):
    got = {}
    lock = threading.Lock()

    def on_message(cl, userdata, msg):
        with lock:
            got.setdefault(msg.topic, []).append(msg.payload.decode())
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker)
    sub.subscribe("#", qos=1)
    sub.loop_start()

    sim = engine.Simulation(scenario.load("comm_loss"))
    ap = serve(sim, 0)
    done = threading.Event()
    out = {}
    for _ in range(5):
        sim.step()

    def bridge():
        try:
            c = cclient.Client(cclient.SocketTransport("127.0.0.1", ap.port), timeout_s=20.0)
            link = pack_link.PackLink(c)
            assert link.login("1234")
            args = Args()
            args.broker = "127.0.0.1:%d" % broker
            out["rc"] = mqtt.run(link, args, stop=done.is_set)
        except Exception as e:  # surfaced below
            out["e"] = e
    th = threading.Thread(target=bridge)
    th.start()
    avail = "cellchain/vpack/availability"
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and len(got.get("cellchain/vpack/state", [])) < 3 and th.is_alive():
            sim.step()
            time.sleep(0.01)
        assert "e" not in out, out.get("e")
        with lock:
            assert got.get(avail, [])[:1] == ["online"]
            state = json.loads(got["cellchain/vpack/state"][-1])
            cells = json.loads(got["cellchain/vpack/cells"][-1])
            disc = {t: json.loads(v[-1]) for t, v in got.items() if t.startswith("homeassistant/")}
        assert state["charge_relay"] == "ON" and 10 < state["voltage"] < 20 and state["cells"] == 5
        assert state["mode"] == "normal"
        assert len(cells) == 10
        assert len(disc) == len(mqtt.SENSORS) + len(mqtt.BINARY) + 1
        for topic, payload in disc.items():
            validate(topic, payload)
        # the End board dies: no more answers -> offline
        sim.fw.power(len(sim.boards) - 1, False)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and got.get(avail, [])[-1:] != ["offline"]:
            sim.step()
            time.sleep(0.01)
        assert got[avail][-1] == "offline"
    finally:
        done.set()
        th.join(30)
        ap.close()
        sim.close()
        sub.loop_stop()
        sub.disconnect()
    assert "e" not in out, out.get("e")
    assert out["rc"] == 0


def _gateway_publisher(client):
    from core import chargelaw, extin, mqttgw
    from gwpack import Pack, feed
    p = Pack(16)
    dec = extin.ExtInDecoder()
    feed(dec, p.packet())
    law = chargelaw.ChargeLaw()
    law.update(dec.view, 1000)
    return dec, law, mqttgw.MqttPublisher(client, "gw1")


def test_gateway_discovery_validates_against_home_assistants_schema():
    class Null:
        def set_last_will(self, *a):
            pass
    dec, law, pub = _gateway_publisher(Null())
    for topic, payload in pub.discovery():
        validate(topic, json.loads(json.dumps(payload)))


class UmqttOverPaho:
    """umqtt.simple's MQTTClient interface (what the gateway's firmware calls) on paho, so the
    gateway's publisher reaches a real broker in this test."""

    def __init__(self, port):
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gateway-test")
        self.port = port

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.c.will_set(topic, msg, qos=qos, retain=retain)

    def connect(self):
        self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()

    def publish(self, topic, msg, retain=False, qos=0):
        self.c.publish(topic, msg, qos=1, retain=retain).wait_for_publish(5)

    def disconnect(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_gateway_mqtt_reaches_a_real_mosquitto(broker):
    got = {}
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-sub2")
    sub.on_message = lambda cl, ud, msg: got.setdefault(msg.topic, []).append(msg.payload.decode())
    sub.connect("127.0.0.1", broker)
    sub.subscribe("#", qos=1)
    sub.loop_start()
    client = UmqttOverPaho(broker)
    try:
        dec, law, pub = _gateway_publisher(client)
        assert pub.step(100, True, dec.view, law) > 0
        assert pub.step(100, False, dec.view, law) == 1
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and got.get("cellchain/gw1/availability", [])[-1:] != ["offline"]:
            time.sleep(0.05)
        assert got["cellchain/gw1/availability"] == ["online", "offline"]
        assert json.loads(got["cellchain/gw1/state"][0])["cells"] == 16
        disc = [t for t in got if t.startswith("homeassistant/")]
        assert len(disc) == 17
        for t in disc:
            validate(t, json.loads(got[t][-1]))
    finally:
        client.disconnect()
        sub.loop_stop()
        sub.disconnect()


def test_cli_mqtt_refuses_the_factory_password():
    import subprocess as sp
    import sys
    sim = engine.Simulation(scenario.load("comm_loss"))
    ap = serve(sim, 0)
    out = {}
    try:
        for _ in range(5):
            sim.step()

        def cli():
            out["r"] = sp.run([sys.executable, "-m", "cellchain", "--socket", "127.0.0.1:%d" % ap.port,
                               "--timeout", "20", "--password", "1234", "mqtt", "--broker", "127.0.0.1:1"],
                              capture_output=True, text=True, timeout=60)
        step_beside(sim, cli, 60, 0.01)
    finally:
        ap.close()
        sim.close()
    r = out["r"]
    assert r.returncode == 1 and "factory password" in r.stderr, (r.stdout, r.stderr)
