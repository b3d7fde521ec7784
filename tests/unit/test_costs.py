"""The cost model on records the real evaluator wrote: machines sized from measured memory and
per-request capacity, one approach moved without moving the others, the price of an error, and
unknowns that stay unknown (no usage from the endpoint, a remote endpoint of unknown hardware)."""

from __future__ import annotations

import json

import pytest

from dispute_classifier.core.prices import PriceTable
from evaluation.decision import VerdictConfig, cost_line
from tests.unit.test_api_backend import FakeApi
from tests.unit.test_decision import world  # noqa: F401  (the shared fixture)


def test_costs_differ_and_say_why(world):  # noqa: F811
    tfidf = world.run("tfidf")
    ft = world.run("sim-finetuned", sim={"model": "sim:v1", "qps": 20})
    for run in (tfidf, ft):
        m = run.metrics
        assert m["latency_b1_p95_s"] > 0 and m["capacity_b1_qps"] > 0 and m["model_rss_mb"] is not None
    report = world.report()
    rows = {r["run_id"]: r for r in report["leaderboard"]}
    a, b = rows[tfidf.run_id], rows[ft.run_id]
    assert a["monthly_cost_usd"] != b["monthly_cost_usd"]  # training, and right-sized machines
    for row in (a, b):
        parts = row["cost_parts"]
        assert parts["hardware"] and parts["machines"] >= 1 and parts["capacity_qps"] > 0
        assert "machine(s)" in row["cost_basis"] and "busy" in row["cost_basis"]


def test_machines_follow_the_peak_and_the_shared_view_pays_only_use(world):  # noqa: F811
    ft = world.run("sim-finetuned", sim={"model": "sim:v1", "qps": 10})
    prices = PriceTable.load()
    small = cost_line(ft, VerdictConfig(monthly_volume=100_000), prices)
    big = cost_line(ft, VerdictConfig(monthly_volume=500_000_000), prices)
    assert small.machines(100_000) == 1 and big.machines(500_000_000) > 1
    peak = 500_000_000 / (730 * 3600) * 3
    assert big.machines(500_000_000) == pytest.approx(peak / big.capacity_qps, abs=1)
    shared = cost_line(ft, VerdictConfig(monthly_volume=100_000, cost_view="shared"), prices)
    assert shared.serving(100_000) < small.serving(100_000)


def test_hosting_one_approach_elsewhere_never_moves_the_others(world):  # noqa: F811
    # the README's example used to make every baseline's cost unknown and then recommend the
    # fine-tuned model "as the cheapest adequate approach" at $584 a month
    world.run("tfidf")
    world.run("sim-finetuned", sim={"model": "sim:v1"})
    report = world.report(hosting_hardware="gpu-l4", hosting_throughput_qps=50)
    rows = {r["category"]: r for r in report["leaderboard"]}
    assert rows["classical"]["monthly_cost_usd"] is not None and rows["classical"]["cost_parts"]["hardware"] != "gpu-l4"
    assert rows["finetuned"]["cost_parts"]["hardware"] == "gpu-l4"
    assert report["verdict"]["recommendation"] == "tfidf"
    nothing = world.report(hosting={"finetuned": "gpu-l4"})  # no throughput stated there: unknown, and it blocks nothing
    ft = next(r for r in nothing["leaderboard"] if r["category"] == "finetuned")
    assert ft["monthly_cost_usd"] is None and "throughput on gpu-l4" in ft["cost_missing"]
    assert nothing["verdict"]["recommendation"] == "tfidf"


def test_an_api_reply_without_usage_is_unknown_not_free(world):  # noqa: F811
    world.run("tfidf")
    server = FakeApi(usage=False)
    try:
        llm = {"backend": "api", "api": {"base_url": server.url, "model": "gpt-4o-mini", "cache": False, "max_retries": 1}}
        run = world.run("prompt", llm=llm)
    finally:
        server.close()
    assert run.metrics["cost_per_query_usd"] is None and run.meta.llm.usage_reported is False
    report = world.report()
    row = next(r for r in report["leaderboard"] if r["run_id"] == run.run_id)
    assert row["monthly_cost_usd"] is None and "returned no usage" in row["cost_missing"]
    assert report["verdict"]["recommendation"] == "tfidf"  # never recommended at $0, never blocking


def test_a_remote_self_hosted_endpoint_without_its_hardware_is_unknown(world):  # noqa: F811
    world.run("tfidf")
    server = FakeApi()
    try:
        llm = {
            "backend": "api",
            "api": {"base_url": server.url, "model": "llama-3-8b", "billing": "self-hosted", "cache": False, "max_retries": 1},
        }
        run = world.run("prompt", llm=llm)
        rows = {r["run_id"]: r for r in world.report()["leaderboard"]}
        assert rows[run.run_id]["monthly_cost_usd"] is None and "hardware of the remote endpoint" in rows[run.run_id]["cost_missing"]
        assert run.meta.hardware is None and run.metrics["cost_per_query_usd"] is None  # never priced as this machine
        stated = world.run("prompt", llm=llm, hardware="gpu-l4")  # the same setting, now with its machine named
    finally:
        server.close()
    rows = {r["run_id"]: r for r in world.report()["leaderboard"]}
    assert rows[stated.run_id]["monthly_cost_usd"] is not None and rows[stated.run_id]["cost_parts"]["hardware"] == "gpu-l4"


def test_the_price_of_an_error_moves_the_ranking_towards_accuracy(world):  # noqa: F811
    # two classical stand-ins on the same machine: one right always, one wrong on every 5th text
    good = world.run("sim-classical", simc={"model": "good", "wrong_every": 0})
    poor = world.run("sim-classical", simc={"model": "poor", "wrong_every": 5})
    plain = world.report(margin_points=50, min_shared_examples=50)  # both adequate under a wide margin
    costs = {r["run_id"]: r["monthly_cost_usd"] for r in plain["leaderboard"]}
    assert abs(costs[good.run_id] - costs[poor.run_id]) < 1.0  # the same machine: a tie on serving
    priced = world.report(margin_points=50, min_shared_examples=50, cost_per_error_usd=2)
    rows = {r["run_id"]: r for r in priced["leaderboard"]}
    gap = rows[poor.run_id]["monthly_cost_usd"] - rows[good.run_id]["monthly_cost_usd"]
    errors = 100_000 * (1 - poor.metrics["accuracy"]) * 2
    assert gap == pytest.approx(errors, rel=0.05)
    lo, hi = rows[poor.run_id]["monthly_cost_ci_usd"]
    assert lo < rows[poor.run_id]["monthly_cost_usd"] < hi  # the accuracy interval, in dollars
    assert priced["verdict"]["recommendation_run_id"] == good.run_id


def test_a_difference_below_a_dollar_is_the_same_cost(world):  # noqa: F811
    world.run("sim-classical", simc={"model": "a", "wrong_every": 0})
    world.run("sim-finetuned", sim={"model": "sim:v1", "wrong_every": 0})
    report = world.report(training_cost_usd=0.01)
    assert "cheaper by $0.00" not in report["verdict"]["headline"]
    assert report["verdict"]["category"] == "classical"  # a tie goes to the simpler approach


def test_classify_max_cost_refuses_before_the_first_chunk(world, tmp_path, capsys):  # noqa: F811
    from dispute_classifier.commands.cli import main

    server = FakeApi()
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"text": f"please refund my order {i}"}) + "\n" for i in range(200)))
    try:
        code = main(
            [
                "classify",
                str(rows),
                "--task",
                str(world.task),
                "--model",
                "prompt",
                "--output",
                str(tmp_path / "out.csv"),
                "--max-cost",
                "0.000001",
                "--set",
                "llm.backend=api",
                "--set",
                f"llm.api.base_url={server.url}",
                "--set",
                "llm.api.model=gpt-4o-mini",
                "--set",
                "llm.api.cache=false",
            ]
        )
        posts = server.posts
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code != 0 and "estimated cost" in err and "--max-cost" in err
    assert posts == 0 and not (tmp_path / "out.csv").exists()


def test_a_served_capacity_from_the_load_benchmark_prices_the_service(world, tmp_path):  # noqa: F811
    """A serve-capacity file for the run's model and task (as benchmarks/test_bench_serve.py writes
    it) replaces the evaluator's batch-1 capacity; other models and tasks keep theirs."""
    tfidf = world.run("tfidf")
    prices = PriceTable.load()
    folder = tmp_path / "serving"
    folder.mkdir()
    base = cost_line(tfidf, VerdictConfig(serving_capacity=str(folder)), prices)
    b1 = tfidf.metrics["capacity_b1_qps"]
    assert "measured at batch 1" in base.basis
    result = {
        "format": "dispute-classifier/serve-capacity/1",
        "model": "tfidf",
        "version": "abc",
        "task": "toy",
        "levels": {"32": {"texts_per_s": 1234.5}},
        "capacity_texts_per_s": 1234.5,
    }
    (folder / "other-task.json").write_text(json.dumps({**result, "task": "disputes", "capacity_texts_per_s": 9.0}))
    (folder / "tfidf.json").write_text(json.dumps(result))
    served = cost_line(tfidf, VerdictConfig(serving_capacity=str(folder)), prices)
    assert "served, measured by the load benchmark (tfidf.json)" in served.basis
    # the same machine (or one scaled down from it by vCPUs), at the service's capacity instead of batch 1's
    assert served.hardware == base.hardware and served.capacity_qps / base.capacity_qps == pytest.approx(1234.5 / b1)
    assert cost_line(tfidf, VerdictConfig(serving_capacity=None), prices).capacity_qps == base.capacity_qps
