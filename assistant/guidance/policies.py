"""Both policy files, loaded together from the settings (once, at start-up or per CLI run).

Example:
    >>> from assistant.settings import Settings
    >>> p = load_policies(Settings())
    >>> p.protocol.steps[0].id
    'redirect'
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.guidance.policy import ProtocolPolicy, StagePolicy, load_protocol_policy, load_stage_policy
from assistant.settings import Settings


@dataclass(frozen=True, slots=True)
class GuidancePolicies:
    stages: StagePolicy
    protocol: ProtocolPolicy


def load_policies(settings: Settings) -> GuidancePolicies:
    """Read and validate ``ASSISTANT_CALL_STAGES_FILE`` and ``ASSISTANT_ABUSE_PROTOCOL_FILE``."""
    return GuidancePolicies(
        stages=load_stage_policy(settings.call_stages_file),
        protocol=load_protocol_policy(settings.abuse_protocol_file),
    )
