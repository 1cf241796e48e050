"""``steerkit serve``: the OpenAI-compatible server steering each request (see docs/serving.md)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import warnings

from . import _inputs
from ._options import _add_model_options, _count, _positive_int

DEFAULT_HOST = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only localhost is known to stay on this machine
        return False


def _cmd_serve(args) -> int:
    from steerkit.serve import VectorRegistry
    from steerkit.serve.app import create_app

    import uvicorn  # after steerkit.serve.app, which names the extra to install when it is missing

    host = args.host or DEFAULT_HOST
    if not _is_loopback(host):  # only reachable through an explicit --host
        warnings.warn(f"--host {host} accepts connections from other machines and steerkit serve has no "
                      "authentication; bind to 127.0.0.1 unless the network is trusted")
    lm = _inputs._load_model(args, args.model)
    registry = VectorRegistry.from_folder(args.vectors, lm) if args.vectors else VectorRegistry(lm, [])
    print(f"serving {lm.name} with {len(registry)} steering entries ({', '.join(registry.names) or 'none'}) "
          f"on http://{host}:{args.port}/v1", file=sys.stderr)
    app = create_app(lm, registry, max_batch=args.max_batch, max_queue=args.max_queue,
                     default_max_tokens=args.default_max_tokens)
    uvicorn.run(app, host=host, port=args.port, log_level="info")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit serve`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    serve = commands.add_parser(
        "serve", help="serve a model behind an OpenAI-compatible API, steering each request",
        description="OpenAI-compatible chat server (POST /v1/chat/completions, GET /v1/models): each request "
        "names its steering in the body field 'steering'; concurrent requests share batches, each row steered "
        "its own way.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--vectors", default=None,
                       help="folder of steering vectors and trained steerers (a `steerkit run` output folder, "
                       "`steerkit fit` vectors); when absent the server answers unsteered only")
    serve.add_argument("--host", default=None,
                       help=f"address to bind (default {DEFAULT_HOST}; another address is reachable from other "
                       "machines and warns)")
    serve.add_argument("--port", type=_count, default=8000, help="port to listen on (0: any free port)")
    serve.add_argument("--max-batch", type=_positive_int, default=16, help="most requests answered in one batch")
    serve.add_argument("--max-queue", type=_positive_int, default=64,
                       help="most waiting requests; more are answered 503 with Retry-After")
    serve.add_argument("--default-max-tokens", type=_positive_int, default=256,
                       help="answer length limit of a request that sets no max_tokens")
    _add_model_options(serve, default_model=None)
    serve.set_defaults(func=_cmd_serve)
