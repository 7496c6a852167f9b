"""Home Assistant MQTT discovery: the hub's meter and plugs as sensors, declared as data.

Each sensor is a description (key, name, device class, state class, unit), the way
Home Assistant's own integrations declare theirs, so the Energy dashboard picks the
hub up without configuration. Configs are published retained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SensorDescription:
    key: str  # field in the state JSON
    name: str
    device_class: str
    state_class: str
    unit: str


METER_SENSORS = (
    SensorDescription("import_kwh", "Energy imported", "energy", "total_increasing", "kWh"),
    SensorDescription("export_kwh", "Energy exported", "energy", "total_increasing", "kWh"),
    SensorDescription("power_w", "Power", "power", "measurement", "W"),
    SensorDescription("voltage_v", "Voltage", "voltage", "measurement", "V"),
    SensorDescription("gas_m3", "Gas", "gas", "total_increasing", "m³"),
)
PLUG_SENSORS = (
    SensorDescription("energy_kwh", "Energy", "energy", "total_increasing", "kWh"),
    SensorDescription("power_w", "Power", "power", "measurement", "W"),
    SensorDescription("voltage_v", "Voltage", "voltage", "measurement", "V"),
    SensorDescription("current_a", "Current", "current", "measurement", "A"),
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


def state_topic(prefix: str, hub_id: str, device: str) -> str:
    return f"{prefix}/{slug(hub_id)}/{slug(device)}/state"


def configs(discovery_prefix: str, state_prefix: str, hub_id: str, device: str, name: str,
            sensors: tuple[SensorDescription, ...], present: set[str] | None = None) -> list[tuple[str, str]]:
    """(topic, retained JSON payload) for each sensor of one device (only ``present`` keys if given)."""
    out = []
    node = slug(hub_id)
    for sensor in sensors:
        if present is not None and sensor.key not in present:
            continue
        unique = f"{node}_{slug(device)}_{sensor.key}"
        payload = {
            "name": sensor.name,
            "unique_id": unique,
            "object_id": unique,
            "state_topic": state_topic(state_prefix, hub_id, device),
            "value_template": f"{{{{ value_json.{sensor.key} }}}}",
            "device_class": sensor.device_class,
            "state_class": sensor.state_class,
            "unit_of_measurement": sensor.unit,
            "availability_topic": f"{state_prefix}/{node}/availability",
            "device": {"identifiers": [f"{node}_{slug(device)}"], "name": name, "manufacturer": "Ohmni",
                       "via_device": node},
        }
        out.append((f"{discovery_prefix}/sensor/{node}/{unique}/config", json.dumps(payload)))
    return out
