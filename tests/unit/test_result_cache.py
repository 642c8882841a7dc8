"""The result cache on its own (no model): bounds, eviction, keys, in-flight waiting, release."""

from __future__ import annotations

import threading
import time

import pytest

from prism_core.caching.pair_cache import (
    ENTRY_OVERHEAD,
    CachedPair,
    ResultCache,
    configure_result_cache,
    result_cache,
)
from prism_core.results import PrismResult


def pair(i: int, text: str = "") -> CachedPair:
    base = PrismResult(index=i, score=0.5, logit=0.0, relevant=False)
    full = None if not text else PrismResult(index=i, score=0.5, logit=0.0, relevant=True, raw_output=text)
    return CachedPair(base, full)


def store(cache: ResultCache, keys: list[bytes], pairs: dict[int, CachedPair]) -> None:
    claim = cache.begin(keys)
    cache.finish(claim, "ns", pairs, served=len(claim.found))


def test_keys_differ_by_namespace_query_and_document() -> None:
    k = ResultCache.key
    keys = {
        k(("prism", "m", 1), "q", "d"),
        k(("prism", "m", 2), "q", "d"),
        k(("prism", "m", 1), "q2", "d"),
        k(("prism", "m", 1), "q", "d2"),
        k(("prism", "m", 1), "qd", ""),  # no ambiguity from concatenation
    }
    assert len(keys) == 5
    assert k("ns", "q", "d") == k("ns", "q", "d")


def test_hit_returns_the_stored_object_and_counts() -> None:
    cache = ResultCache(max_entries=10, max_bytes=1 << 20)
    keys = [cache.key("ns", "q", d) for d in ("a", "b")]
    store(cache, keys, {0: pair(0), 1: pair(1, "yes<evidence>x</evidence>")})
    claim = cache.begin(keys)
    assert set(claim.found) == {0, 1} and not claim.owned
    assert claim.found[1].full is not None and claim.found[1].full.raw_output == "yes<evidence>x</evidence>"
    cache.finish(claim, "ns", {}, served=2)
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)
    assert cache.stats.for_engine("ns") == {"hits": 2, "misses": 2}


def test_entry_bound_evicts_least_recently_used() -> None:
    cache = ResultCache(max_entries=2, max_bytes=1 << 20)
    a, b, c = (cache.key("ns", "q", d) for d in "abc")
    store(cache, [a, b], {0: pair(0), 1: pair(1)})
    cache.finish(cache.begin([a]), "ns", {}, served=1)  # touch a: b is now the oldest
    store(cache, [c], {0: pair(0)})
    assert cache.stats.evictions == 1 and len(cache) == 2
    claim = cache.begin([a, b, c])
    assert set(claim.found) == {0, 2}
    cache.abandon(claim)


def test_byte_bound_and_size_estimate() -> None:
    big = "x" * 1000
    cache = ResultCache(max_entries=100, max_bytes=2 * (ENTRY_OVERHEAD + 1000) + 10)
    keys = [cache.key("ns", "q", str(i)) for i in range(3)]
    store(cache, keys, {i: pair(i, big) for i in range(3)})
    assert cache.stats.bytes <= cache.max_bytes
    assert len(cache) == 2 and cache.stats.evictions == 1
    assert cache.stats.entries == 2 and cache.stats.bytes == 2 * (ENTRY_OVERHEAD + 1000)
    # an entry bigger than the whole cache is not stored (and evicts nothing)
    store(cache, [cache.key("ns", "q", "huge")], {0: pair(0, "y" * 10_000)})
    assert len(cache) == 2 and cache.stats.evictions == 1


def test_a_full_result_is_never_replaced_by_nothing() -> None:
    cache = ResultCache()
    key = cache.key("ns", "q", "d")
    store(cache, [key], {0: pair(0, "generated")})
    store(cache, [key], {0: pair(0)})  # a later score-only computation of the same pair
    claim = cache.begin([key])
    assert claim.found[0].full is not None
    cache.abandon(claim)


def test_off_cache_stores_nothing() -> None:
    cache = ResultCache(max_entries=0)
    key = cache.key("ns", "q", "d")
    store(cache, [key], {0: pair(0)})
    claim = cache.begin([key])
    assert not claim.found and not claim.owned and claim.missing == [0]


def test_a_caller_missing_only_in_flight_pairs_waits_for_them() -> None:
    cache = ResultCache()
    keys = [cache.key("ns", "q", d) for d in "ab"]
    first = cache.begin(keys)
    assert first.owned == [0, 1]
    second = cache.begin(keys)
    assert not second.owned and set(second.waiting) == {0, 1}
    waited = threading.Thread(target=cache.wait, args=(second, None))
    waited.start()
    time.sleep(0.05)
    assert waited.is_alive(), "the second caller did not wait for the first"
    cache.finish(first, "ns", {0: pair(0), 1: pair(1)}, served=0)
    waited.join(5)
    assert not waited.is_alive() and set(second.found) == {0, 1}
    assert cache.stats.waits == 2


def test_an_abandoned_claim_releases_its_waiters_who_then_compute() -> None:
    cache = ResultCache()
    key = cache.key("ns", "q", "d")
    first = cache.begin([key])
    second = cache.begin([key])
    waited = threading.Thread(target=cache.wait, args=(second, None))
    waited.start()
    cache.abandon(first)  # failed or cancelled: nothing stored
    waited.join(5)
    assert not waited.is_alive() and second.missing == [0]
    third = cache.begin([key])
    assert third.owned == [0], "the pair is no longer in flight after the owner gave up"
    cache.abandon(third)


def test_waiting_stops_at_the_deadline() -> None:
    cache = ResultCache()
    key = cache.key("ns", "q", "d")
    cache.begin([key])  # owned by a caller that never finishes
    second = cache.begin([key])
    start = time.monotonic()
    cache.wait(second, time.monotonic() + 0.05)
    assert time.monotonic() - start < 1.0 and second.missing == [0]


def test_a_caller_with_pairs_of_its_own_never_waits() -> None:
    cache = ResultCache()
    a, b = cache.key("ns", "q", "a"), cache.key("ns", "q", "b")
    cache.begin([a])  # another caller computes a
    mine = cache.begin([a, b])
    assert mine.owned == [1] and set(mine.waiting) == {0}
    start = time.monotonic()
    cache.wait(mine, None)  # returns at once: waiting while owning could deadlock two callers
    assert time.monotonic() - start < 0.5 and mine.missing == [0, 1]


def test_a_document_repeated_in_one_call_is_claimed_once() -> None:
    cache = ResultCache()
    claim = cache.begin([cache.key("ns", "q", "d")] * 2)
    assert claim.owned == [0] and claim.missing == [0, 1]
    cache.abandon(claim)


def test_process_wide_cache_is_configurable() -> None:
    previous = result_cache()
    try:
        cache = configure_result_cache(max_entries=3, max_bytes=4096)
        assert result_cache() is cache and cache.enabled
        assert not configure_result_cache(max_entries=0).enabled
        with pytest.raises(ValueError, match="max_entries=-1"):
            ResultCache(max_entries=-1)
    finally:
        configure_result_cache(previous.max_entries, previous.max_bytes)


def test_the_earlier_module_path_is_the_same_cache() -> None:
    from prism_core.caching import pair_cache, results

    assert results.ResultCache is pair_cache.ResultCache
    assert results.result_cache() is pair_cache.result_cache()
