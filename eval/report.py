"""The trainers' report: one self-contained HTML page from eval and bench JSON files, runs side by side.

Inputs are recognised by their keys: a red-flag evaluation (``per_label`` and ``macro_f1``, from
``assistant eval redflags --json``), a retrieval evaluation (``recall@1``), or a benchmark (``p95_ms``, from
``assistant bench --json``). The page holds tables and PNG plots (embedded as base64, so the one file can be
mailed or attached): per-label precision / recall / F1, confusion counts per label (TP / FP / FN / TN, derived
from support, precision, recall and n), calibration (when the eval JSON carries a ``calibration`` block, see
:func:`calibration_block`: the expected calibration error per label and run, a reliability diagram per label with
the run's decision thresholds, and the curve pooled over labels) and latency histograms.

Example:
    >>> html = render_report([("fp32", {"per_label": {"insult": {"precision": 0.8, "recall": 0.5, "f1": 0.62,
    ...     "support": 10, "n": 100, "roc_auc": 0.9}}, "macro_f1": 0.62, "baselines": {}})])
    >>> "insult" in html
    True
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Run = tuple[str, Mapping[str, Any]]


# ---- helpers the evaluators can call -----------------------------------------------------------------------
def calibration_block(
    y_true: Mapping[str, Sequence[bool]] | None = None,
    probabilities: Mapping[str, Sequence[float]] | None = None,
    *,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Reliability bins per label (and over all labels pooled) for the eval JSON's optional ``calibration``.

    ``y_true[label]`` and ``probabilities[label]`` are aligned per row. Each entry holds ``mean_predicted``,
    ``fraction_positive`` and ``count`` per non-empty bin of [0, 1], and the expected calibration error
    ``ece`` (count-weighted mean gap). Call it in ``eval/redflags.py`` with the model's probabilities:
    ``report["calibration"] = calibration_block(truth_by_label, probs_by_label)``.

    Example:
        >>> c = calibration_block({"insult": [True, False]}, {"insult": [0.9, 0.2]}, n_bins=2)
        >>> c["insult"]["count"], c["insult"]["ece"]
        ([1, 1], 0.15)
    """
    y_true = y_true or {}
    probabilities = probabilities or {}
    out: dict[str, Any] = {"n_bins": n_bins}
    pooled_y: list[bool] = []
    pooled_p: list[float] = []
    for label, ys in y_true.items():
        ps = probabilities.get(label)
        if ps is None:
            continue
        y = [bool(v) for v in ys]
        p = [float(v) for v in ps]
        if len(y) != len(p):
            raise ValueError(f"{label}: {len(y)} truths but {len(p)} probabilities; align them per row")
        out[label] = _bins(np.array(y), np.array(p), n_bins)
        pooled_y += y
        pooled_p += p
    if pooled_y:
        out["all"] = _bins(np.array(pooled_y), np.array(pooled_p), n_bins)
    return out


def _bins(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, Any]:
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    mean_p, frac, count = [], [], []
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        k = int(m.sum())
        if k == 0:
            continue
        mp, fp = float(p[m].mean()), float(y[m].mean())
        mean_p.append(round(mp, 4))
        frac.append(round(fp, 4))
        count.append(k)
        ece += k * abs(mp - fp)
    return {
        "mean_predicted": mean_p,
        "fraction_positive": frac,
        "count": count,
        "ece": round(ece / max(1, len(p)), 4),
    }


def confusion(metrics: Mapping[str, Any]) -> dict[str, int] | None:
    """TP / FP / FN / TN from one label's precision, recall, support (positives) and n (rows)."""
    try:
        n, pos = int(metrics["n"]), int(metrics["support"])
        precision, recall = float(metrics["precision"]), float(metrics["recall"])
    except (KeyError, TypeError, ValueError):
        return None
    tp = round(recall * pos)
    if precision > 0:
        fp = round(tp / precision - tp)
    else:
        fp = metrics.get("predicted_positive", 0) or 0  # precision 0: TP is 0 and FP is unknown unless given
        fp = int(fp)
    fn = pos - tp
    tn = max(0, n - tp - fp - fn)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


# ---- recognising inputs ---------------------------------------------------------------------------------------
def kind_of(data: Mapping[str, Any]) -> str:
    if "per_label" in data and "macro_f1" in data:
        return "redflags"
    if "recall@1" in data:
        return "retrieval"
    if "p95_ms" in data:
        return "bench"
    return "unknown"


def run_name(path: Path, data: Mapping[str, Any]) -> str:
    """A short column name: the file stem plus mode and device when the JSON names them."""
    bits = [path.stem]
    for key in ("mode", "device"):
        v = data.get(key)
        if isinstance(v, str) and v and v not in path.stem:
            bits.append(v)
    return " ".join(bits)


# ---- plots ------------------------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _systems(runs: Sequence[Run], *, with_baselines: bool) -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    for name, data in runs:
        out.append((name, data))
        if with_baselines:
            for b, rep in (data.get("baselines") or {}).items():
                out.append((f"{name}: {b}", rep))
    return out


def plot_per_label(runs: Sequence[Run]) -> str:
    """Grouped bars of precision, recall and F1 per label, one bar colour per run (and baseline)."""
    plt = _plt()
    systems = _systems(runs, with_baselines=True)
    labels = sorted({lb for _, d in systems for lb in d.get("per_label", {})}, key=_label_order)
    fig, axes = plt.subplots(
        3, 1, figsize=(max(8, 1.1 * len(labels) * max(1, len(systems)) / 2), 9), sharex=True
    )
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(labels))
    for ax, metric in zip(axes, ("precision", "recall", "f1"), strict=True):
        for i, (name, d) in enumerate(systems):
            vals = [d.get("per_label", {}).get(lb, {}).get(metric) or 0.0 for lb in labels]
            ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=name)
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=min(4, len(systems)))
    axes[-1].set_xticks(x, labels, rotation=30, ha="right")
    return _png(fig)


def plot_confusion(runs: Sequence[Run]) -> str:
    """Per run, a labels x (TP, FP, FN, TN) heat map of counts."""
    plt = _plt()
    fig, axes = plt.subplots(
        1, len(runs), figsize=(4.2 * len(runs), 0.45 * _max_labels(runs) + 1.8), squeeze=False
    )
    for ax, (name, d) in zip(axes[0], runs, strict=True):
        labels = sorted(d.get("per_label", {}), key=_label_order)
        mat = []
        for lb in labels:
            c = confusion(d["per_label"][lb]) or {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
            mat.append([c["tp"], c["fp"], c["fn"], c["tn"]])
        arr = np.array(mat, dtype=float) if mat else np.zeros((0, 4))
        shown = np.log1p(arr)
        ax.imshow(shown if len(arr) else np.zeros((1, 4)), cmap="Blues", aspect="auto")
        for i in range(arr.shape[0]):
            for j in range(4):
                ax.text(j, i, f"{int(arr[i, j])}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(4), ["TP", "FP", "FN", "TN"])
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(name, fontsize=9)
    return _png(fig)


def plot_calibration(runs: Sequence[Run]) -> str | None:
    """Reliability curves (pooled over labels) of the runs whose JSON has a ``calibration`` block."""
    have = [(n, d["calibration"]) for n, d in runs if isinstance(d.get("calibration"), Mapping)]
    if not have:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    for name, cal in have:
        block = cal.get("all") or next((v for v in cal.values() if isinstance(v, Mapping)), None)
        if not block:
            continue
        ax.plot(
            block["mean_predicted"],
            block["fraction_positive"],
            marker="o",
            label=f"{name} (ECE {block.get('ece')})",
        )
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _calibrated(runs: Sequence[Run]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(name, calibration block, run) of the runs whose JSON has a ``calibration`` block."""
    return [(n, d["calibration"], d) for n, d in runs if isinstance(d.get("calibration"), Mapping)]


def calibration_labels(runs: Sequence[Run]) -> list[str]:
    """The labels and groups with reliability bins in any run, in contract order (no pooled ``all``)."""
    names = {
        k for _, cal, _ in _calibrated(runs) for k, v in cal.items() if k != "all" and isinstance(v, Mapping)
    }
    return sorted(names, key=_label_order)


def plot_calibration_per_label(runs: Sequence[Run]) -> str | None:
    """One reliability diagram per label: fraction positive against mean predicted probability per bin.

    A point's size grows with the rows in its bin; the dotted vertical line is the run's decision threshold for
    the label (when the eval JSON carries ``thresholds``), so a trainer sees what a flag at that cut-off means.
    """
    have = _calibrated(runs)
    labels = calibration_labels(runs)
    if not have or not labels:
        return None
    plt = _plt()
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels, strict=False):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        for i, (name, cal, data) in enumerate(have):
            block = cal.get(label)
            if not isinstance(block, Mapping) or not block.get("count"):
                continue
            colour = f"C{i}"
            sizes = [12 + 60 * math.sqrt(c / max(block["count"])) for c in block["count"]]
            ax.plot(block["mean_predicted"], block["fraction_positive"], color=colour, lw=1)
            ax.scatter(
                block["mean_predicted"],
                block["fraction_positive"],
                s=sizes,
                color=colour,
                label=f"{name} (ECE {block.get('ece')})",
            )
            thr = (data.get("thresholds") or {}).get(label)
            if isinstance(thr, int | float):
                ax.axvline(float(thr), color=colour, ls=":", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted probability", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction positive", fontsize=8)
    return _png(fig)


def _calibration_table(runs: Sequence[Run]) -> str:
    """ECE per label (rows) and run (columns), with the rows binned; pooled over labels last."""
    have = _calibrated(runs)
    head = ["label"] + [f"{n} ECE (rows)" for n, _, _ in have]
    rows = []
    for label in [*calibration_labels(runs), "all"]:
        cells: list[Any] = [label if label != "all" else "all labels pooled"]
        for _, cal, _ in have:
            block = cal.get(label)
            ok = isinstance(block, Mapping) and block.get("count")
            cells.append(f"{block['ece']:.3f} ({sum(block['count'])})" if ok else "-")  # type: ignore[index]
        rows.append(cells)
    return _table(head, rows)


def plot_latency(runs: Sequence[Run]) -> str | None:
    """Latency histograms of the bench runs (optimized and, when present, naive), log-spaced bins."""
    series: list[tuple[str, list[float]]] = []
    for name, d in runs:
        if d.get("latencies_ms"):
            series.append((name, [x for x in d["latencies_ms"] if x > 0]))
        naive = d.get("naive")
        if isinstance(naive, Mapping) and naive.get("latencies_ms"):
            series.append((f"{name} naive", [x for x in naive["latencies_ms"] if x > 0]))
    series = [(n, xs) for n, xs in series if xs]
    if not series:
        return None
    plt = _plt()
    lo = max(0.1, min(min(xs) for _, xs in series))
    hi = max(max(xs) for _, xs in series)
    bins: Any = [lo * (hi / lo) ** (i / 50) for i in range(51)] if hi > lo else 20
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, xs in series:
        ax.hist(xs, bins=bins, alpha=0.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("chunk to processed event (ms)")
    ax.set_ylabel("chunks")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _max_labels(runs: Sequence[Run]) -> int:
    return max((len(d.get("per_label", {})) for _, d in runs), default=1)


def _label_order(name: str) -> tuple[int, str]:
    from assistant.labels import GROUPS, LABELS

    order = [*LABELS, *GROUPS]
    return (order.index(name) if name in order else len(order), name)


# ---- tables -------------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape(str(v))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _redflags_section(runs: Sequence[Run]) -> str:
    systems = _systems(runs, with_baselines=True)
    labels = sorted({lb for _, d in systems for lb in d.get("per_label", {})}, key=_label_order)
    parts = ["<h2>Red flags</h2>"]
    head = ["run", "rows", "macro F1", "device", "mode", "one utterance p50 ms", "batch throughput /s"]
    rows = []
    for name, d in systems:
        lat = d.get("latency") or {}
        rows.append(
            [
                name,
                d.get("n"),
                d.get("macro_f1"),
                d.get("device"),
                d.get("mode"),
                lat.get("single_p50_ms"),
                lat.get("batch_throughput_per_s"),
            ]
        )
    parts.append(_table(head, rows))
    head = ["label", "support"] + [f"{n} P / R / F1 / AUC" for n, _ in systems]
    rows = []
    for lb in labels:
        support = next(
            (d["per_label"][lb].get("support") for _, d in systems if lb in d.get("per_label", {})), None
        )
        cells: list[Any] = [lb, support]
        for _, d in systems:
            m = d.get("per_label", {}).get(lb)
            cells.append(
                " / ".join(_fmt(m.get(k)) for k in ("precision", "recall", "f1", "roc_auc")) if m else "-"
            )
        rows.append(cells)
    parts.append(_table(head, rows))
    # The difference between the first two runs (e.g. fp32 vs int8): what a trainer checks before shipping.
    if len(runs) >= 2:
        (a, da), (b, db) = runs[0], runs[1]
        rows = []
        for lb in labels:
            fa = (da.get("per_label", {}).get(lb) or {}).get("f1")
            fb = (db.get("per_label", {}).get(lb) or {}).get("f1")
            rows.append([lb, fa, fb, None if fa is None or fb is None else round(fb - fa, 4)])
        parts.append(
            f"<h3>F1: {html.escape(b)} minus {html.escape(a)}</h3>"
            + _table(["label", a, b, "difference"], rows)
        )
    parts.append("<h3>Precision, recall and F1 per label</h3>" + _img(plot_per_label(runs)))
    parts.append("<h3>Confusion counts per label</h3>" + _img(plot_confusion(runs)))
    head = ["label"] + [f"{n} TP / FP / FN / TN" for n, _ in runs]
    rows = []
    for lb in labels:
        cells = [lb]
        for _, d in runs:
            c = confusion(d.get("per_label", {}).get(lb, {}))
            cells.append(" / ".join(str(c[k]) for k in ("tp", "fp", "fn", "tn")) if c else "-")
        rows.append(cells)
    parts.append(_table(head, rows))
    cal = plot_calibration(runs)
    if cal is not None:
        parts.append(
            "<h3>Calibration</h3><p class=note>Expected calibration error (ECE): the row-weighted mean gap "
            "between the predicted probability and the observed fraction of positives over ten equal-width "
            "bins; 0 means a score of 0.8 is right 80% of the time. Dotted lines: the decision thresholds.</p>"
            + _calibration_table(runs)
        )
        per_label = plot_calibration_per_label(runs)
        if per_label is not None:
            parts.append("<h3>Reliability per label</h3>" + _img(per_label))
        parts.append("<h3>Reliability pooled over labels</h3>" + _img(cal))
    else:
        parts.append(
            "<p class=note>No calibration block in these eval files (the eval JSON's optional "
            "<code>calibration</code>, see <code>assistant.eval.report.calibration_block</code>).</p>"
        )
    return "\n".join(parts)


def _retrieval_section(runs: Sequence[Run]) -> str:
    keys = ["recall@1", "recall@3", "recall@5", "mrr"]
    rows = []
    for name, d in runs:
        rows.append([name, *(d.get(k) for k in keys)])
        for b, rep in (d.get("baselines") or {}).items():
            rows.append([f"{name}: {b}", *(rep.get(k) for k in keys)])
    return "<h2>Retrieval</h2>" + _table(["run", *keys], rows)


def _bench_section(runs: Sequence[Run]) -> str:
    keys = [
        ("calls", "calls"),
        ("throughput /s", "throughput"),
        ("p50 ms", "p50_ms"),
        ("p95 ms", "p95_ms"),
        ("p99 ms", "p99_ms"),
        ("errors", "errors"),
        ("lost events", "lost_events"),
        ("CPU % mean", "cpu_percent_mean"),
        ("RSS MB max", "rss_mb_max"),
        ("saturation /s", "saturation_throughput"),
        ("one call p50 ms", "single_p50_ms"),
    ]
    cols: list[tuple[str, Mapping[str, Any]]] = []
    for name, d in runs:
        cols.append((name, d))
        if isinstance(d.get("naive"), Mapping):
            cols.append((f"{name} naive", d["naive"]))
    rows = [[label, *(d.get(k) for _, d in cols)] for label, k in keys]
    rows.append(["speedup vs naive", *(d.get("speedup_vs_naive") for _, d in cols)])
    parts = ["<h2>Benchmark</h2>", _table(["", *(n for n, _ in cols)], rows)]
    for name, d in runs:
        m, c = d.get("machine") or {}, d.get("config") or {}
        parts.append(
            f"<p class=note>{html.escape(name)}: {html.escape(str(m.get('cpu', '?')))}, "
            f"{m.get('cores_logical', '?')} cores, load at start {m.get('load_avg_at_start')}; "
            f"device {c.get('device')}, mode {c.get('mode')}, batch {c.get('batch_max_size')}, "
            f"wait {c.get('batch_max_wait_ms')} ms.</p>"
        )
    lat = plot_latency(runs)
    if lat is not None:
        parts.append("<h3>Latency histogram</h3>" + _img(lat))
    return "\n".join(parts)


def _img(b64: str) -> str:
    return f'<img alt="plot" src="data:image/png;base64,{b64}">'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
.note{color:#666;font-size:12px}
"""


def render_report(runs: Sequence[Run], *, title: str = "Model report") -> str:
    """The HTML page for these runs (name, parsed JSON), grouped by kind, columns in the order given."""
    by_kind: dict[str, list[Run]] = {}
    for name, data in runs:
        by_kind.setdefault(kind_of(data), []).append((name, data))
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts.append("<p class=note>Runs: " + ", ".join(html.escape(n) for n, _ in runs) + "</p>")
    if by_kind.get("redflags"):
        parts.append(_redflags_section(by_kind["redflags"]))
    if by_kind.get("retrieval"):
        parts.append(_retrieval_section(by_kind["retrieval"]))
    if by_kind.get("bench"):
        parts.append(_bench_section(by_kind["bench"]))
    if by_kind.get("unknown"):
        names = ", ".join(html.escape(n) for n, _ in by_kind["unknown"])
        parts.append(f"<p class=note>Not recognised (no per_label, recall@1 or p95_ms): {names}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _latest_json(
    reports_dir: Path, accept: Callable[[dict[str, Any]], bool]
) -> tuple[Path, dict[str, Any]] | None:
    """The newest JSON object in ``reports_dir`` that ``accept`` recognises (unreadable files are skipped)."""
    if not reports_dir.is_dir():
        return None
    for path in sorted(reports_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and accept(data):
            return path, data
    return None


def latest_report(reports_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest red-flag evaluation report (a JSON object with ``per_label``) in ``reports_dir``."""
    return _latest_json(reports_dir, lambda data: "per_label" in data)


def latest_checklist(reports_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest behavioural-suite report (a JSON object with ``"suite": "checklist"``) in ``reports_dir``."""
    return _latest_json(reports_dir, lambda data: data.get("suite") == "checklist" and "capabilities" in data)
