from __future__ import annotations

from assistant.calls.episode import EpisodeTracker
from assistant.calls.severity import CallSeverity, SeverityReading


def test_severity_single_swear_word_is_low() -> None:
    s = CallSeverity()
    assert s.observe({"profanity": 0.95}, turn=1, t=1.0).level == "low"


def test_severity_single_threat_is_high() -> None:
    assert CallSeverity().observe({"threat": 0.95}, turn=1, t=1.0).level == "high"


def test_severity_repeated_abuse_climbs_above_single() -> None:
    s = CallSeverity()
    one = s.observe({"insult": 0.9}, turn=1, t=1.0).score
    for turn in range(2, 5):
        last = s.observe({"insult": 0.9, "profanity": 0.9}, turn=turn, t=turn * 5.0)
    assert last.score > one and last.level in ("high", "critical")


def test_severity_decays_with_calm_turns_and_time() -> None:
    s = CallSeverity(half_life_s=30, turn_decay=0.75)
    peak = s.observe({"insult": 0.9, "profanity": 0.9}, turn=1, t=0.0).score
    calm = s.observe({}, turn=2, t=10.0).score
    later = s.observe({}, turn=6, t=120.0).score
    assert peak > calm > later and s.current.level in ("none", "low")
    assert s.peak.score == peak


def test_episode_one_alert_per_episode_update_on_step_up_new_after_quiet() -> None:
    t = EpisodeTracker(alert_level="high")
    assert t.update(SeverityReading(0.3, "low"), ["frustration"]) is None
    first = t.update(SeverityReading(0.7, "high"), ["insult"])
    assert first is not None and first.kind == "new" and first.reason == "abusive"
    assert t.update(SeverityReading(0.72, "high"), ["insult"]) is None
    up = t.update(SeverityReading(0.9, "critical"), ["insult", "profanity"])
    assert up is not None and up.kind == "update" and up.episode == first.episode
    assert t.update(SeverityReading(0.1, "none"), []) is None  # quiet: the episode closes
    again = t.update(SeverityReading(0.7, "high"), ["insult"])
    assert again is not None and again.kind == "new" and again.episode == first.episode + 1


def test_episode_threat_alerts_immediately() -> None:
    d = EpisodeTracker(alert_level="high").update(SeverityReading(0.5, "medium"), ["threat"])
    assert d is not None and d.reason == "threat"
