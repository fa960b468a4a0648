"""Load test of `ehrforge serve` on loopback: many concurrent clients against one server process.

The server runs in its own process (so its memory is measured alone) with the tiny local model (or the fake backend)
and the default bounded queue; 200 clients each send a few chat requests at once. Bounded: a fixed request count and
a hard deadline. Writes p50/p95 latency, throughput, errors, 503 counts and the server's RSS to
benchmarks/results/serve_load.json.

    nice -n 10 python benchmarks/serve_load.py --clients 200 --requests 3 --backend tiny
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ehrforge.core.memory import peak_rss_mb  # noqa: E402

TOKEN_PREFIX = "loadtest-token-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(args: argparse.Namespace) -> None:
    """Child process: build the app and serve it on 127.0.0.1."""
    import uvicorn

    from ehrforge.core.backends.fake import FakeBackend
    from ehrforge.serve import ServeSettings, create_app

    if args.backend == "tiny":
        from ehrforge.core.backends.transformers_backend import TransformersBackend
        from ehrforge.core.tiny import make_tiny_chat_model

        backend = TransformersBackend(make_tiny_chat_model(Path(tempfile.mkdtemp()) / "tiny"), device="cpu", batch_size=args.max_batch)
    else:
        backend = FakeBackend(respond=lambda m: "SELECT COUNT(*) FROM patients")
    tokens = {f"client{i}": f"{TOKEN_PREFIX}{i:06d}" for i in range(args.clients)}
    settings = ServeSettings(tokens=tokens, workers=args.workers, queue_size=args.queue_size, max_batch=args.max_batch,
                             rate_per_minute=600, rate_burst=50)
    uvicorn.run(create_app(settings, backend, {}), host="127.0.0.1", port=args.port, log_level="error",
                limit_concurrency=settings.max_connections, access_log=False)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


async def drive(args: argparse.Namespace, pid: int) -> dict:
    import httpx

    url = f"http://127.0.0.1:{args.port}"
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=url, timeout=args.deadline_s, limits=limits) as client:
        for _ in range(600):  # wait for the model to load
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        rss_idle, _ = rss_mb(pid)
        latencies: list[float] = []
        codes: dict[str, int] = {}
        peak = [rss_idle]
        stop = asyncio.Event()

        async def sample_memory() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(pid)[0])
                await asyncio.sleep(0.2)

        async def one_client(i: int) -> None:
            headers = {"Authorization": f"Bearer {TOKEN_PREFIX}{i:06d}"}
            for r in range(args.requests):
                body = {"messages": [{"role": "user", "content": f"How many patients were admitted? ({i}/{r})"}],
                        "max_tokens": args.max_tokens}
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
                    key = str(resp.status_code)
                except httpx.TransportError as exc:
                    key = type(exc).__name__
                codes[key] = codes.get(key, 0) + 1
                if key == "200":
                    latencies.append(time.perf_counter() - t0)
                elif key == "503":
                    await asyncio.sleep(0.5)  # a polite client backs off before its next request

        sampler = asyncio.create_task(sample_memory())
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(one_client(i) for i in range(args.clients))), timeout=args.deadline_s)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        wall = time.perf_counter() - t0
        stop.set()
        await sampler
        health = (await client.get("/healthz")).json()
    rss_after, rss_hwm = rss_mb(pid)
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else None

    sent = sum(codes.values())
    return {
        "wall_s": round(wall, 2), "timed_out": timed_out, "requests_sent": sent, "status_counts": codes,
        "ok": codes.get("200", 0), "rejected_503": codes.get("503", 0), "rate_limited_429": codes.get("429", 0),
        "errors": sent - codes.get("200", 0) - codes.get("503", 0) - codes.get("429", 0),
        "throughput_ok_per_s": round(codes.get("200", 0) / wall, 2),
        "latency_ms_ok": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "server_rss_mb": {"idle": round(rss_idle, 1), "peak_sampled": round(peak[0], 1), "after": round(rss_after, 1),
                          "high_water": round(rss_hwm, 1)},
        "server_alive_after": health["status"] == "ok",
        "server_queue_stats": health["queue"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=3, help="requests per client")
    ap.add_argument("--backend", choices=["tiny", "fake"], default="tiny")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue-size", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--deadline-s", type=float, default=240.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        run_server(args)
        return
    args.port = free_port()
    child_args = [sys.executable, __file__, "--serve", "--port", str(args.port), "--backend", args.backend,
                  "--clients", str(args.clients), "--workers", str(args.workers), "--queue-size", str(args.queue_size),
                  "--max-batch", str(args.max_batch)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    server = subprocess.Popen(child_args, env=env)
    try:
        result = asyncio.run(drive(args, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    from ehrforge.core.io import atomic_write_json

    report = {
        "benchmark": "serve_load",
        "device": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
                   "gpu": None},
        "config": {"clients": args.clients, "requests_per_client": args.requests, "backend": args.backend,
                   "endpoint": "/v1/chat/completions", "max_tokens": args.max_tokens, "workers": args.workers,
                   "queue_size": args.queue_size, "max_batch": args.max_batch, "deadline_s": args.deadline_s,
                   "client_backoff_after_503_s": 0.5, "network": "loopback 127.0.0.1 only"},
        **result,
        "client_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
