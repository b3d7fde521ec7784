"""``dispute-classifier serve --model NAME[:VERSION|@ALIAS] [--shadow NAME]``: load the models,
then run the HTTP service of `dispute_classifier.serving` (routes, edge, micro-batching, metrics).

This module is the composition root of the service: it turns a ``--model`` name into a
`ServedVersion` (resolved, loaded, warmed up, with its monitoring profile in the log) and gives
the service that loader for ``/v1/reload``. Everything that answers HTTP lives in `serving`.

**Shadow.** With ``--shadow``, the challenger gets the same inputs after the champion has
answered, on its own queue and thread, off the request path; both are logged under the same
request ids. The response always comes from the champion.

**Security.** It binds 127.0.0.1 by default. Any other address needs ``--api-key-env NAME``
(the environment variable holding the key); requests then need ``Authorization: Bearer KEY``
(or ``X-API-Key``) except ``/healthz`` and ``/readyz``. The key is never logged or stored.

SIGTERM and SIGINT stop it gracefully: no new connections, in-flight requests finish, the
shadow queue drains, the log is closed, the port is freed, and the exit status is 0.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dispute_classifier.batch.job import approach_settings
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.paths import check_writable_file
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import Classifier
from dispute_classifier.resolution.approaches import load_approaches
from dispute_classifier.resolution.profile import model_profile
from dispute_classifier.resolution.resolve import resolve_classifier, served_identity
from dispute_classifier.serving import app
from dispute_classifier.serving.auth import api_key
from dispute_classifier.serving.settings import ServeConfig, check_port_free
from dispute_classifier.serving.state import ServedVersion, ServiceState
from evaluation.monitoring import threshold_for
from evaluation.predlog import PredictionLog, db_url


def served_settings(cfg: ServeConfig, task: str) -> RunConfig:
    """Approach settings of the served models: a fine-tuned model predicts a whole micro-batch in
    one forward pass (its batch size is --max-batch, not the evaluator's 8), then --set as given."""
    return approach_settings(task, overrides=[f"finetuned.batch_size={cfg.max_batch}", *cfg.set])


def load_model(ref: str, role: str, cfg: ServeConfig, log: Any) -> ServedVersion:
    """Resolve, load and warm up ``ref``; store its monitoring profile in the log. Any failure
    is a one-line `UserError`."""

    spec = load_task(cfg.task)
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    try:
        resolved = resolve_classifier(ref, spec, served_settings(cfg, spec.name), data_dir, cfg.refit)
        name, version = served_identity(resolved)
        profile = log.load_profile(name, version)
        if profile is None:
            print(f"[{role}] measuring {name} ({version}) on the validation and test splits for monitoring", file=sys.stderr, flush=True)
            card = _card(resolved.classifier)
            profile = card.get("profile") or model_profile(resolved, spec, data_dir, approach=ref if ref in load_approaches() else None)
            log.save_profile(name, version, profile)
        resolved.classifier.predict(["warm-up request"])  # first-call costs (lazy loads) before ready
    except UserError as exc:
        raise UserError(f"{role} model '{ref}': {exc}") from None
    except Exception as exc:  # a corrupt file, a missing library: one line, no traceback
        raise UserError(f"{role} model '{ref}' cannot be loaded: {exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]}") from None
    if cfg.min_confidence is not None:
        threshold = cfg.min_confidence
    elif profile.get("validation"):
        threshold = threshold_for(profile["validation"]["confidence"], profile["validation"]["correct"], cfg.target_accuracy)
    else:
        threshold = 0.0
    if profile.get("threshold") != threshold:  # what the monitor reports as the abstain threshold
        profile = {**profile, "threshold": threshold}
        log.save_profile(name, version, profile)
    return ServedVersion(ref, role, resolved.classifier, name, version, tuple(profile["labels"]), threshold, profile)


def _card(classifier: Classifier) -> dict[str, Any]:
    card = getattr(classifier, "card", None)
    return card if isinstance(card, dict) else {}


def build_state(cfg: ServeConfig) -> ServiceState:
    """Check the settings, open the log and load the models (everything before listening)."""

    key = api_key(cfg)
    served_settings(cfg, load_task(cfg.task).name)  # a bad --set fails here, naming the setting, before any model loads
    url = db_url(cfg.log_db)
    if url.startswith("sqlite:///"):
        check_writable_file(Path(url.removeprefix("sqlite:///")), "--log-db")
    log = PredictionLog(url, review_rate=cfg.review_rate)
    try:
        champion = load_model(cfg.model, "champion", cfg, log)
        shadow = load_model(cfg.shadow, "shadow", cfg, log) if cfg.shadow else None
    except BaseException:
        log.close()
        raise
    if shadow is not None and shadow.labels != champion.labels:
        log.close()
        raise UserError(
            f"shadow model '{cfg.shadow}' has other labels than champion '{cfg.model}'; a shadow must be trained for the same task"
        )
    return ServiceState(cfg, champion, log, key=key, shadow=shadow, loader=lambda ref, role: load_model(ref, role, cfg, log))


def serve(cfg: ServeConfig) -> int:
    """Run the service in the foreground until SIGTERM or SIGINT (0 after a clean drain)."""
    from sqlalchemy.engine import make_url

    api_key(cfg, warn=False)  # fail on a missing key before any model loads
    check_port_free(cfg.host, cfg.port)
    state = build_state(cfg)
    c, s = state.champion, state.shadow
    where = make_url(db_url(cfg.log_db)).render_as_string(hide_password=True)
    print(
        f"serving {c.name} ({c.version}) on http://{cfg.host}:{cfg.port}/v1/classify"
        + (f", shadow {s.name} ({s.version})" if s else "")
        + f"; abstain below confidence {c.threshold:.3f}; prediction log {where}"
        + ("; API key required" if state.key else ""),
        flush=True,
    )
    return app.run(state)
