"""Which engine an adapter calls: its configuration, how it is found, and how it serialises.

An adapter is built either from a configuration (``model=``, ``backend=``, engine options as
keyword arguments, or ``engine_config=``) or from a ready ``reranker=`` object. The configuration is
held as the core's one engine description, :class:`prism_core.config.EngineSpec` (re-exported here),
whose ``model`` and ``backend`` may stay ``None`` (the backend's default model; the backend told
from the checkpoint). Those two are resolved on first use, not at construction, because telling a
hub checkpoint's backend reads its ``config.json`` from the Hub.

:class:`EngineResolver` turns the spec into the engine on first use, through the process-wide cache
(:func:`prism_core.registry.get_engine`): adapters of any framework configured alike share one
engine and one set of loaded weights. Constructing an adapter loads nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prism_core import registry
from prism_core.config import ENGINE_OPTION_NAMES, EngineSpec
from prism_core.protocol import Reranker
from prism_integrations._common.options import RerankSettings

__all__ = [
    "ENGINE_OPTION_NAMES",
    "EngineResolver",
    "EngineSpec",
    "NotSerializableError",
    "check_reranker",
    "not_serializable_message",
    "split_engine_input",
]

logger = logging.getLogger(__name__)


class NotSerializableError(TypeError):
    """An adapter built with a ``reranker`` object was asked to serialise (it cannot be rebuilt)."""


def not_serializable_message(adapter: str, option: str = "reranker") -> str:
    """The one message the three adapters give when asked to serialise a ``reranker`` object (or a
    ``token_counter``: a callable cannot be rebuilt from a dict either)."""
    if option != "reranker":
        return (
            f"{adapter} built with a `{option}` callable cannot be serialised (a callable cannot be "
            f"rebuilt from a dict, and dropping it would count tokens differently); build it without "
            f"`{option}` to serialise it."
        )
    return (
        f"{adapter} built with a `reranker` object cannot be serialised (the object cannot be rebuilt "
        "from a dict, and dropping it would reload as another model); build it with `model=`, "
        "`backend=` and engine options (or `engine_config=`) to serialise it."
    )


def check_reranker(reranker: Any) -> Reranker:
    """Return ``reranker`` if it implements :class:`prism_core.Reranker`, else raise naming what it is."""
    if not isinstance(reranker, Reranker):
        raise TypeError(
            "`reranker` must implement the prism_core.Reranker protocol (capabilities, score, ascore, "
            f"rerank and arerank), got {type(reranker).__name__}"
        )
    return reranker


def split_engine_input(data: Mapping[str, Any]) -> tuple[dict[str, Any], EngineSpec | None, Any]:
    """Split an adapter's keyword arguments into (the rest, the engine spec, the reranker object).

    ``model``, ``backend``, the engine options (:data:`ENGINE_OPTION_NAMES`), ``engine_config`` and
    ``reranker`` are taken out; everything else is returned untouched. Exactly one source of engine
    comes out: a spec (the default model when nothing was given) or a reranker.

    Raises:
        ValueError: ``reranker`` together with ``model``, ``backend``, engine options or
            ``engine_config``; or ``engine_config`` together with ``model``/``backend``/options.
        TypeError: A ``reranker`` that does not implement the protocol; bad option names or types.

    Example:
        >>> rest, spec, reranker = split_engine_input({"model": "m", "device": "cpu", "top_n": 3})
        >>> rest, spec.to_dict(), reranker
        ({'top_n': 3}, {'model': 'm', 'backend': None, 'device': 'cpu'}, None)
    """
    rest = dict(data)
    model = rest.pop("model", None)
    backend = rest.pop("backend", None)
    options = {name: rest.pop(name) for name in ENGINE_OPTION_NAMES if name in rest}
    set_options = {name: value for name, value in options.items() if value is not None}
    engine_config = rest.pop("engine_config", None)
    reranker = rest.pop("reranker", None)
    if reranker is not None:
        if model is not None:
            raise ValueError(
                "Pass either `model` (a hub id or local directory) or `reranker` (a reranker instance), "
                "not both."
            )
        given = [*(["backend"] if backend is not None else []), *sorted(set_options)]
        if engine_config is not None:
            given.append("engine_config")
        if given:
            raise ValueError(
                f"Engine options ({', '.join(given)}) apply only with `model`; "
                "configure the `reranker` instance instead."
            )
        return rest, None, check_reranker(reranker)
    if engine_config is not None:
        if model is not None or backend is not None or set_options:
            raise ValueError("Pass either `engine_config` or `model`/`backend`/engine options, not both.")
        return rest, EngineSpec.from_dict(engine_config), None
    return rest, EngineSpec.create(model, backend, **set_options), None


class EngineResolver:
    """Finds an adapter's engine on first use and remembers it.

    With a ``reranker`` it is that object. Otherwise it is ``prism_core.registry.get_engine(config)``
    for the spec's resolved configuration: the one process-wide engine for it, shared by every
    adapter, CLI run or server in the process configured alike. Looking the engine up loads nothing;
    :meth:`warm_up` loads it.

    Example:
        >>> resolver = EngineResolver(EngineSpec.create("org/prism", backend="prism"))
        >>> resolver.ready
        False
    """

    def __init__(self, spec: EngineSpec | None = None, reranker: Reranker | None = None) -> None:
        if (spec is None) == (reranker is None):
            raise ValueError("EngineResolver needs exactly one of spec and reranker")
        self.spec = spec
        self.reranker = reranker
        self._engine: Reranker | None = reranker
        self._lock = threading.Lock()
        self._said_noop = False

    def __eq__(self, other: object) -> bool:
        # Two resolvers are the same when they find the same engine: the same spec (a frozen,
        # comparable configuration), or the same ``reranker`` object. What was looked up already
        # does not count: the lookup gives the same process-wide engine either way.
        if not isinstance(other, EngineResolver):
            return NotImplemented
        return self.spec == other.spec and self.reranker is other.reranker

    def __hash__(self) -> int:
        return hash((self.spec, id(self.reranker)))

    def __getstate__(self) -> dict[str, Any]:
        # The engine is a process-wide resource (a thread, loaded weights): a copy or an unpickled
        # resolver looks it up again; a ``reranker`` object travels as it is.
        return {"spec": self.spec, "reranker": self.reranker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], state["reranker"])  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineResolver:
        # An engine is shared, never copied; a ``reranker`` that the copy of its adapter already
        # copied (pydantic deep-copies fields first, with the same memo) is the copy's.
        reranker = memo.get(id(self.reranker), self.reranker) if self.reranker is not None else None
        return EngineResolver(self.spec, reranker)

    @property
    def ready(self) -> bool:
        """Whether :meth:`get` returns at once (a ``reranker`` object, or an engine already looked up)."""
        return self._engine is not None

    def describe(self) -> str:
        """A short name for the engine (events and logs): the model id or the reranker's class."""
        if self.reranker is not None:
            return type(self.reranker).__name__
        assert self.spec is not None
        return self.spec.describe()

    def get(self) -> Reranker:
        """The engine to call (looked up once; not loaded by this)."""
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                assert self.spec is not None
                config = self.spec.resolve()
                self._engine = registry.get_engine(config)
                logger.debug("resolved engine %r for %r", type(self._engine).__name__, config.to_dict())
            return self._engine

    def warm_up(self) -> Reranker:
        """The engine, loaded when it has a ``load()`` method (idempotent)."""
        engine = self.get()
        load = getattr(engine, "load", None)
        if callable(load):
            load()
        return engine

    def call_kwargs(self, engine: Reranker, settings: RerankSettings, adapter: str) -> dict[str, Any]:
        """The engine call's keyword arguments; says once (INFO) when generation options are no-ops."""
        capabilities = engine.capabilities
        if (
            not capabilities.evidence
            and (settings.use_evidence or settings.add_contribution)
            and not self._said_noop
        ):
            self._said_noop = True
            logger.info(
                "%s: %s only scores (no evidence or contribution): use_evidence and add_contribution "
                "have no effect; documents keep their bodies and contribution is None",
                adapter,
                self.describe(),
            )
        return settings.engine_kwargs(capabilities)


class EngineBacked:
    """What every adapter says about its engine, from its ``engine_config`` and ``_resolver``.

    A mixin for the three adapters (pydantic models and Haystack's plain component alike).

    Example:
        >>> from prism_core.config import EngineSpec
        >>> class Demo(EngineBacked):
        ...     engine_config = EngineSpec(model="some/model", backend="prism")
        >>> Demo().model, Demo().backend
        ('some/model', 'prism')
    """

    if TYPE_CHECKING:  # declared by each adapter (a pydantic field, or set in ``__init__``)
        engine_config: EngineSpec | None
        _resolver: EngineResolver

    @property
    def model(self) -> str | None:
        """The configured model (``None``: the backend's default, or a ``reranker`` object)."""
        return None if self.engine_config is None else self.engine_config.model

    @property
    def backend(self) -> str | None:
        """The configured backend (``None``: told from the checkpoint, or a ``reranker`` object)."""
        return None if self.engine_config is None else self.engine_config.backend

    @property
    def engine(self) -> Reranker:
        """The reranker this adapter calls (looked up on first access; not loaded by this)."""
        return self._resolver.get()
