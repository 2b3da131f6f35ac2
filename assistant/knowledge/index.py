"""The retrieval index: passages of every procedure, their embeddings in FAISS, and a BM25 index beside them.

On disk (``settings.resolved_index_dir()``)::

    manifest.json   documents (id, path, content hash), encoder (name, weights sha256), passage count, build time
    passages.jsonl  one passage per line, in vector order
    dense.faiss     inner-product FAISS index over the normalised passage vectors
    cache/<encoder>/<doc-hash>.npy   per-document embeddings, so a rebuild re-embeds only changed documents

Loading checks the manifest against the knowledge base and the encoder: a stale index is rebuilt when
allowed, otherwise refused with :class:`~assistant.errors.StaleIndexError`; it is never served silently.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import DataError, StaleIndexError
from assistant.knowledge.bm25 import BM25Index
from assistant.knowledge.document import KnowledgeBase, KnowledgeProblem, Procedure, load_knowledge_base
from assistant.knowledge.embedder import Embedder, ProgressFn
from assistant.settings import Settings

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
# Bump when the passage texts built from a document change, so cached embeddings are not reused wrongly.
PASSAGE_FORMAT = "2"
MANIFEST = "manifest.json"

ProgressFactory = Callable[[int], ProgressFn]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable piece of a procedure: its summary, one trigger phrase, or one step."""

    procedure_id: str
    kind: str  # "summary" | "phrase" | "step"
    step_index: int  # -1 unless kind == "step"
    text: str
    source: str


def knowledge_folders(settings: Settings) -> list[Path]:
    """The shipped knowledge base, extra folders from settings, then each imported pack (sorted)."""
    folders = [settings.knowledge_dir, *settings.extra_knowledge_dirs]
    packs = settings.resolved_kb_packs_dir()
    if packs.is_dir():
        folders += sorted(p for p in packs.iterdir() if p.is_dir())
    return folders


def _humanise(label: str) -> str:
    return label.replace("_", " ").replace("-", " ")


def procedure_passages(proc: Procedure) -> list[Passage]:
    """Passages of one procedure; title and answers are folded into each so short steps stay findable."""
    answers = ", ".join(_humanise(a) for a in proc.answers)
    head = f"{proc.title} ({answers})"
    out = [
        Passage(proc.id, "summary", -1, f"{head}. {proc.summary}".strip(), f"{proc.source_label} (summary)"),
    ]
    out += [
        Passage(proc.id, "phrase", -1, f"{phrase} ({proc.title})", f"{proc.source_label} (phrases)")
        for phrase in proc.phrases
    ]
    out += [
        Passage(
            proc.id,
            "step",
            s.index,
            f"{proc.title}: {s.title}. {s.action} Say: {s.script}",
            proc.step_source(s.index),
        )
        for s in proc.steps
    ]
    return out


def best_per_group(scores: np.ndarray, members: np.ndarray, *, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """(best score, its index) per row of ``members``; see ``KnowledgeIndex.best_per_procedure``.

    ``members``: per group, indices into ``scores`` ascending, padded with ``len(scores)``.
    """
    n = len(scores)
    ext = np.empty(n + 1, dtype=np.result_type(scores.dtype, np.float32))  # argmax at the scores' precision
    ext[:n] = scores
    ext[n] = -np.inf
    grid = ext[members]
    rows = np.arange(len(members))
    col = grid.argmax(axis=1)
    best = grid[rows, col].astype(np.float32)
    where = members[rows, col]
    missing = best == -np.inf
    best[missing] = fill
    where[missing] = -1
    return best, where


def members_matrix(proc_of: np.ndarray, n_procedures: int) -> np.ndarray:
    """Per group, the indices with that group in ``proc_of`` (ascending), padded with ``len(proc_of)``."""
    n = len(proc_of)
    counts = np.bincount(proc_of, minlength=n_procedures)
    out = np.full((n_procedures, max(int(counts.max(initial=0)), 1)), n, dtype=np.int64)
    filled = np.zeros(n_procedures, dtype=np.int64)
    for i, p in enumerate(proc_of.tolist()):
        out[p, filled[p]] = i
        filled[p] += 1
    return out


def _doc_key(proc: Procedure) -> str:
    return hashlib.sha256(f"{PASSAGE_FORMAT}:{proc.content_hash}:{proc.source_label}".encode()).hexdigest()[
        :32
    ]


@dataclass(slots=True)
class KnowledgeIndex:
    """Procedures, passages, passage vectors (FAISS) and BM25, ready to search."""

    procedures: dict[str, Procedure]
    passages: list[Passage]
    vectors: np.ndarray
    manifest: dict[str, Any]
    problems: list[KnowledgeProblem] = field(default_factory=list)
    _faiss: Any = None
    _bm25: BM25Index | None = None
    _proc_ids: list[str] = field(default_factory=list)
    # Passage indices per procedure, ascending, padded with len(passages) (a slot that scores -inf):
    # the best passage of every procedure is one argmax over rows, with no Python loop per query.
    _members: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))

    def __post_init__(self) -> None:
        import faiss

        dim = int(self.vectors.shape[1]) if self.vectors.ndim == 2 and self.vectors.shape[1] else 1
        self._faiss = faiss.IndexFlatIP(dim)
        if len(self.passages):
            self._faiss.add(np.ascontiguousarray(self.vectors, dtype=np.float32))
        self._bm25 = BM25Index([p.text for p in self.passages])
        self._proc_ids = list(self.procedures)
        pos = {pid: i for i, pid in enumerate(self._proc_ids)}
        proc_of = np.array([pos[p.procedure_id] for p in self.passages], dtype=np.int64)
        self._members = members_matrix(proc_of, len(self._proc_ids))

    @property
    def empty(self) -> bool:
        return not self.passages

    @property
    def procedure_ids(self) -> list[str]:
        return self._proc_ids

    def dense_passage_scores(self, vector: np.ndarray, *, k: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passages by inner product: (scores, passage indices)."""
        k = min(k, len(self.passages))
        scores, ids = self._faiss.search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def bm25_passage_scores(self, text: str) -> np.ndarray:
        if self._bm25 is None:  # built in __post_init__; only a hand-made instance lacks it
            raise DataError("KnowledgeIndex has no BM25 index; build it with build_index() or load_index()")
        return self._bm25.scores(text)

    def best_per_procedure(self, scores: np.ndarray, *, fill: float) -> tuple[np.ndarray, np.ndarray]:
        """(best score per procedure, index of that passage) from one score per passage.

        A passage scored ``-inf`` is not a candidate; a procedure with no candidate gets ``fill`` and -1.
        Ties go to the lower passage index.
        """
        n = len(self.passages)
        if scores.shape != (n,):
            raise ValueError(f"expected one score per passage ({n}), got shape {scores.shape}")
        return best_per_group(scores, self._members, fill=fill)

    def step_passages(self, procedure_id: str) -> list[int]:
        return [i for i, p in enumerate(self.passages) if p.procedure_id == procedure_id and p.kind == "step"]


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a build did: which documents were embedded afresh and which came from the cache."""

    index: KnowledgeIndex
    embedded: tuple[str, ...]
    reused: tuple[str, ...]
    problems: tuple[KnowledgeProblem, ...]
    seconds: float
    up_to_date: bool = False  # nothing to do: the stored index already matched


def _manifest(
    kb: KnowledgeBase, embedder: Embedder, n_passages: int, folders: Sequence[Path]
) -> dict[str, Any]:
    return {
        "format": INDEX_FORMAT,
        "passage_format": PASSAGE_FORMAT,
        "built_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "encoder": {"name": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim},
        "documents": [
            {"id": p.id, "path": p.source_label, "hash": p.content_hash, "version": p.version}
            for p in kb.procedures
        ],
        "passage_count": n_passages,
        "sources": [str(f) for f in folders],
    }


def staleness(manifest: dict[str, Any], kb: KnowledgeBase, embedder: Embedder) -> list[str]:
    """Reasons the stored index does not match the knowledge base or encoder (empty: fresh)."""
    reasons: list[str] = []
    if manifest.get("format") != INDEX_FORMAT or manifest.get("passage_format") != PASSAGE_FORMAT:
        reasons.append("the index was built by another version of this code")
    enc = manifest.get("encoder", {})
    if enc.get("name") != embedder.name or enc.get("fingerprint") != embedder.fingerprint:
        reasons.append(
            f"the encoder differs (index: {enc.get('name')} {str(enc.get('fingerprint'))[:12]}, "
            f"now: {embedder.name} {embedder.fingerprint[:12]})"
        )
    stored = {d["id"]: d["hash"] for d in manifest.get("documents", [])}
    current = {p.id: p.content_hash for p in kb.procedures}
    added = sorted(set(current) - set(stored))
    removed = sorted(set(stored) - set(current))
    changed = sorted(k for k in set(current) & set(stored) if current[k] != stored[k])
    for what, ids in (("added", added), ("removed", removed), ("changed", changed)):
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            reasons.append(f"documents {what}: {shown}")
    return reasons


def _read_manifest(index_dir: Path) -> dict[str, Any] | None:
    path = index_dir / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}; run `assistant kb build --force`") from e
    return data if isinstance(data, dict) else None


def _embed_documents(
    kb: KnowledgeBase,
    embedder: Embedder,
    *,
    cache_dir: Path | None,
    force: bool,
    progress: ProgressFactory | None,
) -> tuple[list[Passage], np.ndarray, list[str], list[str]]:
    per_doc: dict[str, list[Passage]] = {p.id: procedure_passages(p) for p in kb.procedures}
    cached: dict[str, np.ndarray] = {}
    todo: list[Procedure] = []
    for proc in kb.procedures:
        path = cache_dir / f"{_doc_key(proc)}.npy" if cache_dir is not None else None
        if not force and path is not None and path.exists():
            vec = np.load(path)
            if vec.shape == (len(per_doc[proc.id]), embedder.dim):
                cached[proc.id] = vec
                continue
        todo.append(proc)
    texts = [p.text for proc in todo for p in per_doc[proc.id]]
    update = progress(len(texts)) if progress is not None and texts else None
    fresh = embedder.encode(texts, progress=update) if texts else np.zeros((0, embedder.dim), np.float32)
    at = 0
    for proc in todo:
        n = len(per_doc[proc.id])
        cached[proc.id] = np.asarray(fresh[at : at + n], dtype=np.float32)
        at += n
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(cache_dir / f"{_doc_key(proc)}.npy", cached[proc.id])
    passages = [p for proc in kb.procedures for p in per_doc[proc.id]]
    vectors = (
        np.vstack([cached[proc.id] for proc in kb.procedures])
        if kb.procedures
        else np.zeros((0, embedder.dim), np.float32)
    )
    embedded = [p.id for p in todo]
    reused = [p.id for p in kb.procedures if p.id not in set(embedded)]
    return passages, vectors.astype(np.float32), embedded, reused


def _save(index: KnowledgeIndex, index_dir: Path) -> None:
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / "passages.jsonl").open("w", encoding="utf-8") as f:
        for p in index.passages:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    faiss.write_index(index._faiss, str(index_dir / "dense.faiss"))
    # The manifest goes last: a crash mid-write leaves an index that reads as stale, never a half one.
    tmp = index_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(index.manifest, indent=1), encoding="utf-8")
    tmp.replace(index_dir / MANIFEST)


def _load_saved(index_dir: Path, kb: KnowledgeBase, manifest: dict[str, Any]) -> KnowledgeIndex:
    import faiss

    try:
        passages = [
            Passage(**json.loads(line))
            for line in (index_dir / "passages.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        dense = faiss.read_index(str(index_dir / "dense.faiss"))
        vectors = dense.reconstruct_n(0, dense.ntotal) if dense.ntotal else np.zeros((0, dense.d), np.float32)
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        raise DataError(f"the index in {index_dir} is damaged ({e}); run `assistant kb build --force`") from e
    if len(passages) != len(vectors) or len(passages) != manifest.get("passage_count"):
        raise StaleIndexError(
            f"the index in {index_dir} is inconsistent (passages and vectors differ); run `assistant kb build`"
        )
    return KnowledgeIndex(
        procedures=kb.by_id(),
        passages=passages,
        vectors=np.asarray(vectors, np.float32),
        manifest=manifest,
        problems=list(kb.problems),
    )


def build_index(
    kb: KnowledgeBase,
    embedder: Embedder,
    *,
    index_dir: Path | None,
    cache_dir: Path | None = None,
    force: bool = False,
    progress: ProgressFactory | None = None,
    folders: Sequence[Path] = (),
) -> BuildReport:
    """Embed the knowledge base and write the index; only documents not in the cache are embedded.

    ``index_dir=None`` builds in memory only. ``cache_dir`` defaults to ``index_dir/cache/<encoder>``.
    """
    t0 = time.perf_counter()
    if cache_dir is None and index_dir is not None:
        cache_dir = index_dir / "cache" / embedder.fingerprint[:16]
    passages, vectors, embedded, reused = _embed_documents(
        kb, embedder, cache_dir=cache_dir, force=force, progress=progress
    )
    manifest = _manifest(kb, embedder, len(passages), folders)
    index = KnowledgeIndex(
        procedures=kb.by_id(),
        passages=passages,
        vectors=vectors,
        manifest=manifest,
        problems=list(kb.problems),
    )
    if index_dir is not None:
        _save(index, index_dir)
    seconds = time.perf_counter() - t0
    logger.info(
        "built knowledge index: %d procedures, %d passages, %d embedded, %d reused, %.2fs",
        len(kb.procedures),
        len(passages),
        len(embedded),
        len(reused),
        seconds,
    )
    return BuildReport(index, tuple(embedded), tuple(reused), tuple(kb.problems), seconds)


def build_from_settings(
    settings: Settings, embedder: Embedder, *, force: bool = False, progress: ProgressFactory | None = None
) -> BuildReport:
    """``assistant kb build``: rebuild when the stored index is stale (or ``force``), else report up to date."""
    folders = knowledge_folders(settings)
    kb = load_knowledge_base(folders)
    index_dir = settings.resolved_index_dir()
    manifest = _read_manifest(index_dir)
    if not force and manifest is not None and not staleness(manifest, kb, embedder):
        t0 = time.perf_counter()
        index = _load_saved(index_dir, kb, manifest)
        reused = tuple(p.id for p in kb.procedures)
        return BuildReport(index, (), reused, tuple(kb.problems), time.perf_counter() - t0, up_to_date=True)
    return build_index(kb, embedder, index_dir=index_dir, force=force, progress=progress, folders=folders)


def load_index(settings: Settings, embedder: Embedder, *, auto_rebuild: bool | None = None) -> KnowledgeIndex:
    """Load the stored index, checking it against the knowledge base and the encoder.

    Raises:
        StaleIndexError: the index is missing or stale and ``auto_rebuild`` (default: the
            ``ASSISTANT_KB_AUTO_REBUILD`` setting) is off.
    """
    allow = settings.kb_auto_rebuild if auto_rebuild is None else auto_rebuild
    folders = knowledge_folders(settings)
    kb = load_knowledge_base(folders)
    index_dir = settings.resolved_index_dir()
    manifest = _read_manifest(index_dir)
    reasons = ["no index has been built yet"] if manifest is None else staleness(manifest, kb, embedder)
    if not reasons and manifest is not None:
        return _load_saved(index_dir, kb, manifest)
    if not allow:
        raise StaleIndexError(
            f"the knowledge index in {index_dir} is stale: {'; '.join(reasons)}. "
            "Run `assistant kb build` (or set ASSISTANT_KB_AUTO_REBUILD=true)."
        )
    logger.info("rebuilding stale knowledge index: %s", "; ".join(reasons))
    return build_index(kb, embedder, index_dir=index_dir, folders=folders).index
