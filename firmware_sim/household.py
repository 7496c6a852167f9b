"""A household of appliances with realistic cycles: the power the meter sees, and the truth.

Appliances are described as data (see ``household.toml``); each kind below turns its
description into watts at a given simulated second. Everything is seeded, so the same
household file and seed give the same day, second by second.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from firmware_sim.plugs import plugs_from

DAY_S = 86_400


class Appliance(Protocol):
    name: str

    def power_w(self, ts: int) -> float:
        """Watts drawn during the simulated second starting at ``ts`` (called with rising ts)."""


@dataclass
class Constant:
    name: str
    power_w_: float
    noise_w: float
    rng: random.Random

    def power_w(self, ts: int) -> float:
        return max(0.0, self.power_w_ + self.rng.uniform(-self.noise_w, self.noise_w))


@dataclass
class Cycling:
    """A compressor: on for about ``on_s``, off for about ``off_s``, with a start-up spike."""

    name: str
    on_w: float
    on_s: int
    off_s: int
    jitter: float
    spike_w: float
    rng: random.Random
    _next_switch: int | None = None
    _on: bool = False
    _since: int = 0

    def _length(self, base: int) -> int:
        return max(1, int(base * (1 + self.rng.uniform(-self.jitter, self.jitter))))

    def power_w(self, ts: int) -> float:
        if self._next_switch is None:  # start somewhere inside a cycle
            self._on = self.rng.random() < self.on_s / (self.on_s + self.off_s)
            self._since = ts
            self._next_switch = ts + self.rng.randint(1, self.on_s if self._on else self.off_s)
        while ts >= self._next_switch:
            self._on = not self._on
            self._since = self._next_switch
            self._next_switch += self._length(self.on_s if self._on else self.off_s)
        if not self._on:
            return 0.0
        return self.on_w + (self.spike_w if ts - self._since < 2 else 0.0)


@dataclass
class Program:
    """An appliance that runs a fixed sequence of phases when started (kettle, washer…)."""

    name: str
    phases: list[tuple[int, float]]
    uses_per_day: float
    hour_weights: dict[int, float]
    fixed_starts: list[int]
    tz: ZoneInfo
    rng: random.Random
    _starts: list[int] = field(default_factory=list)
    _planned_days: set[int] = field(default_factory=set)

    @property
    def run_s(self) -> int:
        return sum(seconds for seconds, _ in self.phases)

    def _plan_day(self, day: int) -> None:
        """Draw this local day's random starts (Poisson count, hours by weight)."""
        self._planned_days.add(day)
        if self.uses_per_day <= 0 or not self.hour_weights:
            return
        count = 0
        limit = pow(2.718281828, -self.uses_per_day)
        p = self.rng.random()
        while p > limit:
            count += 1
            p *= self.rng.random()
        hours = list(self.hour_weights)
        weights = [self.hour_weights[h] for h in hours]
        for _ in range(count):
            hour = self.rng.choices(hours, weights)[0]
            day_start = datetime.fromtimestamp(day * DAY_S, UTC).replace(tzinfo=None)
            local = day_start.replace(hour=hour, tzinfo=self.tz)
            self._starts.append(int(local.timestamp()) + self.rng.randrange(3600))
        self._starts.sort()

    def power_w(self, ts: int) -> float:
        day = ts // DAY_S
        if day not in self._planned_days:
            self._plan_day(day)
        for start in self.fixed_starts + self._starts:
            offset = ts - start
            if 0 <= offset < self.run_s:
                for seconds, watts in self.phases:
                    if offset < seconds:
                        return watts
                    offset -= seconds
        return 0.0


def _build(spec: dict, start_ts: int, tz: ZoneInfo, rng: random.Random) -> Appliance:
    kind = spec.get("kind")
    name = str(spec["name"])
    sub = random.Random(rng.random())
    if kind == "constant":
        return Constant(name, float(spec["power_w"]), float(spec.get("noise_w", 0)), sub)
    if kind == "cycling":
        return Cycling(name, float(spec["power_w"]), int(spec["on_s"]), int(spec["off_s"]),
                       float(spec.get("jitter", 0.1)), float(spec.get("start_spike_w", 0)), sub)
    if kind == "program":
        return Program(
            name,
            [(int(s), float(w)) for s, w in spec["phases"]],
            float(spec.get("uses_per_day", 0)),
            {int(h): float(w) for h, w in spec.get("hours", {}).items()},
            [start_ts + int(s) for s in spec.get("runs_at_s", [])],
            tz,
            sub,
        )
    raise ValueError(f"appliance {name!r}: unknown kind {kind!r} (constant, cycling or program)")


class HouseholdError(ValueError):
    """A household file the simulation cannot run: its path and what is wrong with it."""


class Household:
    """All appliances of one home; ``step(ts)`` gives each one's watts for that second."""

    def __init__(self, spec: dict, start_ts: int, tz: str = "Europe/London", seed: int | None = None):
        self.tz = ZoneInfo(tz)
        rng = random.Random(spec.get("seed", 0) if seed is None else seed)
        appliances = spec.get("appliance", [])
        if not appliances:
            raise ValueError("the household file lists no [[appliance]]")
        self.appliances = [_build(a, start_ts, self.tz, rng) for a in appliances]
        self.plugs = plugs_from(spec)
        unknown = {p.appliance for p in self.plugs} - set(self.names)
        if unknown:
            raise ValueError(f"plugs meter appliances the household does not have: {', '.join(sorted(unknown))}")

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.appliances]

    def step(self, ts: int) -> dict[str, float]:
        return {a.name: round(a.power_w(ts), 1) for a in self.appliances}

    @classmethod
    def load(cls, path: Path | None, start_ts: int, seed: int | None = None) -> Household:
        """Load a household file, or the embedded demo household when ``path`` is None."""
        name = path or "the embedded household"
        try:
            if path is None:
                text = resources.files("firmware_sim").joinpath("household.toml").read_text()
            else:
                text = Path(path).read_text()
            return cls(tomllib.loads(text), start_ts, seed=seed)
        except (OSError, UnicodeDecodeError) as exc:
            raise HouseholdError(f"{name}: cannot be read ({exc})") from None
        except (ValueError, KeyError, TypeError) as exc:  # TOML syntax, a missing or mistyped field
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise HouseholdError(f"{name}: {what}") from None
