"""The decision on run records written by the real evaluator: tfidf, the prompted approach
through the real API backend against a local OpenAI-compatible server answering under an API
model's name (gpt-4o-mini / gpt-4o, priced from the real table), and registered stand-ins
for a fine-tuned and a classical model whose errors the test chooses. Every counter-example of
the evidence issue is here as a regression test. Plus the formulas, checked by hand."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.plugins import Approach
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.runconfig import run_config
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.decision import (
    CostLine,
    VerdictConfig,
    break_even_volume,
    build_report,
    read_report,
    to_markdown,
    write_report,
)
from evaluation.evaluate import evaluate_config
from evaluation.runmeta import Category
from evaluation.runs import scan_runs
from tests.conftest import task_folder, write_task
from tests.unit.test_api_backend import FakeApi

KEYWORDS = {"refund": "please refund my order", "fee": "why this fee on", "fraud": "fraud: a payment I never made, number"}


def gold_of(text: str) -> str:
    return next(label for label, words in KEYWORDS.items() if text.startswith(words))


def number_of(text: str) -> int:
    return int(re.findall(r"\d+", text)[-1])


def wrong_every(k: int | None, wrong_range: tuple[int, int] = (0, 0)):
    """An answer function: right, except on every k-th numbered text and on the numbers in
    ``wrong_range`` (then the next label)."""
    labels = list(KEYWORDS)

    def answer(text: str) -> str:
        gold = gold_of(text)
        number = number_of(text)
        if (k and number % k == 0) or wrong_range[0] <= number < wrong_range[1]:
            return labels[(labels.index(gold) + 1) % 3]
        return gold

    return answer


def right_every(k: int):
    """Wrong except on every k-th numbered text."""
    labels = list(KEYWORDS)
    return lambda text: gold_of(text) if number_of(text) % k == 0 else labels[(labels.index(gold_of(text)) + 1) % 3]


@dataclass
class SimConfig:
    """Settings of the stand-in fine-tuned model."""

    model: str = "sim:v1"
    """Saved-model name."""
    wrong_every: int = 0
    """Wrong on every k-th numbered text (0: never)."""
    wrong_range: list[int] = dataclasses.field(default_factory=lambda: [0, 0])
    """Also wrong on the texts numbered in [first, second)."""
    qps: float = 50.0
    """Throughput it reports through its batch latency."""


class SimFinetuned(ClassifierBase):
    """A stand-in for a saved fine-tuned model: self-hosted, with a recorded training cost."""

    hardware = "cpu-2core"

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg, self.name = cfg, f"finetuned:{cfg.model}"

    @property
    def model_name(self) -> str:
        return self.cfg.model

    def predict(self, texts):
        import time

        time.sleep(len(texts) / self.cfg.qps)
        answer = wrong_every(self.cfg.wrong_every, tuple(self.cfg.wrong_range))
        return [Prediction(answer(t), 0.9) for t in texts]

    def run_info(self):
        return {"training_cost_usd": 5.0, "train_wall_s": 600, "hardware": "cpu-2core", "head": "classification"}


N_TEST = 300


@pytest.fixture
def world(tmp_path, monkeypatch, register_approach, request):
    """A 3-label task with ``N_TEST`` test rows (numbered 0…, labels in turn) and 60 train rows,
    a fake API server per answer function, stand-in fine-tuned and classical models, the runs folder."""
    n_test = getattr(request, "param", N_TEST)
    folder = task_folder(tmp_path, monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    labels = list(KEYWORDS)
    train = [(f"{words} {i}", label) for label, words in KEYWORDS.items() for i in range(1000, 1020)]
    test = [(f"{KEYWORDS[labels[i % 3]]} {i}", labels[i % 3]) for i in range(n_test)]
    task = write_task(folder, train=train, test=test, labels={k: f"The customer {k}." for k in KEYWORDS})
    register_approach(
        Approach(
            "sim-finetuned", "stand-in fine-tuned model", "finetuned", lambda cfg: SimFinetuned(cfg.section("sim")), {"sim": SimConfig}
        )
    )
    register_approach(
        Approach(
            "sim-classical", "stand-in classical model", "classical", lambda cfg: SimFinetuned(cfg.section("simc")), {"simc": SimConfig}
        )
    )
    servers: dict[object, FakeApi] = {}

    def api(k) -> str:
        if k not in servers:
            servers[k] = FakeApi(answer=k if callable(k) else wrong_every(k))
        return servers[k].url

    def run(approach: str, split: str = "test", **settings):
        data = dict(task=str(task), approach=approach, split=split, runs_dir=str(tmp_path / "runs"), **settings)
        cfg = run_config(data)
        return evaluate_config(cfg, load_data(load_task(str(task))), progress=False)[0]

    def api_run(model: str, k, **settings):
        llm = {"backend": "api", "api": {"base_url": api(k), "model": model, "cache": False, "max_retries": 1}}
        return run("prompt", llm=llm, **settings)

    def report(**cfg):
        runs, _ = scan_runs(tmp_path / "runs")
        return build_report(runs, "toy", "test", VerdictConfig(**cfg), data_hash=load_data(load_task(str(task))).data_hash)

    yield type(
        "World",
        (),
        {"run": staticmethod(run), "api_run": staticmethod(api_run), "report": staticmethod(report), "root": tmp_path, "task": task},
    )
    for s in servers.values():
        s.httpd.shutdown()


def test_records_name_the_api_model_plainly_and_fill_the_api_row(world):
    api = world.api_run("gpt-4o-mini", None)
    assert api.meta.model == "gpt-4o-mini" and api.meta.is_api and api.meta.category is Category.PROMPTED
    assert api.meta.llm.backend == "api"
    assert api.label.startswith("prompt [gpt-4o-mini @ 127.0.0.1:")
    report = world.report(min_shared_examples=100)
    rows = {c["row"]: c for c in report["comparison_set"]}
    assert rows["stronger API model, optimised prompt"]["status"] == "run"
    assert rows["base model, optimised prompt"]["status"] == "not run"
    board = report["leaderboard"][0]
    assert board["backend"] == "api" and "list price $0.15/$0.6" in board["cost_basis"]
    batch = world.report(min_shared_examples=100, workload="batch")
    host = PriceTable.load().hourly(board["cost_parts"]["hardware"]) * 730  # the calling service's machine
    assert batch["leaderboard"][0]["monthly_cost_usd"] - host == pytest.approx(
        (board["monthly_cost_usd"] - host) / 2
    )  # OpenAI's batch rate


def test_finetuning_faces_the_option_the_rule_chose_not_the_most_accurate(world):
    world.api_run("gpt-4o", None)  # perfect, but dear at ten million queries a month
    world.run("tfidf")  # keyword data: as good, and one small machine
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_every": 0})
    report = world.report(monthly_volume=10_000_000)
    assert report["verdict"]["recommendation"] == "tfidf" and report["verdict"]["decided"]
    fq = report["finetune"]
    assert fq["against"] == "tfidf"  # not the API model, whatever its accuracy
    assert fq["answer"] == "no" and "not cheaper" in fq["reason"]
    assert "Fine-tune? no." in report["verdict"]["headline"]


def test_equivalent_and_cheaper_fine_tuning_is_a_yes(world):
    world.api_run("gpt-4o", 20)  # 95 %
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_every": 20})  # the same 95 %
    report = world.report(monthly_volume=10_000_000)
    fq = report["finetune"]
    assert fq["answer"] == "yes" and fq["outcome"] == "equivalent and cheaper", (
        fq["reason"],
        fq.get("status"),
        fq.get("delta_ci95_points"),
    )
    assert fq["monthly_cost_finetuned_usd"] < fq["monthly_cost_against_usd"]
    assert report["verdict"]["recommendation"].startswith("sim-finetuned")
    # at a hundred queries a month the always-on machine is the dearer option
    small = world.report(monthly_volume=100)
    assert small["finetune"]["answer"] == "no" and small["verdict"]["recommendation"].startswith("prompt")


def test_too_few_shared_examples_is_not_yet_decidable_with_the_number_needed(world):
    world.run("tfidf")
    world.run("sim-finetuned", limit=30, sim={"model": "sim:v1", "wrong_every": 0})  # as good, on 30
    report = world.report()
    fq = report["finetune"]
    assert fq["answer"] == "not yet decidable" and fq["n_shared"] == 30 and fq["status"] == "inconclusive"
    assert fq["n_needed"] >= 200 and "shared examples would" in fq["reason"]
    assert report["verdict"]["recommendation"] == "tfidf"  # the 30-example run cannot undercut a one-machine tfidf
    assert "Fine-tune? not yet decidable." in report["verdict"]["headline"]


def test_a_prompted_api_run_right_on_a_few_of_48_is_worse_not_inconclusive(world):
    # the issue's case: 5 of 48 right, 80 points behind the reference, blocked the headline as
    # "might be adequate and cheaper"; too few examples stop 'adequate', never 'worse'
    world.run("tfidf")
    api = world.api_run("gpt-4o-mini", right_every(10), limit=48)
    assert api.metrics["n"] == 48 and api.metrics["accuracy"] < 0.2
    report = world.report()
    standing = {e["challenger_run_id"]: e for e in report["standing"]}
    assert standing[api.run_id]["status"] == "worse", standing[api.run_id]["reason"]
    assert report["verdict"]["decided"] and report["verdict"]["recommendation"] == "tfidf"


def test_a_fine_tune_about_30_points_behind_on_160_examples_is_a_no(world):
    # 'not yet decidable — about 200 would settle it' in the issue: evidence this strong needs no minimum
    world.run("tfidf")
    ft = world.run("sim-finetuned", limit=160, sim={"model": "sim:v1", "wrong_every": 3})
    assert ft.metrics["accuracy"] < 0.72
    report = world.report()
    fq = report["finetune"]
    assert fq["n_shared"] == 160 and fq["status"] == "worse"
    assert fq["answer"] == "no" and fq["outcome"] == "worse", fq["reason"]
    assert "Fine-tune? no." in report["verdict"]["headline"]


@pytest.mark.parametrize("world", [640], indirect=True)
def test_25_of_12_discordant_on_640_is_not_a_yes_by_the_margin(world):
    # the fine-tuned model is wrong on texts 0-11, the classical one on 12-36: +2.03 points,
    # McNemar p = 0.047, but the interval reaches down to about +0.1: a 2-point gain is not shown
    world.run("sim-classical", simc={"model": "simc:v1", "wrong_range": [12, 37]})
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_range": [0, 12]})
    fq = world.report()["finetune"]
    assert (fq["challenger_only"], fq["incumbent_only"], fq["n_shared"]) == (25, 12, 640)
    assert fq["p_value"] < 0.05 and fq["delta_ci95_points"][0] < 2.0 < fq["delta_ci95_points"][1]
    assert fq["answer"] != "yes", fq["reason"]
    # with 0 as the required gain the same evidence is a significant win: yes, more accurate
    fq0 = world.report(required_gain_points=0)["finetune"]
    assert fq0["answer"] == "yes" and fq0["outcome"] == "more accurate"


def test_48_of_48_has_a_lower_bound_near_92_6_percent(world):
    run = world.api_run("gpt-4o-mini", None, limit=48)
    assert run.metrics["accuracy"] == 1.0
    assert run.metrics["accuracy_ci95"][0] == pytest.approx(0.926, abs=0.001)


def test_two_settings_of_one_approach_stay_two_candidates(world):
    a = world.run("tfidf", tfidf={"C": 1.0})
    b = world.run("tfidf", tfidf={"C": 4.0})
    assert a.label == b.label  # the same display label …
    report = world.report()
    ids = {r["run_id"] for r in report["leaderboard"]}
    assert {a.run_id, b.run_id} <= ids  # … but two candidates, each priced and judged
    assert {e["challenger_run_id"] for e in report["standing"]} >= {a.run_id, b.run_id}


def test_a_train_file_equal_to_the_test_file_is_refused_then_flagged(tmp_path, monkeypatch):
    folder = task_folder(tmp_path, monkeypatch)
    rows = [(f"{words} {i}", label) for label, words in KEYWORDS.items() for i in range(40)]
    task = write_task(folder, train=rows, test=rows, labels={k: f"The customer {k}." for k in KEYWORDS})
    data = load_data(load_task(str(task)))
    settings = dict(task=str(task), approach="tfidf", runs_dir=str(tmp_path / "runs"))
    with pytest.raises(UserError, match=r"also occur in the train\+validation rows.*--allow-overlap"):
        evaluate_config(run_config(settings), data, progress=False)
    run, _ = evaluate_config(run_config({**settings, "allow_overlap": True}), data, progress=False)
    assert run.meta.data.overlap and run.meta.data.overlap_share == 1.0 and len(run.meta.data.overlap_ids) == len(rows)
    report = build_report(scan_runs(tmp_path / "runs")[0], "toy", "test", VerdictConfig(min_shared_examples=50), data_hash=data.data_hash)
    assert report["leaderboard"][0]["overlap"] and any("fitted on" in r for r in report["verdict"]["reasons"])


def test_an_undecided_cheaper_option_is_named_with_both_monthly_costs(world):
    # a classical stand-in on the same always-on machine as the fine-tuned one, 3 points behind;
    # only the fine-tuned model's training cost sets them apart, so the headline gives the figures
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_every": 0})
    world.run("sim-classical", simc={"model": "simc:v1", "wrong_every": 43})
    report = world.report(training_cost_usd=120)  # $10 a month apart: a material difference
    assert not report["verdict"]["decided"] and report["verdict"]["recommendation"].startswith("sim-finetuned")
    costs = {e["challenger"]: e["monthly_cost_usd"] for e in report["standing"]}
    ours, theirs = costs["sim-finetuned [sim:v1]"], costs["sim-classical [simc:v1]"]
    assert theirs < ours
    headline = report["verdict"]["headline"]
    from dispute_classifier.core.prices import money

    assert f"might be adequate and cheaper by {money(ours - theirs)} a month ({money(theirs)} against {money(ours)})" in headline, headline


def test_fine_tuned_version_is_chosen_on_validation_not_test(world):
    # v1 is better on validation, v2 better on test: the report must take v1
    world.run("sim-finetuned", split="validation", sim={"model": "sim:v1", "wrong_every": 0})
    world.run("sim-finetuned", split="validation", sim={"model": "sim:v2", "wrong_every": 2})
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_every": 10})
    world.run("sim-finetuned", sim={"model": "sim:v2", "wrong_every": 0})
    world.run("tfidf")
    fq = world.report()["finetune"]
    assert fq["finetuned"] == "sim-finetuned [sim:v1]" and "chosen on validation" in fq["selection"]


def test_price_override_moves_the_break_even(world, tmp_path):
    world.api_run("gpt-4o-mini", None)
    world.run("sim-finetuned", sim={"model": "sim:v1"})
    base = world.report(min_shared_examples=100)["break_even"]
    table = PriceTable.load()
    pricier = tmp_path / "prices.yaml"
    pricier.write_text(
        "api:\n  gpt-4o-mini: {input_per_mtok: 1.5, output_per_mtok: 6.0}\n"
        "hardware:\n" + "".join(f"  {k}: {v}\n" for k, v in table.hardware.items()) + f"default_hardware: {table.default_hardware}\n"
    )
    dear = world.report(min_shared_examples=100, prices=str(pricier))["break_even"]
    assert base["volume"] and dear["volume"] and dear["volume"] == pytest.approx(base["volume"] / 10, rel=0.01)


def test_unknown_training_cost_is_unknown_not_zero_and_other_hardware_needs_its_throughput(world):
    world.api_run("gpt-4o-mini", None)
    world.run("sim-finetuned", sim={"model": "sim:v1"})
    report = world.report(min_shared_examples=100, hosting_hardware="gpu-l4")
    ft_row = next(r for r in report["leaderboard"] if r["category"] == "finetuned")
    assert ft_row["monthly_cost_usd"] is None and "throughput on gpu-l4" in ft_row["cost_missing"]
    assert report["break_even"]["volume"] is None and "unknown" in report["break_even"]["note"]
    stated = world.report(min_shared_examples=100, hosting_hardware="gpu-l4", hosting_throughput_qps=400)
    assert next(r for r in stated["leaderboard"] if r["category"] == "finetuned")["monthly_cost_usd"] is not None


def test_failed_stage_is_visible_and_its_older_run_is_not_used(world):
    old = world.run("tfidf")
    world.run("sim-finetuned", sim={"model": "sim:v1"})
    runs, _ = scan_runs(world.root / "runs")
    stages = [{"stage": "tfidf", "status": "failed", "detail": "ValueError: boom", "approach": "tfidf", "limit": None, "run": None}]
    report = build_report(runs, "toy", "test", VerdictConfig(), stages=stages)
    assert all(r["label"] != old.label for r in report["leaderboard"])
    assert report["stages"][0]["status"] == "failed" and any("failed stages" in e for e in report["excluded"])
    md = to_markdown(report)
    assert "## Stages" in md and "ValueError: boom" in md


def test_runs_on_other_data_are_left_out(world):
    world.run("tfidf")
    runs, _ = scan_runs(world.root / "runs")
    report = build_report(runs, "toy", "test", VerdictConfig(), data_hash="other")
    assert report["leaderboard"] == [] and "other data" in report["excluded"][0]


def test_report_round_trip_and_bad_config(world, tmp_path):
    world.run("tfidf")
    report = world.report()
    js, md = write_report(report, tmp_path / "reports")
    assert read_report(js)["verdict"] == report["verdict"]
    text = md.read_text()
    assert "## The rule" in text and "margin: 2 accuracy points" in text and "monthly volume: 100,000" in text
    with pytest.raises(UserError, match="alpha"):
        VerdictConfig(alpha=2)
    with pytest.raises(UserError, match="workload"):
        VerdictConfig(workload="weekly")
    bad = tmp_path / "decision-toy-test.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="corrupt decision report"):
        read_report(bad)


def test_break_even_where_the_curves_cross_never_and_unknown():
    # fine-tuned: $100/month amortised training + one $10 machine (capacity far above the load);
    # API: $0.002 a query and no machine of its own: they cross at (100 + 10) / 0.002 = 55,000
    ft = CostLine("run-ft", "ft", per_query_usd=1e-9, floor_monthly_usd=10.0, fixed_monthly_usd=100.0, capacity_qps=1e6)
    api = CostLine("run-api", "api", per_query_usd=0.002, floor_monthly_usd=0.0, dedicated=False)
    assert break_even_volume(ft, api) == pytest.approx(55_000, rel=1e-3)
    assert ft.monthly(55_000) == pytest.approx(api.monthly(55_000), rel=1e-3)
    cheap = CostLine("run-api", "api", per_query_usd=1e-12, dedicated=False)
    assert break_even_volume(ft, cheap) == float("inf")  # the API stays cheaper at every volume
    assert break_even_volume(CostLine("run-ft", "ft", None), api) is None  # unknown, not "never"
    assert break_even_volume(CostLine("run-ft", "ft", 0.001, 10.0, None), api) is None  # training cost unknown
