"""Tariffs: one documented JSON model (see docs/tariffs.md), importers, and the demo tariff."""

from cloud.tariffs.model import CURRENCY_SYMBOL, Tariff, demo_tariff

__all__ = ["CURRENCY_SYMBOL", "Tariff", "demo_tariff"]
