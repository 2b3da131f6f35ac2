"""Redaction of personal data before anything is analysed, stored, shown or logged.

Replaced, in this order (an earlier kind wins where two overlap): e-mail addresses ``[EMAIL]``, IBANs
``[IBAN]``, SSN-like ids ``[SSN]``, digit sequences spoken by ASR ("four one one one ...") as ``[CARD]`` or
``[NUMBER]``, card numbers ``[CARD]`` (13-19 digits, spaced or dashed, Luhn-checked; failing Luhn ``[NUMBER]``),
phone numbers ``[PHONE]`` in any country's format (Google's ``phonenumbers``: valid numbers, numbers with a
``+`` country code, and possible numbers of 9+ digits; UK ``07700 900123`` as well as ``+1 212 555 0123``),
UK postcodes ``[POSTCODE]``, street addresses ``[ADDRESS]`` ("221B Baker Street", "42 Elm Road"), names the
caller or agent gives ("my name is Jonathan Pemberton", "this is Sarah speaking", "Mr Pemberton") and, once
given, every later mention of them in the call ``[NAME]``, and other runs of 8+ digits ``[NUMBER]``.

Every pattern has bounded repetition (no pattern can backtrack over the whole text), so the time is linear
in the input: 80,000 characters take milliseconds. The models score the redacted text, so flag spans index
into what the sidebar shows. Order numbers of up to 7 digits, times, dates and money amounts are kept.

Example:
    >>> redact("card 4111 1111 1111 1111, mail jo@example.com").text
    'card [CARD], mail [EMAIL]'
    >>> r = CallRedactor()
    >>> r.redact("my name is Jonathan Pemberton").text, r.redact("thanks Jonathan").text
    ('my name is [NAME]', 'thanks [NAME]')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers

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

# E-mail addresses are found from their "@" (RFC 5321 limits: local part 64, domain labels 63): a pattern
# that starts anywhere would try every position of a long word.
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,6}){1,5}(?![\d])"
)
# A stretch that may hold one phone number: 7-24 characters of digits and the separators numbers are written
# with, starting with a digit, "+" or "(".
_PHONE_WINDOW = re.compile(r"(?<![\w+])[+(]?\d[\d \t().-]{5,22}\d(?!\d)")
_PHONE_MATCHER_BUDGET = 16
_LONG_DIGITS = re.compile(r"(?<!\d)\d{8,}(?!\d)")
_SPOKEN = re.compile(
    rf"\b{_SPOKEN_TOKEN}(?:[\s,.-]{{1,3}}{_SPOKEN_TOKEN}){{6,40}}\b", re.IGNORECASE
)  # 40: longer than any card or account number spoken digit by digit
# UK postcodes (the Royal Mail format: outward code, space optional, inward code), any case (ASR lowercases).
_POSTCODE = re.compile(
    r"\b(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})\b", re.IGNORECASE
)
_STREET_SUFFIX = (
    r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|close|court|ct|way|place|pl|boulevard|blvd|crescent|"
    r"terrace|square|sq|gardens|grove|hill|park|row|mews|parade|walk|highway|hwy|circle|cir|parkway|pkwy"
)
_ADDRESS = re.compile(
    rf"\b(?:flat|apartment|apt|unit|suite)?\s?\d{{1,5}}[a-z]?,?\s+((?:[a-z][a-z'.-]{{0,24}}\s+){{1,3}})"
    rf"(?:{_STREET_SUFFIX})\b\.?(?:\s+(?:north|south|east|west|nw|ne|sw|se|n|s|e|w)\b)?",
    re.IGNORECASE,
)
_NAME_WORD = r"[A-Za-z][A-Za-z'’-]{0,30}"
_NAME_SPAN = rf"({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
_NAME_TRIGGERS = (
    # "my name is X", "name's X", "call me X", "you're speaking to X": a name follows.
    re.compile(
        r"\b(?:my\s+name\s+is|my\s+name's|the\s+name\s+is|the\s+name's|name's|call\s+me|"
        r"you(?:'re|\s+are)\s+(?:speaking|talking)\s+(?:to|with)|you(?:'re|\s+are)\s+through\s+to|"
        rf"i\s+am\s+called|i'm\s+called)\s+{_NAME_SPAN}",
        re.IGNORECASE,
    ),
    # "this is X speaking", "it's X here", "X speaking" at the start of an utterance.
    re.compile(rf"\b(?:this\s+is|it's|it\s+is)\s+{_NAME_SPAN}\s+(?:speaking|here|calling)\b", re.IGNORECASE),
    re.compile(
        rf"^(?:(?:hello|hi|hey|good\s+(?:morning|afternoon|evening))[,.!]?\s+)?{_NAME_SPAN}\s+speaking\b",
        re.IGNORECASE,
    ),
    # Titles: "Mr Pemberton", "Mrs. Smith".
    re.compile(rf"\b(?:mr|mrs|ms|miss|mx|dr)\.?\s+({_NAME_WORD})", re.IGNORECASE),
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that end a name or are never one: "my name is John AND ...", "this is RIDICULOUS here".
_NOT_NAME = _word_set(
    """a about absolutely actually again all also am an and any are as at awful back be because been being
    bill billing but by calling can cannot could did do does done down for from going gone good great had
    has have having he her here him his how however i i'm if in is isn't it it's just me mine more my myself
    no not now of off ok okay on one only or our out over please really right same she so sorry still such
    than thank thanks that the their them then there these they this those through to today too totally
    unacceptable under up us useless very was we well were what when where which while who why will with
    would yes you your yours ridiculous terrible crazy insane outrageous disgusting horrible fine busy here
    speaking calling hello hi hey you're we're they're i'm he's she's that's who's sir madam miss ma'am customer account card phone number address email
    service support manager supervisor agent team department company bank the"""
)
# Single words that are phone-area or address-like but never a street name: "2 hour drive", "3 times on the way".
_NOT_STREET = _word_set(
    """a an the my your our their his her its this that these those on in at to of for from by with and or
    but times time hour hours minute minutes min mins day days week weeks month months year years mile miles
    km metres meters feet foot more less other same long short one two three four five six seven eight nine
    ten people calls call items item orders order accounts account cards claims small"""
)

_MAX_KNOWN_NAMES = 20  # a call names a handful of people; bounded so one call cannot grow the pattern


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
    names: tuple[str, ...] = ()  # names found in this text ("Jonathan Pemberton"), to redact later mentions

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


def _street_kind(match: re.Match[str]) -> str | None:
    words = match.group(1).lower().split()
    if any(w in _NOT_STREET for w in words):
        return None
    return "ADDRESS"


def _name_words(span: str) -> str:
    """The leading words of ``span`` that can be a name ('Jonathan Pemberton and I' -> 'Jonathan Pemberton')."""
    kept: list[str] = []
    for word in span.split():
        if word.lower().strip("'’-") in _NOT_NAME or len(word) < 2:
            break
        kept.append(word)
    return " ".join(kept)


Finding = tuple[int, int, str]
Finder = Callable[[str], Iterable[Finding]]


def _from_pattern(pattern: re.Pattern[str], kind: str | Callable[[str], str | None]) -> Finder:
    def find(text: str) -> Iterable[Finding]:
        for m in pattern.finditer(text):
            k = kind(m.group()) if callable(kind) else kind
            if k:
                yield m.start(), m.end(), k

    return find


def _emails(text: str) -> Iterable[Finding]:
    at = text.find("@")
    while at != -1:
        start = at
        while start > 0 and at - start < 64 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start < at else None
        if domain is not None:
            yield start, domain.end(), "EMAIL"
        at = text.find("@", at + 1)


def _phones(text: str) -> Iterable[Finding]:
    """Phone numbers in any country's format (libphonenumber's matcher), national ones read as UK.

    The matcher is only run on short digit-and-separator windows (on a long run of digit groups it is
    superlinear: 4,000 "4111 " took 5 s), and on the first ``_PHONE_MATCHER_BUDGET`` windows of a text (it costs
    ~0.3 ms a window). Windows past the budget with 7+ digits are redacted unchecked: a text with that many
    numbers in it is not speech, and redacting too much is the safe side.
    """
    for i, window in enumerate(_PHONE_WINDOW.finditer(text)):
        chunk = window.group()
        if i >= _PHONE_MATCHER_BUDGET:
            if sum(ch.isdigit() for ch in chunk) >= 7:
                yield window.start(), window.end(), "PHONE"
            continue
        for m in phonenumbers.PhoneNumberMatcher(chunk, "GB", leniency=phonenumbers.Leniency.POSSIBLE):
            digits = sum(ch.isdigit() for ch in m.raw_string)
            # Numbers dialled with a country code, 9+ digits, or shorter ones valid in the UK or North
            # America: "2024-06-01" and "order 4471923" are only "possible" numbers, and are kept.
            if m.raw_string.startswith("+") or digits >= 9 or _valid_here(m.number):
                yield window.start() + m.start, window.start() + m.end, "PHONE"


def _valid_here(number: phonenumbers.PhoneNumber) -> bool:
    """Valid as a UK number (the matcher's region) or a North American one."""
    if phonenumbers.is_valid_number(number):
        return True
    try:
        us = phonenumbers.parse(phonenumbers.national_significant_number(number), "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(us)


def _streets(text: str) -> Iterable[Finding]:
    for m in _ADDRESS.finditer(text):
        if _street_kind(m):
            start = m.start() + (len(m.group()) - len(m.group().lstrip()))
            yield start, m.end(), "ADDRESS"


def _given_names(text: str) -> Iterable[Finding]:
    for pattern in _NAME_TRIGGERS:
        for m in pattern.finditer(text):
            name = _name_words(m.group(1))
            if name:
                yield m.start(1), m.start(1) + len(name), "NAME"


_FINDERS: tuple[Finder, ...] = (
    _emails,
    _from_pattern(_IBAN, "IBAN"),
    _from_pattern(_SSN, "SSN"),
    _from_pattern(_SPOKEN, _spoken_kind),
    _from_pattern(_CARD, _card_kind),
    _phones,
    _from_pattern(_PHONE, _phone_kind),
    _from_pattern(_POSTCODE, "POSTCODE"),
    _streets,
    _given_names,
    _from_pattern(_LONG_DIGITS, "NUMBER"),
)


def _known_names_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word, any-case matches of each name and each of its words ('Jonathan', 'Pemberton')."""
    words: set[str] = set()
    for name in names:
        words.add(name)
        words.update(w for w in name.split() if len(w) >= 2 and w.lower() not in _NOT_NAME)
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)


def redact(text: str, *, names: Iterable[str] = (), known: re.Pattern[str] | None = None) -> Redaction:
    """Replace personal data in ``text`` with ``[KIND]`` placeholders; the spans say what went where.

    ``names``: people already known in this call (the customer's name from the CRM, names given earlier);
    every mention of them, or of one of their words, becomes ``[NAME]``. ``known``: the same names already
    compiled (``CallRedactor`` keeps it per call), used instead of ``names``.
    """
    found: list[Finding] = []
    taken = bytearray(len(text) + 1)
    finders: list[Finder] = list(_FINDERS)
    if known is None:
        known = _known_names_pattern(names)
    if known is not None:
        finders.insert(len(finders) - 1, _from_pattern(known, "NAME"))
    given: list[str] = []
    for finder in finders:
        for s, e, kind in finder(text):
            if s >= e or any(taken[s:e]):
                continue  # every match is short (bounded patterns), so this check is O(match)
            found.append((s, e, kind))
            taken[s:e] = b"\x01" * (e - s)
            if kind == "NAME" and finder is _given_names:
                given.append(text[s:e])
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
    return Redaction("".join(parts), tuple(spans), tuple(dict.fromkeys(given)))


class CallRedactor:
    """Redaction for one call: remembers the names given (and the customer's name, when known) so that later
    mentions ("thanks Jonathan") are redacted too. Holds at most a few names; never the text."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        # The names' pattern, compiled when they change: with a thousand live calls, each with its own names,
        # ``re``'s cache of 512 patterns would be too small and every chunk would compile one again.
        self._known: re.Pattern[str] | None = None
        self.add_names(names)

    def add_names(self, names: Iterable[str]) -> None:
        added = False
        for name in names:
            name = " ".join(name.split())
            if name and name not in self.names and len(self.names) < _MAX_KNOWN_NAMES:
                self.names.append(name)
                added = True
        if added:
            self._known = _known_names_pattern(self.names)

    def redact(self, text: str) -> Redaction:
        result = redact(text, known=self._known)
        self.add_names(result.names)
        return result
