"""CRC-16/ARC as DSMR P1 uses it (reflected polynomial 0xA001, initial value 0).

Table-driven so a hub can check every telegram at a fraction of the parse cost.
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc16_arc(data: bytes) -> int:
    """Return the CRC-16/ARC of ``data`` (for P1: every byte from ``/`` to ``!`` inclusive)."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc
