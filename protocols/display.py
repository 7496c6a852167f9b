"""What the in-home display shows: a face, the current power and a reason in words."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Face(StrEnum):
    SMILE = "smile"
    NEUTRAL = "neutral"
    FROWN = "frown"


class DisplayState(BaseModel):
    """The message a display renders; the same shape over HTTP (/display) and MQTT (display_topic)."""

    ts: int
    face: Face
    power_w: int
    baseline_w: float | None = None
    reason: str


#: How a one-line display (or a log) draws each face.
GLYPHS = {Face.SMILE: ":-)", Face.NEUTRAL: ":-|", Face.FROWN: ":-("}


def display_topic(prefix: str, hub_slug: str) -> str:
    """The retained MQTT topic a hub publishes its display state on, e.g. ``ohmni/hub-1/display``."""
    return f"{prefix}/{hub_slug}/display"


def render_line(state: DisplayState) -> str:
    """The state as one line of text: what a character display shows."""
    return f"{GLYPHS[state.face]} {state.power_w} W - {state.reason}"
