"""What the in-home display shows: a face, the current power and a reason in words."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Face(StrEnum):
    SMILE = "smile"
    NEUTRAL = "neutral"
    FROWN = "frown"


class DisplayState(BaseModel):
    """The message a display renders; the same shape over HTTP and (later) MQTT."""

    ts: int
    face: Face
    power_w: int
    baseline_w: float | None = None
    reason: str
