"""`classify` killed with SIGKILL at random points and rerun gives byte-identical files.

Each case runs the command once without interruption for reference, then, per seed, starts
it, kills it (-9) at a random moment (during start-up, or after a random number of committed
rows plus a few milliseconds) up to twice, reruns it to completion, and compares every
output file byte for byte.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

ROWS = 4000


def make_input(path: Path) -> None:
    """Messages in the toy task's language, with bad rows of several kinds sprinkled in."""
    words = ["please refund my order", "why was I charged a fee of", "I did not make payment", "fraud on my card", "refund"]
    records: list[tuple[str, bytes | str | None]] = []
    for i in range(ROWS):
        text: bytes | str | None = f"{words[i % 5]} {i}"
        rid = f"T{i}"
        if i % 97 == 13:
            text = ""
        elif i % 211 == 7:
            text = b"caf\xe9 " + str(i).encode()  # Latin-1, not UTF-8
        elif i % 307 == 5:
            rid = f"T{i - 100}"  # a duplicate id
        elif i % 401 == 9:
            text = "x" * 400  # over --max-chars
        elif i % 503 == 11:
            text = None  # short row: no text field
        records.append((rid, text))
    if path.suffix == ".csv":
        with open(path, "wb") as f:
            f.write(b"ticket,message\n")
            for rid, text in records:
                if text is None:
                    f.write(rid.encode() + b"\n")
                else:
                    body = text if isinstance(text, bytes) else text.encode()
                    f.write(rid.encode() + b',"' + body + b'"\n')
    else:
        with open(path, "wb") as f:
            for rid, text in records:
                if isinstance(text, bytes):
                    f.write(b'{"ticket": "' + rid.encode() + b'", "message": "' + text + b'"}\n')
                else:
                    f.write(json.dumps({"ticket": rid, **({} if text is None else {"message": text})}).encode() + b"\n")


def command(task: Path, src: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dispute_classifier.commands.cli",
        "classify",
        str(src),
        "--task",
        str(task),
        "--model",
        "tfidf",
        "--output",
        str(out),
        "--text-column",
        "message",
        "--id-column",
        "ticket",
        "--chunk-size",
        "40",
        "--min-confidence",
        "0.9",
        "--max-chars",
        "300",
        "--quiet",
    ]


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def read_state(out: Path) -> dict | None:
    try:
        return json.loads(out.with_name(out.name + ".partial.state").read_text())
    except (OSError, ValueError):
        return None


def state_rows(out: Path) -> int | None:
    state = read_state(out)
    return None if state is None else (state.get("input") or {}).get("rows", 0)


@pytest.mark.parametrize(
    "src_name, out_name, seeds",
    [("in.csv", "out.csv", [0, 1, 2]), ("in.jsonl", "out.parquet", [3])],
)
def test_sigkill_at_random_points_then_rerun_is_byte_identical(toy_task, tmp_path, src_name, out_name, seeds):
    if out_name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    src = tmp_path / src_name
    make_input(src)
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    ref = subprocess.run(command(toy_task, src, ref_dir / out_name), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert "complete" in ref.stdout and "duplicate_id" in ref.stdout and "not_utf8" in ref.stdout
    reference = outputs(ref_dir)
    assert set(reference) == {out_name, out_name.replace(".", ".errors."), out_name.replace(".", ".review.")}

    mid_run_kills = 0
    kills: list[str] = []
    for seed in seeds:
        rng = random.Random(seed)
        work = tmp_path / f"seed{seed}"
        work.mkdir()
        out = work / out_name
        for _ in range(2):
            proc = subprocess.Popen(command(toy_task, src, out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Aim by progress, not by clock, so the kills land mid-run however loaded the
            # machine is: mostly once a random number of rows is committed, plus a random
            # few milliseconds into the next chunk; sometimes during start-up.
            if rng.random() < 0.2:
                delay = rng.uniform(0, 1.0)
                aim = f"{delay:.2f}s after start"
                time.sleep(delay)
            else:
                target = rng.randrange(state_rows(out) or 0, ROWS)
                aim = f"after row {target}"
                while proc.poll() is None and (state_rows(out) or 0) < target:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.03))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate()
            if proc.returncode == 0 or b"already exist" in stderr:  # finished before a kill
                break
            assert proc.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
            if out.exists():  # killed while renaming: the output is renamed last, so all is in place
                assert (read_state(out) or {"phase": "finalizing"})["phase"] == "finalizing"
            rows = state_rows(out)
            kills.append(f"seed {seed}: killed {aim}, {rows} rows committed")
            if rows:
                mid_run_kills += 1
        final = subprocess.run(command(toy_task, src, out), cwd=REPO, capture_output=True, text=True, timeout=600)
        if final.returncode != 0:
            assert "already exist" in final.stderr, final.stderr  # the last try had finished on its own
        else:
            assert "complete" in final.stdout
        assert outputs(work) == reference, f"seed {seed}: output differs from the uninterrupted run"
    print("\n".join(kills))
    assert mid_run_kills >= 1, "no kill landed while chunks were being written; the test proved nothing"
