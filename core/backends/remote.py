"""``RemoteReranker``: the core's reranker protocol over HTTP, against a rerank service.

It talks to ``prism-rerank serve`` (every field: verdicts, contributions, evidence, threshold
applied server-side) and, for scores, to stock rerank servers of every common dialect: Cohere v2
and v1, Jina, Together, vLLM, Infinity and Text Embeddings Inference (see
:mod:`prism_core.backends.remote_apis` for the routes and bodies). Which one it faces it learns
once (``GET /v1/info``, then TEI's ``GET /info``, then the first rerank route that exists), or is
told with ``api=``. A foreign server is asked for every document's score, and
``top_n``/``score_threshold`` are applied here, by the same rule as every local backend. A call
larger than the server's advertised limits is split into several requests and merged with one
global ``top_n``.

Every answer is checked before it is believed: each result's ``index`` an integer in range and
unique, each score a finite number in ``[0, 1]``, and every input document accounted for (all of
them, or exactly ``min(top_n, n)``; with a threshold, no more than asked and none below it). A
server that answers anything else raises :class:`RemoteResponseError` naming the server: a list is
never silently shortened.

Connection errors, 429 and 5xx answers are retried ``max_retries`` times with exponential backoff
and jitter (``Retry-After`` honoured, up to 30 s); a read timeout is not retried (the request may
simply be heavy). Then :class:`RemoteUnavailableError` names the server, the attempts and the last
error.

The parts: this module is the front end (arguments checked, one body of work driven sync or
async); :mod:`.remote_session` makes a call (which route, split, answers checked and merged);
:mod:`.remote_transport` carries HTTP (clients, retries, errors); :mod:`.remote_apis` holds the
dialects' routes and bodies; :mod:`prism_core.wire` reads each result item.

Example:
    >>> from prism_core.backends.remote import RemoteReranker
    >>> reranker = RemoteReranker("http://127.0.0.1:8000", api_key="secret")  # connects on first use
    >>> reranker.rerank("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from prism_core.backends.driving import Work, drive_async, drive_sync
from prism_core.backends.remote_apis import canonical_api
from prism_core.backends.remote_session import Options, RemoteSession, capabilities_of
from prism_core.backends.remote_transport import (
    API_KEY_ENV,
    BACKOFF_BASE,
    BACKOFF_CAP,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    HttpTransport,
    RemoteRequestError,
    RemoteRerankError,
    RemoteResponseError,
    RemoteUnavailableError,
)
from prism_core.budgets import check_time_budget
from prism_core.config import EngineConfig
from prism_core.protocol import SCORE_ONLY, Capabilities
from prism_core.results import PrismResult
from prism_core.validation import (
    check_documents,
    check_long_documents,
    check_optional_int,
    check_query,
    check_rerank_args,
    check_text,
)

__all__ = [
    "API_KEY_ENV",
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "RemoteRequestError",
    "RemoteRerankError",
    "RemoteReranker",
    "RemoteResponseError",
    "RemoteUnavailableError",
    "split_base_url",
]

logger = logging.getLogger(__name__)


def split_base_url(url: Any) -> tuple[str, str | None]:
    """``(base, route)``: ``http(s)://host[:port][/prefix]`` without a trailing slash, and the rerank
    route the URL ended in (``/v2/rerank``, ``/v1/rerank``, ``/rerank``), or ``None``.

    Example:
        >>> split_base_url("http://127.0.0.1:8000/rerank/")
        ('http://127.0.0.1:8000', '/rerank')
    """
    text = check_text(url, "base_url").strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
    route = None
    for path in ("/v2/rerank", "/v1/rerank", "/rerank"):
        if text.endswith(path):
            text, route = text[: -len(path)], path
            break
    if "://" not in text or not text.split("://", 1)[1]:
        raise ValueError(f"base_url has no host: {url!r}")
    return text, route


class RemoteReranker:
    """A reranker over HTTP: ``prism-rerank serve``, or a Cohere-, Jina-, TEI- or Infinity-style server.

    Constructing it is cheap: nothing is sent until the first call. ``capabilities`` comes from the
    server's ``GET /v1/info`` (fetched once); a server without it is taken as score-only.

    Args:
        base_url: The server, e.g. ``"http://127.0.0.1:8000"``; a trailing rerank route
            (``/v2/rerank``, ``/v1/rerank``, ``/rerank``) is taken as the route to post to.
        api_key: Bearer token; ``None`` reads ``PRISM_RERANK_API_KEY`` (unset: no header).
        timeout: Seconds per HTTP request (default 300; connecting gets at most 10 s).
        max_retries: Retries on connection errors, 429 and 5xx (default 3).
        model: Sent as the request's ``model`` (a hosted Cohere-style API needs one; our server and
            most self-hosted ones do not). Not part of :attr:`engine_config`.
        api: The server's rerank API: ``"auto"`` (default: found from ``/v1/info``, TEI's
            ``/info``, then the first of ``/v2/rerank``, ``/v1/rerank``, ``/rerank`` that exists),
            ``"prism"``, ``"cohere"``, ``"cohere-v1"``, ``"jina"``, ``"together"``, ``"infinity"``,
            ``"vllm"`` or ``"tei"`` (see :mod:`prism_core.backends.remote_apis`).
        max_documents: Documents per request at most (a server's advertised limit applies too);
            a larger call is split and merged.

    Raises:
        ValueError: A ``base_url`` that is not an http(s) URL, or a bad option.

    Example:
        >>> reranker = RemoteReranker("http://127.0.0.1:8000", timeout=30, max_retries=2)
        >>> reranker.engine_config.to_dict()
        {'model': 'http://127.0.0.1:8000', 'backend': 'remote', 'timeout': 30.0, 'max_retries': 2}
        >>> reranker.score("what is rust?", ["Rust is a language."])  # doctest: +SKIP
        [0.93]
    """

    backend: ClassVar[str] = "remote"

    def __init__(
        self,
        base_url: Any,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        model: str | None = None,
        api: str = "auto",
        max_documents: int | None = None,
    ) -> None:
        self.base_url, path = split_base_url(base_url)
        self.api = canonical_api(api)
        self.max_documents = check_optional_int(max_documents, "max_documents", minimum=1)
        self.engine_config = EngineConfig(
            model=self.base_url, backend=self.backend, timeout=timeout, max_retries=max_retries
        )
        config = self.engine_config
        self.timeout = DEFAULT_TIMEOUT if config.timeout is None else config.timeout
        self.max_retries = DEFAULT_MAX_RETRIES if config.max_retries is None else config.max_retries
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        api_key = None if api_key is None else check_text(api_key, "api_key")
        self.model = None if model is None else check_text(model, "model")
        self._transport = HttpTransport(
            self.base_url, api_key=api_key, timeout=self.timeout, max_retries=self.max_retries
        )
        self._session = RemoteSession(
            self._transport, api=self.api, path=path, model=self.model, max_documents=self.max_documents
        )

    # ----------------------------------------------------------------- what it is
    def _identity(self) -> tuple[Any, ...]:
        """What must match for two clients of one server to be one (the API key included)."""
        return (self._transport.api_key, self.model, self.api, self._session.path, self.max_documents)

    @classmethod
    def shared(cls, base_url: Any, **options: Any) -> RemoteReranker:
        """The process-wide client for this server and options (a new one if its API key differs).

        Example:
            >>> RemoteReranker.shared("http://127.0.0.1:8000") is RemoteReranker.shared("http://127.0.0.1:8000/")
            True
        """
        from prism_core.registry import shared_engine

        candidate = cls(base_url, **options)
        engine = shared_engine(cls, candidate)
        return engine if engine._identity() == candidate._identity() else candidate

    def __repr__(self) -> str:
        return (
            f"RemoteReranker({self.base_url!r}, timeout={self.timeout!r}, max_retries={self.max_retries!r}, "
            f"api_key={'***' if self._transport.api_key else None})"
        )

    @property
    def config(self) -> dict[str, Any]:
        """The resolved, JSON-safe configuration (defaults filled in; never the API key)."""
        return {
            "model": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "api": self.api,
        }

    @property
    def is_loaded(self) -> bool:
        """Whether the server has been asked what it serves."""
        return self._session.info_known

    def load(self) -> RemoteReranker:
        """Ask the server what it serves now (otherwise done on first use); idempotent.

        Raises:
            RemoteUnavailableError: The server cannot be reached.
        """
        self._drive(self._session.server_info())
        return self

    @property
    def server_info(self) -> Mapping[str, Any] | None:
        """The server's ``/v1/info`` (``None`` for a server without it); fetched once."""
        return self._drive(self._session.server_info())

    @property
    def capabilities(self) -> Capabilities:
        """What the server can do: from ``/v1/info``; score-only for a server without it.

        While the server cannot be reached this says score-only (with a warning) without caching
        it, so that checking a reranker's type never fails; the next call asks again.
        """
        if self.api not in ("auto", "prism"):
            return SCORE_ONLY  # a foreign API: scores only, whatever else the server could do
        try:
            info = self._drive(self._session.server_info(retry=False))  # type checks read this: one try
        except RemoteRerankError as exc:
            logger.warning(
                "%s: cannot read capabilities (%s); assuming score-only for now", self.base_url, exc
            )
            return SCORE_ONLY
        return capabilities_of(info)

    def close(self) -> None:
        """Close the HTTP connections (the reranker opens new ones if used again)."""
        self._transport.close()

    async def aclose(self) -> None:
        """Close the async HTTP connections of the running event loop's client."""
        await self._transport.aclose()

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- public API
    def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """Relevance scores in ``[0, 1]``, in input order (nothing generated; split as :meth:`rerank`).

        Example:
            >>> RemoteReranker("http://127.0.0.1:8000").score("q", [])
            []
        """
        return self._drive(self._score(query, documents, max_tokens_per_doc, long_documents))

    async def ascore(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """:meth:`score` without blocking the event loop (cancelling it closes the request)."""
        return await self._adrive(self._score(query, documents, max_tokens_per_doc, long_documents))

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """Results sorted best first (ties by input position); ``score_threshold`` before ``top_n``.

        Args:
            query: The query (non-empty).
            documents: Candidate texts.
            top_n: Keep the best ``top_n`` results (after the threshold).
            score_threshold: Keep results with ``score >= score_threshold``, in ``[0, 1]``.
            evidence: Ask for contribution and evidence (only a server that generates them does).
            max_tokens_per_doc: The document token budget, sent as ``max_tokens_per_doc``.
            long_documents: ``"truncate"`` or ``"chunk"`` (a prism-rerank server only); ``None``
                leaves it to the server.
            time_budget: Seconds the server may spend (sent as the request's ``time_budget`` to our
                server, which answers by then with what is done; a foreign server is not told).

        A request larger than the server's advertised limits (``max_documents``, ``max_body_bytes``
        of ``/v1/info``; TEI's ``max_client_batch_size``) is sent as several, and the answers are
        merged with one global ``top_n``; each request asks for ``top_n``, so with ``evidence``
        up to ``requests × top_n`` documents get evidence generated while ``top_n`` are returned.

        Raises:
            TypeError, ValueError: Bad input (checked here, as every local backend checks it).
            RemoteRequestError: The server refused the request (4xx), with its reason.
            RemoteResponseError: The server answered an invalid or incomplete result list.
            RemoteUnavailableError: The server could not be reached through every retry.
        """
        work = self._rerank(query, documents, top_n, score_threshold, evidence, max_tokens_per_doc,
                            long_documents, time_budget)  # fmt: skip
        return self._drive(work)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """:meth:`rerank` without blocking the event loop (with ``httpx.AsyncClient``)."""
        work = self._rerank(query, documents, top_n, score_threshold, evidence, max_tokens_per_doc,
                            long_documents, time_budget)  # fmt: skip
        return await self._adrive(work)

    # ----------------------------------------------------------------- the work of a call, once
    def _drive(self, work: Work[Any]) -> Any:
        return drive_sync(work, run=self._transport.run)

    async def _adrive(self, work: Work[Any]) -> Any:
        return await drive_async(work, run=self._transport.arun)

    def _score(
        self, query: Any, documents: Any, max_tokens_per_doc: Any, long_documents: Any
    ) -> Work[list[float]]:
        query, docs = check_query(query), check_documents(documents)
        options = Options(None, None, False, *check_long_documents(max_tokens_per_doc, long_documents))
        scores = [0.0] * len(docs)
        if docs:
            for r in (yield from self._session.call(query, docs, options)):
                scores[r.index] = r.score
        return scores

    def _rerank(self, query: Any, documents: Any, top_n: Any, score_threshold: Any, evidence: Any,
                max_tokens_per_doc: Any, long_documents: Any, time_budget: Any
                ) -> Work[list[PrismResult]]:  # fmt: skip
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        long_options = check_long_documents(max_tokens_per_doc, long_documents)
        options = Options(top_n, score_threshold, evidence, *long_options, check_time_budget(time_budget))
        return (yield from self._session.call(query, docs, options)) if docs else []
