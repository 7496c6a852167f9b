"""The appliances Ohmni names, as data: on/off thresholds and the dataset labels that mean them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Appliance:
    name: str
    on_w: float  # on/off threshold for F1 (NILMBench "paper" policy, UK-DALE metadata)
    refit_labels: tuple[str, ...]
    redd_labels: tuple[str, ...]


APPLIANCES: tuple[Appliance, ...] = (
    Appliance("kettle", 2000, ("Kettle", "Kettle/Toaster"), ()),
    Appliance("microwave", 200, ("Microwave", "Combination Microwave"), ("microwave",)),
    Appliance("fridge", 50, ("Fridge", "Fridge-Freezer", "Fridge Freezer", "Freezer", "Chest Freezer",
                             "Upright Freezer", "Fridge & Freezer"), ("fridge",)),
    Appliance("washing_machine", 20, ("Washing Machine", "Washer Dryer", "Washer-Dryer"), ("washer dryer",)),
    Appliance("dishwasher", 10, ("Dishwasher",), ("dish washer",)),
)
NAMES: tuple[str, ...] = tuple(a.name for a in APPLIANCES)
THRESHOLDS: dict[str, float] = {a.name: a.on_w for a in APPLIANCES}
