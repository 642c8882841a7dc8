"""One rerank call against a server, written once for the sync and async paths of ``RemoteReranker``.

:class:`RemoteSession` knows which server it faces (``GET /v1/info``, then TEI's ``GET /info``, then
the first rerank route that exists, or what ``api=`` said), splits a call that is larger than the
server's advertised limits into several requests, checks every answer before it is believed, and
merges the answers with one global ``top_n``. Its methods are bodies of work
(:data:`prism_core.backends.driving.Work`) that yield HTTP steps to an
:class:`~prism_core.backends.remote_transport.HttpTransport`.

An answer is believed when each result's ``index`` is an integer in range and unique, each score a
finite number in ``[0, 1]`` (:func:`prism_core.wire.result_from_item`), and every input document
is accounted for (all of them, or exactly ``min(top_n, n)``; with a threshold, no more than asked
and none below it); otherwise :class:`RemoteResponseError` names the server.

Example:
    >>> from prism_core.backends.remote_transport import HttpTransport
    >>> transport = HttpTransport("http://127.0.0.1:9", api_key=None, timeout=5.0, max_retries=0)
    >>> session = RemoteSession(transport, api="tei", path=None, model=None, max_documents=None)
    >>> session.candidates(Route("tei", "/rerank", None, None))
    [('/rerank', 'tei')]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from prism_core.backends.driving import Work
from prism_core.backends.remote_apis import API_ROUTES, PROBE_ORDER, answer_items, request_body, tei_limits
from prism_core.backends.remote_transport import HttpTransport, RemoteRequestError, RemoteResponseError
from prism_core.grounding import ground_result
from prism_core.protocol import SCORE_ONLY, Capabilities
from prism_core.ranking import select
from prism_core.results import PrismResult
from prism_core.wire import result_from_item

logger = logging.getLogger(__name__)

INFO_PATH = "/v1/info"
TEI_INFO_PATH = "/info"

#: What one request of a call is: ``(offset, body, documents, expected (top_n, threshold))``.
Planned = tuple[int, dict[str, Any], int, tuple[int | None, float | None]]


@dataclasses.dataclass(frozen=True)
class Route:
    """Where and how to post: the API, its path, and the server's advertised limits."""

    api: str
    path: str
    max_documents: int | None
    max_body_bytes: int | None


@dataclasses.dataclass(frozen=True)
class Options:
    """A call's options, checked: the selection, evidence and the long-document handling."""

    top_n: int | None
    threshold: float | None
    evidence: bool
    max_tokens_per_doc: int | None
    long_documents: str | None
    time_budget: float | None = None


def capabilities_of(info: Mapping[str, Any] | None) -> Capabilities:
    """The capabilities a ``/v1/info`` answer states (score-only without one)."""
    if info is None:
        return SCORE_ONLY
    caps = info.get("capabilities") or {}
    return Capabilities(verdict=caps.get("verdict") is True, evidence=caps.get("evidence") is True)


class RemoteSession:
    """What a client knows about one server (its info, its route) and how it makes a call.

    Args:
        transport: The connections and retry policy.
        api: The canonical API name (``"auto"`` to find it).
        path: The rerank route the base URL ended in, or ``None``.
        model: Sent as the request's ``model`` (or ``None``).
        max_documents: Documents per request at most (the server's advertised limit applies too).
    """

    def __init__(
        self,
        transport: HttpTransport,
        *,
        api: str,
        path: str | None,
        model: str | None,
        max_documents: int | None,
    ) -> None:
        self.transport = transport
        self.base_url = transport.base_url
        self.api = api
        self.path = path
        self.model = model
        self.max_documents = max_documents
        self.info: Mapping[str, Any] | None = None
        self.info_known = False
        self.route: Route | None = None

    # ----------------------------------------------------------------- what the server is
    def server_info(self, retry: bool = True) -> Work[Mapping[str, Any] | None]:
        """The server's ``/v1/info`` (``None`` for a server without it), asked once."""
        if not self.info_known:
            response = yield from self.transport.request("GET", INFO_PATH, missing_ok=True, retry=retry)
            info = None if response is None else self.transport.json(response, INFO_PATH)
            if response is None:  # no /v1/info: a foreign rerank server
                logger.info(
                    "%s has no %s: treating it as a score-only rerank server", self.base_url, INFO_PATH
                )
            elif not isinstance(info, Mapping) or not isinstance(info.get("capabilities"), Mapping):
                info = None
            self.info, self.info_known = info, True
        return self.info

    def resolve(self) -> Work[Route]:
        """The route to post to, found once."""
        if self.route is None:
            info = (yield from self.server_info()) if self.api in ("auto", "prism") else None
            route = self._route_after_info(info)
            if route is None:
                response = yield from self.transport.request("GET", TEI_INFO_PATH, missing_ok=True)
                route = self._route_after_tei_info(response)
            self.route = route
        return self.route

    def _route_after_info(self, info: Mapping[str, Any] | None) -> Route | None:
        """The route once ``/v1/info`` is known, or ``None`` when TEI's ``/info`` must be asked."""
        if info is not None and self.api in ("auto", "prism"):
            limits = info.get("limits") or {}
            return Route("prism", self.path or API_ROUTES["prism"], _limit(limits, "max_documents"),
                         _limit(limits, "max_body_bytes"))  # fmt: skip
        if self.api == "prism":  # asked for, but the server has no /v1/info: score-only Cohere v2
            return Route("cohere", self.path or API_ROUTES["cohere"], None, None)
        if self.api in ("auto", "tei"):
            return None
        return Route(self.api, self.path or API_ROUTES[self.api], None, None)

    def _route_after_tei_info(self, response: Any) -> Route:
        limits = tei_limits(self.transport.json(response, TEI_INFO_PATH)) if response is not None else None
        if limits is not None or self.api == "tei":
            return Route("tei", self.path or API_ROUTES["tei"], (limits or {}).get("max_documents"), None)
        return Route("auto", self.path or "", None, None)  # the first route that exists is kept

    def candidates(self, route: Route) -> list[tuple[str, str]]:
        """``(path, api)`` pairs to try: the route, or every known route for an unprobed server."""
        if route.api != "auto":
            return [(route.path, route.api)]
        if route.path:  # a base URL that ended in a route: that route, with the documents body
            return [(route.path, "cohere-v1" if route.path != "/v2/rerank" else "cohere")]
        return list(PROBE_ORDER)

    # ----------------------------------------------------------------- one call, maybe split
    def call(self, query: str, docs: list[str], options: Options) -> Work[list[PrismResult]]:
        """The call's results, best first, grounded (one or more requests, merged)."""
        route = yield from self.resolve()
        for path, api in self.candidates(route):
            plan = self.plan(route, api, query, docs, options)
            parts: list[list[PrismResult]] = []
            for number, (_, body, n, expect) in enumerate(plan):
                missing_ok = number == 0 and route.api == "auto"
                response = yield from self.transport.request("POST", path, body, missing_ok=missing_ok)
                if response is None:
                    break  # no such route here: try the next
                parts.append(self.check_answer(api, self.transport.json(response, path), n, expect))
            else:
                self.route = Route(api, path, route.max_documents, route.max_body_bytes)
                merged = merge(parts, [p[0] for p in plan], options)
                return [ground_result(r, docs[r.index]) for r in merged]
        tried = ", ".join(path for path, _ in PROBE_ORDER)
        raise RemoteRequestError(
            f"the server at {self.base_url} answers none of the rerank routes {tried} (HTTP 404/405); "
            "check the base URL, or pass api= ('cohere', 'cohere-v1', 'jina', 'infinity', 'tei', ...)",
            url=self.base_url,
            status=404,
        )

    def plan(self, route: Route, api: str, query: str, docs: list[str], options: Options) -> list[Planned]:
        """``(offset, body, n, expected selection)`` per request: the documents split so that each
        request fits the server's advertised document count and body size."""
        if options.long_documents == "chunk" and api != "prism":
            raise ValueError(
                f"long_documents='chunk' needs a prism-rerank server; the server at {self.base_url} "
                f"speaks the {api!r} API"
            )
        batches = _split(query, docs, self._most(route), route.max_body_bytes)
        evidence = bool(options.evidence and api == "prism" and capabilities_of(self.info).evidence)
        plan = []
        for offset, part in batches:
            body = request_body(
                api, query, part, model=self.model, top_n=options.top_n, threshold=options.threshold,
                evidence=evidence, max_tokens_per_doc=options.max_tokens_per_doc,
                long_documents=options.long_documents,
            )  # fmt: skip
            if api == "prism" and options.time_budget is not None:  # only our server takes it
                body["time_budget"] = options.time_budget
            expect = (options.top_n, options.threshold) if api == "prism" else (None, None)
            plan.append((offset, body, len(part), expect))
        if len(plan) > 1:
            logger.info(
                "%s: %d documents sent as %d requests (server limits: %s documents, %s bytes)",
                self.base_url, len(docs), len(plan), route.max_documents, route.max_body_bytes,
            )  # fmt: skip
        return plan

    def _most(self, route: Route) -> int | None:
        most = route.max_documents if self.max_documents is None else self.max_documents
        if route.max_documents is not None:
            most = min(most or route.max_documents, route.max_documents)
        return most

    # ----------------------------------------------------------------- answers
    def check_answer(
        self, api: str, data: Any, n: int, expect: tuple[int | None, float | None]
    ) -> list[PrismResult]:
        """One answer's results, checked (the selection over every request is made by :func:`merge`)."""

        def bad(reason: str) -> RemoteResponseError:
            return RemoteResponseError(
                f"the rerank server at {self.base_url} answered an invalid result list for {n} document"
                f"{'s' if n != 1 else ''}: {reason}",
                url=self.base_url,
                status=200,
            )

        items = answer_items(api, data)
        if not isinstance(items, list):
            shape = "a list" if api == "tei" else "an object with a 'results' list"
            raise bad(f"expected {shape}, got {str(data)[:200]!r}")
        asked_top_n, asked_threshold = expect
        seen: set[int] = set()
        results = []
        unscored = []  # our server's time budget ran out before these were scored: listed last
        for position, item in enumerate(items):
            result = result_from_item(item, position, n, bad)
            if result.index in seen:
                raise bad(f"results[{position}] repeats index {result.index}")
            seen.add(result.index)
            if not result.scored:
                unscored.append(result)
            elif asked_threshold is not None and result.score < asked_threshold:
                raise bad(
                    f"results[{position}] scores {result.score} below the score_threshold {asked_threshold}"
                )
            else:
                results.append(result)
        most = n - len(unscored) if asked_top_n is None else min(asked_top_n, n - len(unscored))
        if asked_threshold is None and len(results) != most and not unscored:
            missing = sorted(set(range(n)) - seen)
            what = f"; missing indices {missing[:20]}" if asked_top_n is None else ""
            raise bad(f"expected {most} results, got {len(results)}{what}")
        if len(results) > most:
            raise bad(f"expected at most {most} results, got {len(results)}")
        return results + unscored


def merge(parts: list[list[PrismResult]], offsets: list[int], options: Options) -> list[PrismResult]:
    """One list over every request, selected by the one ranking rule (a global ``top_n``); results
    the server could not score within a ``time_budget`` come last, in input order."""
    merged = [
        r if not offset else dataclasses.replace(r, index=r.index + offset)
        for part, offset in zip(parts, offsets, strict=True)
        for r in part
    ]
    unscored = sorted((r for r in merged if not r.scored), key=lambda r: r.index)
    return select([r for r in merged if r.scored], options.top_n, options.threshold) + unscored


def _split(
    query: str, docs: list[str], most: int | None, max_body_bytes: int | None
) -> list[tuple[int, list[str]]]:
    """``(offset, documents)`` per request: at most ``most`` documents, bodies under 90 % of the limit."""
    budget = None if max_body_bytes is None else int(max_body_bytes * 0.9) - 1024
    batches: list[tuple[int, list[str]]] = []
    start, size = 0, 0
    fixed = len(json.dumps(query).encode())
    for i, doc in enumerate(docs):
        cost = len(json.dumps(doc).encode()) + 2
        full = (most is not None and i - start >= most) or (
            budget is not None and i > start and fixed + size + cost > budget
        )
        if full:
            batches.append((start, docs[start:i]))
            start, size = i, 0
        size += cost
    batches.append((start, docs[start:]))
    return batches


def _limit(limits: Any, name: str) -> int | None:
    value = limits.get(name) if isinstance(limits, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
