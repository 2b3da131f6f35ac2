"""SOP documents: the Markdown format, its parser, and the knowledge base they make up.

A procedure is one Markdown file with YAML front matter and a ``## Steps`` section holding a numbered list;
each item is ``N. **Step title.** what to do`` followed by an indented ``> Say: "script line"``. The format is
documented for companies in ``knowledge_base/README.md``.

Malformed files never stop a build: each problem becomes a :class:`KnowledgeProblem` with the path and line,
and the file is skipped.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = (
    "greeting",
    "identification",
    "problem_resolution",
    "information_sharing",
    "closing",
)
REQUIRED_KEYS: tuple[str, ...] = ("id", "title", "stage", "answers", "version", "last_revised")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-]*)*$")
_ITEM_RE = re.compile(r"^(\d+)[.)]\s+(.*)$")
_SAY_RE = re.compile(r"^>\s*Say:\s*(.*)$", re.IGNORECASE)
_BOLD_TITLE_RE = re.compile(r"^\*\*(.+?)\*\*\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Step:
    """One ordered step of a procedure: what to do and the words to say."""

    index: int  # 0-based
    title: str
    action: str
    script: str
    line: int  # 1-based line of the list item in the source file


@dataclass(frozen=True, slots=True)
class Procedure:
    """A parsed SOP document.

    Example:
        >>> p = parse_text(EXAMPLE, path=Path("x.md")).procedure
        >>> p.id, len(p.steps)
        ('example', 1)
    """

    id: str
    title: str
    stage: str
    answers: tuple[str, ...]
    version: str
    last_revised: str
    summary: str
    steps: tuple[Step, ...]
    path: Path
    content_hash: str
    phrases: tuple[str, ...] = ()
    source_label: str = ""  # path shown in suggestions (relative where possible)

    def step_source(self, index: int) -> str:
        """The provenance of a step: file, line and heading, e.g. ``knowledge_base/x.md:14 (Step 2: ...)``."""
        s = self.steps[index]
        return f"{self.source_label or self.path}:{s.line} (Step {index + 1}: {s.title})"


@dataclass(frozen=True, slots=True)
class KnowledgeProblem:
    """A file that could not be used, with where and why; the CLI prints these."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    procedure: Procedure | None
    problems: tuple[KnowledgeProblem, ...] = ()


@dataclass(slots=True)
class KnowledgeBase:
    """The procedures from every source folder, in a stable order, and the problems met while reading."""

    procedures: list[Procedure] = field(default_factory=list)
    problems: list[KnowledgeProblem] = field(default_factory=list)

    def by_id(self) -> dict[str, Procedure]:
        return {p.id: p for p in self.procedures}

    def __len__(self) -> int:
        return len(self.procedures)


EXAMPLE = """---
id: example
title: An example
stage: greeting
answers: [greeting]
version: "1.0"
last_revised: 2024-01-01
---
# An example

## Steps

1. **Greet.** Greet the caller.
   > Say: "Hello!"
"""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _problem(path: Path, line: int, message: str) -> ParseResult:
    return ParseResult(None, (KnowledgeProblem(path, line, message),))


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'“”":
        return s[1:-1].strip()
    if len(s) >= 2 and s[0] == "“" and s[-1] == "”":
        return s[1:-1].strip()
    return s


def _as_str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None


def _split_front_matter(lines: list[str], path: Path) -> tuple[dict[str, Any], int] | KnowledgeProblem:
    """The front matter as a dict and the 0-based index of the first body line."""
    if not lines or lines[0].strip() != "---":
        return KnowledgeProblem(path, 1, "expected YAML front matter starting with '---' on the first line")
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                line = 2 + (mark.line if mark is not None else 0)
                return KnowledgeProblem(path, line, f"bad YAML front matter: {getattr(e, 'problem', e)}")
            if not isinstance(meta, dict):
                return KnowledgeProblem(path, 2, "front matter must be a YAML mapping (key: value)")
            return meta, i + 1
    return KnowledgeProblem(path, 1, "front matter is not closed: add a '---' line after it")


def _check_meta(meta: dict[str, Any], path: Path) -> KnowledgeProblem | None:
    missing = [k for k in REQUIRED_KEYS if meta.get(k) in (None, "", [])]
    if missing:
        return KnowledgeProblem(path, 1, f"front matter is missing {', '.join(missing)}")
    pid = str(meta["id"])
    if not _ID_RE.match(pid):
        return KnowledgeProblem(
            path, 2, f"id {pid!r} must be lowercase letters, digits, '-', '_' (and '/' between parts)"
        )
    if str(meta["stage"]) not in STAGES:
        return KnowledgeProblem(path, 2, f"stage {meta['stage']!r} must be one of {', '.join(STAGES)}")
    if _as_str_list(meta["answers"]) is None:
        return KnowledgeProblem(path, 2, "answers must be a list of red-flag labels or intents")
    if "phrases" in meta and _as_str_list(meta["phrases"]) is None:
        return KnowledgeProblem(path, 2, "phrases must be a list of strings")
    return None


def _parse_steps(lines: list[str], start: int, path: Path) -> tuple[list[Step], str] | KnowledgeProblem:
    """Steps from the ``## Steps`` section and the summary text before it (titles excluded)."""
    steps_at = next(
        (i for i in range(start, len(lines)) if re.match(r"^##\s+steps\s*$", lines[i].strip(), re.I)), None
    )
    if steps_at is None:
        return KnowledgeProblem(path, start + 1, "missing a '## Steps' section with a numbered list")
    summary_lines = [
        ln.strip() for ln in lines[start:steps_at] if ln.strip() and not ln.lstrip().startswith("#")
    ]
    summary = " ".join(summary_lines)

    items: list[tuple[int, list[str]]] = []  # (line index, text lines)
    for i in range(steps_at + 1, len(lines)):
        raw = lines[i]
        stripped = raw.strip()
        if stripped.startswith("## "):
            break
        m = _ITEM_RE.match(stripped) if raw[:1].isdigit() else None
        if m:
            items.append((i, [m.group(2)]))
        elif stripped and items:
            items[-1][1].append(stripped)
        elif stripped and not items:
            return KnowledgeProblem(path, i + 1, "expected a numbered step ('1. ...') under '## Steps'")
    if not items:
        return KnowledgeProblem(path, steps_at + 1, "'## Steps' has no numbered steps")

    steps: list[Step] = []
    for n, (i, parts) in enumerate(items):
        say = [p for p in parts if _SAY_RE.match(p)]
        text = " ".join(p for p in parts if not _SAY_RE.match(p) and not p.startswith(">")).strip()
        if not say:
            return KnowledgeProblem(path, i + 1, f'step {n + 1} has no script line (> Say: "...")')
        script = _unquote(" ".join(_SAY_RE.match(p).group(1) for p in say))  # type: ignore[union-attr]
        if not script:
            return KnowledgeProblem(path, i + 1, f"step {n + 1} has an empty script line")
        m = _BOLD_TITLE_RE.match(text)
        title, action = (m.group(1).rstrip(".:"), m.group(2).strip()) if m else (text.split(".")[0], text)
        if not title:
            return KnowledgeProblem(path, i + 1, f"step {n + 1} has no text")
        steps.append(Step(index=n, title=title, action=action or title, script=script, line=i + 1))
    return steps, summary


def parse_text(text: str, *, path: Path, source_label: str = "") -> ParseResult:
    """Parse one SOP document; problems are returned, never raised."""
    lines = text.splitlines()
    fm = _split_front_matter(lines, path)
    if isinstance(fm, KnowledgeProblem):
        return ParseResult(None, (fm,))
    meta, body_start = fm
    bad = _check_meta(meta, path)
    if bad is not None:
        return ParseResult(None, (bad,))
    parsed = _parse_steps(lines, body_start, path)
    if isinstance(parsed, KnowledgeProblem):
        return ParseResult(None, (parsed,))
    steps, summary = parsed
    revised = meta["last_revised"]
    if isinstance(revised, _dt.date):
        revised = revised.isoformat()
    proc = Procedure(
        id=str(meta["id"]),
        title=str(meta["title"]).strip(),
        stage=str(meta["stage"]),
        answers=tuple(_as_str_list(meta["answers"]) or ()),
        version=str(meta["version"]),
        last_revised=str(revised),
        summary=summary,
        steps=tuple(steps),
        path=path,
        content_hash=content_hash(text),
        phrases=tuple(_as_str_list(meta.get("phrases", [])) or ()),
        source_label=source_label or str(path),
    )
    return ParseResult(proc)


def parse_file(path: Path, *, root: Path | None = None) -> ParseResult:
    """Read and parse one file; unreadable files become problems."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return _problem(path, 1, f"cannot read the file: {e}")
    label = str(path)
    if root is not None:
        with contextlib.suppress(ValueError):
            label = f"{root.name}/{path.relative_to(root).as_posix()}"
    return parse_text(text, path=path, source_label=label)


def _markdown_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*.md")
        if p.is_file() and p.name.lower() != "readme.md" and not p.name.startswith(".")
    )


def load_knowledge_base(folders: Sequence[Path] | Iterable[Path]) -> KnowledgeBase:
    """Parse every ``*.md`` (except README.md) under the folders; skip bad files and duplicate ids.

    Missing folders are ignored (an empty knowledge base is valid). The first file to claim an id wins;
    later ones are reported as duplicates with both paths.
    """
    kb = KnowledgeBase()
    seen: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in _markdown_files(folder):
            result = parse_file(path, root=folder)
            kb.problems.extend(result.problems)
            proc = result.procedure
            if proc is None:
                continue
            if proc.id in seen:
                kb.problems.append(
                    KnowledgeProblem(
                        path, 2, f"duplicate id {proc.id!r} (already defined in {seen[proc.id]})"
                    )
                )
                continue
            seen[proc.id] = path
            kb.procedures.append(proc)
    for p in kb.problems:
        logger.warning("skipped SOP file: %s", p)
    return kb
