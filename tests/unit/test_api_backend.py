"""The API backend against a fault-injecting OpenAI-compatible server on loopback.

The fake server answers ``POST /v1/chat/completions`` like a real one (JSON-schema answers
when asked, usage, logprobs) and fails on cue: 429, 500, 401, 400, or a reply slower than
the client's timeout. The backend must retry the transient faults into the same
predictions, stop with an error that names the endpoint when retries run out, and serve a
cached rerun without a single HTTP call.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dispute_classifier.core.backends.api import (
    ApiBackend,
    ApiConfig,
    cache_key,
    redact_url,
    resolve_endpoint,
)
from dispute_classifier.core.backends.llama_server import free_port
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.types import INVALID

LABELS = ["refund", "fee", "fraud"]
SECRET = "sk-test-SECRET-0123456789"
PROMPTS = [[{"role": "user", "content": t}] for t in ("refund my order", "a fee again", "not my payment", "refund now", "fee?")]
EXPECTED = ["refund", "fee", "fraud", "refund", "fee"]


def keyword_label(text: str) -> str:
    return next((label for label in ("refund", "fee") if label in text), "fraud")


class FakeApi:
    """A scripted OpenAI-compatible server. ``script`` lists what each request in arrival
    order gets: ``ok``, ``429``, ``500``, ``401``, ``slow`` (answers after ``slow_s``);
    after the script, every request gets ``then``."""

    def __init__(self, script=(), then="ok", answer=None, reject_structured=(), slow_s=1.0, delay_s=0.0, usage=True):
        self.usage = usage
        self.script = list(script)
        self.then = then
        self.answer = answer or keyword_label
        self.reject_structured = reject_structured
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status, obj, headers=()):
                data = json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "test"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.bodies.append(body)
                    fake.auth.append(self.headers.get("Authorization"))
                    action = fake.script.pop(0) if fake.script else fake.then
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    fake.handle(self, body, action)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def posts(self) -> int:
        return len(self.bodies)

    def handle(self, h, body, action):
        if self.delay_s:
            time.sleep(self.delay_s)
        if action == "429":
            return h._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, [("Retry-After", "0")])
        if action == "500":
            return h._send(500, {"error": {"message": "boom", "type": "server_error"}})
        if action == "401":
            return h._send(401, {"error": {"message": f"Incorrect API key provided: {h.headers.get('Authorization')}"}})
        if action == "slow":
            time.sleep(self.slow_s)
        form = "grammar" if "grammar" in body else (body.get("response_format") or {}).get("type")
        if form and form in self.reject_structured:
            # as llama-cpp-python does: a validation error answered with 500
            return h._send(500, {"error": {"message": f"1 validation error: {form} is not allowed", "type": "server_error"}})
        label = self.answer(body["messages"][-1]["content"])
        content = json.dumps({"label": label}) if "response_format" in body else label
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        if body.get("logprobs"):
            choice["logprobs"] = {
                "content": [
                    {"token": "x", "logprob": -0.1, "bytes": None, "top_logprobs": []},
                    {"token": "y", "logprob": -0.2, "bytes": None, "top_logprobs": []},
                ]
            }
        reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake-model-2024", "choices": [choice]}
        if self.usage:  # some compatible servers send no usage block at all
            reply["usage"] = {"prompt_tokens": 10 + len(json.dumps(body["messages"])) // 4, "completion_tokens": 5, "total_tokens": 0}
        h._send(200, reply)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake(request):
    servers = []

    def make(**kw):
        s = FakeApi(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))


PRICES = PriceTable(api={"fake-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}, hardware={"cpu-2core": 0.1})


def backend(url, environ=None, prices=PRICES, **kw) -> ApiBackend:
    settings = dict(base_url=url, model="fake-model", max_retries=3, retry_base_delay_s=0.01, timeout_s=0.5, cache=False)
    settings.update(kw)
    return ApiBackend(ApiConfig(**settings), prices=prices, environ=environ if environ is not None else {})


def test_structured_answers_usage_cost_and_confidence(fake):
    server = fake()
    with backend(server.url) as b:
        preds = b.classify(PROMPTS, LABELS)
    assert [p.label for p in preds] == EXPECTED
    body = server.bodies[0]
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == LABELS
    assert body["temperature"] == 0 and body["logprobs"] is True
    p = preds[0]
    assert p.usage.input_tokens > 10 and p.usage.output_tokens == 5
    assert p.usage.cost_usd == pytest.approx((p.usage.input_tokens * 1.0 + 5 * 2.0) / 1e6)
    assert p.confidence == pytest.approx(2.718281828**-0.3)
    assert p.raw == '{"label": "refund"}'


def test_transient_faults_then_success_give_the_same_predictions(fake):
    clean = fake()
    with backend(clean.url) as b:
        want = [p.label for p in b.classify(PROMPTS, LABELS)]
    flaky = fake(script=["429", "500", "ok", "slow", "429", "500"])
    with backend(flaky.url, timeout_s=0.3) as b:
        got = [p.label for p in b.classify(PROMPTS, LABELS)]
        assert b.stats["retries"] == 5
    assert got == want == EXPECTED
    assert flaky.posts == len(PROMPTS) + 5


def test_exhausted_retries_give_a_clear_error_naming_the_endpoint(fake):
    server = fake(then="500")
    with backend(server.url, max_retries=2) as b, pytest.raises(UserError) as err:
        b.classify(PROMPTS[:1], LABELS)
    msg = str(err.value)
    assert server.url in msg and "after 3 attempts" in msg and "HTTP 500" in msg
    assert server.posts == 3


def test_timeouts_are_retried_then_reported(fake):
    server = fake(then="slow", slow_s=1.0)
    with backend(server.url, max_retries=1, timeout_s=0.2) as b, pytest.raises(UserError, match="timed out after 0.2 s"):
        b.classify(PROMPTS[:1], LABELS)


def test_unreachable_base_url_is_named_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    sleeps = []
    b = ApiBackend(
        ApiConfig(base_url=url, model="m", max_retries=2, retry_base_delay_s=0.05, cache=False),
        prices=PRICES,
        environ={},
        sleep=sleeps.append,
    )
    with pytest.raises(UserError) as err:
        b.classify(PROMPTS[:1], LABELS)
    assert url in str(err.value) and "after 3 attempts" in str(err.value) and "connection failed" in str(err.value)
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.05 and 0 <= sleeps[1] <= 0.1  # exponential cap, full jitter


def test_cached_rerun_makes_no_http_calls(fake):
    server = fake(delay_s=0.01)
    with backend(server.url, cache=True) as b:
        first = b.classify(PROMPTS, LABELS)
    calls = server.posts
    with backend(server.url, cache=True) as b:
        second = b.classify(PROMPTS, LABELS)
        assert b.stats["cache_hits"] == len(PROMPTS) and b.stats["requests"] == 0
    assert server.posts == calls
    assert [(p.label, p.usage.input_tokens, p.usage.latency_s, p.usage.cost_usd) for p in first] == [
        (p.label, p.usage.input_tokens, p.usage.latency_s, p.usage.cost_usd) for p in second
    ]
    with backend(server.url, cache=True, temperature=0.5) as b:  # other parameters: other answers
        b.classify(PROMPTS[:1], LABELS)
    assert server.posts == calls + 1


def test_cache_key_covers_endpoint_model_messages_and_parameters():
    req = {"messages": PROMPTS[0], "temperature": 0}
    base = cache_key("http://a/v1", "m", req)
    assert base == cache_key("http://a/v1", "m", dict(req))
    assert (
        len(
            {
                base,
                cache_key("http://b/v1", "m", req),
                cache_key("http://a/v1", "n", req),
                cache_key("http://a/v1", "m", {**req, "temperature": 1}),
                cache_key("http://a/v1", "m", {**req, "messages": PROMPTS[1]}),
            }
        )
        == 5
    )


def test_api_key_is_sent_but_never_stored(fake, tmp_path, toy_task):
    from baselines.prompted import PromptedClassifier
    from dispute_classifier.core.task import cache_dir, load_data, load_task
    from evaluation.evaluate import evaluate

    server = fake()
    b = backend(server.url, environ={"OPENAI_API_KEY": SECRET}, cache=True)
    task = load_task(toy_task)
    with PromptedClassifier(task, "prompt", b) as clf:
        run = evaluate(clf, load_data(task), "test", approach="prompt", runs_root=tmp_path / "runs", prices=PRICES, progress=False)
        assert SECRET not in repr(b.endpoint) and SECRET not in json.dumps(b.describe())
    assert server.auth[0] == f"Bearer {SECRET}"
    assert run.meta.extra["llm"]["endpoint"] == server.url and run.meta.billing == "api"
    stored = [p.read_bytes() for p in list(run.path.iterdir()) + list(cache_dir().rglob("*")) if p.is_file()]
    assert stored and not any(SECRET.encode() in blob for blob in stored)


def test_rejected_key_names_the_variable_and_hides_the_key(fake):
    server = fake(then="401")
    with backend(server.url, environ={"OPENAI_API_KEY": SECRET}) as b, pytest.raises(UserError) as err:
        b.classify(PROMPTS[:1], LABELS)
    assert "$OPENAI_API_KEY" in str(err.value) and SECRET not in str(err.value)
    assert server.posts == 1  # an auth error is not retried


def test_missing_api_key_names_the_variable():
    with pytest.raises(UserError, match=r"model 'gpt-4o' needs an API: set \$OPENAI_API_KEY"):
        resolve_endpoint(ApiConfig(model="gpt-4o"), environ={})
    with pytest.raises(UserError, match=r"needs an API key: set \$MY_KEY"):
        resolve_endpoint(ApiConfig(base_url="https://api.openai.com/v1", api_key_env="MY_KEY"), environ={})


def test_endpoint_resolution_order():
    managed = resolve_endpoint(ApiConfig(), environ={})
    assert managed.managed and managed.base_url is None and managed.model == "smollm2-135m-instruct"
    openai = resolve_endpoint(ApiConfig(), environ={"OPENAI_API_KEY": SECRET})
    assert openai.base_url == "https://api.openai.com/v1" and openai.model == "gpt-4o-mini" and not openai.managed
    own = resolve_endpoint(ApiConfig(), environ={"OPENAI_BASE_URL": "http://gpu:8000/v1/"})
    assert own.base_url == "http://gpu:8000/v1" and own.model is None
    assert SECRET not in repr(openai)


def test_credentials_never_reach_recorded_urls():
    assert redact_url("https://user:pw@host:8443/v1?api-key=abc") == "https://host:8443/v1?api-key=***"
    with pytest.raises(UserError, match="contains a password"):
        ApiConfig(base_url="https://user:pw@host/v1")


def test_model_without_price_entry_costs_unknown_with_a_warning(fake, capsys):
    server = fake()
    with backend(server.url, model="no-such-model", prices=PriceTable(hardware={"cpu-2core": 0.1})) as b:
        preds = b.classify(PROMPTS[:2], LABELS)
    assert all(p.usage.cost_usd is None for p in preds)
    assert "no entry in the price table" in capsys.readouterr().err


def test_answer_outside_the_label_set_is_invalid_and_kept(fake):
    server = fake(answer=lambda text: "banana")
    with backend(server.url) as b:
        preds = b.classify(PROMPTS[:2], LABELS)
    assert [p.label for p in preds] == [INVALID, INVALID]
    assert preds[0].raw == '{"label": "banana"}' and preds[0].confidence is None


@pytest.mark.parametrize("rejected, used", [(("json_schema",), "grammar"), (("json_schema", "grammar"), "json_object")])
def test_servers_get_the_first_restriction_form_they_accept(fake, rejected, used):
    server = fake(reject_structured=rejected)
    with backend(server.url) as b:
        preds = b.classify(PROMPTS, LABELS)
        assert b.describe()["structured_output"] == used
    assert [p.label for p in preds] == EXPECTED
    last = server.bodies[-1]
    if used == "grammar":  # llama.cpp GBNF allowing exactly the labels
        assert last["grammar"] == 'root ::= "refund" | "fee" | "fraud"' and "response_format" not in last
    else:
        assert last["response_format"]["schema"]["properties"]["label"]["enum"] == LABELS
    assert server.posts == len(PROMPTS) + 2 * len(rejected)  # each rejected form tried with and without logprobs, once
    with backend(server.url, structured="json_schema") as b, pytest.raises(UserError, match="rejected every request form"):
        b.classify(PROMPTS[:1], LABELS)


def test_server_without_structured_output_gets_plain_requests_parsed(fake):
    server = fake(reject_structured=("json_schema", "grammar", "json_object"))
    with backend(server.url) as b:
        preds = b.classify(PROMPTS, LABELS)
        assert b.describe()["structured_output"] == "none"
    assert [p.label for p in preds] == EXPECTED
    assert server.posts == len(PROMPTS) + 6


def test_concurrency_is_bounded(fake):
    server = fake(delay_s=0.05)
    with backend(server.url, concurrency=2) as b:
        b.classify(PROMPTS * 3, LABELS)
    assert server.max_in_flight == 2


def test_model_defaults_to_what_the_server_serves(fake):
    server = fake()
    with backend(server.url, model=None) as b:
        assert b.endpoint.model == "fake-model"
        assert b.model_label == f"fake-model ({server.url.split('/')[2]})"


def test_a_fallback_is_said_once_in_plain_words_and_the_servers_text_is_logged(fake, capsys, tmp_path):
    """Each stage of an experiment builds its own backend: the fallback from JSON schema to a
    grammar is one plain line for all of them, with no raw server error on the console; the
    server's text goes to the negotiation log."""
    from dispute_classifier.core.backends import api

    api._NOTED.clear()
    server = fake(reject_structured=("json_schema",))
    for _ in range(4):
        with backend(server.url) as b:
            assert [p.label for p in b.classify(PROMPTS[:2], LABELS)] == EXPECTED[:2]
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: the server at {server.url} does not take JSON-schema answers; using a grammar that allows only the labels"
        f" instead (its replies are in {tmp_path / 'cache' / 'logs' / api.NEGOTIATION_LOG})"
    ]
    assert "validation error" not in err and "{" not in err
    log = (tmp_path / "cache" / "logs" / api.NEGOTIATION_LOG).read_text()
    assert log.count("1 validation error: json_schema is not allowed") == 8  # 4 backends × (with, without logprobs)
