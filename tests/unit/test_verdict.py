"""The verdict on constructed run records: clear win, win within noise, cheaper at volume,
no fine-tuned run yet, and the break-even formula checked by hand."""

from pathlib import Path

import pytest

from dispute_classifier.core.errors import UserError
from evaluation.runs import RunRecord
from evaluation.verdict import CostLine, VerdictConfig, break_even_volume, build_report, read_report, to_markdown, write_report


def make_run(approach: str, correct: list[bool], *, billing: str = "self-hosted", hardware: str | None = "cpu-2core",
             qps: float = 10.0, tokens: tuple[float, float] = (0, 0), model: str | None = None, extra: dict | None = None) -> RunRecord:
    """A run record as the evaluator writes it, with only what the verdict reads."""
    n = len(correct)
    preds = [{"id": f"test:{i}", "gold": "a", "predicted": "a" if ok else "b"} for i, ok in enumerate(correct)]
    acc = sum(correct) / n
    meta = {
        "run_id": f"run-{approach}", "task": "toy", "split": "test", "approach": approach, "model": model or approach,
        "billing": billing, "hardware": None if billing == "api" else hardware, "finished_at": "2025-01-01T00:00:00",
        "data": {"data_hash": "h", "n_examples": n, "limit": None}, "extra": extra or {},
        "metrics": {
            "n": n, "accuracy": acc, "accuracy_ci95": [acc - 0.05, acc + 0.05], "macro_f1": acc, "invalid_rate": 0.0,
            "latency_p50_s": 0.01, "latency_p95_s": 0.02, "throughput_qps": qps,
            "input_tokens_per_query": tokens[0], "output_tokens_per_query": tokens[1],
            "cost_per_query_usd": None, "cost_per_1k_usd": None,
        },
    }
    return RunRecord(Path("/nowhere"), meta, preds)


def test_clear_win_recommends_finetuning():
    simpler = make_run("tfidf", [True] * 160 + [False] * 40)  # 80 %
    ft = make_run("finetuned", [True] * 180 + [False] * 20, extra={"training_cost_usd": 1.0})  # 90 %, right wherever tfidf is
    report = build_report([simpler, ft], "toy", "test")
    mc = report["mcnemar"]
    assert mc["challenger_only"] == 20 and mc["incumbent_only"] == 0
    assert mc["delta_points"] == pytest.approx(10.0) and mc["p_value"] < 1e-5
    assert mc["outcome"] == "clear win" and report["verdict"]["finetune"]
    assert report["verdict"]["recommendation"] == "finetuned"
    lo, hi = mc["delta_ci95_points"]
    assert 0 < lo < 10 < hi


def test_win_within_noise_keeps_the_simpler_approach():
    # Fine-tuned is 3 points ahead (5 vs 2 discordant pairs, p = 0.45) and costs a GPU a month.
    base = [True] * 80 + [False] * 20
    simpler = make_run("tfidf", base)
    ft_correct = list(base)
    for i in range(80, 85):
        ft_correct[i] = True
    for i in range(0, 2):
        ft_correct[i] = False
    ft = make_run("finetuned", ft_correct, hardware="gpu-h100")
    report = build_report([simpler, ft], "toy", "test")
    mc = report["mcnemar"]
    assert mc["delta_points"] == pytest.approx(3.0)
    assert mc["p_value"] == pytest.approx(2 * (1 + 7 + 21) / 128)
    assert mc["outcome"] == "win within noise" and not mc["earns"]
    assert not report["verdict"]["finetune"] and report["verdict"]["recommendation"] == "tfidf"
    assert report["verdict"]["headline"].startswith("Do not fine-tune")


def test_match_that_is_cheaper_at_volume_recommends_finetuning_and_break_even_by_hand():
    # gpt-4o: 1,000 input + 5 output tokens a query -> 1000*2.5/1e6 + 5*10/1e6 = $0.00255 a query.
    api = make_run("prompt", [True] * 90 + [False] * 10, billing="api", model="gpt-4o", tokens=(1000, 5), extra={"backend": "api"})
    # Fine-tuned: 1 point behind (p = 1.0); cpu-2core at $0.10/h, 10 q/s, $12 training over 12 months.
    ft = make_run("finetuned", [True] * 89 + [False] * 11, qps=10.0, extra={"training_cost_usd": 12.0})
    cfg = VerdictConfig(monthly_volume=1_000_000)
    report = build_report([api, ft], "toy", "test", cfg)
    mc = report["mcnemar"]
    assert mc["outcome"] == "cheaper at volume" and mc["matches"] and mc["cheaper"]
    assert report["verdict"]["finetune"]
    # At 1M queries: API 1e6 * 0.00255 = $2,550; fine-tuned 12/12 + max(0.10*730, 1e6*0.10/36000) = 1 + 73.
    assert mc["monthly_cost_incumbent_usd"] == pytest.approx(2550.0)
    assert mc["monthly_cost_challenger_usd"] == pytest.approx(74.0)
    # Break-even: one machine serves 36,000 q/h * 730 h = 26.3M a month, so V* = (T/m + H*h) / c_api.
    be = report["break_even"]
    assert be["volume"] == pytest.approx((1.0 + 73.0) / 0.00255)  # = 29,019.6 queries a month
    assert be["terms"]["c_api_usd"] == pytest.approx(0.00255) and be["terms"]["T_usd"] == pytest.approx(12.0)
    # Below the break-even volume the API is cheaper and the match no longer earns fine-tuning.
    cheap = build_report([api, ft], "toy", "test", VerdictConfig(monthly_volume=20_000))
    assert not cheap["verdict"]["finetune"] and cheap["verdict"]["recommendation"] == "prompt [gpt-4o]"


def test_break_even_past_one_machine_and_never():
    # F = $100/month amortised training, L = $10/month machine, c_ft = $0.001, c_api = $0.002.
    ft = CostLine("ft", per_query_usd=0.001, floor_monthly_usd=10.0, fixed_monthly_usd=100.0)
    # One machine serves 10/0.001 = 10,000 queries; (100+10)/0.002 = 55,000 is past that, so
    # V* = 100 / (0.002 - 0.001) = 100,000, where both cost $200.
    assert break_even_volume(ft, 0.002) == pytest.approx(100_000)
    assert ft.monthly(100_000) == pytest.approx(200.0)
    assert break_even_volume(ft, 0.0005) is None  # the API is cheaper per query than a busy machine
    assert break_even_volume(CostLine("ft", None), 0.002) is None


def test_no_finetuned_run_yet_marks_rows_not_run(tmp_path):
    runs = [make_run("tfidf", [True] * 90 + [False] * 10), make_run("knn", [True] * 85 + [False] * 15)]
    report = build_report(runs, "toy", "test")
    v = report["verdict"]
    assert v["recommendation"] == "tfidf" and not v["finetune"] and "no fine-tuned run yet" in v["headline"]
    assert report["mcnemar"] is None and report["break_even"]["volume"] is None
    rows = {c["row"]: c for c in report["comparison_set"]}
    assert rows["fine-tuned"]["status"] == "not run" and "--approach finetuned" in rows["fine-tuned"]["how"]
    assert rows["RAG"]["status"] == "not run" and rows["classical: TF-IDF"]["status"] == "run"
    js, md = write_report(report, tmp_path)
    assert read_report(js)["verdict"] == v
    text = md.read_text()
    assert "not run" in text and "margin: 2 accuracy points" in text and "monthly volume: 100,000" in text


def test_preference_ladder_keeps_the_prompt_unless_rag_earns_it():
    prompt = make_run("prompt", [True] * 90 + [False] * 10, billing="api", model="gpt-4o-mini", tokens=(500, 5), extra={"backend": "api"})
    rag_close = make_run("rag", [True] * 91 + [False] * 9, billing="api", model="gpt-4o", tokens=(900, 5), extra={"backend": "api"})
    report = build_report([prompt, rag_close], "toy", "test")
    assert report["verdict"]["recommendation"] == "prompt [gpt-4o-mini]"  # RAG: +1 point, dearer
    assert report["ladder"][0]["outcome"] == "win within noise"


def test_empty_runs_bad_config_and_corrupt_report(tmp_path):
    report = build_report([], "toy", "test")
    assert report["verdict"]["recommendation"] is None and "No runs yet" in report["verdict"]["headline"]
    assert "No runs yet" in to_markdown(report)
    with pytest.raises(UserError, match="alpha"):
        VerdictConfig(alpha=2)
    bad = tmp_path / "decision-toy-test.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="corrupt decision report"):
        read_report(bad)
