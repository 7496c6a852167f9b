"""Disaggregation on the hub, NumPy only: appliances from the whole-house signal (docs/nilm.md).

`features` (the mains on a grid, their shapes), `events` (the step-pairing detector), `boost`
(gradient-boosted trees), `synthetic` (training houses with other homes' appliance days laid over),
`model` (learning, the vote, save/load, the shipped model), `adapt` (a model going on with one home's
plugs), `own_home` (that home's history from the hub's store), `days` (which days of a long house to
learn from), `disaggregate` (estimates per sample), `live` (the hub's bounded window, runs and half
hours), `house_csv`, `convert` and `metrics` (data in, scores out).
"""


class ModelFileError(ValueError):
    """A model file that cannot be used (``model.load``); the message starts with its path so a hub's log says
    which file. Here, not in ``model``, so the hub's command line can catch it without importing NumPy."""
