"""The policy files: the shipped ones load, and a bad file is refused with its path and the field at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.errors import ConfigurationError
from assistant.guidance.policies import load_policies
from assistant.guidance.policy import (
    DEFAULT_PROTOCOL_FILE,
    DEFAULT_STAGES_FILE,
    load_protocol_policy,
    load_stage_policy,
)
from assistant.settings import Settings


def _write(tmp_path: Path, source: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(source.read_text())
    change(data)
    out = tmp_path / source.name
    out.write_text(yaml.safe_dump(data))
    return out


def test_policies_shipped_files_load_from_settings() -> None:
    p = load_policies(Settings())
    assert [s.id for s in p.stages.stages] == [
        "greeting",
        "identification",
        "problem_resolution",
        "information_sharing",
        "closing",
    ]
    assert [s.id for s in p.stages.steps] == [
        "greeting_given",
        "identity_verified",
        "issue_summarised",
        "further_help_offered",
        "customer_thanked",
    ]
    assert [s.id for s in p.protocol.steps] == ["redirect", "first_warning", "final_warning", "end_call"]


def test_policy_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"ASSISTANT_ABUSE_PROTOCOL_FILE.*not found"):
        load_policies(Settings(abuse_protocol_file=tmp_path / "nope.yaml"))


def test_policy_bad_regex_names_file_and_field(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["steps"][1]["said"] = ["(unclosed"]

    path = _write(tmp_path, DEFAULT_PROTOCOL_FILE, change)
    with pytest.raises(
        ConfigurationError, match=r"abuse-protocol.yaml: steps\.1\.said.*bad regular expression"
    ):
        load_protocol_policy(path)


def test_policy_unknown_label_is_refused(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["abusive_labels"].append("rudeness")

    with pytest.raises(ConfigurationError, match="unknown red-flag label 'rudeness'"):
        load_protocol_policy(_write(tmp_path, DEFAULT_PROTOCOL_FILE, change))


def test_policy_requires_must_name_an_earlier_step(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["steps"][1]["requires"] = ["end_call"]

    with pytest.raises(ConfigurationError, match="requires 'end_call', which is not an earlier step"):
        load_protocol_policy(_write(tmp_path, DEFAULT_PROTOCOL_FILE, change))


def test_policy_step_with_unknown_stage_is_refused(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["steps"][0]["stage"] = "small_talk"

    with pytest.raises(ConfigurationError, match="unknown stage 'small_talk'"):
        load_stage_policy(_write(tmp_path, DEFAULT_STAGES_FILE, change))


def test_policy_unknown_key_is_refused(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["steps"][0]["patterns"] = ["x"]

    with pytest.raises(ConfigurationError, match=r"steps\.0\.patterns: Extra inputs are not permitted"):
        load_stage_policy(_write(tmp_path, DEFAULT_STAGES_FILE, change))


def test_policy_name_pattern_needs_a_name_group(tmp_path: Path) -> None:
    def change(d):  # type: ignore[no-untyped-def]
        d["names"]["agent"] = ["this is (\\w+)"]

    with pytest.raises(ConfigurationError, match=r"no \(\?P<name>\.\.\.\) group"):
        load_stage_policy(_write(tmp_path, DEFAULT_STAGES_FILE, change))


def test_policy_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        load_stage_policy(path)
