"""The demo household: one home, one hub, one householder, a flat tariff (or ``demo_tariff``). Idempotent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cloud.auth import Principal, Role, hash_secret
from cloud.settings import CloudSettings
from cloud.staff import add_staff
from cloud.storage.base import Household, Storage
from cloud.storage.people import PeopleStore
from cloud.tariffs import demo_tariff
from cloud.tariffs.model import tariff_named

DEMO_AGENT = "demo-agent"
DEMO_METER = "E0099000012345678"  # the simulated meter's equipment id (firmware_sim/meter.py)
DEMO_HOUSEHOLD = Household(id="hh-demo", name="The Demo Household", account_number="100000001",
                           postcode="SW1A 1AA", tz="Europe/London", tariff_json=demo_tariff().model_dump_json())


def _secret(path: Path | None, what: str) -> str:
    if path is None:
        raise ValueError(f"bootstrap_demo needs the {what} file setting")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: the {what} is too short to be a generated secret")
    return secret


async def bootstrap_demo(store: Storage, settings: CloudSettings) -> None:
    assert isinstance(store, PeopleStore)  # every backend keeps staff and meters too
    await store.upsert_household(replace(DEMO_HOUSEHOLD, tariff_json=tariff_named(
        settings.demo_tariff).model_dump_json()))
    await store.upsert_hub(settings.demo_hub_id, DEMO_HOUSEHOLD.id)
    hub_secret = _secret(settings.demo_hub_token_file, "demo_hub_token")
    key = _secret(settings.demo_householder_key_file, "demo_householder_key")
    await store.add_credential(hash_secret(hub_secret), Principal(Role.HUB, settings.demo_hub_id,
                                                                  DEMO_HOUSEHOLD.id))
    await store.add_credential(hash_secret(key), Principal(Role.HOUSEHOLDER, DEMO_HOUSEHOLD.id,
                                                           DEMO_HOUSEHOLD.id))
    await store.add_meter(DEMO_METER, DEMO_HOUSEHOLD.id)
    if settings.demo_agent_password_file is not None:
        password = _secret(settings.demo_agent_password_file, "demo agent password")
        await add_staff(store, DEMO_AGENT, Role.AGENT, password)
