"""A DSMR electricity meter: integrates the household's power into its registers.

A DSMR 5 meter sends every second, a DSMR 4.2 meter every 10 s and without the voltage, a DSMR 2.2 or 3.0 meter
every 10 s on a 7E1 line without a CRC, a timestamp, failure counts or watts finer than 10, and an EasyMeter Q3D
every 2 s on 7E1 with one import register and no tariff (``protocols/p1.py``, ``DSMR_VERSIONS``); ``version`` picks
which one this meter is, and its readings hold only what its telegrams say."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from protocols.p1 import METER_TZ, dsmr_version, encode_dsmr
from protocols.readings import MeterReading


def dutch_tariff(ts: int) -> int:
    """DSMR tariff indicator: 1 (low) at night 23:00-07:00 local and at weekends, else 2."""
    local = datetime.fromtimestamp(ts, UTC).astimezone(METER_TZ)
    return 1 if local.weekday() >= 5 or local.hour >= 23 or local.hour < 7 else 2


class SimMeter:
    """Registers in fractional Wh inside, whole Wh on the wire, as a real meter rounds down."""

    def __init__(self, meter_id: str = "E0099000012345678", import_t1_wh: float = 4_211_000.0,
                 import_t2_wh: float = 3_907_000.0, version: str = "50") -> None:
        self.meter_id = meter_id
        self.version = version
        self.sends = dsmr_version(version)  # ValueError for a version it cannot send
        self._import = {1: import_t1_wh, 2: import_t2_wh}

    def tick(self, ts: int, power_w: float) -> MeterReading:
        """Account one second at ``power_w`` and return the telegram's reading for ``ts``.

        The registers a telegram shows include the energy of the second it stamps.
        """
        tariff = dutch_tariff(ts)
        self._import[tariff] += power_w / 3600.0
        voltage = 231.0 + 2.5 * math.sin(ts / 1800.0) - power_w / 1500.0
        # a meter of one register (the Q3D) counts the total and shows no tariff; the hub reads its total as T1
        t1, t2 = ((int(self._import[1]), int(self._import[2])) if self.sends.tariffs
                  else (int(self._import[1] + self._import[2]), 0))
        return MeterReading(
            ts=ts,
            meter_id=self.meter_id,
            import_t1_wh=t1,
            import_t2_wh=t2,
            export_t1_wh=0,
            export_t2_wh=0,
            power_import_w=int(round(power_w / self.sends.watts_step)) * self.sends.watts_step,
            power_export_w=0,
            voltage_l1_v=round(voltage, 1) if self.sends.voltage else None,
            tariff=tariff if self.sends.tariffs else None,
            power_failures=3 if self.sends.failure_counts else None,
            long_power_failures=1 if self.sends.failure_counts else None,
        )

    def telegram(self, reading: MeterReading) -> bytes:
        return encode_dsmr(reading, self.version)
