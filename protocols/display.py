"""What the in-home display shows: a face, the current power and a reason in words."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from protocols.readings import MAX_EPOCH_S, MAX_W


class Face(StrEnum):
    SMILE = "smile"
    NEUTRAL = "neutral"
    FROWN = "frown"


class DisplayState(BaseModel):
    """The message a display renders; the same shape over HTTP (/display) and MQTT (display_topic)."""

    ts: int = Field(ge=0, le=MAX_EPOCH_S)
    face: Face
    power_w: int = Field(ge=-MAX_W, le=MAX_W)  # net: negative while the home exports
    baseline_w: float | None = Field(default=None, allow_inf_nan=False)
    reason: str = Field(max_length=1000)


#: How a one-line display (or a log) draws each face.
GLYPHS = {Face.SMILE: ":-)", Face.NEUTRAL: ":-|", Face.FROWN: ":-("}


def display_topic(prefix: str, hub_slug: str) -> str:
    """The retained MQTT topic a hub publishes its display state on, e.g. ``ohmni/hub-1/display``."""
    return f"{prefix}/{hub_slug}/display"


def render_line(state: DisplayState) -> str:
    """The state as one line of text: what a character display shows."""
    return f"{GLYPHS[state.face]} {state.power_w} W - {state.reason}"
