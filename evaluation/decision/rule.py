"""The rule: the cheapest adequate option, and whether fine-tuning earns its place.

Every option is compared with the most accurate one (the *reference*, measured on at least
``min_shared_examples`` examples) by `evidence.paired`. The recommendation is the cheapest
adequate option at the stated volume within the latency budget, ties broken by the simplicity
order; it is *decided* unless an option not yet judged (inconclusive) could undercut it.

The fine-tuning question compares the fine-tuned model chosen on validation with the option the
rule picks without fine-tuning: **yes** when it is shown more accurate by ``required_gain_points``
(superiority: the interval's lower bound clears the gain) or shown adequate and cheaper; **no**
when it is shown worse, or a gain of that size is excluded and it is not cheaper; otherwise
**not yet decidable**, with what would settle it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dispute_classifier.core.prices import money
from evaluation.decision.assumptions import VerdictConfig
from evaluation.decision.costs import CostLine
from evaluation.decision.evidence import Evidence, Status, best_run, needed_text, paired, superiority
from evaluation.runmeta import Category, RunMeta
from evaluation.runs import RunRecord
from evaluation.stats import paired_sample_size

YES, NO, UNDECIDED = "yes", "no", "not yet decidable"


@dataclass
class Standing:
    """One option's place under the rule."""

    run: RunRecord
    evidence: Evidence
    monthly_cost_usd: float | None
    within_latency_budget: bool

    @property
    def category(self) -> Category:
        return self.run.meta.category

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.evidence.as_dict(),
            "monthly_cost_usd": self.monthly_cost_usd,
            "within_latency_budget": self.within_latency_budget,
            "category": self.category.value,
        }


@dataclass
class Recommendation:
    """What the rule picks from a set of options."""

    choice: RunRecord | None
    reference: RunRecord | None
    standing: list[Standing] = field(default_factory=list)
    undecided_by: list[Standing] = field(default_factory=list)
    """Options not yet judged that could undercut the choice."""
    unknown_cost: list[Standing] = field(default_factory=list)
    """Adequate options whose monthly cost is unknown: listed with what is missing, never chosen on cost."""

    @property
    def decided(self) -> bool:
        return self.choice is not None and not self.undecided_by


def within_budget(run: RunRecord, cfg: VerdictConfig) -> bool:
    return cfg.max_p95_latency_ms is None or run.metrics["latency_p95_s"] * 1000 <= cfg.max_p95_latency_ms


def _reference_evidence(run: RunRecord, enough: bool, cfg: VerdictConfig) -> Evidence:
    ev = Evidence(run.label, run.label, run.run_id, run.run_id, Status.REFERENCE, "most accurate run", n_shared=run.metrics["n"])
    if not enough:
        ev.status, ev.n_needed = Status.INCONCLUSIVE, float(cfg.min_shared_examples)
        ev.reason = f"most accurate run, but on only {run.metrics['n']} examples (minimum {cfg.min_shared_examples})"
    return ev


def recommend(
    options: list[RunRecord],
    cfg: VerdictConfig,
    costs: dict[str, CostLine],
    *,
    split_size: int | None = None,
    exclude: frozenset[str] = frozenset(),
    accuracy: Callable[[RunRecord], float] | None = None,
) -> Recommendation:
    """The cheapest adequate option at ``cfg.monthly_volume`` within the latency budget, ties by
    the preference order; ``exclude`` and ``accuracy`` judge on a subset (the de-duplicated one)."""
    if not options:
        return Recommendation(None, None)
    full = [r for r in options if r.metrics["n"] >= cfg.min_shared_examples]
    reference = best_run(full or options, accuracy)
    assert reference is not None
    standing = []
    for run in options:
        ev = (
            _reference_evidence(run, bool(full), cfg)
            if run is reference
            else paired(run, reference, cfg, split_size=split_size, exclude=exclude)
        )
        standing.append(Standing(run, ev, costs[run.run_id].monthly(cfg.monthly_volume), within_budget(run, cfg)))
    order = {c: i for i, c in enumerate(cfg.preference_order)}

    def rank(s: Standing) -> tuple[int, float]:
        return order.get(s.category.value, len(order)), -s.run.metrics["accuracy"]

    def undercuts(s: Standing, than: Standing) -> bool:
        """Materially cheaper, or the same cost (within the materiality settings) and preferred."""
        a, b = s.monthly_cost_usd, than.monthly_cost_usd
        assert a is not None and b is not None
        return rank(s) < rank(than) if cfg.tie(a, b) else a < b

    # An unknown cost is never recommended on cost and never blocks a known one: it is listed.
    adequate = [s for s in standing if s.evidence.status in (Status.ADEQUATE, Status.REFERENCE) and s.within_latency_budget]
    known = [s for s in adequate if s.monthly_cost_usd is not None]
    chosen = None
    if known:
        cheapest = min(s.monthly_cost_usd for s in known)  # type: ignore[type-var]
        chosen = min((s for s in known if cfg.tie(s.monthly_cost_usd, cheapest) or s.monthly_cost_usd == cheapest), key=rank)  # type: ignore[arg-type]
    undecided = [
        s
        for s in standing
        if chosen is not None
        and s.evidence.status in (Status.INCONCLUSIVE, Status.NOT_COMPARABLE)
        and s.within_latency_budget
        and s.monthly_cost_usd is not None
        and undercuts(s, chosen)
    ]
    rec = Recommendation(chosen.run if chosen else None, reference, standing, undecided)
    rec.unknown_cost = [s for s in adequate if s.monthly_cost_usd is None]
    return rec


def finetune_question(
    ft: RunRecord | None,
    why_ft: str,
    without: Recommendation,
    cfg: VerdictConfig,
    costs: dict[str, CostLine],
    split_size: int | None = None,
) -> dict[str, Any]:
    """Yes / no / not yet decidable, computed once: does the fine-tuned model ``ft`` earn its
    place over the option ``without`` fine-tuning picks?"""
    if ft is None:
        return {
            "answer": UNDECIDED,
            "reason": "no fine-tuned run on this split: run the fine-tuned stage (`dispute-classifier experiment`)",
        }
    base = without.choice
    if base is None:
        return {
            "answer": UNDECIDED,
            "finetuned": ft.label,
            "selection": why_ft,
            "reason": "no option without fine-tuning is shown adequate yet to compare it with",
        }
    ev = paired(ft, base, cfg, split_size=split_size)
    out: dict[str, Any] = {
        "finetuned": ft.label,
        "finetuned_run_id": ft.run_id,
        "selection": why_ft,
        "against": base.label,
        **{k: v for k, v in ev.as_dict().items() if k not in ("challenger", "incumbent")},
    }
    cost_ft, cost_b = costs[ft.run_id].monthly(cfg.monthly_volume), costs[base.run_id].monthly(cfg.monthly_volume)
    out.update(monthly_cost_finetuned_usd=cost_ft, monthly_cost_against_usd=cost_b)

    def answer(value: str, reason: str, outcome: str | None = None) -> dict[str, Any]:
        if value == YES and not without.decided:  # the option to beat is itself not settled yet
            first = without.undecided_by[0].evidence
            value, reason = UNDECIDED, f"{reason}; but the option without fine-tuning is not settled ({first.challenger}: {first.reason})"
            outcome = None
        return {**out, "answer": value, "reason": reason, **({"outcome": outcome} if outcome else {})}

    if ev.status is Status.NOT_COMPARABLE:
        return answer(UNDECIDED, f"not comparable: {ev.reason}")
    if not within_budget(ft, cfg):
        return answer(
            NO,
            f"its p95 latency {ft.metrics['latency_p95_s'] * 1000:.0f} ms is over the {cfg.max_p95_latency_ms:g} ms budget",
            "over budget",
        )
    gain = cfg.gain_points
    lo, hi = ev.delta_ci95_points or (0.0, 0.0)
    cheaper = None if cost_ft is None or cost_b is None else (cost_ft < cost_b and not cfg.tie(cost_ft, cost_b))
    costs_txt = (
        f"{money(cost_ft)} vs {money(cost_b)} a month at {cfg.monthly_volume:,} queries"
        if cheaper is not None
        else "monthly cost unknown: " + "; ".join(m for m in (costs[ft.run_id].missing, costs[base.run_id].missing) if m)
    )
    shown = f"{ev.delta_points:+.2f} points ({100 * cfg.level:g} % CI {lo:+.2f} to {hi:+.2f}) against {base.label}"
    sup = superiority(ev, gain)
    if ev.status is Status.WORSE:
        return answer(NO, ev.reason, "worse")
    if sup is True:
        return answer(YES, f"{shown}: more accurate by more than {gain:g} points (superiority at level {cfg.alpha:g})", "more accurate")
    if ev.status is Status.ADEQUATE and cheaper:
        return answer(YES, f"{ev.reason}, and it is cheaper: {costs_txt}", "equivalent and cheaper")
    if sup is False and cheaper is False:
        return answer(NO, f"{shown}: a {gain:g}-point gain is excluded, and it is not cheaper: {costs_txt}", "not worth it")
    if sup is False and cheaper is None:
        return answer(UNDECIDED, f"{shown}: a {gain:g}-point gain is excluded; whether it is cheaper is unknown ({costs_txt})")
    if sup is False:  # cheaper, but not yet shown adequate
        return answer(UNDECIDED, f"cheaper ({costs_txt}) but not yet shown adequate: {ev.reason}")
    need = paired_sample_size(ev.delta_points / 100, max(ev.discordant_rate, 1 / max(ev.n_shared, 1)), gain / 100, cfg.alpha, cfg.power)
    return answer(UNDECIDED, f"{shown}: a {gain:g}-point gain is neither shown nor excluded; {needed_text(need, split_size)}")


def _api(m: RunMeta) -> bool:
    return m.is_api


COMPARISON_SET: list[tuple[str, Callable[[RunMeta], bool], str]] = [
    ("base model, no prompt", lambda m: m.approach == "zero-shot", "--approach zero-shot"),
    ("base model, optimised prompt", lambda m: m.approach in ("prompt", "few-shot") and not _api(m), "--approach prompt"),
    (
        "stronger API model, optimised prompt",
        lambda m: m.approach in ("prompt", "few-shot") and _api(m),
        "--approach prompt --model gpt-4o-mini  # needs an API key",
    ),
    ("RAG", lambda m: m.category is Category.RAG, "--approach rag"),
    ("fine-tuned", lambda m: m.category is Category.FINETUNED, "--approach finetuned --model NAME"),
    ("classical: TF-IDF", lambda m: m.approach == "tfidf", "--approach tfidf"),
    ("classical: embeddings", lambda m: m.approach == "embedding", "--approach embedding"),
    ("classical: kNN", lambda m: m.approach == "knn", "--approach knn"),
]
"""The seed's comparison set: (row, which runs fill it, how to run one)."""
