"""``assistant.plain``: the per-chunk state conversion gives what ``dataclasses.asdict`` gave, without aliasing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pytest

from assistant.calls.session import CallSession
from assistant.calls.snapshot import CallSnapshot
from assistant.guidance.live import CallGuidance
from assistant.guidance.policies import load_policies
from assistant.plain import plain
from assistant.settings import Settings


@dataclass
class _Leaf:
    seq: int
    labels: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class _Tree:
    leaves: list[_Leaf] = field(default_factory=list)
    by_id: dict[str, _Leaf] = field(default_factory=dict)
    pair: tuple[int, str] = (0, "")


def test_plain_equals_asdict_through_json_and_copies_containers() -> None:
    leaf = _Leaf(3, ["insult"], "x")
    tree = _Tree([leaf], {"a": _Leaf(4)}, (1, "b"))
    out = plain(tree)
    assert json.dumps(out, sort_keys=True) == json.dumps(asdict(tree), sort_keys=True)
    leaf.labels.append("threat")
    tree.by_id["b"] = _Leaf(5)
    assert out["leaves"][0]["labels"] == ["insult"] and set(out["by_id"]) == {"a"}


def test_plain_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="set"):
        plain({"labels": {"insult"}})


def test_guidance_and_snapshot_state_match_asdict_after_a_call() -> None:
    g = CallGuidance(load_policies(Settings()))
    turns = [
        ("agent", "Thank you for calling Acme, this is Sam. How can I help you today?", []),
        ("customer", "You people are useless, you idiot.", ["insult"]),
        ("agent", "I want to help you, but I need you to stop using that language.", []),
        ("customer", "I'll find out where you live.", ["threat"]),
    ]
    for seq, (speaker, text, labels) in enumerate(turns, 1):
        g.observe(seq, speaker, text, labels)
    state = g.to_dict()
    assert state == {
        "stages": asdict(g.stages.state),
        "protocol": asdict(g.protocol.state),
    }
    assert state["protocol"]["abusive"], "the call had abusive turns to convert"
    s = CallSession("c-1")
    s.guidance = g
    snap = CallSnapshot.of(s, last_seq=4, last_eid=9, alert_updates={"a1": 2}, advisor_state={"k": [1]})
    assert json.loads(snap.to_json()) == json.loads(json.dumps(asdict(snap)))
    assert CallSnapshot.from_json(snap.to_json()) == snap
