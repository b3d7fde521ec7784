"""Monitoring over the prediction log: per time window volume, latency, errors, drift, abstain
rate and accuracy estimated without labels; and the shadow pair, label-free and with labels.

- **Label drift**: a chi-square test of the window's predicted labels against the model's
  predicted labels on held-out rows (its reference; `evaluation.drift`): a p-value per window,
  Monte Carlo where the window is too small for the chi-square tail. A window is flagged when
  its Holm-adjusted p-value is at most ``alpha`` (0.05), so a report with many windows drawn
  from the training distribution raises a false alarm at most 5 % of the time. The PSI
  against the training label distribution is still reported, as a size, never as the rule.
- **Confidence shift**: the same test over quantile bins of the served model's confidences on
  the test split (`confidence_reference`; deciles, fewer for windows under 50 predictions so
  that every bin expects 5).
- **Estimated accuracy without labels**: the model's confidence is calibrated on held-out
  predictions (rows the model never trained on: out-of-fold at registration, or the
  validation cut) with isotonic regression (confidence → probability of being right); the
  window's estimate is the mean calibrated confidence of its predictions.
- **Shadow pair, label-free**: only what needs no labels: the share of inputs on which
  champion and challenger disagree (Wilson 95 % interval) and each model's *estimated*
  accuracy. Which model is right where they disagree cannot be told from confidences (a more
  confident model would always win), so there is no verdict without labels.
- **Shadow pair, with labels** (``monitor --labels FILE``, e.g. a labelled sample of the
  disagreements the service routed to review): the paired difference in accuracy on the
  labelled disagreements (where the two models differ; agreements add 0 to a paired
  difference) with a 95 % Wilson interval, and only then whether the challenger's advantage on
  the test split holds.

Everything here reads `evaluation.predlog.LogData`; nothing runs a model.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from dispute_classifier.core.errors import UserError
from evaluation import drift
from evaluation.predlog import text_hash
from evaluation.stats import tango_interval, wilson_interval

EPS = 1e-4
"""Floor of a bin's share in PSI, so an empty bin gives a large but finite term."""


@dataclass
class MonitorSettings:
    """How the prediction log is cut into windows and judged."""

    window_minutes: float = 15.0
    """Length of one time window in minutes."""
    alpha: float = 0.05
    """False-alarm rate of each drift check over all windows of one report (Holm-corrected p-values are flagged at or below it)."""
    min_window_predictions: int = 30
    """Windows with fewer predictions are reported but not judged for drift (too little power to find any)."""

    def __post_init__(self) -> None:
        if not (self.window_minutes > 0 and math.isfinite(self.window_minutes)):
            raise UserError(f"window minutes must be a number above 0, got {self.window_minutes} (set --window-minutes)")
        if not 0 < self.alpha < 1:
            raise UserError(f"alpha must be between 0 and 1, got {self.alpha} (set --alpha)")
        if self.min_window_predictions < 1:
            raise UserError(f"min window predictions must be at least 1, got {self.min_window_predictions} (set --min-window-predictions)")


def threshold_for(confidences: Sequence[float], correct: Sequence[bool], target: float) -> float:
    """The lowest confidence ``t`` such that predictions at or above ``t`` on the validation
    split are right at least ``target`` of the time (read off the coverage curve); 0 when all
    of them are, the highest confidence when no cut reaches ``target``."""
    pairs = sorted(zip(confidences, correct), key=lambda p: -p[0])
    best = pairs[0][0] if pairs else 0.0
    right = 0
    for i, (conf, ok) in enumerate(pairs, start=1):
        right += bool(ok)
        last_of_tie = i == len(pairs) or pairs[i][0] < conf
        if last_of_tie and right / i >= target:
            best = conf
    if pairs and right / len(pairs) >= target:
        return 0.0
    return float(best)


def calibrator(profile: dict[str, Any]) -> Callable[[Sequence[float]], list[float]]:
    """Isotonic regression of correctness on confidence over the profile's validation
    predictions: maps confidences to estimated probabilities of being right."""
    from sklearn.isotonic import IsotonicRegression

    val = profile["validation"]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit([float(c) for c in val["confidence"]], [float(bool(x)) for x in val["correct"]])
    return lambda conf: [float(v) for v in iso.predict([float(c) for c in conf])] if len(conf) else []


def test_estimate(profile: dict[str, Any]) -> float | None:
    """The accuracy the calibrated confidences estimate on the test split, where the true one is
    known: their difference is the estimate's own error."""
    if not profile.get("test_confidence") or not profile.get("validation", {}).get("confidence"):
        return None
    return _mean(calibrator(profile)(profile["test_confidence"]))


def psi(expected: dict[str, float], observed: dict[str, int]) -> float:
    """Population stability index of ``observed`` counts against ``expected`` shares."""
    total = sum(observed.values())
    if total == 0:
        return 0.0
    keys = set(expected) | set(observed)
    exp_total = sum(expected.values()) or 1.0
    out = 0.0
    for key in keys:
        e = max(expected.get(key, 0.0) / exp_total, EPS)
        o = max(observed.get(key, 0) / total, EPS)
        out += (o - e) * math.log(o / e)
    return out


def _bins(values: Sequence[float], n: int = 10) -> dict[str, int]:
    return dict(Counter(str(min(int(v * n), n - 1)) for v in values))


def confidence_psi(reference: Sequence[float], observed: Sequence[float]) -> float:
    """PSI of ``observed`` confidences against ``reference`` ones over ten equal bins."""
    ref = _bins(reference)
    return psi({k: float(v) for k, v in ref.items()}, _bins(observed))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def load_labels(path: str | Path) -> dict[str, str]:
    """Gold labels from a CSV with a ``label`` column and an ``id`` column (the request id the
    replay sent) or a ``text`` column (matched on the text's hash)."""

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            if "label" not in cols or not {"id", "text"} & set(cols):
                raise UserError(f"{path}: needs a 'label' column and an 'id' or 'text' column; found {', '.join(cols) or 'none'}")
            out = {}
            for row in reader:
                key = row["id"] if "id" in cols else "sha256:" + text_hash(row["text"])
                out[key] = row["label"]
            return out
    except FileNotFoundError:
        raise UserError(f"{path}: labels file not found (write one with `dispute-classifier replay ... --labels-out FILE`)") from None


def gold_for(row: dict[str, Any], labels: dict[str, str]) -> str | None:
    """The gold label of a logged prediction: by request id (``ID`` for the first input,
    ``ID/INDEX`` for any), else by text hash."""
    rid, idx = row["request_id"], row["input_index"]
    found = labels.get(f"{rid}/{idx}")
    if found is None and idx == 0:
        found = labels.get(rid)
    return found if found is not None else labels.get("sha256:" + row["text_sha256"])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _served(log, role: str, model: str | None = None) -> list[dict[str, Any]]:
    return [r for r in log.predictions if r["role"] == role and (model is None or r["model"] == model)]


def _estimates(rows: list[dict[str, Any]], profiles: dict[tuple[str, str], dict[str, Any]]) -> list[float | None]:
    """Calibrated confidence of each row, with its own model version's calibration."""
    out: list[float | None] = [None] * len(rows)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["model"], r["version"]), []).append(i)
    for key, idx in groups.items():
        profile = profiles.get(key)
        if not profile or not profile.get("validation", {}).get("confidence"):
            continue
        cal = calibrator(profile)
        values = cal([rows[i]["confidence"] or 0.0 for i in idx])
        for i, v in zip(idx, values):
            out[i] = v
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def label_reference(profile: dict[str, Any]) -> drift.Reference | None:
    """What a window's predicted labels are tested against: the model's predicted labels on
    held-out rows (a two-sample test) or, in profiles written before those were stored, the
    training label shares (one-sample)."""
    held = profile.get("validation", {}).get("label")
    if held:
        return drift.Reference.from_counts(Counter(held), profile.get("labels", ()))
    if profile.get("train_distribution"):
        return drift.Reference.from_counts(profile["train_distribution"], profile.get("labels", ()), shares_only=True)
    return None


def confidence_reference(profile: dict[str, Any]) -> list[float] | None:
    """What a window's confidences are tested against: the served model's own confidences on the
    test split (held out, and the same model: the out-of-fold copies learn from 4/5 of the rows
    and are less confident, a shift a window of 640 test texts already flags), else on the
    held-out predictions of the profile."""
    return profile.get("test_confidence") or profile.get("validation", {}).get("confidence") or None


def drift_p_values(counts: Counter, confidences: Sequence[float], profile: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """Unadjusted p-values of one window: (predicted labels, confidences) against the profile."""
    label_p = conf_p = None
    ref = label_reference(profile) if profile else None
    if ref is not None and counts:
        ref = ref.extend(list(counts))
        label_p = float(drift.p_values(ref, ref.vector(counts))[1][0])
    held = confidence_reference(profile) if profile else None
    if held and confidences:
        cref, edges = drift.confidence_reference(held, drift.confidence_bins(len(confidences)))
        if len(cref.categories) > 1:
            conf_p = float(drift.p_values(cref, drift.bin_counts(confidences, edges))[1][0])
    return label_p, conf_p


def window_stats(
    rows: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    estimates: list[float | None],
    profile: dict[str, Any] | None,
    settings: MonitorSettings,
    labels: dict[str, str] | None,
) -> dict[str, Any]:
    """The numbers of one window of champion predictions (and the errors in it); the drift
    flags are set by `flag_drift` once every window's p-value is known."""
    requests = len({r["request_id"] for r in rows})
    counts = Counter(r["label"] for r in rows)
    latencies = [r["latency_ms"] for r in rows]
    confidences = [r["confidence"] for r in rows if r["confidence"] is not None]
    label_psi = psi(profile["train_distribution"], counts) if profile and profile.get("train_distribution") else None
    ref_conf = confidence_reference(profile) if profile else None
    conf_psi = confidence_psi(ref_conf, confidences) if ref_conf and confidences else None
    label_p, conf_p = drift_p_values(counts, confidences, profile)
    out: dict[str, Any] = {
        "predictions": len(rows),
        "requests": requests,
        "errors": len(errors),
        "error_rate": len(errors) / (requests + len(errors)) if requests + len(errors) else 0.0,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "label_counts": dict(counts.most_common()),
        "judged": len(rows) >= settings.min_window_predictions,
        "label_psi": label_psi,
        "label_p": label_p,
        "label_p_holm": None,
        "label_drift": False,
        "confidence_mean": _mean(confidences),
        "confidence_psi": conf_psi,
        "confidence_p": conf_p,
        "confidence_p_holm": None,
        "confidence_shift": False,
        "abstain_rate": sum(bool(r["abstain"]) for r in rows) / len(rows) if rows else 0.0,
        "estimated_accuracy": _mean(estimates),
    }
    if labels is not None:
        golds = [(gold_for(r, labels), r["label"]) for r in rows]
        known = [(g, p) for g, p in golds if g is not None]
        out["labeled"] = len(known)
        out["true_accuracy"] = sum(g == p for g, p in known) / len(known) if known else None
    return out


def flag_drift(windows: list[dict[str, Any]], alpha: float) -> None:
    """Holm-adjust each check's p-values over the judged windows and flag those at or below
    ``alpha`` (in place): the chance of any false alarm in the report stays at most ``alpha``."""
    for check, flag in (("label", "label_drift"), ("confidence", "confidence_shift")):
        judged = [w for w in windows if w["judged"] and w[f"{check}_p"] is not None]
        for w, adjusted in zip(judged, drift.holm([w[f"{check}_p"] for w in judged])):
            w[f"{check}_p_holm"] = float(adjusted)
            w[flag] = bool(adjusted <= alpha)


def summarize(
    log, settings: MonitorSettings | None = None, labels: dict[str, str] | None = None, model: str | None = None
) -> dict[str, Any]:
    """Per-window and overall monitoring of the champion's predictions in ``log`` (one model's
    when ``model`` is given), and the shadow comparison when the log has shadow predictions."""
    settings = settings or MonitorSettings()
    rows = _served(log, "champion", model)
    if not rows:
        which = f" for model '{model}'" if model else ""
        raise UserError(f"the prediction log has no served predictions{which} yet; send some with `dispute-classifier replay`")
    latest = rows[-1]
    profile = log.profiles.get((latest["model"], latest["version"]))
    estimates = _estimates(rows, log.profiles)
    width = settings.window_minutes * 60
    starts: dict[float, list[int]] = {}
    for i, r in enumerate(rows):
        starts.setdefault(math.floor(r["ts"] / width) * width, []).append(i)
    windows = []
    for start, idx in sorted(starts.items()):
        errs = [e for e in log.errors if start <= e["ts"] < start + width]
        stats = window_stats([rows[i] for i in idx], errs, [estimates[i] for i in idx], profile, settings, labels)
        windows.append({"start": _iso(start), "start_ts": start, **stats})
    flag_drift(windows, settings.alpha)
    overall = window_stats(rows, log.errors, estimates, profile, settings, labels)
    flag_drift([overall], settings.alpha)  # one test of its own
    return {
        "model": latest["model"],
        "version": latest["version"],
        "window_minutes": settings.window_minutes,
        "alpha": settings.alpha,
        "from": _iso(rows[0]["ts"]),
        "to": _iso(latest["ts"]),
        "test_accuracy": profile.get("test_accuracy") if profile else None,
        "test_estimated_accuracy": test_estimate(profile) if profile else None,
        "threshold": profile.get("threshold") if profile else None,
        "train_distribution": profile["train_distribution"] if profile else None,
        "overall": overall,
        "windows": windows,
        "shadow": shadow_stats(log, rows, estimates, labels),
    }


def paired_difference_ci(
    first_right: Sequence[bool], second_right: Sequence[bool], level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """Accuracy of ``first`` minus ``second`` on the same inputs, with the interval the decision
    report uses for paired differences (Tango's score interval, `evaluation.stats`), so the live
    check and the test-split verdict speak of one interval."""
    n = len(first_right)
    if n == 0:
        return 0.0, (-1.0, 1.0)
    b = sum(f and not s for f, s in zip(first_right, second_right))
    c = sum(s and not f for f, s in zip(first_right, second_right))
    lo, hi = tango_interval(b, c, n, level)
    return (b - c) / n, (lo, hi)


def shadow_stats(
    log, champion: list[dict[str, Any]], champion_est: list[float | None], labels: dict[str, str] | None
) -> dict[str, Any] | None:
    """Champion against the shadow challenger on the inputs both answered, or None.

    Label-free: the disagreement rate (Wilson 95 % interval) and each model's *estimated*
    accuracy. With ``labels``: on the labelled disagreements, the challenger's accuracy minus the
    champion's (Tango's 95 % score interval); times the disagreement rate that is the advantage on all
    of the traffic (agreements add nothing), which is then set against the test advantage. The
    labelled disagreements must be a random sample of them (as `--review-rate` routes) for that
    to hold."""
    shadow = _served(log, "shadow")
    if not shadow:
        return None
    shadow_est = _estimates(shadow, log.profiles)
    by_key = {(r["request_id"], r["input_index"]): (r, e) for r, e in zip(shadow, shadow_est)}
    pairs = [
        (c, ce, *by_key[(c["request_id"], c["input_index"])])
        for c, ce in zip(champion, champion_est)
        if (c["request_id"], c["input_index"]) in by_key
    ]
    if not pairs:
        return None
    n = len(pairs)
    disagreeing = [(c, s) for c, _, s, _ in pairs if c["label"] != s["label"]]
    s_last = pairs[-1][2]
    c_profile = log.profiles.get((champion[-1]["model"], champion[-1]["version"])) or {}
    s_profile = log.profiles.get((s_last["model"], s_last["version"])) or {}
    test_adv = None
    if c_profile.get("test_accuracy") is not None and s_profile.get("test_accuracy") is not None:
        test_adv = s_profile["test_accuracy"] - c_profile["test_accuracy"]
    out: dict[str, Any] = {
        "champion": f"{champion[-1]['model']}:{champion[-1]['version']}",
        "challenger": f"{s_last['model']}:{s_last['version']}",
        "paired": n,
        "disagreements": len(disagreeing),
        "disagreement_rate": len(disagreeing) / n,
        "disagreement_ci95": wilson_interval(len(disagreeing), n),
        "routed_to_review": sum(bool(s.get("review")) for _, s in disagreeing),
        "champion_estimated_accuracy": _mean([ce for _, ce, _, _ in pairs]),
        "challenger_estimated_accuracy": _mean([se for _, _, _, se in pairs]),
        "test_advantage": test_adv,
        "labeled_disagreements": 0,
    }
    if labels is not None:
        known = [(gold_for(c, labels), c["label"], s["label"]) for c, _, s, _ in pairs]
        known = [k for k in known if k[0] is not None]
        if known:
            out["labeled"] = len(known)
            out["champion_true_accuracy"] = sum(g == c for g, c, _ in known) / len(known)
            out["challenger_true_accuracy"] = sum(g == s for g, _, s in known) / len(known)
        on_disagreements = [(g == s, g == c) for g, c, s in known if c != s]
        out["labeled_disagreements"] = len(on_disagreements)
        if on_disagreements:
            diff, (lo, hi) = paired_difference_ci([x for x, _ in on_disagreements], [y for _, y in on_disagreements])
            rate = out["disagreement_rate"]
            out["disagreement_advantage"], out["disagreement_advantage_ci95"] = diff, (lo, hi)
            out["live_advantage"], out["live_advantage_ci95"] = rate * diff, (rate * lo, rate * hi)
    out["verdict"] = shadow_verdict(out)
    return out


def shadow_verdict(shadow: dict[str, Any]) -> str:
    """One line: what can be said about the challenger against the champion, and on what."""
    test_adv = shadow["test_advantage"]
    on_test = "no test accuracy recorded" if test_adv is None else f"{test_adv * 100:+.1f} points on test"
    if "live_advantage" not in shadow:
        return (
            f"label-free, no verdict: they disagree on {shadow['disagreements']} of {shadow['paired']} inputs and which one is right there"
            " needs labels; label a random sample of the disagreements (serve --review-rate routes them to review) and run"
            f" `monitor --labels FILE` ({on_test})"
        )
    lo, hi = shadow["live_advantage_ci95"]
    est = (
        f"{shadow['live_advantage'] * 100:+.1f} points on this traffic (95% CI {lo * 100:+.1f} to {hi * 100:+.1f},"
        f" from {shadow['labeled_disagreements']} labelled disagreements)"
    )
    if lo > 0:
        return f"challenger ahead: {est}; {on_test}" + ("; the test advantage holds" if test_adv is not None and test_adv > 0 else "")
    if hi < 0:
        return f"challenger behind: {est}; {on_test}" + (
            "; the test advantage does NOT hold on this traffic" if test_adv is not None and test_adv > 0 else ""
        )
    return f"no clear difference yet: {est}; {on_test}; label more disagreements to tell"


def format_summary(summary: dict[str, Any]) -> str:
    """The monitor command's terminal report."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{v * 100:5.1f}%"

    def num(v: float | None, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    def pval(v: float | None) -> str:
        return "-" if v is None else f"{v:.1e}" if v < 0.001 else f"{v:.3f}"

    has_true = "true_accuracy" in summary["overall"]
    lines = [
        f"model {summary['model']} ({summary['version']}), {summary['from']} .. {summary['to']},"
        f" windows of {summary['window_minutes']:g} min; test accuracy {pct(summary['test_accuracy']).strip()}"
        f" (estimated from confidence: {pct(summary['test_estimated_accuracy']).strip()}),"
        f" abstain below confidence {num(summary['threshold'], '{:.3f}')}",
        f"drift: flagged where the Holm-adjusted p-value over the judged windows is at most alpha {summary['alpha']:g}"
        f" (label p: predicted labels against out-of-fold predictions; conf p: confidences against the test split's); PSI is a size, not a rule",
        f"{'window start':<26}{'preds':>6}{'err%':>7}{'p50ms':>8}{'p95ms':>8}{'labelPSI':>9}{'label p':>9}{'confPSI':>9}{'conf p':>9}{'abstain':>8}{'est.acc':>8}"
        + (f"{'true.acc':>9}" if has_true else "")
        + "  flags"
        + ("   (true.acc: over the inputs the labels file names)" if has_true else ""),
    ]
    for w in [*summary["windows"], {"start": "all", **summary["overall"]}]:
        flags = ", ".join(f for f, on in (("LABEL DRIFT", w["label_drift"]), ("CONFIDENCE SHIFT", w["confidence_shift"])) if on)
        lines.append(
            f"{w['start']:<26}{w['predictions']:>6}{w['error_rate'] * 100:>6.1f}%{num(w['latency_p50_ms']):>8}{num(w['latency_p95_ms']):>8}"
            f"{num(w['label_psi'], '{:.3f}'):>9}{pval(w['label_p']):>9}{num(w['confidence_psi'], '{:.3f}'):>9}{pval(w['confidence_p']):>9}"
            f"{pct(w['abstain_rate']):>8}{pct(w['estimated_accuracy']):>8}"
            + (f"{pct(w.get('true_accuracy')):>9}" if has_true else "")
            + (f"  {flags}" if flags else "")
        )
    shadow = summary.get("shadow")
    if shadow:
        lo, hi = shadow["disagreement_ci95"]
        lines += [
            f"shadow: champion {shadow['champion']} vs challenger {shadow['challenger']} on {shadow['paired']} inputs",
            f"  disagreement {shadow['disagreement_rate'] * 100:.1f}% (95% CI {lo * 100:.1f}–{hi * 100:.1f}), {shadow['routed_to_review']} routed to review;"
            f" ESTIMATED accuracy (calibrated confidence, not measured) champion {pct(shadow['champion_estimated_accuracy']).strip()},"
            f" challenger {pct(shadow['challenger_estimated_accuracy']).strip()}"
            + (
                f"; true accuracy on the {shadow['labeled']} labeled inputs champion {pct(shadow['champion_true_accuracy']).strip()},"
                f" challenger {pct(shadow['challenger_true_accuracy']).strip()}"
                if "champion_true_accuracy" in shadow
                else ""
            ),
            f"  verdict: {shadow['verdict']}",
        ]
    return "\n".join(lines)
