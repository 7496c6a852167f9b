"""Device payloads from real devices (../shared/data/mqtt) -> readings, through the mapping table."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.devices import (
    DIVISOR,
    INSTANTANEOUS_DEMAND,
    MULTIPLIER,
    SUMMATION_DELIVERED,
    UNIT_OF_MEASURE,
    PayloadError,
    SmlKeys,
    decode,
    mappings,
    metering,
)
from tests.mutation import mutated


def examples(data_dir) -> dict[str, dict]:
    with (data_dir / "mqtt/examples.jsonl").open() as f:
        return {e["id"]: e for e in map(json.loads, f)}


def topic_for(example: dict, device: str = "dev1") -> str:
    return re.sub(r"<[^>]+>", device, example["topic"])


def test_zigbee2mqtt_state_and_attribute_output(data_dir):
    ex = examples(data_dir)
    table = mappings(z2m_base="zigbee2mqttcc1352")
    for key in ("z2m_ts011f_plug_zigbee23", "z2m_ts011f_plug_zigbee22_raw_and_published"):
        [r] = decode(ex[key]["topic"], ex[key]["payload"].encode(), table)
        want = ex[key]["expected"]
        assert r.power_w == want["power_w"] and r.voltage_v == want["voltage_v"] and r.current_a == want["current_a"]
        assert r.device.startswith("zigbee2mqtt:plug_zigbee2")
        assert r.ts == datetime.fromisoformat(json.loads(ex[key]["payload"])["last_seen"]).timestamp()
    [r] = decode(ex["z2m_ts011f_attribute_output"]["topic"], b"12.05", mappings())
    assert r.energy_kwh == 12.05 and r.device == "zigbee2mqtt:z1"
    assert decode("zigbee2mqtt/bridge/devices", b"[]", mappings()) == []


def test_tasmota_energy_arrays_and_sml(data_dir):
    ex = examples(data_dir)
    table = mappings()
    [r] = decode(topic_for(ex["tasmota_status10_energy_6082"]), ex["tasmota_status10_energy_6082"]["payload"].encode(),
                 table)
    assert r.power_w == 47.11 and r.energy_kwh == 1290.396
    channels = decode(topic_for(ex["tasmota_status10_energy_arrays_5731"]),
                      ex["tasmota_status10_energy_arrays_5731"]["payload"].encode(), table)
    assert [c.power_w for c in channels] == [8.15, 0] and channels[0].voltage_v == 237
    [sml] = decode(topic_for(ex["tasmota_status10_sml_3787"]), ex["tasmota_status10_sml_3787"]["payload"].encode(),
                   mappings(sml=SmlKeys()))
    assert sml.power_w == -894 and sml.energy_kwh == 34507.4761 and sml.export_kwh == 14737.1422
    [total] = decode("tele/plug/SENSOR", ex["tasmota_tele_sensor_total"]["payload"].encode(), table)
    assert total.energy_kwh == 1.2


def test_shelly_gen1_watt_minutes_and_gen2_notify_status(data_dir):
    table = mappings()
    [r] = decode("shellies/shellyplug-s-AB12/relay/0/energy", b"6000", table)
    assert r.energy_kwh == pytest.approx(0.1) and r.device == "shelly:shellyplug-s-AB12:0"
    [p] = decode("shellies/shellyem-1/emeter/1/power", b"512.5", table)
    assert p.power_w == 512.5 and p.device.endswith(":1")
    assert decode("shellies/shellyplug-s-AB12/online", b"true", table) == []
    ex = examples(data_dir)["shelly_gen2_notifystatus_example1"]
    assert decode("shellypro4pm-f008d1d8b8b8/events/rpc", ex["payload"].encode(), table) == []  # no energy in it
    status = {"src": "shellyplusplugs-1", "method": "NotifyStatus", "params": {
        "ts": 1700000000.5, "switch:0": {"id": 0, "apower": 1200.5, "voltage": 231.1, "current": 5.2,
                                         "aenergy": {"total": 15432.1}}}}
    [g2] = decode("shellyplusplugs-1/events/rpc", json.dumps(status).encode(), table)
    assert (g2.power_w, g2.energy_kwh, g2.ts) == (1200.5, pytest.approx(15.4321), 1700000000.5)


def test_glow_electricity_gas_and_its_error_sentinel(data_dir):
    ex = examples(data_dir)
    table = mappings()
    [e] = decode(topic_for(ex["glow_electricitymeter"]), ex["glow_electricitymeter"]["payload"].encode(), table)
    assert e.energy_kwh == 6613.405 and e.export_kwh == 0.0 and e.power_w == pytest.approx(951)
    [g] = decode(topic_for(ex["glow_gasmeter"]), ex["glow_gasmeter"]["payload"].encode(), table)
    assert g.energy_kwh == 17940.852 and g.device.endswith(":gasmeter")
    broken = ex["glow_electricitymeter"]["payload"].replace('"value":0.951', '"value":-8388.608')
    [b] = decode(topic_for(ex["glow_electricitymeter"]), broken.encode(), table)
    assert b.power_w is None


def test_zigbee_metering_attributes(data_dir):
    reading = metering({SUMMATION_DELIVERED: 25867, INSTANTANEOUS_DEMAND: 8863, MULTIPLIER: 1, DIVISOR: 1000,
                        UNIT_OF_MEASURE: 0, 0x0100: 0xFFFFFFFFFFFF})
    assert reading.energy_kwh == pytest.approx(examples(data_dir)["zha_develco_zhemi101_metering_report"]
                                               ["expected"]["energy_kwh"])
    assert reading.power_w == pytest.approx(8863.0)  # 8.863 kW
    assert metering({INSTANTANEOUS_DEMAND: 0xFFFFFF, DIVISOR: 1000}).power_w == pytest.approx(-1.0)  # signed 24-bit
    assert metering({SUMMATION_DELIVERED: 0xFFFFFFFFFFFF}).energy_kwh is None
    with pytest.raises(PayloadError, match="not kW/kWh"):
        metering({UNIT_OF_MEASURE: 1})


@pytest.mark.parametrize("topic, payload, message", [
    ("zigbee2mqtt/plug", b"{not json", "not JSON"),
    ("zigbee2mqtt/plug", b'{"power": "lots"}', "power"),
    ("zigbee2mqtt/plug", b'{"power": NaN}', "finite"),
    ("tele/x/SENSOR", b"[1, 2]", "JSON object"),
    ("glow/x/SENSOR/electricitymeter", b"{}", "electricitymeter"),
])
def test_bad_payloads_name_what_is_wrong(topic, payload, message):
    with pytest.raises(PayloadError, match=message):
        decode(topic, payload, mappings())


def test_a_device_time_is_taken_only_where_it_says_its_zone():
    """zigbee2mqtt's last_seen (ISO 8601 with an offset, or epoch milliseconds) and Tasmota's Time with its offset
    (SetOption52) stamp the reading; Tasmota's default local time, zone unknown, leaves it to the hub; a time that
    is no time is a clear error."""
    table = mappings()
    [z] = decode("zigbee2mqtt/p", b'{"power": 5, "last_seen": "2024-03-31T01:30:00+01:00"}', table)
    assert z.ts == 1711845000.0
    [z] = decode("zigbee2mqtt/p", b'{"power": 5, "last_seen": 1711845000123}', table)
    assert z.ts == 1711845000.123
    [t] = decode("tele/p/SENSOR", b'{"Time": "2024-03-31T00:30:00+00:00", "ENERGY": {"Power": 7}}', table)
    assert t.ts == 1711845000.0 and t.power_w == 7
    [t] = decode("tele/p/SENSOR", b'{"Time": "2024-03-31T00:30:00", "ENERGY": {"Power": 7}}', table)
    assert t.ts is None
    with pytest.raises(PayloadError, match="last_seen is 'yesterday', not an ISO 8601 time"):
        decode("zigbee2mqtt/p", b'{"power": 5, "last_seen": "yesterday"}', table)
    with pytest.raises(PayloadError, match="not a time"):
        decode("zigbee2mqtt/p", b'{"power": 5, "last_seen": NaN}', table)


def test_any_payload_of_a_real_devices_shape_decodes_or_is_refused_clearly(data_dir):
    """Each real example's JSON with its fields (at any depth) replaced by other JSON, or its bytes by others:
    every such payload gives readings or a PayloadError, never another exception (one ended the hub's MQTT link:
    Tasmota's ``StatusSNS`` and Glow's ``power`` as something other than an object)."""
    table = mappings(z2m_base="zigbee2mqttcc1352")
    shapes = [(topic_for(e), json.loads(e["payload"])) for e in examples(data_dir).values()
              if e["payload"][:1] in "{["]

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(st.sampled_from(shapes), st.data(), st.binary(max_size=40))
    def decodes_or_refuses(shape: tuple[str, Any], data: st.DataObject, junk: bytes) -> None:
        topic, obj = shape
        for payload in (json.dumps(mutated(obj, data)).encode(), junk):
            try:
                decode(topic, payload, table)
            except PayloadError:
                pass

    decodes_or_refuses()
    with pytest.raises(PayloadError, match="power is 1e\\+300, more than any device reports"):
        decode("zigbee2mqttcc1352/p", b'{"power": 1e300}', table)  # it would have been this home's truth for adapting
    with pytest.raises(PayloadError, match="StatusSNS is \\[1\\], not a JSON object"):
        decode("stat/p/STATUS10", b'{"StatusSNS": [1]}', table)
    with pytest.raises(PayloadError, match="power is 'high', not a JSON object"):
        decode("glow/g/SENSOR/electricitymeter", b'{"electricitymeter": {"power": "high"}}', table)
