"""Replicas of the rerank service on Ray Serve: the same FastAPI app, one model load per replica.

Each replica builds the app of :func:`prism_core.serving.app.create_app` in its own process and
loads the model in the app's lifespan before it takes traffic (Ray Serve marks it ready only then);
Ray Serve's proxy spreads requests across replicas, and inside a replica the engine loop coalesces
the requests it holds into shared forward passes.

Two ways to start it:

- ``prism-rerank serve --model M --ray --num-replicas 2 --gpus-per-replica 1`` (starts or joins a
  Ray instance, deploys, serves until SIGINT/SIGTERM, then shuts the deployment down);
- ``serve run prism_core.serving.ray_serve:app_builder model=M num_replicas=2 gpus_per_replica=1``
  (Ray's own CLI; every ``key=value`` is an option of :func:`app_builder`).

Example:
    >>> from prism_core.config import EngineConfig
    >>> from prism_core.serving.app import ServerSettings
    >>> from prism_core.serving.ray_serve import build_deployment
    >>> config = EngineConfig(model="m", backend="prism")
    >>> app = build_deployment(config, ServerSettings(), num_replicas=2)  # doctest: +SKIP
    >>> from ray import serve  # doctest: +SKIP
    >>> serve.run(app, route_prefix="/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from prism_core.extras import require_extra

require_extra("ray.serve", "ray")
require_extra("fastapi", "server")

from ray import serve  # noqa: E402

from prism_core.config import ENGINE_OPTION_NAMES, EngineConfig  # noqa: E402
from prism_core.serving.settings import ServerSettings  # noqa: E402

logger = logging.getLogger(__name__)

#: The Ray Serve application and deployment name.
APP_NAME = "prism-rerank"


@serve.ingress()
class PrismRerankDeployment:
    """One replica: the rerank app over its own engine (the model loads before it takes traffic).

    Args:
        config: :meth:`EngineConfig.to_dict` of the engine.
        settings: The service's :class:`~prism_core.serving.app.ServerSettings` as a dict.
    """

    def __init__(self, config: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        self._config = EngineConfig.from_dict(config)
        self._settings = ServerSettings(**{**settings, "load": "blocking"})
        self._app: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        from prism_core.serving.app import create_app

        self._app = create_app(self._config, settings=self._settings)
        return self._app

    def check_health(self) -> None:
        """Ray Serve's health check: fails once the model failed to load."""
        state = getattr(getattr(self._app, "state", None), "prism", None)
        if state is not None and state.load_error is not None:
            raise RuntimeError(f"model failed to load: {state.load_error}")


def build_deployment(
    config: EngineConfig,
    settings: ServerSettings | None = None,
    *,
    num_replicas: int = 1,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    max_ongoing_requests: int = 64,
    autoscaling: Mapping[str, Any] | None = None,
) -> Any:
    """The Ray Serve application for ``config`` (pass it to ``serve.run``).

    Args:
        config: The engine every replica loads.
        settings: Limits and policies of each replica's app (the model always loads before traffic).
        num_replicas: Fixed number of replicas (ignored with ``autoscaling``).
        gpus_per_replica: GPUs reserved per replica (``0`` on CPU; fractions share a GPU).
        cpus_per_replica: CPUs reserved per replica.
        max_ongoing_requests: Requests a replica holds at once (its engine coalesces them).
        autoscaling: Ray Serve ``autoscaling_config`` (e.g. ``{"min_replicas": 1, "max_replicas": 4,
            "target_ongoing_requests": 16}``) instead of a fixed count.

    Returns:
        A bound Ray Serve application.
    """
    settings = settings or ServerSettings()
    options: dict[str, Any] = {
        "name": APP_NAME,
        "ray_actor_options": {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        "max_ongoing_requests": max_ongoing_requests,
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": (settings.request_timeout or 300.0) + 10.0,
    }
    if autoscaling is not None:
        options["autoscaling_config"] = dict(autoscaling)
    else:
        options["num_replicas"] = num_replicas
    deployment: Any = serve.deployment(PrismRerankDeployment)
    deployment = deployment.options(**options)
    return deployment.bind(config.to_dict(), _settings_dict(settings))


def _settings_dict(settings: ServerSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "load"}


_INT_ARGS = {
    "max_length",
    "max_new_tokens",
    "batch_tokens",
    "max_retries",
    "num_replicas",
    "max_documents",
    "max_body_bytes",
    "max_ongoing_requests",
}
_FLOAT_ARGS = {"timeout", "gpus_per_replica", "cpus_per_replica", "request_timeout"}


def app_builder(args: Mapping[str, str]) -> Any:
    """The ``serve run`` target: ``serve run prism_core.serving.ray_serve:app_builder model=M ...``.

    Keys: ``model`` (required), ``backend``, the engine options (``device``, ``dtype``,
    ``max_length``, ``max_new_tokens``, ``batch_tokens``, ``instruction``), ``num_replicas``,
    ``gpus_per_replica``, ``cpus_per_replica``, ``max_ongoing_requests``, ``api_key``,
    ``max_documents``, ``max_body_bytes``, ``request_timeout``.

    Example:
        >>> app_builder({"model": "path/to/model", "num_replicas": "2"})  # doctest: +SKIP
    """
    values: dict[str, Any] = {}
    for key, text in args.items():
        try:
            values[key] = int(text) if key in _INT_ARGS else float(text) if key in _FLOAT_ARGS else text
        except ValueError:
            raise ValueError(f"{key} must be a number, got {text!r}") from None
    if "model" not in values:
        raise ValueError("app_builder needs model=<hub id, directory or URL>")
    from prism_core.registry import detect_backend

    model = values.pop("model")
    backend = values.pop("backend", None) or detect_backend(model)
    config = EngineConfig.create(
        model, backend, **{k: values.pop(k) for k in list(values) if k in ENGINE_OPTION_NAMES}
    )
    setting_names = {f.name for f in dataclasses.fields(ServerSettings)} - {"load"}
    settings = ServerSettings(**{k: values.pop(k) for k in list(values) if k in setting_names})
    deployment_names = {"num_replicas", "gpus_per_replica", "cpus_per_replica", "max_ongoing_requests"}
    deployment = {k: values.pop(k) for k in list(values) if k in deployment_names}
    if values:
        raise ValueError(f"unknown app_builder option(s): {', '.join(sorted(values))}")
    return build_deployment(config, settings, **deployment)


def run_ray_serve(
    config: EngineConfig,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_replicas: int = 1,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    max_ongoing_requests: int = 64,
    autoscaling: Mapping[str, Any] | None = None,
    address: str | None = None,
) -> int:
    """Deploy on Ray Serve and serve until SIGINT/SIGTERM (what ``prism-rerank serve --ray`` runs).

    Returns:
        0 after a clean shutdown, 1 when the deployment failed.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": host, "port": port})
        app = build_deployment(
            config,
            settings,
            num_replicas=num_replicas,
            gpus_per_replica=gpus_per_replica,
            cpus_per_replica=cpus_per_replica,
            max_ongoing_requests=max_ongoing_requests,
            autoscaling=autoscaling,
        )
        try:
            serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        except Exception as exc:  # a replica failed to start (model load...)
            print(f"prism-rerank serve: error: the Ray Serve deployment failed: {exc}", file=sys.stderr)
            return 1
        print(
            f"prism-rerank serve: listening on http://{host}:{port} (Ray Serve, model {config.model}, "
            f"backend {config.backend})",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
