"""Tasks: a YAML file names the data, its columns, the label set and the split rules.

Adding a task needs a YAML file only (see ``data/tasks/``). Loading turns it into three
`Split`s: ``train`` (the training file minus the validation cut), ``validation`` (a seeded,
stratified cut from the training file, for all tuning) and ``test`` (the official test
file, or a cut when the task has none), which is touched only to report.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import random
import shlex
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dispute_classifier.core import tabular
from dispute_classifier.core.config import from_dict, read_yaml
from dispute_classifier.core.errors import UserError

DATA_ENV = "DISPUTE_CLASSIFIER_DATA"
"""Environment variable naming a folder that holds a task's source files."""
TASK_DIR = Path(__file__).resolve().parents[2] / "data" / "tasks"
"""Where the project's own task YAMLs live."""


def cache_dir() -> Path:
    """The user cache (``$DISPUTE_CLASSIFIER_CACHE`` or ``~/.cache/dispute-classifier``)."""
    root = os.environ.get("DISPUTE_CLASSIFIER_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dispute-classifier"


@dataclass
class SourceSpec:
    """Where a task's rows come from."""

    files: dict[str, str]
    """Logical file name (``train``, ``test``) to a CSV, JSONL or Parquet file (read by its
    ending, as `classify` reads its input) name or path. Relative paths are
    looked up in --data-dir, then next to the task YAML, then in $DISPUTE_CLASSIFIER_DATA,
    then in the download cache."""
    name: str = ""
    """Short name of the source, used for the download cache folder."""
    urls: dict[str, str] = field(default_factory=dict)
    """Download address per logical file, used only when no local copy is found."""
    sha256: dict[str, str] = field(default_factory=dict)
    """Expected sha256 per logical file; a mismatch is an error."""
    license: str = ""
    """Licence of the data, shown in reports."""
    citation: str = ""
    """How to cite the data wherever results on it are shown."""


@dataclass
class ColumnSpec:
    """Column names (CSV, Parquet) or field names (JSONL) in the source files."""

    text: str = "text"
    """Column holding the customer message."""
    label: str = "label"
    """Column holding the gold label."""
    id: str | None = None
    """Optional column with a stable example id (otherwise ``<file>:<row number>``)."""


@dataclass
class SplitSpec:
    """How one split is made: a whole file, or a seeded stratified cut from another split."""

    file: str | None = None
    """Logical source file that is this split in full."""
    from_: str | None = None
    """Logical source file to cut this split from (YAML key ``from``)."""
    fraction: float = 0.1
    """Share of ``from`` that goes to this split (stratified by label)."""
    seed: int = 13
    """Seed of the cut, so the split never changes between runs."""


@dataclass
class TaskPrompt:
    """The task's own words for prompts (every key optional: defaults come from ``description``)."""

    domain: str = ""
    """What the messages are about, in a few words (e.g. "payment disputes"); used by the default instructions."""
    instructions: str = ""
    """Instructions of the labels style (prompt, few-shot, RAG); default: written from the task's description."""
    short_instructions: str = ""
    """One-line instructions of the short style (fine-tuning); default: written from the domain."""


@dataclass
class TaskSpec:
    """A classification task: data source, columns, label set with descriptions, splits."""

    name: str
    """Short name used in commands and run records."""
    source: SourceSpec
    """Where the rows come from."""
    labels: dict[str, str]
    """Every label with a short human description (used by prompts)."""
    columns: ColumnSpec = field(default_factory=ColumnSpec)
    """Column names in the CSV files."""
    description: str = ""
    """One paragraph on what is classified, used in prompts and reports."""
    other_labels: Literal["error", "drop"] = "error"
    """Rows whose label is not in ``labels``: ``error`` (name the row) or ``drop`` (a subset task)."""
    splits: dict[str, SplitSpec] = field(default_factory=dict)
    """``test`` and ``validation`` rules; ``train`` is what the training file keeps."""
    max_text_chars: int = 2000
    """Longest text accepted; longer rows are errors in the data check."""
    near_duplicate_threshold: float = 0.9
    """Character n-gram TF-IDF cosine at or above which a test text counts as a near-duplicate of a same-label training text (left out of the de-duplicated subset every run reports)."""
    prompt: TaskPrompt = field(default_factory=TaskPrompt)
    """The task's own words for the LLM prompts."""
    path: Path | None = None
    """The YAML file this task was read from (filled in by `load_task`)."""

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise UserError(f"task '{self.name}': needs at least two labels under 'labels', found {len(self.labels)}")
        # `x:` is rejected by the config reader; `x: ""` must be too: prompts describe each label by it
        empty = [label for label, text in self.labels.items() if not str(text).strip()]
        if empty:
            raise UserError(f"config key 'labels.{empty[0]}' may not be empty; give the label a short description (the prompts use it)")
        if "train" not in self.source.files:
            raise UserError(f"task '{self.name}': source.files must name a 'train' file")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise UserError(f"task '{self.name}': near_duplicate_threshold must be in (0, 1], got {self.near_duplicate_threshold}")
        if isinstance(self.max_text_chars, bool) or not isinstance(self.max_text_chars, int) or self.max_text_chars < 1:
            raise UserError(f"task '{self.name}': max_text_chars must be a whole number of at least 1, got {self.max_text_chars!r}")

    @property
    def label_list(self) -> list[str]:
        """Labels in the order the YAML lists them (stable class indices)."""
        return list(self.labels)

    @property
    def ref(self) -> str:
        """What ``--task`` takes to load this task again (see `task_ref`)."""
        return task_ref(self.name, self.path)


@dataclass
class Split:
    """Rows of one split, as parallel lists."""

    name: str
    ids: list[str]
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int], name: str | None = None) -> "Split":
        return Split(
            name or self.name,
            [self.ids[i] for i in indices],
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
        )


@dataclass
class TaskData:
    """A loaded task: its spec, its splits and the sha256 of each source file."""

    spec: TaskSpec
    splits: dict[str, Split]
    sha256: dict[str, str]
    files: dict[str, Path]
    dropped_other_labels: int = 0
    fit_override: dict[str, Split] = field(default_factory=dict)
    """Fit rows chosen by a cleaning step, by evaluated split (evaluation.cleaning); empty: the usual rows."""

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise UserError(f"task '{self.spec.name}' has no split '{name}'; splits: {', '.join(self.splits)}")
        return self.splits[name]

    def fit_split(self, eval_split: str) -> Split:
        """The rows a model learns from when it is evaluated on ``eval_split``.

        Validation runs learn from train only (the validation rows are held out for tuning);
        test runs learn from train plus validation, the whole training file, as is usual
        once tuning is over. The test split is never part of it.
        """
        if eval_split in self.fit_override:
            return self.fit_override[eval_split]
        train = self.splits["train"]
        if eval_split == "test" and "validation" in self.splits:
            val = self.splits["validation"]
            return Split("train+validation", train.ids + val.ids, train.texts + val.texts, train.labels + val.labels)
        return train

    @property
    def data_hash(self) -> str:
        """One hash for the data a run saw: source files plus the task's label set and splits."""
        h = hashlib.sha256()
        for key in sorted(self.sha256):
            h.update(f"{key}={self.sha256[key]};".encode())
        h.update(repr(self.spec.label_list).encode())
        h.update(repr(sorted((k, vars(v)) for k, v in self.spec.splits.items())).encode())
        return h.hexdigest()


def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def task_ref(name: str, task_file: str | Path | None = None) -> str:
    """What to pass as ``--task`` to load task ``name`` again: the name when it is one of the
    project's tasks (``data/tasks/<name>.yaml``) or no file is known, else the path of its YAML
    file ``task_file`` (a user's own task, given as a path, has no name `load_task` knows).
    Run records keep the file as ``task_file``."""
    if task_file:
        path = Path(task_file)
        if path.resolve() != (TASK_DIR / f"{name}.yaml").resolve():
            return str(path)
    return name


def task_command(command: str, task: str, rest: str = "") -> str:
    """A command line to suggest to the user: ``dispute-classifier COMMAND --task TASK REST``,
    the task (a name or a path, see `task_ref`) quoted for a shell; ``rest`` is appended as is."""
    return " ".join(part for part in ("dispute-classifier", command, "--task", shlex.quote(task), rest) if part)


def load_task(name_or_path: str | Path) -> TaskSpec:
    """Read a task by name (``data/tasks/<name>.yaml``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = TASK_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UserError(
                f"unknown task '{name_or_path}'; known tasks: {', '.join(available_tasks())} (or pass the path to a task YAML file)"
            )
    raw = read_yaml(path)
    for split in (raw.get("splits") or {}).values():
        if isinstance(split, dict) and "from" in split:
            split["from_"] = split.pop("from")
    raw.setdefault("name", path.stem)
    spec = from_dict(TaskSpec, raw, prefix="")
    spec.path = path.resolve()
    return spec


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(
            f"could not download {url} ({exc}). Offline? Put the task's files in a folder and point ${DATA_ENV} (or --data-dir) at it"
        ) from None


def resolve_file(spec: TaskSpec, key: str, data_dir: Path | None = None) -> Path:
    """Find (or download) the source file ``key`` of a task and verify its checksum."""
    name = spec.source.files[key]
    candidates: list[Path] = []
    if data_dir is not None and not Path(name).is_absolute():
        # An explicit --data-dir is the only place looked in: a file missing there is an error,
        # never a quiet fallback to another copy of the data.
        found = Path(data_dir) / name
        if not found.is_file():
            what = "is a folder, not a file" if found.is_dir() else "does not exist"
            raise UserError(
                f"--data-dir {data_dir}: {found} {what} (task '{spec.name}' reads its {key} file '{name}' there);"
                f" put the file there, or leave --data-dir out to use ${DATA_ENV}"
            )
        candidates.append(found)
    elif Path(name).is_absolute():
        candidates.append(Path(name))
    else:
        env_dir = os.environ.get(DATA_ENV)
        # Files beside the task YAML (a user's own task), then the environment's data folder
        # (BANKING77 for the project's tasks), then the cache.
        for root in (spec.path.parent if spec.path else None, Path(env_dir) if env_dir else None):
            if root is not None:
                candidates.append(Path(root) / name)
        candidates.append(cache_dir() / "data" / (spec.source.name or spec.name) / Path(name).name)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        url = spec.source.urls.get(key)
        if not url:
            raise UserError(
                f"task '{spec.name}': {key} file '{name}' not found (looked in: "
                + ", ".join(str(c) for c in candidates)
                + f"). Put it there or set ${DATA_ENV} / --data-dir to its folder"
            )
        found = candidates[-1]
        print(f"downloading {url} -> {found}", file=sys.stderr)
        _download(url, found)
    expected = spec.source.sha256.get(key)
    if expected:
        actual = sha256_file(found)
        if actual != expected:
            raise UserError(
                f"{found}: sha256 is {actual}, but task '{spec.name}' expects {expected}."
                " The file is corrupt or a different version: replace it with the original"
            )
    return found


def read_rows(path: Path, spec: TaskSpec) -> list[tuple[str, str, str, int]]:
    """Read ``(id, text, label, row_number)`` rows of a task file, with errors that name the row.

    CSV, JSONL and Parquet, by the file's ending, through the readers of `classify`
    (`dispute_classifier.core.tabular`), so a file reads the same, and fails with the same
    message, as a task file and as batch input. Row numbers are the ones a person sees when
    opening the file: CSV counts the header as row 1 (as a spreadsheet shows it), JSONL counts
    lines, Parquet counts rows from 1.
    """
    cols = spec.columns
    where = _row_word(path, spec)
    reader = tabular.open_reader(
        path,
        cols.text,
        cols.id,
        label_column=cols.label,
        setting=f"columns.{{role}} in task '{spec.name}'",
        what=f"task '{spec.name}' file",
    )
    rows = []
    try:
        for raw in reader:
            if raw.problem is not None and raw.problem[0] != "not_utf8":
                raise UserError(f"{path}: {where} {raw.row}: {raw.problem[1]}; fix the {where} or remove it")
            bad = next((reason for reason in map(tabular.bad_bytes, (raw.text, raw.label, raw.id)) if reason), None)
            if bad:
                raise UserError(f"{path}: {where} {raw.row} is not UTF-8 ({bad}); re-save the file as UTF-8")
            rid = raw.id if raw.id is not None else f"{path.stem}:{raw.row}"
            rows.append((rid, raw.text or "", raw.label or "", raw.row))
    finally:
        reader.close()
    return rows


def _row_word(path: Path, spec: TaskSpec) -> str:
    """How errors count the rows of ``path``: lines in JSONL, rows otherwise."""
    return "line" if tabular.file_format(path, f"task '{spec.name}' file") == "jsonl" else "row"


def stratified_cut(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (kept, cut) with about ``fraction`` of every label in ``cut``."""
    if not 0 < fraction < 1:
        raise UserError(f"split fraction must be between 0 and 1, got {fraction}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    cut: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n = round(len(idx) * fraction)
        if len(idx) > 1:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        cut.extend(idx[:n])
    cut_set = set(cut)
    return [i for i in range(len(labels)) if i not in cut_set], sorted(cut)


def load_data(spec: TaskSpec, data_dir: Path | None = None, strict: bool = True) -> TaskData:
    """Load, validate and split a task's rows.

    ``strict`` rejects bad rows (empty text, unknown label) with an error naming file and
    row; the data check passes ``strict=False`` to count and report them instead.
    """
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data-dir {data_dir}: no such folder; point it at the folder with the task's files")
    files = {key: resolve_file(spec, key, data_dir) for key in spec.source.files}
    sha = {key: sha256_file(p) for key, p in files.items()}
    labels = set(spec.labels)
    per_file: dict[str, Split] = {}
    dropped = 0
    other_labels: Counter[str] = Counter()  # rows per label the task does not list (dropped, or bad rows when not strict)
    for key, path in files.items():
        ids, texts, golds = [], [], []
        where = _row_word(path, spec)
        for rid, text, label, row in read_rows(path, spec):
            if label not in labels:
                other_labels[label] += 1
                if spec.other_labels == "drop":
                    dropped += 1
                    continue
                if strict:
                    near = did_you_mean(label, spec.label_list)
                    raise UserError(
                        f"{path}: {where} {row} has label '{label}', which is not in task '{spec.name}'"
                        f" ({len(labels)} labels). "
                        + (
                            f"Did you mean '{near}' (listed under 'labels')? Fix the spelling there or in the row"
                            if near
                            else "Add it under 'labels' or fix the row"
                        )
                    )
            if strict and not text.strip():
                raise UserError(f"{path}: {where} {row} has an empty text; remove the {where} or fill it in")
            ids.append(rid)
            texts.append(text)
            golds.append(label)
        per_file[key] = Split(key, ids, texts, golds)
    _check_label_coverage(spec, per_file, other_labels)

    splits: dict[str, Split] = {}
    remaining = dict(per_file)
    for name in ("test", "validation"):
        rule = spec.splits.get(name)
        if rule is None:
            continue
        if rule.file:
            if rule.file not in per_file:
                raise UserError(f"task '{spec.name}': split '{name}' names file '{rule.file}', not under source.files")
            splits[name] = remaining.pop(rule.file)
            splits[name].name = name
        elif rule.from_:
            if rule.from_ not in remaining:
                raise UserError(f"task '{spec.name}': split '{name}' cuts from '{rule.from_}', which is not available")
            base = remaining[rule.from_]
            keep, cut = stratified_cut(base.labels, rule.fraction, rule.seed)
            splits[name] = base.subset(cut, name)
            remaining[rule.from_] = base.subset(keep, base.name)
        else:
            raise UserError(f"task '{spec.name}': split '{name}' needs 'file' or 'from'")
    if "test" not in splits:
        raise UserError(f"task '{spec.name}': define splits.test (a file, or a cut: {{from: train, fraction: 0.2}})")
    train = remaining["train"]
    splits = {"train": Split("train", train.ids, train.texts, train.labels), **splits}
    return TaskData(spec, splits, sha, files, dropped)


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """The one choice spelt nearly like ``word`` (a typo), or None."""
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.8)
    return near[0] if near else None


def _check_label_coverage(spec: TaskSpec, per_file: dict[str, "Split"], other_labels: Counter[str]) -> None:
    """A listed label with no rows is a mistake or a warning: a near-spelling among the labels
    the task does not list means a typo in the YAML. With ``other_labels: drop`` it silently
    drops a real class, so it is an error; otherwise (the data check, which counts those rows as
    bad) the warning names the spelling the data has."""
    counts = Counter(label for split in per_file.values() for label in split.labels)
    for label in spec.label_list:
        if counts[label]:
            continue
        near = did_you_mean(label, list(other_labels))
        if near and spec.other_labels == "drop":
            raise UserError(
                f"task '{spec.name}': label '{label}' has no rows, but the data has '{near}' ({other_labels[near]:,} rows),"
                " which other_labels: drop is dropping; fix the spelling under 'labels'"
            )
        hint = (
            f"; did you mean '{near}'? The data has {other_labels[near]:,} rows of it: fix the spelling under 'labels'"
            if near
            else "; no model can learn it"
        )
        print(f"warning: task '{spec.name}': label '{label}' has 0 rows in {', '.join(per_file)}{hint}", file=sys.stderr)


def stratified_sample(split: Split, n: int, seed: int) -> Split:
    """Exactly ``n`` rows (for ``--limit``), seeded and stratified by label, order preserved:
    each label gets its share rounded down, and the rows left over go to the labels with the
    largest remainders (ties broken by the seed). ``n`` at or above the split size is the split."""
    if n >= len(split):
        return split
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(split.labels):
        by_label[label].append(i)
    rng = random.Random(seed)  # the same draws as `stratified_cut`, so equal quotas pick the same rows
    ties = random.Random(seed + 1)
    exact = {label: len(idx) * n / len(split) for label, idx in by_label.items()}
    quota = {label: int(share) for label, share in exact.items()}
    order = sorted(by_label, key=lambda label: (-(exact[label] - quota[label]), ties.random()))
    for label in order[: n - sum(quota.values())]:
        quota[label] += 1
    chosen: list[int] = []
    for label in sorted(by_label):
        idx = list(by_label[label])
        rng.shuffle(idx)
        chosen.extend(idx[: quota[label]])
    return split.subset(sorted(chosen))
