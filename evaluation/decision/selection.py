"""Which fine-tuned version stands for fine-tuning: the one chosen on validation, never on test."""

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
        how = (f"chosen on validation: {v.metrics['accuracy'] * 100:.2f} % on {v.metrics['n']} validation examples"
               f" (best of {len(scored)} with a validation record)")
        if chosen.meta.training is not None and chosen.meta.training.sweep_final:
            study, trial = _sweep_key(chosen) or ("", 0)
            how += f"; the settings of trial {trial} of sweep '{study}', refit on train+validation"
        return chosen, how
    newest = max(test_runs, key=lambda r: r.meta.finished_at)
    return newest, "no validation record for any version: the newest is used (not selected on test)"
