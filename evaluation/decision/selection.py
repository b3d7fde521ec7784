"""What is chosen on validation, never on test: the fine-tuned version that stands for fine-tuning,
and the confidence threshold below which answers go to review."""

from __future__ import annotations

from evaluation.runs import RunRecord


def _sweep_key(run: RunRecord) -> tuple[str, int] | None:
    t = run.meta.training
    if t is None or t.sweep_study is None or t.sweep_trial is None:
        return None
    return t.sweep_study, t.sweep_trial


def choose_on_validation(test_runs: list[RunRecord], validation_runs: list[RunRecord]) -> tuple[RunRecord | None, str]:
    """The run among ``test_runs`` whose model has the best *validation* record (so the test
    split only reports); the newest when none of them has one, and why, in words.

    A sweep's final model (refit on train+validation, so it has no validation record of its
    own) stands on the validation record of the trial whose settings it refit.
    """
    if not test_runs:
        return None, ""
    ordered = sorted(validation_runs, key=lambda r: r.meta.finished_at)
    val = {r.meta.model_key: r for r in ordered}
    trials = {key: r for r in ordered if (key := _sweep_key(r)) and not r.meta.training.sweep_final}  # type: ignore[union-attr]

    def evidence(run: RunRecord) -> RunRecord | None:
        if run.meta.training is not None and run.meta.training.sweep_final:
            return trials.get(_sweep_key(run))  # type: ignore[arg-type]
        return val.get(run.meta.model_key)

    scored = [(v, r) for r in test_runs if (v := evidence(r)) is not None]
    if scored:
        v, chosen = max(scored, key=lambda t: (t[0].metrics["accuracy"], t[0].metrics["macro_f1"]))
        how = (
            f"chosen on validation: {v.metrics['accuracy'] * 100:.2f} % on {v.metrics['n']} validation examples"
            f" (best of {len(scored)} with a validation record)"
        )
        if chosen.meta.training is not None and chosen.meta.training.sweep_final:
            study, trial = _sweep_key(chosen) or ("", 0)
            how += f"; the settings of trial {trial} of sweep '{study}', refit on train+validation"
        return chosen, how
    newest = max(test_runs, key=lambda r: r.meta.finished_at)
    return newest, "no validation record for any version: the newest is used (not selected on test)"


def review_plan(run: RunRecord, validation: list[RunRecord], coverage: float | None) -> tuple[float, float, float] | None:
    """(kept share, accuracy on it, threshold) when the least confident answers go to a person:
    the threshold is the one the *validation* record of the same setting gives at ``coverage``;
    its effect is then read off this run's own predictions. None without review or a validation record."""
    if coverage is None:
        return None
    twin = next(
        (
            v
            for v in validation
            if v.meta.approach == run.meta.approach and v.meta.model == run.meta.model and v.meta.config == run.meta.config
        ),
        None,
    )
    if twin is None or not run.predictions:
        return None
    curve = twin.metrics.get("coverage_curve") or []
    point = min(curve, key=lambda p: abs(p["coverage"] - coverage), default=None)
    if point is None:
        return None
    kept = [p["predicted"] == p["gold"] for p in run.predictions if (p.get("confidence") or 0.0) >= point["threshold"]]
    if not kept:
        return 0.0, 1.0, point["threshold"]
    return len(kept) / len(run.predictions), sum(kept) / len(kept), point["threshold"]
