"""The data-quality report: counts, duplicates, train/test overlap, label conflicts, lengths,
bad rows and a reading sample."""

from __future__ import annotations

import json
import random
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from dispute_classifier.core.task import Split, TaskData, did_you_mean

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to find near-identical texts."""
    return _SPACE.sub(" ", text.casefold()).strip()


def exact_overlap(texts: list[str], fitted: list[str]) -> list[int]:
    """Indices of ``texts`` whose normalised form also occurs in ``fitted`` (the rows a model
    learnt from): scoring those measures memory, not accuracy."""
    seen = {normalise(t) for t in fitted}
    return [i for i, t in enumerate(texts) if normalise(t) in seen]


def near_twins(scored: Split, fitted: Split, threshold: float) -> list[dict[str, Any]]:
    """Scored examples whose nearest fitted text (character 3–5-gram TF-IDF cosine) is at
    least ``threshold`` similar and has the same label: items a memorising model answers by
    recall. One entry per such item: id, similarity, the twin's id. Leaving them out gives
    the de-duplicated subset every run also reports."""
    if not len(scored) or not len(fitted):
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True)
    train = vec.fit_transform(fitted.texts)
    out: list[dict[str, Any]] = []
    for start in range(0, len(scored), 512):  # blocks keep the dense similarity rows small
        block = vec.transform(scored.texts[start : start + 512])
        sims = (block @ train.T).toarray()
        best = sims.argmax(axis=1)
        for row, j in enumerate(best):
            i = start + row
            sim = float(sims[row, j])
            if sim >= threshold and fitted.labels[j] == scored.labels[i]:
                out.append({"id": scored.ids[i], "similarity": round(sim, 4), "twin_id": fitted.ids[int(j)]})
    return out


def _length_stats(split: Split) -> dict[str, float]:
    chars = [len(t) for t in split.texts] or [0]
    words = [len(t.split()) for t in split.texts] or [0]
    ordered = sorted(chars)
    return {
        "chars_min": min(chars),
        "chars_mean": round(statistics.fmean(chars), 1),
        "chars_median": statistics.median(chars),
        "chars_p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "chars_max": max(chars),
        "words_mean": round(statistics.fmean(words), 1),
        "words_max": max(words),
    }


def _groups(split: Split, key) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(split.texts):
        groups[key(text)].append(i)
    return groups


def check(data: TaskData, sample_size: int = 50, seed: int = 0) -> dict[str, Any]:
    """Everything the report shows, as plain data."""
    spec = data.spec
    labels = set(spec.labels)
    train = data.fit_split("test")  # the whole training file (train + validation)
    test = data.splits["test"]
    report: dict[str, Any] = {
        "task": spec.name,
        "task_file": str(spec.path) if spec.path else None,
        "sha256": data.sha256,
        "files": {k: str(v) for k, v in data.files.items()},
    }
    report["sizes"] = {name: len(s) for name, s in data.splits.items()}
    report["dropped_other_labels"] = data.dropped_other_labels
    report["class_counts"] = {
        name: {label: Counter(s.labels).get(label, 0) for label in spec.label_list} for name, s in data.splits.items()
    }
    report["lengths"] = {name: _length_stats(s) for name, s in data.splits.items()}

    bad: list[dict[str, Any]] = []
    for name, s in data.splits.items():
        for rid, text, label in zip(s.ids, s.texts, s.labels):
            if not text.strip():
                bad.append({"split": name, "id": rid, "reason": "empty or whitespace-only text"})
            elif len(text) > spec.max_text_chars:
                bad.append({"split": name, "id": rid, "reason": f"text longer than {spec.max_text_chars} characters"})
            if label not in labels:
                near = did_you_mean(label, spec.label_list)
                hint = f" (did you mean '{near}'? fix the spelling under 'labels' or in the row)" if near else ""
                bad.append({"split": name, "id": rid, "reason": f"label '{label}' not in the task's label set{hint}"})
    report["bad_rows"] = bad

    def dupes(key) -> list[dict[str, Any]]:
        out = []
        for k, idx in _groups(train, key).items():
            if len(idx) > 1:
                out.append(
                    {"text": train.texts[idx[0]], "ids": [train.ids[i] for i in idx], "labels": sorted({train.labels[i] for i in idx})}
                )
        return out

    report["train_duplicates_exact"] = dupes(lambda t: t)
    report["train_duplicates_normalised"] = dupes(normalise)
    report["conflicting_labels"] = [d for d in report["train_duplicates_normalised"] if len(d["labels"]) > 1]

    train_norm = _groups(train, normalise)
    train_exact = set(train.texts)
    overlap = []
    for rid, text, label in zip(test.ids, test.texts, test.labels):
        idx = train_norm.get(normalise(text))
        if idx:
            train_labels = sorted({train.labels[i] for i in idx})
            overlap.append(
                {
                    "test_id": rid,
                    "text": text,
                    "test_label": label,
                    "train_ids": [train.ids[i] for i in idx],
                    "train_labels": train_labels,
                    "exact": text in train_exact,
                    "same_label": train_labels == [label],
                }
            )
    report["train_test_overlap"] = overlap
    twins = near_twins(test, train, spec.near_duplicate_threshold)
    report["near_duplicates"] = {"threshold": spec.near_duplicate_threshold, "n": len(twins), "of": len(test), "items": twins}

    rng = random.Random(seed)
    picks = sorted(rng.sample(range(len(train)), min(sample_size, len(train))))
    report["sample"] = [{"id": train.ids[i], "text": train.texts[i], "label": train.labels[i]} for i in picks]
    report["sample_seed"] = seed
    return report


def to_markdown(report: dict[str, Any]) -> str:
    """A readable version of the report."""
    labels = list(next(iter(report["class_counts"].values())))
    splits = list(report["class_counts"])
    lines = [f"# Data check: task `{report['task']}`", ""]
    lines += ["| file | sha256 |", "| --- | --- |"] + [f"| {k} | `{v}` |" for k, v in report["sha256"].items()]
    lines += ["", "Split sizes: " + ", ".join(f"{k} {v:,}" for k, v in report["sizes"].items())]
    if report["dropped_other_labels"]:
        lines.append(f"Rows of other labels left out by this task: {report['dropped_other_labels']:,}")
    lines += ["", "## Class counts", "", "| label | " + " | ".join(splits) + " |", "| --- |" + " ---: |" * len(splits)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(str(report["class_counts"][s][label]) for s in splits) + " |")
    lines += ["", "## Text lengths", "", "| split | " + " | ".join(next(iter(report["lengths"].values()))) + " |"]
    lines.append("| --- |" + " ---: |" * len(next(iter(report["lengths"].values()))))
    for split, stats in report["lengths"].items():
        lines.append(f"| {split} | " + " | ".join(str(v) for v in stats.values()) + " |")
    lines += ["", f"## Bad rows ({len(report['bad_rows'])})", ""]
    lines += [f"- {b['split']} {b['id']}: {b['reason']}" for b in report["bad_rows"][:100]] or ["None."]
    lines += ["", "## Duplicates within the training file", ""]
    lines.append(
        f"Exact: {len(report['train_duplicates_exact'])} groups; case/whitespace-normalised: {len(report['train_duplicates_normalised'])} groups."
    )
    for d in report["train_duplicates_normalised"][:30]:
        lines.append(f"- {d['text']!r} — {', '.join(d['ids'])} — {', '.join(d['labels'])}")
    lines += ["", f"## Conflicting labels ({len(report['conflicting_labels'])})", ""]
    lines += [f"- {d['text']!r}: {', '.join(d['labels'])}" for d in report["conflicting_labels"]] or ["None."]
    overlap = report["train_test_overlap"]
    lines += ["", f"## Train/test overlap ({len(overlap)} test texts also in train)", ""]
    if overlap:
        lines += ["| test id | text | test label | train label(s) | exact |", "| --- | --- | --- | --- | --- |"]
        for o in overlap:
            lines.append(
                f"| {o['test_id']} | {o['text'].replace('|', '/')} | {o['test_label']} | {', '.join(o['train_labels'])} | {'yes' if o['exact'] else 'normalised'} |"
            )
    else:
        lines.append("None.")
    near = report.get("near_duplicates")
    if near:
        lines += [
            "",
            f"## Near-duplicates of training texts ({near['n']} of {near['of']} test texts)",
            "",
            f"Test texts whose nearest training text (character 3–5-gram TF-IDF cosine) is at least {near['threshold']:g} similar"
            " and has the same label. Every run also reports its accuracy without them (the de-duplicated subset).",
        ]
    lines += ["", f"## Reading sample ({len(report['sample'])} training rows, seed {report['sample_seed']})", ""]
    lines += [f"- [{s['label']}] {s['text']}" for s in report["sample"]]
    issues = report.get("label_issues")  # written by `data check --label-issues` (evaluation.label_issues)
    if issues:
        lines += ["", f"## Suspected label errors ({issues['n_issues']} of {issues['n_rows']:,} {issues['split']} rows)", ""]
        lines.append(
            f"{issues['method']}; approaches {', '.join(issues['approaches'])}, {issues['folds']} folds, seed {issues['seed']}."
            " Out-of-fold accuracy: " + ", ".join(f"{k} {v * 100:.1f}%" for k, v in issues["oof_accuracy"].items()) + "."
        )
        lines += [
            "",
            "| rank | id | given | suggested | p(given) | p(suggested) | text |",
            "| ---: | --- | --- | --- | ---: | ---: | --- |",
        ]
        for r in issues["rows"]:
            lines.append(
                f"| {r['rank']} | {r['id']} | {r['given']} | {r['suggested']} | {r['given_probability']:.3f} | {r['suggested_probability']:.3f} | {r['text'].replace('|', '/')} |"
            )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"data-check-{report['task']}.json"
    md = out_dir / f"data-check-{report['task']}.md"
    js.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    md.write_text(to_markdown(report), encoding="utf-8")
    return js, md


def _reasons(bad: list[dict[str, Any]], shown: int = 3) -> str:
    """The commonest reasons of the bad rows, with their counts, for the summary line."""
    if not bad:
        return ""
    counts = Counter(b["reason"] for b in bad).most_common()
    text = "; ".join(f"{n:,} × {reason}" for reason, n in counts[:shown])
    return f" ({text}" + (f"; {len(counts) - shown} other reason(s)" if len(counts) > shown else "") + ")"


def summary(report: dict[str, Any]) -> str:
    """The lines printed to the terminal."""
    return "\n".join(
        [
            f"task {report['task']}: " + ", ".join(f"{k} {v:,}" for k, v in report["sizes"].items()),
            f"bad rows: {len(report['bad_rows'])}" + _reasons(report["bad_rows"]),
            f"duplicate groups in train: {len(report['train_duplicates_exact'])} exact, {len(report['train_duplicates_normalised'])} normalised",
            f"texts with conflicting labels: {len(report['conflicting_labels'])}",
            f"test texts with a same-label near-duplicate in train (cosine ≥ {report['near_duplicates']['threshold']:g}): {report['near_duplicates']['n']}",
            f"test texts also in train: {len(report['train_test_overlap'])}"
            + (
                " ("
                + ", ".join(f"{o['test_id']} {o['test_label']}" for o in report["train_test_overlap"][:8])
                + (", …" if len(report["train_test_overlap"]) > 8 else "")
                + ")"
                if report["train_test_overlap"]
                else ""
            ),
        ]
    )
