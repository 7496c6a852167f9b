"""The typed reading that crosses from a meter decoder into the hub, and on to the cloud.

Energy registers are integer watt-hours (DSMR's resolution is 1 Wh), so that a
reading survives every hop unchanged and two readings compare exactly. The field
list is the one table both stores build their columns from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: The latest timestamp any part of Ohmni takes (2100-01-01): past it a number is in milliseconds, or corrupt.
MAX_EPOCH_S = 4_102_444_800
#: The most watts any part of Ohmni takes, either way (a gigawatt): past it a value is corrupt.
MAX_W = 10**9


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
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    gas_m3: float | None = None
    gas_ts: int | None = None  # the gas meter's own capture time (hourly or five-minutely)
    power_failures: int | None = None
    long_power_failures: int | None = None

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


_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}

#: (name, SQL type, required) for every reading field, in order.
READING_COLUMNS: tuple[tuple[str, str, bool], ...] = tuple(
    (f.name, _SQL_TYPES[str(f.type).split(" | ")[0]], "None" not in str(f.type)) for f in fields(MeterReading))
READING_FIELDS: tuple[str, ...] = tuple(name for name, _, _ in READING_COLUMNS)


def column_sql() -> str:
    """The reading columns as SQL column definitions (SQLite and PostgreSQL alike)."""
    return ", ".join(f"{name} {kind}{' NOT NULL' if required else ''}" for name, kind, required in READING_COLUMNS)
