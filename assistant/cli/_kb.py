"""`assistant kb build|import|list`: the SOP knowledge base and its retrieval index."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from assistant.knowledge.document import KnowledgeProblem


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kb", help="build the SOP retrieval index, import SOP packs, list procedures")
    kbsub = p.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    b = kbsub.add_parser(
        "build", help="embed the knowledge base into the index (incremental: only changed SOPs re-embedded)"
    )
    b.add_argument("--force", action="store_true", help="re-embed every document, ignoring the cache")
    b.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="encoder device")
    b.set_defaults(handler=_run_build)

    i = kbsub.add_parser(
        "import",
        help="import a folder of Markdown SOPs or the ABCD guidelines.json as a pack, then rebuild the index",
    )
    i.add_argument("path", type=Path, help="a folder of SOP .md files, or an ABCD guidelines.json")
    i.add_argument("--name", default=None, help="pack name (default: the folder name, or 'abcd')")
    i.add_argument("--no-build", action="store_true", help="only write the pack; do not rebuild the index")
    i.set_defaults(handler=_run_import)

    ls = kbsub.add_parser("list", help="list the procedures and any malformed SOP files")
    ls.set_defaults(handler=_run_list)


def _print_problems(problems: tuple[KnowledgeProblem, ...] | list[KnowledgeProblem]) -> None:
    for p in problems:
        print(f"skipped: {p}", file=sys.stderr)


def _tqdm_factory(total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="embedding passages", unit="passage", file=sys.stderr)

    def update(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return update


def _build(force: bool, device: str | None) -> int:
    from assistant.knowledge.advisor import retrieval_layers
    from assistant.knowledge.embedder import SentenceEmbedder
    from assistant.knowledge.index import build_from_settings
    from assistant.settings import get_settings

    settings = get_settings()
    # The service's encoder depth: an index built with another is rebuilt when the service starts.
    embedder = SentenceEmbedder(device=device or settings.device, layers=retrieval_layers(settings))
    report = build_from_settings(settings, embedder, force=force, progress=_tqdm_factory)
    _print_problems(report.problems)
    idx = report.index
    state = "up to date" if report.up_to_date else "built"
    print(
        f"index {state}: {len(idx.procedures)} procedures, {len(idx.passages)} passages; "
        f"{len(report.embedded)} documents embedded, {len(report.reused)} reused; {report.seconds:.1f}s "
        f"-> {settings.resolved_index_dir()}"
    )
    return 0


def _run_build(args: argparse.Namespace) -> int:
    return _build(args.force, args.device)


def _run_import(args: argparse.Namespace) -> int:
    from assistant.knowledge.importer import import_pack
    from assistant.settings import get_settings

    settings = get_settings()
    report = import_pack(args.path, packs_dir=settings.resolved_kb_packs_dir(), name=args.name)
    _print_problems(report.problems)
    print(f"imported {len(report.procedure_ids)} procedures as pack '{report.name}' -> {report.folder}")
    if args.no_build:
        return 0
    return _build(False, None)


def _run_list(args: argparse.Namespace) -> int:
    from assistant.knowledge.document import load_knowledge_base
    from assistant.knowledge.index import knowledge_folders
    from assistant.settings import get_settings

    kb = load_knowledge_base(knowledge_folders(get_settings()))
    for p in kb.procedures:
        print(f"{p.id:<40} {p.stage:<20} {len(p.steps):>2} steps  {p.source_label}")
    _print_problems(kb.problems)
    print(f"{len(kb.procedures)} procedures, {len(kb.problems)} skipped files")
    return 0
