"""The gateway's network: Wi-Fi (``network.WLAN``) and an MQTT client from micropython-lib's
``umqtt.simple`` (``mpremote mip install umqtt.simple`` once; it is not frozen into the stock
Pico W firmware). Used only when the board definition sets ``GW_MQTT_BROKER`` (with
``GW_WIFI_SSID`` / ``GW_WIFI_PASSWORD`` and optionally ``GW_MQTT_USER`` / ``GW_MQTT_PASSWORD`` /
``GW_MQTT_NODE``). Returns None (MQTT off, CAN unaffected) when anything is missing.
"""


def make_mqtt(board_def, network=None, time=None):
    bd = board_def
    broker = getattr(bd, "GW_MQTT_BROKER", None)
    if not broker:
        return None
    try:
        if network is None:
            import network as network_mod
            network = network_mod
        from umqtt.simple import MQTTClient  # type: ignore[import-not-found]
    except ImportError as e:
        print("gateway: MQTT off:", e)
        return None
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(bd.GW_WIFI_SSID, bd.GW_WIFI_PASSWORD)   # connects in the background
    host, _, port = broker.partition(":")
    return MQTTClient("cellchain-" + getattr(bd, "GW_MQTT_NODE", "pack"), host, int(port) if port else 1883,
                      getattr(bd, "GW_MQTT_USER", None), getattr(bd, "GW_MQTT_PASSWORD", None), keepalive=60)
