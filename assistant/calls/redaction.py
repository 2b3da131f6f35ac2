"""Redaction of personal data before anything is analysed, stored, shown or logged.

Replaced, in this order: e-mail addresses ``[EMAIL]``, IBANs ``[IBAN]``, SSN-like ids ``[SSN]``, card numbers
``[CARD]`` (13-19 digits, spaced or dashed, Luhn-checked), phone numbers ``[PHONE]``, other long digit runs
``[NUMBER]``, and digit sequences spoken by ASR ("four one one one ...") as ``[CARD]`` or ``[NUMBER]``.
The models score the redacted text, so flag spans index into what the sidebar shows.

Example:
    >>> redact("card 4111 1111 1111 1111, mail jo@example.com").text
    'card [CARD], mail [EMAIL]'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD_DIGITS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "for": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_SPOKEN_TOKEN = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple|\d{1,4})"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,5}(?![\d])"
)
_LONG_DIGITS = re.compile(r"(?<!\d)\d{8,}(?!\d)")
_SPOKEN = re.compile(rf"\b{_SPOKEN_TOKEN}(?:[\s,.-]+{_SPOKEN_TOKEN}){{6,}}\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RedactedSpan:
    """Where a replacement sits in the original and in the redacted text."""

    start: int
    end: int
    new_start: int
    new_end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    spans: tuple[RedactedSpan, ...] = ()

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.spans]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _spoken_digits(fragment: str) -> str:
    """'four one double one 23' -> '411123'; returns '' when a word is not a digit."""
    out: list[str] = []
    repeat = 1
    for tok in re.split(r"[\s,.-]+", fragment.lower()):
        if not tok:
            continue
        if tok == "double":
            repeat = 2
            continue
        if tok == "triple":
            repeat = 3
            continue
        digits = tok if tok.isdigit() else _WORD_DIGITS.get(tok, "")
        if not digits:
            return ""
        out.append(digits[0] * repeat + digits[1:])
        repeat = 1
    return "".join(out)


def _card_kind(fragment: str) -> str | None:
    digits = re.sub(r"\D", "", fragment)
    if 13 <= len(digits) <= 19:
        return "CARD" if luhn_ok(digits) else "NUMBER"
    return None


def _phone_kind(fragment: str) -> str | None:
    digits = re.sub(r"\D", "", fragment)
    if len(digits) >= 9 or (fragment.startswith("+") and len(digits) >= 7):
        return "PHONE"
    return None


def _spoken_kind(fragment: str) -> str | None:
    digits = _spoken_digits(fragment)
    if len(digits) < 7 or sum(not t.isdigit() for t in fragment.split()) < 3:
        return None  # plain digit groups are handled by the numeric patterns
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return "CARD"
    return "NUMBER"


_RULES: tuple[tuple[re.Pattern[str], object], ...] = (
    (_EMAIL, "EMAIL"),
    (_IBAN, "IBAN"),
    (_SSN, "SSN"),
    (_SPOKEN, _spoken_kind),
    (_CARD, _card_kind),
    (_PHONE, _phone_kind),
    (_LONG_DIGITS, "NUMBER"),
)


def redact(text: str) -> Redaction:
    """Replace personal data in ``text`` with ``[KIND]`` placeholders; the spans say what went where."""
    found: list[tuple[int, int, str]] = []
    taken = [False] * (len(text) + 1)
    for pattern, kind in _RULES:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(taken[s:e]):
                continue
            k = kind(m.group()) if callable(kind) else kind
            if not k:
                continue
            found.append((s, e, str(k)))
            for i in range(s, e):
                taken[i] = True
    if not found:
        return Redaction(text)
    found.sort()
    parts: list[str] = []
    spans: list[RedactedSpan] = []
    pos = 0
    out_len = 0
    for s, e, kind in found:
        parts.append(text[pos:s])
        out_len += s - pos
        token = f"[{kind}]"
        spans.append(RedactedSpan(s, e, out_len, out_len + len(token), kind))
        parts.append(token)
        out_len += len(token)
        pos = e
    parts.append(text[pos:])
    return Redaction("".join(parts), tuple(spans))
