"""Clean, then train: the label-issue finder's suspects removed from (or relabelled in) the rows
a model learns from, before it is fitted.

    dispute-classifier evaluate --task disputes --approach finetuned-encoder --split validation --clean-train drop

The finder (``evaluation.label_issues``: out-of-fold probabilities of tfidf and embedding,
cleanlab's ranking) runs on exactly the rows the model would be fitted on for the split in
hand — train for ``--split validation``, train + validation for ``--split test`` — so the rows
scored never inform the cleaning. ``relabel`` gives each suspect the finder's most probable
label instead of dropping it. What was changed goes into the run record (``extra.cleaning``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import Split, TaskData

CLEAN_MODES = ("none", "drop", "relabel")


def cleaned_fit_rows(
    data: TaskData,
    eval_split: str,
    mode: str,
    approaches: tuple[str, ...] = ("tfidf", "embedding"),
    folds: int = 5,
    seed: int = 0,
) -> tuple[TaskData, dict[str, Any]]:
    """``data`` whose fit rows for ``eval_split`` have the finder's suspects dropped or relabelled,
    and what was done (mode, counts, the changed ids)."""
    if mode not in CLEAN_MODES:
        raise UserError(f"clean_train must be one of {', '.join(CLEAN_MODES)}, got '{mode}' (set --clean-train drop)")
    from evaluation.label_issues import approach_maker, find_in_rows

    rows = data.fit_split(eval_split)
    labels = data.spec.label_list
    task = str(data.spec.path or data.spec.name)
    makers = {name: approach_maker(name, task) for name in approaches}
    found = find_in_rows(rows.texts, rows.labels, labels, makers, folds, seed)
    flagged = [int(i) for i in found["flagged"]]
    if mode == "drop":
        keep = sorted(set(range(len(rows))) - set(flagged))
        clean = rows.subset(keep, name=f"{rows.name} less {len(flagged)} suspects")
        changed = [rows.ids[i] for i in flagged]
    else:
        new_labels = list(rows.labels)
        changed = []
        for i in flagged:
            suggested = labels[int(found["probs"][i].argmax())]
            if suggested != new_labels[i]:
                new_labels[i] = suggested
                changed.append(rows.ids[i])
        clean = Split(f"{rows.name}, {len(changed)} relabelled", list(rows.ids), list(rows.texts), new_labels)
    info = {
        "mode": mode,
        "finder": list(approaches),
        "folds": folds,
        "seed": seed,
        "rows_before": len(rows),
        "rows_after": len(clean),
        "suspects": len(flagged),
        "changed_ids": changed,
        "oof_accuracy": found["oof_accuracy"],
    }
    return replace(data, fit_override={eval_split: clean}), info
