"""Backend benchmark: Qwen3-Reranker and cross-encoders, our runtime against the code it replaces.

Run: ``.venv/bin/python benchmarks/backends.py --device cpu`` (~3-5 min on 2 cores). Writes
``benchmarks/results/<device>/backends.json`` and prints a Markdown table (the "Backends" section of
``RESULTS.md`` is pasted from it). Nothing is downloaded: every model is built locally with random
weights.

(a) **Qwen3-Reranker** on a tiny plain-Qwen3 checkpoint (``build_tiny_checkpoint(dir, "qwen3")``, the
    real Qwen3.5 tokenizer): (1) the model card's reference code
    (:class:`prism_core.testing.qwen3_reference.Qwen3CardReference`: left padding, prefix/suffix
    tokens, ``model(**inputs).logits[:, -1, :]``, ``log_softmax`` over ``[no, yes]``); (1b) the same
    code with ``logits_to_keep=1`` (not the card: it isolates the cost of the card's full-vocabulary
    logits); (2) sentence-transformers ``CrossEncoder`` on the same checkpoint (ST 6 loads a causal LM
    as ``Transformer`` → ``LogitScore(yes, no)``; the tiny checkpoint has no chat template, so one that
    renders the card's prompt exactly is passed); (3) ``prism_core.Qwen3Reranker.score``.
(b) **Cross-encoders** (``BertForSequenceClassification``, one label, the real MiniLM WordPiece
    tokenizer): a tiny BERT (hidden 32, 2 layers: overheads dominate, the worst case for a runtime
    around ``predict``) and a random-weight model of ``cross-encoder/ms-marco-MiniLM-L6-v2``'s shape
    (6 layers, hidden 384): (1) plain ``CrossEncoder.predict`` (default ``batch_size=32``, sigmoid) vs
    (2) ``prism_core.CrossEncoderReranker.score`` (the same ``preprocess`` tokenisation, once per
    request in the caller's thread; token-budget batches of the ``forward`` through the engine loop),
    on uniform-length and mixed-length documents, 30 to 300 per query.

Every contender scores the same pairs; scores are asserted equal to the baseline's (``--tol``).
Timing: one untimed warm-up per contender and workload, then rounds in which every contender runs
once, in rotating order (so load from other processes hits all alike), until each has run
``--min-time`` seconds or ``--max-reps`` times; the median per query is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

logger = logging.getLogger("prism-bench.backends")

Scorer = Callable[[str, list[str]], list[float]]

CARD = "(1) card reference code"
ST_PREDICT = "(1) CrossEncoder.predict"
QUERY = "which settings reduce memory use when training a large model"
WORDS = """
the of and to in is was for on that with as by at from it his an were are which this be or has had not but
they their been have its one new after first also two more other city model water river market system school
group during state between under people year years time world history village music station energy memory
training data engine language trade harbour ship boiling point pressure altitude mountain degree temperature
kettle kernel batch cache token layer paper study result method value report council bridge road railway
church castle museum league season team player album song film series novel author family species forest
island coast north south east west central national Alder Brightwater Castellan Dunmore Everly Fairhaven
""".split()  # noqa: SIM905


# ----------------------------------------------------------------------------- workloads
def make_docs(tokenizer: Any, lengths: Sequence[int], rnd: random.Random) -> list[str]:
    """Synthetic English-like documents of exactly ``lengths`` tokens (without special tokens)."""
    backend = tokenizer.backend_tokenizer
    docs = []
    for n in lengths:
        words = [rnd.choice(WORDS) + ("." if rnd.random() < 0.08 else "") for _ in range(n + 16)]
        ids = backend.encode(" ".join(words), add_special_tokens=False).ids
        docs.append(backend.decode(ids[:n]).strip())
    return docs


def uniform_lengths(n: int, mean: int, rnd: random.Random) -> list[int]:
    """``n`` lengths within ±10 % of ``mean`` (what a chunker produces)."""
    return [max(4, round(mean * rnd.uniform(0.9, 1.1))) for _ in range(n)]


def mixed_lengths(n: int, low: int, high: int, rnd: random.Random) -> list[int]:
    """``n`` lengths log-uniform in ``[low, high]`` (titles, snippets and whole passages mixed)."""
    return [round(low * (high / low) ** rnd.random()) for _ in range(n)]


# ----------------------------------------------------------------------------- timing
def measure(
    contenders: dict[str, Scorer],
    query: str,
    docs: list[str],
    *,
    min_time: float,
    max_reps: int,
    once: frozenset[str] = frozenset(),
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Warm every contender up once, then time rounds (rotating order).

    Contenders in ``once`` (seconds per call) are timed on their first call only. Returns wall
    seconds, process CPU seconds (every thread: the engine loop's included) and the scores.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    scores: dict[str, list[float]] = {}

    def run(name: str) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        scores[name] = contenders[name](query, docs)
        times[name].append(time.perf_counter() - t0)
        cpu[name].append(time.process_time() - c0)

    for name in contenders:
        if name in once:
            run(name)
        else:
            scores[name] = contenders[name](query, docs)  # warm-up
    names = [n for n in contenders if n not in once]
    for rep in range(max_reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            run(name)
        if rep >= 1 and all(sum(times[n]) >= min_time for n in names):
            break
    return times, cpu, scores


def max_diff(a: Sequence[float], b: Sequence[float]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def record(
    part: str,
    model: str,
    workload: str,
    docs: list[str],
    token_counts: list[int],
    contenders: dict[str, Scorer],
    notes: dict[str, str],
    baseline: str,
    args: argparse.Namespace,
    once: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Time one workload for every contender; check every score against the baseline's."""
    times, cpu, scores = measure(
        contenders, QUERY, docs, min_time=args.min_time, max_reps=args.max_reps, once=once
    )
    base = statistics.median(times[baseline])
    base_cpu = statistics.median(cpu[baseline])
    rows = []
    for name in contenders:
        diff = max_diff(scores[name], scores[baseline])
        if diff > args.tol:
            raise AssertionError(f"{model}/{workload}: {name} differs from {baseline} by {diff:.2e}")
        med = statistics.median(times[name])
        med_cpu = statistics.median(cpu[name])
        rows.append(
            {
                "part": part,
                "model": model,
                "workload": workload,
                "n_docs": len(docs),
                "pair_tokens_mean": round(statistics.mean(token_counts), 1),
                "pair_tokens_min": min(token_counts),
                "pair_tokens_max": max(token_counts),
                "contender": name,
                "batching": notes.get(name, ""),
                "reps": len(times[name]),
                "seconds": times[name],
                "median_s": med,
                "cpu_seconds": cpu[name],
                "median_cpu_s": med_cpu,
                "docs_per_s": len(docs) / med,
                "speedup": base / med,
                "cpu_speedup": base_cpu / med_cpu,
                "max_abs_dscore": diff,
            }
        )
        logger.info(
            "%s %s %s: %.1f ms/query (%.2fx), CPU %.1f ms (%.2fx)",
            model, workload, name, 1000 * med, base / med, 1000 * med_cpu, base_cpu / med_cpu,
        )  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- (a) Qwen3-Reranker
def qwen3_chat_template() -> str:
    """A chat template rendering exactly the card's prompt from a (query, document) pair (for ST)."""
    from prism_core.qwen3.prompt import qwen3_template

    probe = qwen3_template().format("\x00Q\x00", "\x00D\x00")
    head, rest = probe.split("\x00Q\x00")
    mid, tail = rest.split("\x00D\x00")
    return (
        '{%- set q = (messages | selectattr("role", "eq", "query") | first).content -%}'
        '{%- set d = (messages | selectattr("role", "eq", "document") | first).content -%}'
        "{{ " + json.dumps(head) + " + q + " + json.dumps(mid) + " + d + " + json.dumps(tail) + " }}"
    )


def bench_qwen3(root: Path, args: argparse.Namespace, rnd: random.Random) -> list[dict[str, Any]]:
    from sentence_transformers import CrossEncoder

    from prism_core import Qwen3Reranker
    from prism_core.testing.qwen3_reference import Qwen3CardReference
    from prism_core.testing.tiny_models import build_tiny_checkpoint

    path = str(build_tiny_checkpoint(root / "tiny-qwen3", "qwen3"))
    card = Qwen3CardReference(path, device=args.device)

    class KeepOne:  # the card's code with logits_to_keep=1 (the only change)
        def __init__(self, model: Any) -> None:
            self.model = model

        def __call__(self, **inputs: Any) -> Any:
            return self.model(**inputs, logits_to_keep=1)

    card_keep1 = Qwen3CardReference(KeepOne(card.model), card.tokenizer, device=args.device)
    st = CrossEncoder(path, device=args.device, processor_kwargs={"chat_template": qwen3_chat_template()})
    ours = Qwen3Reranker(path, device=args.device)
    bs = args.qwen3_batch_size

    def st_scores(batch_size: int) -> Scorer:
        def fn(q: str, docs: list[str]) -> list[float]:
            out = st.predict([(q, d) for d in docs], batch_size=batch_size, show_progress_bar=False)
            return [float(x) for x in out]

        return fn

    contenders: dict[str, Scorer] = {
        CARD: lambda q, d: card.score(q, d, batch_size=bs),
        "(1b) card code + logits_to_keep=1": lambda q, d: card_keep1.score(q, d, batch_size=bs),
        f"(2) ST CrossEncoder, batch_size={bs}": st_scores(bs),
        "(2b) ST CrossEncoder, batch_size=32 (default)": st_scores(32),
        "(3) Qwen3Reranker.score": ours.score,
    }
    notes = {
        CARD: f"{bs} pairs/pass, full-vocab logits at every position",
        "(1b) card code + logits_to_keep=1": f"{bs} pairs/pass",
        f"(2) ST CrossEncoder, batch_size={bs}": f"{bs} pairs/pass (char-length sorted)",
        "(2b) ST CrossEncoder, batch_size=32 (default)": "32 pairs/pass (char-length sorted)",
        "(3) Qwen3Reranker.score": f"≤{ours.batch_tokens} padded tokens/pass, yes/no rows only",
    }
    prompt_len = len(ours.prompt_tokenizer.encode(QUERY, ["x"])[0].ids) - 1
    rows = []
    for name, lengths in [
        ("uniform-30 (~96 tok)", uniform_lengths(30, 96, rnd)),
        ("mixed-30 (8-256 tok)", mixed_lengths(30, 8, 256, rnd)),
    ]:
        docs = make_docs(card.tokenizer, lengths, rnd)
        counts = [len(p.ids) for p in ours.prompt_tokenizer.encode(QUERY, docs)]
        logger.info("qwen3 %s: prompt %d tokens + documents", name, prompt_len)
        rows += record(
            "a", "tiny-qwen3", name, docs, counts, contenders, notes, CARD, args, once=frozenset({CARD})
        )
    return rows


# ----------------------------------------------------------------------------- (b) cross-encoders
def bench_cross_encoders(root: Path, args: argparse.Namespace, rnd: random.Random) -> list[dict[str, Any]]:
    from sentence_transformers import CrossEncoder

    from prism_core import CrossEncoderReranker
    from prism_core.backends.cross_encoder import untruncated_lengths
    from prism_core.testing.tiny_cross_encoder import MINILM_L6_BERT, build_tiny_cross_encoder

    short, long_ = (30, 300) if not args.quick else (30, 30)
    tiny_workloads = {
        f"uniform-{short} (~64 tok)": lambda: uniform_lengths(short, 64, rnd),
        f"uniform-{long_} (~64 tok)": lambda: uniform_lengths(long_, 64, rnd),
        f"uniform-{short} (~400 tok)": lambda: uniform_lengths(short, 400, rnd),
        f"mixed-{short} (8-480 tok)": lambda: mixed_lengths(short, 8, 480, rnd),
        f"mixed-{long_} (8-480 tok)": lambda: mixed_lengths(long_, 8, 480, rnd),
    }
    # The MiniLM-sized model costs ~0.3 ms per token on 2 cores: 300 long documents would take minutes.
    minilm_workloads = {
        f"uniform-{short} (~64 tok)": lambda: uniform_lengths(short, 64, rnd),
        f"uniform-{long_} (~32 tok)": lambda: uniform_lengths(long_, 32, rnd),
        f"uniform-{short} (~400 tok)": lambda: uniform_lengths(short, 400, rnd),
        f"mixed-{short} (8-480 tok)": lambda: mixed_lengths(short, 8, 480, rnd),
        "mixed-100 (8-480 tok)": lambda: mixed_lengths(100, 8, 480, rnd),
    }
    models: dict[str, tuple[dict[str, Any], dict[str, Callable[[], list[int]]]]] = {
        "tiny-bert (h32, 2 layers)": ({}, tiny_workloads),
        "minilm-l6-shape (h384, 6 layers)": (MINILM_L6_BERT, minilm_workloads),
    }
    if args.quick:
        models = {k: (shape, dict(list(w.items())[:2])) for k, (shape, w) in models.items()}
    rows = []
    for model_name, (shape, workloads) in models.items():
        path = str(build_tiny_cross_encoder(root / model_name.split()[0], **shape))
        st = CrossEncoder(path, device=args.device)
        ours = CrossEncoderReranker(path, device=args.device)
        ours.load()

        def st_predict(q: str, docs: list[str]) -> list[float]:
            out = st.predict([(q, d) for d in docs], show_progress_bar=False)  # noqa: B023
            return [float(x) for x in out]

        contenders: dict[str, Scorer] = {ST_PREDICT: st_predict, "(2) CrossEncoderReranker.score": ours.score}
        notes = {
            ST_PREDICT: "32 pairs/pass (char-length sorted)",
            "(2) CrossEncoderReranker.score": (
                f"{ours.batch_tokens}+ padded tok/pass (default), token-length sorted"
            ),
        }
        for name, make in workloads.items():
            docs = make_docs(ours.tokenizer, make(), rnd)
            counts = untruncated_lengths(ours.cross_encoder, [(QUERY, d) for d in docs])
            rows += record("b", model_name, name, docs, counts, contenders, notes, ST_PREDICT, args)
    return rows


# ----------------------------------------------------------------------------- report
def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| part | model | workload | pair tokens (min–max) | contender | batching | docs/s | ms/query | "
        "speed-up | CPU ms/query | CPU speed-up | max abs Δscore |\n"
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for r in rows:
        is_base = r["speedup"] == 1.0 and r["max_abs_dscore"] == 0
        speedup = "—" if is_base else f"**{r['speedup']:.2f}×**"
        cpu_speedup = "—" if is_base else f"{r['cpu_speedup']:.2f}×"
        span = f"{r['pair_tokens_min']}–{r['pair_tokens_max']}"
        lines.append(
            f"| {r['part']} | {r['model']} | {r['workload']} | {span} | "
            f"{r['contender']} | {r['batching']} | {r['docs_per_s']:.1f} | {1000 * r['median_s']:.1f} | "
            f"{speedup} | {1000 * r['median_cpu_s']:.1f} | {cpu_speedup} | {r['max_abs_dscore']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--parts", nargs="*", choices=["a", "b"], default=["a", "b"])
    ap.add_argument("--quick", action="store_true", help="a few 30-document workloads (smoke run)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per contender and workload")
    ap.add_argument("--max-reps", type=int, default=5)
    ap.add_argument("--qwen3-batch-size", type=int, default=8, help="pairs per pass for the card and ST")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest accepted score difference")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, help="JSON path (default results/<device>/backends.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for name in ("sentence_transformers", "transformers", "prism_core"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")

    import sentence_transformers
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rnd = random.Random(1234)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="prism-bench-backends-") as tmp:
        root = Path(tmp)
        if "a" in args.parts:
            rows += bench_qwen3(root, args, rnd)
        if "b" in args.parts:
            rows += bench_cross_encoders(root, args, rnd)
    meta = {
        "command": "python benchmarks/backends.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "total_s": round(time.perf_counter() - t_start, 1),
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "python": platform.python_version(),
        },
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "min_time": args.min_time,
        "max_reps": args.max_reps,
    }
    out = args.out or HERE / "results" / args.device / "backends.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(markdown(rows))
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(
        f"\n{meta['date']} · {meta['total_s']} s · {meta['cores']} cores, {meta['torch_threads']} torch "
        f"threads · load {load_before} → {meta['load_after']} · wrote {shown}"
    )


if __name__ == "__main__":
    main()
