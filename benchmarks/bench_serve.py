"""`steerkit serve` throughput and latency: N concurrent clients (1, 4, 16 by default), each with its
own steering vector, against the batching server (``--max-batch 16``) and against the same
requests answered one at a time (``max_batch=1``); the cost of per-row steering (the same
batch of requests unsteered); and a bounded load test (a fixed number of requests from a fixed
number of loopback clients against a small queue: status counts and the process's RSS before and
after).

Each request streams (greedy, ``--max-tokens`` tokens) so the time to first token is measured
where a client sees it; tokens/s is the sum of the answers' completion tokens over the wall
time of the round. Steering vectors are random directions scaled to a typical residual norm,
saved and served like ``steerkit fit`` vectors at the middle layer.

Run: python benchmarks/bench_serve.py --out benchmarks/results/serve.json   (a quiet machine)
Quick check: python benchmarks/bench_serve.py --clients 1 2 --max-tokens 4 --load-requests 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from steerkit import load_model
from steerkit._io import write_json
from steerkit.estimators.files import save_vector
from steerkit.serve import VectorRegistry, create_app

QUESTIONS = ["How do I boil an egg?", "What is a cloud made of?", "Why is the sea salty?", "How do plants grow?",
             "Tell me about the moon.", "What makes a good friend?", "How does a bicycle work?", "Why do cats purr?"]


def rss_mib() -> float:
    """Resident memory of this process (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def serving(app):
    """``app`` on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)


def one_request(url: str, body: dict) -> dict:
    """Stream one completion: ``{"status", "ttft_s", "seconds", "tokens"}``."""
    start = time.perf_counter()
    ttft, tokens = None, 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as answer:
        if answer.status_code != 200:
            answer.read()
            return {"status": answer.status_code, "ttft_s": None, "seconds": time.perf_counter() - start, "tokens": 0}
        for line in answer.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - start
    return {"status": 200, "ttft_s": ttft, "seconds": time.perf_counter() - start, "tokens": tokens}


def concurrently(url: str, bodies: list[dict], clients: int) -> tuple[list[dict], float]:
    """Send ``bodies`` from ``clients`` threads (each takes the next body); results and wall time."""
    results: list[dict | None] = [None] * len(bodies)
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            results[index] = one_request(url, bodies[index])

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - start


def summary(results: list[dict], seconds: float) -> dict:
    ttfts = [r["ttft_s"] for r in results if r["ttft_s"] is not None]
    return {"requests": len(results), "seconds": seconds, "tokens": sum(r["tokens"] for r in results),
            "tokens_per_s": sum(r["tokens"] for r in results) / seconds,
            "ttft_p50_s": float(np.percentile(ttfts, 50)) if ttfts else None,
            "ttft_p95_s": float(np.percentile(ttfts, 95)) if ttfts else None}


def bodies(lm, n: int, args, steered: bool = True) -> list[dict]:
    """``n`` streaming requests, request ``i`` steered with vector ``v{i % n_vectors}``."""
    return [{"model": lm.name, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
             "temperature": 0, "max_tokens": args.max_tokens, "stream": True, "stream_options": {"include_usage": True},
             **({"steering": [{"vector": f"v{i % args.n_vectors}"}]} if steered else {})} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--n-vectors", type=int, default=16)
    parser.add_argument("--coefficient", type=float, default=4.0)
    parser.add_argument("--load-requests", type=int, default=200)
    parser.add_argument("--load-clients", type=int, default=24)
    parser.add_argument("--load-queue", type=int, default=8)
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    lm = load_model(args.model)
    layer = round(0.6 * lm.n_blocks)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.n_vectors):
            direction = rng.normal(size=lm.hidden_size)
            save_vector(Path(folder) / f"v{i}", direction / np.linalg.norm(direction), model=lm.name, layer=layer,
                        coefficient=args.coefficient, construction="random")
        registry = VectorRegistry.from_folder(folder, lm)
    results: dict = {"model": lm.name, "layer": layer, "max_tokens": args.max_tokens, "rounds": []}
    for max_batch in (16, 1):
        with serving(create_app(lm, registry, max_batch=max_batch, max_queue=256)) as url:
            concurrently(url, bodies(lm, 1, args), 1)  # warm-up
            for clients in args.clients:
                row = summary(*concurrently(url, bodies(lm, clients, args), clients))
                results["rounds"].append({"max_batch": max_batch, "clients": clients, "steered": True, **row})
                print(results["rounds"][-1], flush=True)
            if max_batch > 1:
                clients = max(args.clients)
                row = summary(*concurrently(url, bodies(lm, clients, args, steered=False), clients))
                results["rounds"].append({"max_batch": max_batch, "clients": clients, "steered": False, **row})
                print(results["rounds"][-1], flush=True)

    before = rss_mib()
    with serving(create_app(lm, registry, max_batch=16, max_queue=args.load_queue)) as url:
        load, seconds = concurrently(url, bodies(lm, args.load_requests, args), args.load_clients)
    statuses: dict[str, int] = {}
    for r in load:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    results["load"] = {"requests": args.load_requests, "clients": args.load_clients, "max_queue": args.load_queue,
                       "seconds": seconds, "statuses": statuses, "rss_mib_before": before, "rss_mib_after": rss_mib()}
    print(results["load"], flush=True)
    if args.out:
        write_json(args.out, results)


if __name__ == "__main__":
    main()
