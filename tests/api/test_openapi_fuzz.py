"""Property-based fuzzing of every HTTP endpoint from the OpenAPI schema (schemathesis), in process.

Valid and invalid requests, a bounded number per operation: no answer may be a server error (5xx), no answer
may take the service down, and answers that the schema describes must match it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor

# The app lives for the test session: schemathesis starts its lifespan once and reuses it for every case.
_VAR = Path(tempfile.mkdtemp(prefix="openapi-fuzz-"))
APP = create_app(make_settings(_VAR), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
# Starting a demo call launches a replay that outlives the request (it has tests of its own): fuzzing it would
# leave dozens of replays running into later tests.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/demo/calls", method="POST")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_survives_generated_requests(case: schemathesis.Case) -> None:
    case.call_and_validate(
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
        excluded_checks=None,
    )
