"""The typed reading that crosses from a meter decoder into the hub.

Energy registers are integer watt-hours (DSMR's resolution is 1 Wh), so that a
reading survives every hop unchanged and two readings compare exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One electricity meter reading, normalised whatever the meter's own units."""

    ts: int  # UTC epoch seconds of the meter's own timestamp
    meter_id: str
    import_t1_wh: int
    import_t2_wh: int
    export_t1_wh: int
    export_t2_wh: int
    power_import_w: int
    power_export_w: int
    voltage_l1_v: float | None = None
    tariff: int | None = None

    @property
    def import_wh(self) -> int:
        return self.import_t1_wh + self.import_t2_wh

    @property
    def export_wh(self) -> int:
        return self.export_t1_wh + self.export_t2_wh

    @property
    def net_power_w(self) -> int:
        return self.power_import_w - self.power_export_w

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
