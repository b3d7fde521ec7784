"""A lean HTTP/1.1 load generator for loopback benchmarks of the service.

One keep-alive connection per simulated client, request bytes built once per text, responses
read by ``Content-Length``: a fraction of the CPU a general client (httpx) spends per request,
so on a 2-core machine the numbers measure the service rather than the client. Bounded in
requests and seconds; records status and latency of every request.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What one load level measured."""

    concurrency: int
    requests: int = 0
    errors: int = 0
    """Responses other than 200 (and connections that failed)."""
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """requests/s and latency percentiles (ms), as the benchmark result file stores them."""
        xs = sorted(self.latencies_s)
        pick = lambda q: 1000 * xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None  # noqa: E731
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "req_per_s": self.requests / self.wall_s if self.wall_s else 0.0,
            "p50_ms": pick(0.5),
            "p95_ms": pick(0.95),
        }


def request_bytes(text: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete POST /v1/classify request for one text."""
    body = json.dumps({"input": [text]}).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def run_load(
    host: str, port: int, texts: list[str], concurrency: int, requests: int, seconds: float, headers: dict[str, str] | None = None
) -> LoadResult:
    """``concurrency`` clients send one text per request until ``requests`` are sent or
    ``seconds`` pass; every client first sends one untimed request (connect, warm up)."""
    payloads = [request_bytes(t, f"{host}:{port}", headers) for t in texts]
    result = LoadResult(concurrency)
    sent = 0
    conns = [await asyncio.open_connection(host, port) for _ in range(concurrency)]
    for i, (reader, writer) in enumerate(conns):
        writer.write(payloads[i % len(payloads)])
    for reader, _ in conns:
        await _read_response(reader)
    deadline = time.perf_counter() + seconds

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            payload = payloads[sent % len(payloads)]
            sent += 1
            t0 = time.perf_counter()
            try:
                writer.write(payload)
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                return
            result.latencies_s.append(time.perf_counter() - t0)
            result.errors += status != 200

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(client(r, w) for r, w in conns))
    finally:
        result.wall_s = time.perf_counter() - t0
        for _, writer in conns:
            writer.close()
    result.requests = len(result.latencies_s)
    return result
