"""The hub's MQTT link against a real Mosquitto: devices in, Home Assistant out, reconnects, TLS."""

from __future__ import annotations

import asyncio
import json
import re

import aiomqtt
import pytest

from edge.config import MqttConfig
from edge.mqtt_link import MqttLink
from protocols import ha_discovery
from protocols.devices import DeviceReading, Mapping
from tests.fixtures.mosquitto import USERS


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def hub_config(broker, **extra) -> MqttConfig:
    settings = {"enabled": True, "host": broker.host, "port": broker.port, "username": "hub",
                "password": USERS["hub"], "connect_timeout_s": 3, "max_backoff_s": 1} | extra
    return MqttConfig(**settings)


def device(broker, **extra) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username="device", password=USERS["device"],
                          protocol=aiomqtt.ProtocolVersion.V5, **extra)


class Running:
    def __init__(self, link: MqttLink) -> None:
        self.link = link

    async def __aenter__(self) -> MqttLink:
        self.task = asyncio.create_task(self.link.run())
        return self.link

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_device_payloads_become_readings_and_bad_ones_are_counted(mosquitto):
    got = []
    link = MqttLink(hub_config(mosquitto, client_id="hub-devices"), "hub-1", got.extend)
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)  # subscriptions in place
        async with device(mosquitto) as d:
            await d.publish("zigbee2mqtt/kettle_plug", json.dumps({"power": 2950, "energy": 12.5}), qos=1)
            await d.publish("shellyplusplugs-9/events/rpc", json.dumps({"src": "shellyplusplugs-9",
                            "method": "NotifyStatus", "params": {"switch:0": {"apower": 95.5}}}), qos=1)
            await d.publish("tele/washer/SENSOR", json.dumps({"ENERGY": {"Power": 480, "Total": 321.5}}), qos=1)
            await d.publish("zigbee2mqtt/kettle_plug", b"{broken", qos=1)
            # JSON of the wrong shape where a device sends an object (these once raised AttributeError, which
            # ended the link): refused and counted, and the messages after them still read
            await d.publish("stat/washer/STATUS10", json.dumps({"StatusSNS": [None]}), qos=1)
            await d.publish("glow/ABC/SENSOR/electricitymeter", json.dumps({"electricitymeter": {"power": [1]}}), qos=1)
            await d.publish("glow/ABC/SENSOR/electricitymeter", json.dumps({"electricitymeter": {
                "energy": {"import": {"cumulative": 6613.405}}, "power": {"value": 0.951, "units": "kW"}}}), qos=1)
        await until(lambda: len(got) >= 4)
    by_device = {r.device: r for r in got}
    assert by_device["zigbee2mqtt:kettle_plug"].power_w == 2950
    assert by_device["shelly:shellyplusplugs-9:0"].power_w == 95.5
    assert by_device["tasmota:washer"].energy_kwh == 321.5
    assert by_device["glow:ABC:electricitymeter"].power_w == pytest.approx(951)
    assert link.counters["rejected_payload"] == 3 and link.counters["decoder_errors"] == 0, link.counters


async def test_a_decoder_that_fails_on_a_payload_loses_that_message_not_the_link(mosquitto, caplog):
    """A decoder bug (an exception no one foresaw) is counted and logged; the link goes on reading."""
    got = []
    link = MqttLink(hub_config(mosquitto, client_id="hub-decoder-bug"), "hub-1", got.extend)

    def broken(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
        raise KeyError("a field the decoder took for granted")

    link.table = (Mapping("broken", re.compile(r"broken/(?P<device>[^/]+)"), broken, "broken/#"), *link.table)
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)
        async with device(mosquitto) as d:
            await d.publish("broken/plug", b"{}", qos=1)
            await d.publish("zigbee2mqtt/kettle_plug", json.dumps({"power": 2950}), qos=1)
        await until(lambda: len(got) >= 1)
        assert link.connected
    assert [r.power_w for r in got] == [2950]
    assert link.counters["decoder_errors"] == 1
    assert "decoding a payload on broken/plug failed" in caplog.text


async def test_a_wrong_password_is_refused_with_a_clear_error(mosquitto):
    link = MqttLink(hub_config(mosquitto, password="wrong"), "hub-1", lambda r: None)
    async with Running(link):
        await until(lambda: link.last_error is not None)
    assert not link.connected
    assert "authori" in link.last_error.lower() or "password" in link.last_error.lower()


async def test_tls_with_a_client_certificate(mosquitto):
    certs = mosquitto.certs
    got = []
    cfg = hub_config(mosquitto, client_id="hub-tls", ca_file=certs["ca.crt"], cert_file=certs["client.crt"],
                     key_file=certs["client.key"])
    cfg.port = mosquitto.tls_port
    link = MqttLink(cfg, "hub-1", got.extend)
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)
        async with device(mosquitto) as d:
            await d.publish("zigbee2mqtt/tls_plug", json.dumps({"power": 7}), qos=1)
        await until(lambda: got)
    assert got[0].power_w == 7


async def test_a_certificate_from_another_ca_never_connects(mosquitto):
    certs = mosquitto.certs
    cfg = hub_config(mosquitto, ca_file=certs["ca.crt"], cert_file=certs["rogue.crt"], key_file=certs["rogue.key"])
    cfg.port = mosquitto.tls_port
    link = MqttLink(cfg, "hub-1", lambda r: None)
    async with Running(link):
        await until(lambda: link.last_error is not None, timeout=15)
    assert not link.connected


async def test_secrets_the_service_user_cannot_read_are_said_and_systemds_copies_are_used(mosquitto, tmp_path,
                                                                                          monkeypatch):
    """Under the unit `ohmni hub systemd-unit` prints, the hub runs as a user of its own, who may not read the root-only
    password file and client key hub.toml names; systemd passes copies (LoadCredential=mqtt.password, mqtt.key). The
    link says which file it cannot read (not "not authorised"), counts it, and connects with the copies."""
    certs = mosquitto.certs
    unreadable = tmp_path / "as-the-service-user-finds-it"
    unreadable.mkdir()  # root may read any file whatever its mode: a directory cannot be read as one
    cfg = hub_config(mosquitto, client_id="hub-passed", password=None, password_file=unreadable)
    link = MqttLink(cfg, "hub-1", lambda r: None)
    async with Running(link):
        await until(lambda: link.last_error is not None)
    assert not link.connected
    assert f"cannot read the MQTT password {unreadable} (Is a directory)" in link.last_error
    assert link.counters["credential_errors"] >= 1 and USERS["hub"] not in link.last_error

    passed = tmp_path / "credentials"
    passed.mkdir()
    (passed / "mqtt.password").write_text(USERS["hub"] + "\n")
    (passed / "mqtt.key").write_bytes(certs["client.key"].read_bytes())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(passed))
    got = []
    tls = hub_config(mosquitto, client_id="hub-passed-tls", password=None, password_file=unreadable,
                     ca_file=certs["ca.crt"], cert_file=certs["client.crt"], key_file=unreadable)
    tls.port = mosquitto.tls_port
    for n, settings in enumerate((cfg, tls), 1):
        passing = MqttLink(settings, "hub-1", got.extend)
        async with Running(passing):
            await until(lambda: passing.connected)  # noqa: B023 (awaited within the iteration)
            await asyncio.sleep(0.2)
            async with device(mosquitto) as d:
                await d.publish("zigbee2mqtt/passed_plug", json.dumps({"power": 5}), qos=1)
            await until(lambda: len(got) == n)  # noqa: B023
        assert passing.counters["credential_errors"] == 0

    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    missing = hub_config(mosquitto, password=None, password_file=tmp_path / "no-such-file")
    link = MqttLink(missing, "hub-1", lambda r: None)
    async with Running(link):
        await until(lambda: link.last_error is not None)
    assert f"cannot read the MQTT password {tmp_path / 'no-such-file'} (No such file or directory)" in link.last_error


async def test_broker_restart_loses_nothing_it_accepted(mosquitto):
    got = []
    link = MqttLink(hub_config(mosquitto, client_id="hub-restart"), "hub-1", got.extend)
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(mosquitto.restart)
        # the hub is still reconnecting: a device publishes meanwhile, QoS 1
        async with device(mosquitto) as d:
            for i in range(50):
                await d.publish("zigbee2mqtt/fridge_plug", json.dumps({"power": 100 + i}), qos=1)
        await until(lambda: len(got) >= 50, timeout=20)
        assert link.counters["reconnects"] >= 1
    assert sorted(r.power_w for r in got) == [100 + i for i in range(50)]


async def test_home_assistant_discovery_is_retained_and_resent_when_ha_comes_online(mosquitto):
    link = MqttLink(hub_config(mosquitto, client_id="hub-ha"), "hub-ha", lambda r: None)
    async with Running(link):
        await until(lambda: link.connected)
        link.publish_state("meter", "Smart meter E1", {"import_kwh": 1234.5, "export_kwh": 0.0, "power_w": 300},
                           ha_discovery.METER_SENSORS)
        await until(lambda: link.counters["published"] >= 4)
        configs: dict[str, dict] = {}
        async with device(mosquitto, identifier="ha-test") as ha:
            await ha.subscribe("homeassistant/sensor/hub_ha/#", qos=1)

            async def collect() -> None:
                async for message in ha.messages:
                    configs[str(message.topic)] = json.loads(message.payload)
                    if len(configs) >= 3:
                        return
            await asyncio.wait_for(collect(), 10)  # retained: there without asking
            energy = next(c for c in configs.values() if c["unique_id"].endswith("import_kwh"))
            assert energy["device_class"] == "energy" and energy["state_class"] == "total_increasing"
            assert energy["unit_of_measurement"] == "kWh"
            before = link.counters["published"]
            await ha.publish("homeassistant/status", "online", qos=1)
            await until(lambda: link.counters["ha_online"] == 1 and link.counters["published"] >= before + 3)


async def test_zigbee2mqtt_device_list_is_learned(mosquitto):
    link = MqttLink(hub_config(mosquitto, client_id="hub-bridge"), "hub-1", lambda r: None)
    devices = [{"friendly_name": "Coordinator", "type": "Coordinator", "ieee_address": "0x00"},
               {"friendly_name": "kettle_plug", "type": "Router", "ieee_address": "0x00158d0001a2b3c4",
                "definition": {"model": "TS011F_plug_1", "vendor": "TuYa"}}]
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)
        async with device(mosquitto) as d:
            await d.publish("zigbee2mqtt/bridge/devices", json.dumps(devices), qos=1)
        await until(lambda: "kettle_plug" in link.zigbee_devices)
    assert link.zigbee_devices == {"kettle_plug": {"ieee": "0x00158d0001a2b3c4", "model": "TS011F_plug_1",
                                                   "vendor": "TuYa", "type": "Router"}}


async def test_the_broker_acl_keeps_other_users_out_of_device_topics(mosquitto):
    got: list = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, username="intruder", password=USERS["intruder"],
                              protocol=aiomqtt.ProtocolVersion.V5) as intruder:
        await intruder.subscribe("zigbee2mqtt/#", qos=1)  # accepted, and receives nothing

        async def listen() -> None:
            async for message in intruder.messages:
                got.append(message)
        listening = asyncio.create_task(listen())
        async with device(mosquitto) as d:
            await d.publish("zigbee2mqtt/private_plug", json.dumps({"power": 5}), qos=1)
        await asyncio.sleep(1.0)
        listening.cancel()
    assert got == []


def test_bad_payloads_on_ever_new_topics_do_not_grow_the_hubs_memory(caplog):
    """The first three bad payloads of each topic are logged, counted by topic; a device sending to ever new topics
    (a counter in its topic, say) grew that count without bound. It is forgotten past a thousand topics."""
    from edge.mqtt_link import BAD_TOPICS_KEPT

    link = MqttLink(MqttConfig(enabled=True), "hub-1", lambda r: None)
    for n in range(5000):
        link.handle(f"zigbee2mqtt/plug_{n}", b"{broken")
    for _ in range(5):
        link.handle("zigbee2mqtt/plug_4999", b"{broken")
    assert link.counters["rejected_payload"] == 5005
    assert len(link._logged_bad) <= BAD_TOPICS_KEPT
    assert caplog.text.count("bad payload on zigbee2mqtt/plug_4999:") == 3
