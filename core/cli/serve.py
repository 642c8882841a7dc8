"""``prism-rerank serve``: one rerank service (uvicorn), or replicas on Ray Serve (``--ray``).

Usage::

    prism-rerank serve --model infgrad/Prism-Qwen3.5-Reranker-0.8B --port 8000 --api-key "$KEY"
    prism-rerank serve --model ... --ray --num-replicas 4 --gpus-per-replica 1

The service speaks Cohere's v2 rerank API (``POST /v2/rerank``) plus Prism's fields; see
:mod:`prism_core.serving.app`. It listens on 127.0.0.1 unless ``--host`` says otherwise. The API key
defaults to ``$PRISM_RERANK_API_KEY`` (unset: no key). SIGINT/SIGTERM stop it after the requests in
flight finish.

Exit statuses: 0 stopped normally (SIGTERM included), 1 the model could not be loaded, 2 bad
arguments (``--max-length`` too small for the prompt and options the backend does not take included).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from prism_core.backends.remote_transport import API_KEY_ENV
from prism_core.cli.demo_model import warn_random_weights_once
from prism_core.cli.errors import exits_with_status, failures_reported
from prism_core.cli.options import (
    ModelOptions,
    RerankerFactory,
    add_model_arguments,
    build_reranker,
    positive_float,
    positive_int,
)
from prism_core.cli.terminal import setup_terminal

PROG = "prism-rerank serve"
#: The arguments passed to :func:`~prism_core.serving.ray_serve.run_ray_serve` under their own names.
RAY_SERVE_ARGUMENTS = (
    "host", "port", "num_replicas", "gpus_per_replica", "cpus_per_replica", "max_ongoing_requests",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``prism-rerank serve``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a reranker over HTTP (Cohere v2 compatible POST /v2/rerank, plus Prism's "
        "evidence).",
        epilog="Exit status: 0 stopped normally, 1 the model could not be loaded, 2 bad arguments.",
    )
    net = parser.add_argument_group("service")
    net.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    net.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    net.add_argument(
        "--api-key", help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else none)"
    )
    net.add_argument(
        "--max-documents", type=positive_int, default=1000, help="documents per request (413 beyond)"
    )
    net.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=32 * 1024 * 1024,
        help="request body size in bytes (413 beyond; default 32 MiB)",
    )
    net.add_argument(
        "--request-timeout",
        type=positive_float,
        default=300.0,
        help="seconds per rerank request (504 beyond, its work cancelled; default 300)",
    )
    net.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    ray = parser.add_argument_group("Ray Serve (needs the 'ray' extra)")
    ray.add_argument("--ray", action="store_true", help="deploy replicas on Ray Serve instead of one process")
    ray.add_argument("--num-replicas", type=positive_int, default=1, help="replicas (one model load each)")
    ray.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs per replica (default 0)")
    ray.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs per replica (default 1)")
    ray.add_argument(
        "--max-ongoing-requests",
        type=positive_int,
        default=64,
        help="requests a replica takes at once (the engine coalesces them; default 64)",
    )
    ray.add_argument("--autoscale", metavar="MIN:MAX", help="autoscale between MIN and MAX replicas instead")
    ray.add_argument(
        "--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)"
    )
    add_model_arguments(parser)
    return parser


def _autoscaling(text: str | None, parser: argparse.ArgumentParser) -> dict[str, int] | None:
    if text is None:
        return None
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high) or int(high) < 1:
        parser.error(f"--autoscale must be MIN:MAX with 0 <= MIN <= MAX and MAX >= 1, got {text!r}")
    return {"min_replicas": int(low), "max_replicas": int(high)}


@exits_with_status
def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of ``prism-rerank serve``.

    Args:
        argv: Arguments after ``serve``; ``None`` reads ``sys.argv[2:]``.
        reranker_factory: Builds the reranker from the model options (tests inject one); not used
            with ``--ray``, where each replica builds its own engine from the options.

    Returns:
        The exit status (argument errors exit with 2 through :class:`SystemExit`).

    Example:
        >>> main(["--model", "path/to/model", "--port", "8000"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[2:] if argv is None else argv))
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in [0, 65535], got {args.port}")
    if args.gpus_per_replica < 0 or args.cpus_per_replica < 0:
        parser.error("--gpus-per-replica and --cpus-per-replica must be >= 0")
    autoscaling = _autoscaling(args.autoscale, parser)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = ModelOptions.from_args(args)
    setup_terminal(None)  # a server's log: no progress bars unless on a terminal
    with failures_reported(parser, PROG, invalid=(ValueError, TypeError), unavailable=(ImportError,)):
        reranker = build_reranker(options, reranker_factory)  # constructs, loads nothing
        config = options.engine_config()
        from prism_core.serving.settings import ServerSettings

        settings = ServerSettings(
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            request_timeout=args.request_timeout,
            load="blocking" if args.ray else "background",
        )
    warn_random_weights_once(options.model, PROG)
    if settings.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning(
            "listening on %s without an API key: anyone who can reach it can use the model", args.host
        )
    try:
        if args.ray:
            from prism_core.serving.ray_serve import run_ray_serve

            deployment = {name: getattr(args, name) for name in RAY_SERVE_ARGUMENTS}
            return run_ray_serve(
                config, settings, **deployment, autoscaling=autoscaling, address=args.ray_address
            )
        return _serve_one(reranker, settings, args)
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _serve_one(reranker: Any, settings: Any, args: argparse.Namespace) -> int:
    from prism_core.serving.app import create_app, run_uvicorn

    app = create_app(reranker, settings=settings)

    def started(server: object) -> None:
        port = args.port
        servers = getattr(server, "servers", None) or []
        for s in servers:
            for sock in getattr(s, "sockets", None) or []:
                port = sock.getsockname()[1]
                break
        print(
            f"{PROG}: listening on http://{args.host}:{port} (model {app.state.prism.model}, "
            f"backend {app.state.prism.backend})",
            file=sys.stderr,
            flush=True,
        )

    ok = run_uvicorn(app, host=args.host, port=args.port, log_level=args.log_level, on_started=started)
    if not ok:
        print(f"{PROG}: error: cannot load model: {app.state.prism.load_error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
