from edge.config import FaceConfig
from edge.face import FaceTracker, choose_face
from protocols.display import Face

CFG = FaceConfig()


def test_policy_thresholds():
    assert choose_face(0.5, Face.NEUTRAL, CFG) is Face.SMILE
    assert choose_face(1.0, Face.NEUTRAL, CFG) is Face.NEUTRAL
    assert choose_face(3.0, Face.NEUTRAL, CFG) is Face.FROWN


def test_hysteresis_keeps_a_face_near_its_threshold():
    just_below_frown = CFG.frown_above - CFG.hysteresis / 2
    assert choose_face(just_below_frown, Face.FROWN, CFG) is Face.FROWN
    assert choose_face(just_below_frown, Face.NEUTRAL, CFG) is Face.NEUTRAL
    just_above_smile = CFG.smile_below + CFG.hysteresis / 2
    assert choose_face(just_above_smile, Face.SMILE, CFG) is Face.SMILE
    assert choose_face(just_above_smile, Face.NEUTRAL, CFG) is Face.NEUTRAL


def test_frown_can_be_turned_off():
    cfg = FaceConfig(allow_frown=False)
    assert choose_face(10.0, Face.NEUTRAL, cfg) is Face.NEUTRAL


def test_tracker_learns_then_follows_a_kettle():
    tracker = FaceTracker(CFG)
    t = 1_764_072_000
    states = [tracker.update(t + i, 300) for i in range(CFG.min_baseline_s + 120)]
    assert states[0].face is Face.NEUTRAL and "Learning" in states[0].reason
    assert states[-1].face is Face.NEUTRAL and states[-1].baseline_w == 300
    t += len(states)
    during = [tracker.update(t + i, 3300) for i in range(120)]
    assert during[-1].face is Face.FROWN and "usual" in during[-1].reason
    t += 120
    after = [tracker.update(t + i, 150) for i in range(120)]
    assert after[-1].face is Face.SMILE


def test_tracker_memory_is_bounded():
    cfg = FaceConfig(baseline_window_s=3600)
    tracker = FaceTracker(cfg)
    for i in range(0, 3 * 3600):
        tracker.update(i, 100)
    assert len(tracker._minutes) <= 60
    assert len(tracker._recent) <= cfg.recent_s


def test_similar_homes_decide_only_when_the_home_is_at_its_usual():
    # at its own usual, a home well below similar homes keeps an approving smile (no boomerang) …
    assert choose_face(1.0, Face.NEUTRAL, CFG, peer_ratio=0.5) is Face.SMILE
    # … and one well above them frowns
    assert choose_face(1.0, Face.NEUTRAL, CFG, peer_ratio=2.0) is Face.FROWN
    # a home well below its own usual smiles whatever its neighbours do
    assert choose_face(0.5, Face.NEUTRAL, CFG, peer_ratio=3.0) is Face.SMILE


def test_reason_mentions_similar_homes():
    tracker = FaceTracker(FaceConfig(similar_homes_w=600))
    for i in range(CFG.min_baseline_s + 120):
        state = tracker.update(i, 300)
    assert state.face is Face.SMILE and "similar homes use 600 W" in state.reason


def test_a_meter_clock_that_goes_back_starts_the_last_minute_again():
    """After a reading stamped years ahead, the meter's next readings are behind it: the last minute is theirs
    (before, the future reading stayed in it for good, and every later reading with it)."""
    tracker = FaceTracker(CFG)
    t = 1_764_072_000
    for i in range(CFG.min_baseline_s + 120):
        tracker.update(t + i, 300)
    tracker.update(t + 5 * 365 * 86400, 9000)
    t += CFG.min_baseline_s + 120
    states = [tracker.update(t + i, 300) for i in range(3 * CFG.recent_s)]
    assert states[-1].reason == "Last minute 300 W, about your usual 300 W", states[-1].reason
    assert len(tracker._recent) <= CFG.recent_s + 1  # bounded, as a minute of readings is


def _at_usual(tracker: FaceTracker, watts: int = 300) -> int:
    for i in range(CFG.min_baseline_s + 120):
        tracker.update(i, watts)
    return CFG.min_baseline_s + 120


def test_a_smile_held_by_hysteresis_does_not_call_a_minute_above_the_usual_below_it():
    """Seen in the demo: a smile, and "Last minute 255 W, below your usual 254 W". The face keeps its smile near
    the threshold; the words say what the figures are."""
    tracker = FaceTracker(CFG)
    t = _at_usual(tracker)
    for i in range(2 * CFG.recent_s):
        state = tracker.update(t + i, 150)  # half the usual: a smile
    assert state.face is Face.SMILE and state.reason == "Last minute 150 W, below your usual 300 W"
    t += 2 * CFG.recent_s
    for i in range(2 * CFG.recent_s):
        state = tracker.update(t + i, 302)  # back at the usual; the smile holds until 5% above it
    assert state.face is Face.SMILE
    assert state.reason == "Last minute 302 W, about your usual 300 W", state.reason


def test_with_the_frown_turned_off_three_times_the_usual_is_still_said():
    tracker = FaceTracker(FaceConfig(allow_frown=False))
    t = _at_usual(tracker)
    for i in range(2 * CFG.recent_s):
        state = tracker.update(t + i, 900)
    assert state.face is Face.NEUTRAL
    assert state.reason == "Last minute 900 W, 3.0x your usual 300 W", state.reason
