"""The display face: how the home is doing now against its own usual.

Behavioural research guides the policy. Schultz et al. (2007): telling households how
they compare with their neighbours makes heavy users cut back but low users drift up
(the boomerang), and an approving smiley stops the drift; a frown for heavy users adds
the injunctive message. Allcott (2011): Opower's home-energy reports, which compare a
home with similar homes, cut use about 2% on average. So the face compares the home
with its own usual and, where the utility supplies it, with similar homes: well above
its usual is a frown, below it a smile; at its usual, being well above or below
similar homes decides (a low user keeps the approving smile). Utilities may turn the
frown off. Hysteresis keeps the face from flickering at a threshold. "Usual" is the
median of the home's own minute averages over the last day: robust to a kettle or a
wash, bounded in memory.
"""

from __future__ import annotations

from collections import deque
from statistics import median

from edge.config import FaceConfig
from protocols.display import DisplayState, Face


def choose_face(ratio: float, previous: Face, cfg: FaceConfig, peer_ratio: float | None = None) -> Face:
    """The policy: recent / own usual (and recent / similar homes) -> face, with hysteresis."""
    own = _band(ratio, previous, cfg)
    if peer_ratio is None or own is not Face.NEUTRAL:
        return own
    return _band(peer_ratio, previous, cfg)


def _band(ratio: float, previous: Face, cfg: FaceConfig) -> Face:
    h = cfg.hysteresis
    frown_at = cfg.frown_above - (h if previous is Face.FROWN else 0.0)
    smile_at = cfg.smile_below + (h if previous is Face.SMILE else 0.0)
    if cfg.allow_frown and ratio > frown_at:
        return Face.FROWN
    if ratio < smile_at:
        return Face.SMILE
    return Face.NEUTRAL


def _kw(watts: float) -> str:
    return f"{watts / 1000:.1f} kW" if watts >= 1000 else f"{watts:.0f} W"


def _against(ratio: float, baseline: float, cfg: FaceConfig) -> str:
    """The last minute against the usual, as the figures stand. Not the face's band: hysteresis holds a smile up
    to 5% above the usual, a frown may be turned off, and neither may make the words untrue ("255 W, below your
    usual 254 W")."""
    about = 1 - cfg.smile_below  # the same width either side of the usual
    if ratio < cfg.smile_below:
        return f"below your usual {_kw(baseline)}"
    if ratio < 1 + about:
        return f"about your usual {_kw(baseline)}"
    return f"{ratio:.1f}x your usual {_kw(baseline)}"


def _last(recent_s: int, watts: float) -> str:
    """The power the face is judged on, named with its span, as it differs from the display's one reading:
    "Last minute 176 W" beside a reading of 183 W."""
    span = "minute" if recent_s == 60 else f"{recent_s} s"
    return f"Last {span} {_kw(watts)}"


class FaceTracker:
    """Feeds on (ts, watts); keeps the last ``recent_s`` samples and a day of minute means."""

    def __init__(self, cfg: FaceConfig) -> None:
        self.cfg = cfg
        self._recent: deque[tuple[int, int]] = deque()
        self._recent_sum = 0
        self._minutes: deque[tuple[int, float]] = deque(maxlen=cfg.baseline_window_s // 60)
        self._minute: int | None = None
        self._minute_sum = 0.0
        self._minute_n = 0
        self._first_ts: int | None = None
        self.state: DisplayState | None = None

    def _close_minute(self) -> None:
        if self._minute is not None and self._minute_n:
            self._minutes.append((self._minute, self._minute_sum / self._minute_n))
        self._minute_sum, self._minute_n = 0.0, 0

    def baseline_w(self) -> float | None:
        if self._first_ts is None or not self._minutes:
            return None
        span = (self._minutes[-1][0] - self._minutes[0][0] + 1) * 60
        if span < self.cfg.min_baseline_s:
            return None
        return median(m for _, m in self._minutes)

    def update(self, ts: int, power_w: int) -> DisplayState:
        if self._first_ts is None:
            self._first_ts = ts
        minute = ts // 60
        if minute != self._minute:
            self._close_minute()
            self._minute = minute
        self._minute_sum += power_w
        self._minute_n += 1
        if self._recent and ts < self._recent[-1][0]:  # the meter's clock went back: the last minute starts again
            self._recent.clear()
            self._recent_sum = 0
        self._recent.append((ts, power_w))
        self._recent_sum += power_w
        while self._recent and self._recent[0][0] <= ts - self.cfg.recent_s:
            self._recent_sum -= self._recent.popleft()[1]
        recent = self._recent_sum / len(self._recent)
        baseline = self.baseline_w()
        previous = self.state.face if self.state else Face.NEUTRAL
        if baseline is None or baseline <= 0:
            face, reason = Face.NEUTRAL, "Learning your home's usual use"
        else:
            ratio = recent / baseline
            peers = self.cfg.similar_homes_w
            face = choose_face(ratio, previous, self.cfg, recent / peers if peers else None)
            reason = f"{_last(self.cfg.recent_s, recent)}, {_against(ratio, baseline, self.cfg)}"
            if peers:
                reason += f"; similar homes use {_kw(peers)}"
        self.state = DisplayState(ts=ts, face=face, power_w=power_w,
                                  baseline_w=round(baseline, 1) if baseline else None, reason=reason)
        return self.state


#: A meter sends every 1 to 10 s: past this without a reading the display says so rather than show the last face as
#: if it were now, and `hub status` asks "is the meter sending?".
STALE_S = 120.0


def silent_state(last: DisplayState, silent_s: float) -> DisplayState:
    """What the display shows when no reading has come for ``silent_s`` (past ``STALE_S``): no face for now, and why."""
    reason = f"No reading from the meter for {round(silent_s / 60)} min: is its cable in? (last: {last.power_w} W)"
    return last.model_copy(update={"face": Face.NEUTRAL, "reason": reason})
