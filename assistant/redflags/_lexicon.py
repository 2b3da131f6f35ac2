"""Small word lists that refine coarse public annotations into fine red-flag labels.

They never decide alone whether a public row is abusive: the annotators do. They only split an annotated
abusive row into ``profanity`` and ``insult``, and pick out violent wording that makes an offensive row a
``threat``. Matching is on word boundaries, case-insensitive, with common Twitter spellings.
"""

from __future__ import annotations

import re
from typing import Final

# Swearing and obscene words, mild to strong. Each entry is a regex fragment matched between word boundaries;
# ambiguous words (``hell``, ``cock``, ``hoe``) are restricted to their swearing uses.
_PROFANE: Final = (
    r"f+u+c+k+\w*",
    r"f[\*@#]+c?k\w*",
    r"fk+in\w*",
    r"motherf\w+",
    r"mf",
    r"sh[i1!\*]+t+\w*",
    r"bull ?shit\w*",
    r"b[i1!]+tch\w*",
    r"bastards?",
    r"ass",
    r"asses",
    r"ass ?holes?",
    r"arse\w*",
    r"dumb ?ass\w*",
    r"jackass\w*",
    r"smart ?ass\w*",
    r"dick ?heads?",
    r"dicks?",
    r"god ?damn\w*",
    r"damn\w*",
    r"dammit",
    r"crap\w*",
    r"piss\w*",
    r"bloody",
    r"(?:the|to) hell",
    r"cunt\w*",
    r"twats?",
    r"wank\w*",
    r"pricks?",
    r"cocks?",
    r"cocksuck\w*",
    r"puss(?:y|ies)",
    r"sluts?",
    r"whores?",
    r"hoes?",
    r"thots?",
    r"nigg(?:a|as|er|ers|ah|az)",
    r"fag(?:s|got|gots)?",
    r"douche\w*",
    r"bollocks",
    r"bugger\w*",
    r"sod off",
    r"wtf",
    r"stfu",
    r"gtfo",
    r"tits?",
    r"titties",
)

# Words that demean a person: what turns offensive language into an insult (Davidson class 1).
_INSULTING: Final = (
    r"b[i1!]+tch\w*",
    r"hoes?",
    r"whores?",
    r"sluts?",
    r"thots?",
    r"cunt\w*",
    r"twats?",
    r"fag(?:s|got|gots)?",
    r"nigger\w*",
    r"retard\w*",
    r"idiot\w*",
    r"moron\w*",
    r"stupid",
    r"dumb\w*",
    r"losers?",
    r"puss(?:y|ies)",
    r"dick ?heads?",
    r"ass ?holes?",
    r"bastards?",
    r"scum\w*",
    r"trash",
    r"ugly",
)

# Violent wording aimed at someone: a threat only together with an annotator's "targeted" judgement.
_VIOLENT: Final = (
    r"(?:kill|shoot|stab|murder|strangle|choke|hang|lynch|behead|slit)(?:s|ed|ing)? (?:you|u|him|her|them|ya|that|this|the|his|their|your)",
    r"(?:beat|punch|slap|smack|hit)(?:s|ing)? (?:you|u|him|her|them|ya|the shit|the hell)",
    r"(?:should|needs? to|deserves? to|ought to) (?:be|get) (?:shot|killed|hanged|hung|lynched|executed|beaten|stabbed)",
    r"(?:i will|i'll|ima|imma|gonna|going to) (?:kill|shoot|stab|hurt|find|beat|end|destroy|murder)",
    r"put (?:a|one) bullet",
    r"(?:blow|burn) (?:you|him|her|them|it) up",
)


def _compile(fragments: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w])(?:" + "|".join(fragments) + r")(?![\w])", re.IGNORECASE)


_PROFANE_RE: Final = _compile(_PROFANE)
_INSULTING_RE: Final = _compile(_INSULTING)
_VIOLENT_RE: Final = _compile(_VIOLENT)


def has_profanity(text: str) -> bool:
    """True when the text contains a swear or obscene word of the lexicon.

    Example:
        >>> has_profanity("what the hell is this"), has_profanity("hello from the shell")
        (True, False)
    """
    return _PROFANE_RE.search(text) is not None


def has_insulting_word(text: str) -> bool:
    """True when the text contains a word that demeans a person (slur or name-calling)."""
    return _INSULTING_RE.search(text) is not None


def has_violent_wording(text: str) -> bool:
    """True when the text contains violent wording aimed at someone ("i'll kill you", "should be shot")."""
    return _VIOLENT_RE.search(text) is not None
