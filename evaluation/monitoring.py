"""Monitoring over the prediction log: per time window volume, latency, errors, drift, abstain
rate and accuracy estimated without labels; and the live verdict on a shadow pair.

- **Label drift**: the population stability index (PSI) of the window's predicted-label
  distribution against the training label distribution; above ``psi_threshold`` (0.2, the
  usual "significant shift") the window is flagged.
- **Confidence shift**: PSI of the window's confidences against the model's confidences on the
  validation split, over ten equal-width bins.
- **Estimated accuracy without labels**: the model's confidence is calibrated on the
  validation split with isotonic regression (confidence → probability of being right); the
  window's estimate is the mean calibrated confidence of its predictions.
- **Shadow pair**: the share of inputs on which champion and challenger disagree (Wilson 95 %
  interval), each model's estimated accuracy on the same inputs, and whether the challenger's
  advantage measured on the test split holds on this traffic (a 95 % interval of the mean
  per-input difference of calibrated confidences).

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
from evaluation.predlog import text_hash

EPS = 1e-4
"""Floor of a bin's share in PSI, so an empty bin gives a large but finite term."""


@dataclass
class MonitorSettings:
    """How the prediction log is cut into windows and judged."""

    window_minutes: float = 15.0
    """Length of one time window in minutes."""
    psi_threshold: float = 0.2
    """PSI of the predicted-label distribution against training above which a window is flagged as drifted."""
    confidence_psi_threshold: float = 0.2
    """PSI of the confidences against validation above which a window is flagged as shifted."""
    min_window_predictions: int = 30
    """Windows with fewer predictions are reported but not judged for drift (too noisy)."""

    def __post_init__(self) -> None:
        if self.window_minutes <= 0:
            raise UserError(f"window minutes must be above 0, got {self.window_minutes} (set --window-minutes)")


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


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def window_stats(rows: list[dict[str, Any]], errors: list[dict[str, Any]], estimates: list[float | None], profile: dict[str, Any] | None,
                 settings: MonitorSettings, labels: dict[str, str] | None) -> dict[str, Any]:
    """The numbers of one window of champion predictions (and the errors in it)."""
    requests = len({r["request_id"] for r in rows})
    counts = Counter(r["label"] for r in rows)
    latencies = [r["latency_ms"] for r in rows]
    confidences = [r["confidence"] for r in rows if r["confidence"] is not None]
    judged = len(rows) >= settings.min_window_predictions and profile is not None
    label_psi = psi(profile["train_distribution"], counts) if profile else None
    conf_psi = confidence_psi(profile["validation"]["confidence"], confidences) if profile and confidences else None
    out: dict[str, Any] = {
        "predictions": len(rows), "requests": requests, "errors": len(errors),
        "error_rate": len(errors) / (requests + len(errors)) if requests + len(errors) else 0.0,
        "latency_p50_ms": percentile(latencies, 50), "latency_p95_ms": percentile(latencies, 95),
        "label_counts": dict(counts.most_common()),
        "label_psi": label_psi, "label_drift": bool(judged and label_psi is not None and label_psi > settings.psi_threshold),
        "confidence_mean": _mean(confidences), "confidence_psi": conf_psi,
        "confidence_shift": bool(judged and conf_psi is not None and conf_psi > settings.confidence_psi_threshold),
        "abstain_rate": sum(bool(r["abstain"]) for r in rows) / len(rows) if rows else 0.0,
        "estimated_accuracy": _mean(estimates),
    }
    if labels is not None:
        golds = [(gold_for(r, labels), r["label"]) for r in rows]
        known = [(g, p) for g, p in golds if g is not None]
        out["labeled"] = len(known)
        out["true_accuracy"] = sum(g == p for g, p in known) / len(known) if known else None
    return out


def summarize(log, settings: MonitorSettings | None = None, labels: dict[str, str] | None = None, model: str | None = None) -> dict[str, Any]:
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
    overall = window_stats(rows, log.errors, estimates, profile, settings, labels)
    return {
        "model": latest["model"], "version": latest["version"], "window_minutes": settings.window_minutes,
        "from": _iso(rows[0]["ts"]), "to": _iso(latest["ts"]),
        "test_accuracy": profile.get("test_accuracy") if profile else None,
        "test_estimated_accuracy": test_estimate(profile) if profile else None,
        "threshold": profile.get("threshold") if profile else None,
        "train_distribution": profile["train_distribution"] if profile else None,
        "overall": overall, "windows": windows,
        "shadow": shadow_stats(log, rows, estimates, labels),
    }


def shadow_stats(log, champion: list[dict[str, Any]], champion_est: list[float | None], labels: dict[str, str] | None) -> dict[str, Any] | None:
    """Champion against the shadow challenger on the inputs both answered, or None."""
    shadow = _served(log, "shadow")
    if not shadow:
        return None
    shadow_est = _estimates(shadow, log.profiles)
    by_key = {(r["request_id"], r["input_index"]): (r, e) for r, e in zip(shadow, shadow_est)}
    pairs = [(c, ce, *by_key[(c["request_id"], c["input_index"])]) for c, ce in zip(champion, champion_est)
             if (c["request_id"], c["input_index"]) in by_key]
    if not pairs:
        return None
    n = len(pairs)
    disagree = sum(c["label"] != s["label"] for c, _, s, _ in pairs)
    diffs = [se - ce for _, ce, _, se in pairs if ce is not None and se is not None]
    s_first = pairs[-1][2]
    c_profile = log.profiles.get((champion[-1]["model"], champion[-1]["version"])) or {}
    s_profile = log.profiles.get((s_first["model"], s_first["version"])) or {}
    test_adv = None
    if c_profile.get("test_accuracy") is not None and s_profile.get("test_accuracy") is not None:
        test_adv = s_profile["test_accuracy"] - c_profile["test_accuracy"]
    estimated = _mean(diffs)
    # The estimates carry calibration error; the same error is in their difference on test, so
    # the advantage on this traffic is the test advantage moved by how much the estimated
    # advantage moved from test to traffic.
    est_c, est_s = test_estimate(c_profile), test_estimate(s_profile)
    shift = None if estimated is None or est_c is None or est_s is None else estimated - (est_s - est_c)
    live = test_adv + shift if test_adv is not None and shift is not None else estimated
    interval = None
    if len(diffs) >= 2 and live is not None:
        sd = math.sqrt(sum((d - estimated) ** 2 for d in diffs) / (len(diffs) - 1))
        half = 1.96 * sd / math.sqrt(len(diffs))
        interval = (live - half, live + half)
    out: dict[str, Any] = {
        "champion": f"{champion[-1]['model']}:{champion[-1]['version']}", "challenger": f"{s_first['model']}:{s_first['version']}",
        "paired": n, "disagreement_rate": disagree / n, "disagreement_ci95": wilson(disagree, n),
        "champion_estimated_accuracy": _mean([ce for _, ce, _, _ in pairs]),
        "challenger_estimated_accuracy": _mean([se for _, _, _, se in pairs]),
        "test_advantage": test_adv, "estimated_advantage": estimated, "live_advantage": live, "live_advantage_ci95": interval,
        "verdict": shadow_verdict(test_adv, live, interval),
    }
    if labels is not None:
        known = [(gold_for(c, labels), c["label"], s["label"]) for c, _, s, _ in pairs]
        known = [k for k in known if k[0] is not None]
        if known:
            out["labeled"] = len(known)
            out["champion_true_accuracy"] = sum(g == c for g, c, _ in known) / len(known)
            out["challenger_true_accuracy"] = sum(g == s for g, _, s in known) / len(known)
    return out


def shadow_verdict(test_adv: float | None, live: float | None, interval: tuple[float, float] | None) -> str:
    """One line: does the challenger's advantage on test hold on this traffic?"""
    if live is None or interval is None:
        return "not enough paired predictions with calibrated confidences to judge yet"
    est = f"{live * 100:+.1f} points on this traffic (95% CI {interval[0] * 100:+.1f} to {interval[1] * 100:+.1f})"
    on_test = "no test accuracy recorded" if test_adv is None else f"{test_adv * 100:+.1f} points on test"
    if interval[0] > 0:
        return f"challenger ahead: {est}; {on_test}" + ("; the advantage holds" if test_adv is not None and test_adv > 0 else "")
    if interval[1] < 0:
        return f"challenger behind: {est}; {on_test}" + ("; the test advantage does NOT hold on this traffic" if test_adv is not None and test_adv > 0 else "")
    return f"no clear difference yet: {est}; {on_test}"


def format_summary(summary: dict[str, Any]) -> str:
    """The monitor command's terminal report."""
    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{v * 100:5.1f}%"

    def num(v: float | None, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    has_true = "true_accuracy" in summary["overall"]
    lines = [
        f"model {summary['model']} ({summary['version']}), {summary['from']} .. {summary['to']},"
        f" windows of {summary['window_minutes']:g} min; test accuracy {pct(summary['test_accuracy']).strip()}"
        f" (estimated from confidence: {pct(summary['test_estimated_accuracy']).strip()}),"
        f" abstain below confidence {num(summary['threshold'], '{:.3f}')}",
        f"{'window start':<26}{'preds':>6}{'err%':>7}{'p50ms':>8}{'p95ms':>8}{'labelPSI':>9}{'confPSI':>8}{'abstain':>8}{'est.acc':>8}"
        + (f"{'true.acc':>9}" if has_true else "") + "  flags" + ("   (true.acc: over the inputs the labels file names)" if has_true else ""),
    ]
    for w in [*summary["windows"], {"start": "all", **summary["overall"]}]:
        flags = ", ".join(f for f, on in (("LABEL DRIFT", w["label_drift"]), ("CONFIDENCE SHIFT", w["confidence_shift"])) if on)
        lines.append(
            f"{w['start']:<26}{w['predictions']:>6}{w['error_rate'] * 100:>6.1f}%{num(w['latency_p50_ms']):>8}{num(w['latency_p95_ms']):>8}"
            f"{num(w['label_psi'], '{:.3f}'):>9}{num(w['confidence_psi'], '{:.3f}'):>8}{pct(w['abstain_rate']):>8}{pct(w['estimated_accuracy']):>8}"
            + (f"{pct(w.get('true_accuracy')):>9}" if has_true else "") + (f"  {flags}" if flags else "")
        )
    shadow = summary.get("shadow")
    if shadow:
        lo, hi = shadow["disagreement_ci95"]
        lines += [
            f"shadow: champion {shadow['champion']} vs challenger {shadow['challenger']} on {shadow['paired']} inputs",
            f"  disagreement {shadow['disagreement_rate'] * 100:.1f}% (95% CI {lo * 100:.1f}–{hi * 100:.1f});"
            f" estimated accuracy champion {pct(shadow['champion_estimated_accuracy']).strip()}, challenger {pct(shadow['challenger_estimated_accuracy']).strip()}"
            + (f"; true accuracy on the {shadow['labeled']} labeled inputs champion {pct(shadow['champion_true_accuracy']).strip()},"
               f" challenger {pct(shadow['challenger_true_accuracy']).strip()}"
               if "champion_true_accuracy" in shadow else ""),
            f"  verdict: {shadow['verdict']}",
        ]
    return "\n".join(lines)
