"""The alias history under races: 40 processes promote at the same instant; every event is
kept and none crashes (before the lock: 7 of 40 events lost, some losers reporting success,
others crashing with FileNotFoundError on the shared aliases.tmp)."""

from __future__ import annotations

import json
import multiprocessing as mp

from dispute_classifier.core.errors import UserError


def _versions(root, name="m", n=2):
    for v in range(1, n + 1):
        folder = root / name / f"v{v}"
        folder.mkdir(parents=True)
        (folder / "model_card.json").write_text(json.dumps({"name": name, "version": v, "task": "toy"}))


def _promote(barrier, root, i, results):
    from finetune import model_store

    barrier.wait()
    try:
        if i % 10 == 9:  # a few rollbacks among the promotes
            model_store.rollback("m", "champion", why=f"p{i}", root=root)
        else:
            model_store.promote(f"m:{1 + i % 2}", "champion", why=f"p{i}", root=root)
        results.put((i, "ok"))
    except UserError as exc:  # a rollback before any promote: a clean refusal, not a crash
        results.put((i, f"user error: {exc}"))


def test_forty_simultaneous_promotes_keep_forty_events(models_root):
    from finetune import model_store

    _versions(models_root)
    model_store.promote("m:1", "champion", root=models_root)  # so every rollback has something to undo
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(40), ctx.Queue()
    procs = [ctx.Process(target=_promote, args=(barrier, models_root, i, results)) for i in range(40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 40  # none crashed
    outcomes = dict(results.get(timeout=5) for _ in range(40))
    assert all(v == "ok" for v in outcomes.values()), outcomes
    events = model_store.alias_events("m", root=models_root)
    assert len(events) == 41  # the first promote and all 40
    assert sorted(e["why"] for e in events[1:]) == sorted(f"p{i}" for i in range(40))
    assert not list((models_root / "m").glob("*.tmp")) and not list((models_root / "m").glob(".aliases-*"))
    assert model_store.aliases("m")["champion"] in (1, 2)
