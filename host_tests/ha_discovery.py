"""Home Assistant's MQTT discovery schema for the entities cellchain publishes (sensor,
binary_sensor, event), written with voluptuous from HA's documented keys: what HA requires
(state_topic; event_types for events; a device needs identifiers or connections and then a
unique_id), the types it accepts, its device and state classes, and the Energy dashboard's
rule that an energy sensor is total / total_increasing in Wh, kWh or MWh. No installable
package carries HA's own schema without Home Assistant itself; extra keys are refused so a typo
fails here instead of being ignored by HA."""
import voluptuous as vol

SENSOR_DEVICE_CLASSES = {"voltage", "current", "power", "energy", "battery", "temperature", "duration",
                         "apparent_power", "power_factor", "frequency", "enum", "timestamp"}
BINARY_DEVICE_CLASSES = {"power", "problem", "battery", "battery_charging", "connectivity", "running", "safety"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
UNITS = {"voltage": {"V", "mV", "kV"}, "current": {"A", "mA"}, "power": {"W", "kW"},
         "energy": {"Wh", "kWh", "MWh"}, "battery": {"%"}, "temperature": {"°C", "°F", "K"}}

DEVICE = vol.Schema({vol.Required("identifiers"): vol.All([str], vol.Length(min=1)),
                     vol.Optional("connections"): [[str]], vol.Optional("name"): str,
                     vol.Optional("manufacturer"): str, vol.Optional("model"): str,
                     vol.Optional("sw_version"): str, vol.Optional("hw_version"): str,
                     vol.Optional("via_device"): str})
ORIGIN = vol.Schema({vol.Required("name"): str, vol.Optional("sw_version"): str,
                     vol.Optional("support_url"): vol.Url()})
COMMON = {
    vol.Required("unique_id"): str,            # required here: the entity belongs to a device
    vol.Required("device"): DEVICE,
    vol.Optional("name"): vol.Any(str, None),
    vol.Optional("origin"): ORIGIN,
    vol.Optional("availability_topic"): str,
    vol.Optional("payload_available"): str,
    vol.Optional("payload_not_available"): str,
    vol.Optional("value_template"): str,
    vol.Optional("json_attributes_topic"): str,
    vol.Optional("json_attributes_template"): str,
    vol.Optional("icon"): vol.Match(r"^mdi:[a-z0-9-]+$"),
    vol.Optional("entity_category"): vol.In(["config", "diagnostic"]),
    vol.Optional("enabled_by_default"): bool,
    vol.Optional("qos"): vol.In([0, 1, 2]),
    vol.Optional("expire_after"): vol.All(int, vol.Range(min=0)),
}
SENSOR = vol.Schema({**COMMON, **{
    vol.Required("state_topic"): str,
    vol.Optional("device_class"): vol.In(SENSOR_DEVICE_CLASSES),
    vol.Optional("state_class"): vol.In(STATE_CLASSES),
    vol.Optional("unit_of_measurement"): str,
    vol.Optional("suggested_display_precision"): vol.All(int, vol.Range(min=0)),
}})
BINARY_SENSOR = vol.Schema({**COMMON, **{
    vol.Required("state_topic"): str,
    vol.Optional("device_class"): vol.In(BINARY_DEVICE_CLASSES),
    vol.Optional("payload_on"): str,
    vol.Optional("payload_off"): str,
}})
EVENT = vol.Schema({**COMMON, **{
    vol.Required("state_topic"): str,
    vol.Required("event_types"): vol.All([str], vol.Length(min=1)),
    vol.Optional("device_class"): vol.In(["button", "doorbell", "motion"]),
}})
SCHEMAS = {"sensor": SENSOR, "binary_sensor": BINARY_SENSOR, "event": EVENT}


def validate(topic, payload, prefix="homeassistant"):
    """Raise vol.Invalid / AssertionError unless ``payload`` is a valid discovery config for
    ``topic`` (<prefix>/<component>/<node_id>/<object_id>/config)."""
    parts = topic.split("/")
    assert len(parts) == 5 and parts[0] == prefix and parts[4] == "config", topic
    component = parts[1]
    assert component in SCHEMAS, component
    cfg = SCHEMAS[component](payload)
    dc = cfg.get("device_class")
    if component == "sensor" and dc in UNITS:
        assert cfg.get("unit_of_measurement") in UNITS[dc], (topic, dc, cfg.get("unit_of_measurement"))
    if component == "sensor" and dc == "energy":
        assert cfg.get("state_class") in ("total", "total_increasing"), topic   # the Energy dashboard
    return cfg
