from __future__ import annotations

import pytest

from assistant.calls.redaction import luhn_ok, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("card 4111111111111111", "card [CARD]"),
        ("it's four one one one one one one one one one one one one one one one", "it's [CARD]"),
        ("mail jo.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("call +44 20 7946 0958", "call [PHONE]"),
        ("call 555-123-4567", "call [PHONE]"),
        ("ssn 123-45-6789", "ssn [SSN]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [IBAN]"),
        ("account seven seven three two one nine nine four", "account [NUMBER]"),
    ],
)
def test_redaction_replaces_personal_data(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text", ["I paid $1,250.00 on 2024-06-01", "order 12345", "one or two things", "you useless idiot"]
)
def test_redaction_keeps_ordinary_text(text: str) -> None:
    assert redact(text).text == text


def test_redaction_luhn_failing_16_digits_is_number_not_card() -> None:
    assert not luhn_ok("4111111111111112")
    assert redact("4111 1111 1111 1112").text == "[NUMBER]"


def test_redaction_spans_map_original_to_redacted() -> None:
    r = redact("a jo@x.io b")
    (span,) = r.spans
    assert (span.start, span.end, span.kind) == (2, 9, "EMAIL")
    assert r.text[span.new_start : span.new_end] == "[EMAIL]"
