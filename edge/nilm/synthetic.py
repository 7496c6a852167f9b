"""Synthetic homes for the trees: a training house seen again with another training house's day of an appliance
laid over its mains. An appliance that ran in few homes (REFIT's one day a house holds six washes) is learned
against other homes' backgrounds, and the washer learns what is *not* a wash (its confusers). See docs/nilm.md,
"Boosted trees".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.features import cells_of, house_matrix

if TYPE_CHECKING:
    from edge.nilm.model import Signature


#: Appliances whose runs are few: each training house is also seen with another training house's runs of it laid
#: over its mains at a random time ("synthetic aggregates", as Kelly and Knottenbelt trained their networks), so
#: the trees learn the appliance against other homes' backgrounds instead of memorising the few homes where it
#: ran (trees trained on REFIT's six washing days called every unseen washer off). Not the fridge, which runs in
#: every home anyway, nor the dishwasher, which lost with it on the bench (see docs/nilm.md).
SYNTHETIC = ("kettle", "microwave", "washing_machine")
SYNTHETIC_COPIES = 2  # REFIT, kettle/microwave/washer F1: none .70/.49/.37, one .76/.48/.45, two .79/.49/.52
#: Appliances the trees must tell apart from others that heat alike: each training house is also seen with a day
#: of each other appliance laid over its mains, the appliance's truth unchanged. The washer's wrong calls on unseen
#: REFIT houses were a dishwasher's heating and a combination microwave's quarter hour (see docs/nilm.md).
CONFUSERS: dict[str, tuple[str, ...]] = {"washing_machine": ("dishwasher", "microwave")}


def with_synthetic(have: list, labels: list[np.ndarray], name: str, signatures: dict[str, Signature],
                    seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The houses' feature matrices and labels, and for ``SYNTHETIC`` appliances as many again per copy: each
    house with a donor's day of the appliance (another of these houses where it ran) shifted by a random time
    and added to the house's mains and to its truth. For an appliance with ``CONFUSERS``, as many again per
    confuser: a donor's day of the confuser added to the mains only (the appliance's truth unchanged)."""
    matrices, targets = [x for _, _, x in have], list(labels)
    rng = np.random.default_rng(seed)
    copies = [name] * SYNTHETIC_COPIES if name in SYNTHETIC else []
    others = (*copies, *CONFUSERS.get(name, ()))  # a copy of the appliance itself counts in its truth
    ran = {o: [h for h, _, _ in have if o in h.appliances and (h.appliances[o] >= THRESHOLDS[o]).any()]
           for o in set(others)}  # each copy of the same appliance draws from the same donors
    for other in others:
        donors = ran[other]
        if not donors:
            continue
        for h, k, _ in have:
            pool = [g for g in donors if g is not h] or donors
            g = pool[int(rng.integers(len(pool)))]
            span = g.timestamp[-1] - g.timestamp[0]
            at = (h.timestamp - h.timestamp[0] + rng.uniform(0, span)) % span
            added = np.interp(at, g.timestamp - g.timestamp[0], g.appliances[other])
            matrices.append(house_matrix(h.timestamp, h.mains + added, signatures)[1])
            targets.append(cells_of(k, h.appliances[name] + (added if other == name else 0)) >= THRESHOLDS[name])
    return matrices, targets
