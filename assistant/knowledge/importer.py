"""Importers that turn a company's existing SOPs into a knowledge pack (Markdown in the shipped format).

Packs live under ``settings.resolved_kb_packs_dir()/<name>/`` (git-ignored) and are read by every build and
by a running advisor at the next call. Two sources are supported:

* a folder of Markdown SOPs in the documented format (validated; bad files reported and skipped);
* the ABCD agent guidelines JSON (``guidelines.json``: flows -> subflows -> actions), one procedure per
  subflow with id ``abcd/<subflow>``, where ``<subflow>`` is the data set's own key (``kb.json``,
  ``ontology.json``), e.g. ``abcd/refund_initiate``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import DataError, InvalidInputError
from assistant.knowledge.document import KnowledgeProblem, load_knowledge_base, parse_text

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

# What the agent says when carrying out each ABCD action button (the guidelines describe the clicks only).
_ABCD_SCRIPTS: dict[str, str] = {
    "pull up account": "Could I have your full name or account ID, please?",
    "verify identity": "To verify your identity, could you give me your full name, account ID and order ID?",
    "validate purchase": "Could you confirm your username, e-mail address and order ID so I can check the purchase?",
    "record reason": "Could you tell me a little more about the reason, so I can note it?",
    "membership privileges": "Could you tell me your membership level: gold, silver, bronze or guest?",
    "update order": "I'm updating your order now.",
    "ask the oracle": "Let me check that in our system for you.",
    "enter details": "Could you give me the details I need to complete this, such as your address?",
    "enter detail": "Could you give me the details I need to complete this, such as your address?",
    "shipping status": "Could you tell me the shipping status shown on your order?",
    "update account": "I'm updating your account now.",
    "search faq": "Let me look that up for you.",
    "select answer": "Here's the answer to your question.",
    "offer refund": "I can offer you a refund of [amount]; how much did the item cost?",
    "make purchase": "I'll place that order for you now.",
    "promo code": "I can give you a promo code for your trouble.",
    "notify internal team": "I'll let our internal team know about this so it gets fixed.",
    "send link": "I'm sending you a link now; please check your e-mail.",
    "try again": "Could you try that again now and tell me what happens?",
    "log out/in": "Could you log out and log back in, then tell me what you see?",
    "end conversation": "Is there anything else I can help you with today?",
    "subscription status": "Let me check the status of your subscription.",
    "make password": "I'll generate a new password for you now.",
}
_GENERIC_SCRIPT = "Let me explain how we'll handle this."

# How customers typically open each ABCD intent, in our words: the guidelines describe agent clicks only,
# so without these the customer's side of the call has little to match.
_ABCD_PHRASES: dict[str, tuple[str, ...]] = {
    "recover_username": ("I forgot my username", "I can't remember what my login name is"),
    "recover_password": ("I forgot my password", "I need to reset my password"),
    "reset_2fa": ("I'm not getting the two-factor code", "reset my two-step verification"),
    "status_service_added": ("a service was added to my account that I didn't ask for",),
    "status_service_removed": ("a service was removed from my account",),
    "status_shipping_question": ("a question about the shipping on my account",),
    "status_credit_missing": ("my store credit is missing", "the credit I was promised isn't there"),
    "manage_change_address": ("I need to change my address",),
    "manage_change_name": ("I need to change the name on my account",),
    "manage_change_phone": ("I want to update my phone number",),
    "manage_payment_method": ("I want to change the payment method on my account",),
    "status_mystery_fee": ("there's a fee on my order I don't understand",),
    "status_delivery_time": ("when will my order arrive", "how long until my package gets here"),
    "status_payment_method": ("I want to change how I paid for my order",),
    "status_quantity": ("I ordered two by mistake I only wanted one",),
    "manage_upgrade": ("I want to upgrade my shipping", "can I get faster delivery on my order"),
    "manage_downgrade": ("I want to downgrade my shipping to a cheaper option",),
    "manage_create": ("I want to add an item to my order",),
    "manage_cancel": ("I want to cancel my order", "remove an item from my order"),
    "refund_initiate": ("I want my money back for an item", "I'd like a refund for something I bought"),
    "refund_update": ("I want to add another item to my existing refund",),
    "refund_status": ("what's the status of my refund", "I haven't received my refund yet"),
    "return_stain": ("the item arrived with a stain and I want to return it",),
    "return_color": ("the colour is wrong I want to return it",),
    "return_size": ("it doesn't fit I want to return it for size",),
    "bad_price_competitor": ("I found it cheaper at a competitor",),
    "bad_price_yesterday": ("the price dropped right after I bought it",),
    "out_of_stock_general": ("everything I want is out of stock",),
    "out_of_stock_one_item": ("the item I want is sold out",),
    "promo_code_invalid": ("my promo code doesn't work",),
    "promo_code_out_of_date": ("my promo code says it has expired",),
    "mistimed_billing_already_returned": ("I was billed for something I already returned",),
    "mistimed_billing_never_bought": ("I was charged for something I never bought",),
    "status": ("where is my package", "has my order shipped yet"),
    "manage": ("I need to change the shipping address on my order",),
    "missing": ("an item is missing from my delivery",),
    "cost": ("why is shipping so expensive", "how much does shipping cost"),
    "boots": ("a question about your boots",),
    "shirt": ("a question about your shirts",),
    "jeans": ("a question about your jeans",),
    "jacket": ("a question about your jackets",),
    "pricing": ("a question about your prices",),
    "membership": ("what do I get with a gold membership",),
    "timing": ("when does your store open", "how long do things take"),
    "policy": ("what's your policy on returns and exchanges",),
    "status_active": ("is my premium subscription still active",),
    "status_due_amount": ("how much do I owe on my subscription",),
    "status_due_date": ("when is my subscription payment due",),
    "manage_pay_bill": ("I want to pay my subscription bill",),
    "manage_extension": ("can I get more time to pay my subscription",),
    "manage_dispute_bill": ("I want to dispute my subscription bill",),
    "credit_card": ("your site won't accept my credit card",),
    "shopping_cart": ("my shopping cart isn't updating",),
    "search_results": ("the search on your website isn't working",),
    "slow_speed": ("your website is really slow",),
}


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import wrote and what it skipped."""

    name: str
    folder: Path
    procedure_ids: tuple[str, ...]
    problems: tuple[KnowledgeProblem, ...]


def check_pack_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidInputError(
            f"pack name {name!r} must be lowercase letters, digits, '-' or '_' (for example --name acme)"
        )
    return name


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def abcd_subflow_keys(guidelines: dict[str, Any], ontology: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Map (flow name, subflow name) in guidelines.json to the data set's subflow key.

    The ontology lists each flow's subflow keys (``"Product Defect"`` -> ``product_defect``) in the same order
    as guidelines.json lists the subflows; names differ ("Website Too Slow" is ``slow_speed``), order does not.
    """
    try:
        flows: dict[str, list[str]] = ontology["intents"]["subflows"]
    except (KeyError, TypeError) as e:
        raise DataError("ontology.json has no intents.subflows; is this the ABCD ontology?") from e
    out: dict[tuple[str, str], str] = {}
    for flow_name, flow in guidelines.items():
        key = _snake(flow_name)
        if key not in flows:
            raise DataError(f"flow {flow_name!r} (key {key!r}) is not in ontology.json intents.subflows")
        names = list(flow.get("subflows", {}))
        keys = flows[key]
        if len(names) != len(keys):
            raise DataError(
                f"flow {flow_name!r} has {len(names)} subflows in guidelines.json but {len(keys)} in ontology.json"
            )
        for name, sub_key in zip(names, keys, strict=True):
            out[(flow_name, name)] = sub_key
    return out


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("[", "").replace("]", "")).strip()


def _abcd_markdown(flow_name: str, flow_desc: str, sub_name: str, key: str, sub: dict[str, Any]) -> str:
    faq = "faq" in flow_name.lower() or "query" in flow_name.lower()
    stage = "information_sharing" if faq else "problem_resolution"
    instructions = " ".join(_clean(i) for i in sub.get("instructions", []))
    lines = [
        "---",
        f"id: abcd/{key}",
        f"title: {_yaml_str(f'{flow_name}: {sub_name}')}",
        f"stage: {stage}",
        f"answers: [{key}, {_snake(flow_name)}]",
        'version: "abcd-2021"',
        "last_revised: 2021-06-01",
        f"source: {_yaml_str('ABCD agent guidelines (asappresearch/abcd, MIT)')}",
        "phrases:",
        *[f"  - {_yaml_str(p)}" for p in _ABCD_PHRASES.get(key, ())],
        "---",
        f"# {flow_name}: {sub_name}",
        "",
        f"{flow_name} ({flow_desc}): {sub_name.lower()} ({key.replace('_', ' ')}). {instructions}".strip(),
        "",
        "## Steps",
        "",
    ]
    for n, action in enumerate(sub.get("actions", []), start=1):
        button = str(action.get("button", "")).strip()
        text = _clean(str(action.get("text", "")))
        details = "; ".join(_clean(str(s)) for s in action.get("subtext", []) if str(s).strip())
        title = button if button and button.upper() != "N/A" else "Explain"
        body = f"{text} {('(' + details + ')') if details else ''}".strip()
        script = _ABCD_SCRIPTS.get(button.lower())
        if script is None:
            script = (
                f"Let me find the answer about {button.lower()} for you."
                if action.get("type") == "faq/policy" and button
                else _GENERIC_SCRIPT
            )
        lines += [f"{n}. **{title}.** {body}", f'   > Say: "{script}"']
    return "\n".join(lines) + "\n"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def abcd_documents(guidelines_path: Path) -> dict[str, str]:
    """Markdown text per procedure id for the ABCD guidelines (ontology.json must sit beside the file)."""
    guidelines = _read_json(guidelines_path)
    ontology_path = guidelines_path.with_name("ontology.json")
    if not ontology_path.exists():
        raise DataError(
            f"{ontology_path} is missing: the ABCD import needs ontology.json beside guidelines.json"
        )
    keys = abcd_subflow_keys(guidelines, _read_json(ontology_path))
    docs: dict[str, str] = {}
    for flow_name, flow in guidelines.items():
        for sub_name, sub in flow["subflows"].items():
            key = keys[(flow_name, sub_name)]
            docs[f"abcd/{key}"] = _abcd_markdown(flow_name, flow.get("description", ""), sub_name, key, sub)
    return docs


def _is_abcd(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        data = _read_json(path)
    except DataError:
        return False
    return isinstance(data, dict) and all(isinstance(v, dict) and "subflows" in v for v in data.values())


def _write_pack(folder: Path, files: dict[str, str]) -> None:
    if folder.exists():
        shutil.rmtree(folder)  # an import replaces the whole pack: removed SOPs disappear too
    folder.mkdir(parents=True)
    for rel, text in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def import_pack(source: Path, *, packs_dir: Path, name: str | None = None) -> ImportReport:
    """Import a Markdown folder or the ABCD guidelines JSON as the pack ``name``.

    Raises:
        InvalidInputError: the source is neither a folder nor an ABCD guidelines file.
    """
    if not source.exists():
        raise InvalidInputError(f"no such file or folder: {source}")
    problems: list[KnowledgeProblem] = []
    if source.is_dir():
        pack = check_pack_name(name or _snake(source.name).replace("_", "-") or "pack")
        kb = load_knowledge_base([source])
        problems.extend(kb.problems)
        files = {
            p.path.relative_to(source).as_posix(): p.path.read_text(encoding="utf-8") for p in kb.procedures
        }
        ids = tuple(p.id for p in kb.procedures)
    elif _is_abcd(source):
        pack = check_pack_name(name or "abcd")
        docs = abcd_documents(source)
        files = {}
        for pid, text in docs.items():
            rel = pid.split("/", 1)[1] + ".md"
            check = parse_text(text, path=source)  # the generated files must parse; a bug here is ours
            if check.procedure is None:
                raise DataError(f"generated SOP for {pid} does not parse: {check.problems[0].message}")
            files[rel] = text
        ids = tuple(docs)
    else:
        raise InvalidInputError(
            f"{source} is neither a folder of Markdown SOPs nor an ABCD guidelines.json "
            "(flows with 'subflows'); see knowledge_base/README.md"
        )
    folder = packs_dir / pack
    _write_pack(folder, files)
    logger.info("imported knowledge pack %s: %d procedures, %d problems", pack, len(ids), len(problems))
    return ImportReport(pack, folder, ids, tuple(problems))
