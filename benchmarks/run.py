"""Prism-Reranker benchmark: the model card's loop vs CrossEncoder vs PrismReranker, one command.

    python benchmarks/run.py                      # CPU, tiny random models (≈15 min on 2 cores)
    python benchmarks/run.py --device cuda        # GPU, 0.8B-shape random bf16 models
    python benchmarks/run.py --quick              # smoke run of every code path (minutes)

Writes ``benchmarks/RESULTS.md`` (full runs; quick runs write under ``benchmarks/results/quick/``),
raw JSON per model under ``benchmarks/results/<device>/`` and a throughput plot
``benchmarks/results/throughput_<device>.png``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
logger = logging.getLogger("prism-bench")

#: Documents per query from which a web workload fills whole batches (the memory sweep starts here).
MEMORY_SWEEP_FROM = 100

CONTENDERS = ["loop", "loop_score", "cross_encoder", "prism_score", "prism_rerank", "prism_rerank_bt32k"]
#: Extra data points, not one of the four contenders: the engine with a non-default setting.
VARIANTS = {"prism_rerank_bt32k": {"batch_tokens": 32768}}
LABELS = {
    "loop": "(1) card loop, full",
    "loop_score": "(1) card loop, score only",
    "cross_encoder": "(2) CrossEncoder, score only",
    "prism_score": "(3) PrismReranker.score",
    "prism_rerank": "(4) PrismReranker.rerank + evidence",
    "prism_rerank_bt32k": "(4b) = (4) with batch_tokens=32768 (not default)",
}
#: The contender each one's speed-up is measured against (same work: score-only vs score-only).
BASELINE = {
    "loop": "loop",
    "loop_score": "loop_score",
    "cross_encoder": "loop_score",
    "prism_score": "loop_score",
    "prism_rerank": "loop",
    "prism_rerank_bt32k": "loop",
}
LENGTHS = {"short": 128, "web": 512, "long": 2000}
QUERIES = [
    "what temperature does water boil at on a high mountain",
    "how did the harbour trade change the economy of the old city",
    "which settings reduce memory use when training a large model",
]
WORDS = """
the of and to in is was for on that with as by at from it his an were are which this be or has had not but
they their been have its one new after first also two more other city model water river market system school
group during state between under people year years time world history village music station energy memory
training data engine language trade harbour ship boiling point pressure altitude mountain degree temperature
kettle kernel batch cache token layer paper study result method value report council bridge road railway
church castle museum league season team player album song film series novel author family species forest
island coast north south east west central national
""".split()  # noqa: SIM905
NAMES = [
    "Alder",
    "Brightwater",
    "Castellan",
    "Dunmore",
    "Everly",
    "Fairhaven",
    "Grimsby",
    "Halloran",
    "Ivers",
]

#: (peak dense bf16 FLOP/s, HBM bytes/s) by GPU name fragment.
GPU_PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12)}


# ----------------------------------------------------------------------------- plan
def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Models, workloads and knobs for this device and mode."""
    if args.device == "cuda":
        workloads = [("web", 10), ("web", 30), ("web", 100), ("long", 30), ("web", 300)]
        p = dict(
            dtype="bfloat16", queries=2, evidence=150, min_time=2.0, max_reps=5, target_workload="web-30"
        )
        if args.quick:
            workloads = [("web", 10), ("web", 30)]
            p.update(queries=1, evidence=32, min_time=0.0, max_reps=1)
        models = [
            ("qwen3_5-0.8b", "qwen3_5_0_8b_text.json", None),
            ("qwen3-0.8b", "qwen3_dense_0_8b.json", None),
        ]
    else:
        workloads = [("web", 10), ("web", 30), ("web", 100), ("short", 30), ("long", 30), ("web", 300)]
        p = dict(dtype="float32", queries=3, evidence=64, min_time=2.0, max_reps=5, target_workload=None)
        models = [("tiny-qwen3_5", None, "qwen3_5"), ("tiny-qwen3", None, "qwen3")]
        if args.quick:
            # Small workloads; models built through the GPU path (config JSON → random weights), shrunk.
            workloads = [("web", 3), ("web", 6), ("short", 6)]
            p.update(queries=2, evidence=8, min_time=0.0, max_reps=1)
            models = [
                ("mini-qwen3_5", "qwen3_5_0_8b_text.json", "qwen3_5"),
                ("mini-qwen3", "qwen3_dense_0_8b.json", "qwen3"),
            ]
    # Memory only: one query of 300 documents, run by PrismReranker's contenders (the loop would take
    # minutes and its memory does not depend on the number of documents).
    p["engine_only"] = [] if args.quick else ["web-300"]
    if args.queries:
        p["queries"] = args.queries
    if args.evidence_tokens:
        p["evidence"] = args.evidence_tokens
    p["workloads"] = [f"{k}-{n}" for k, n in workloads]
    p["workload_shapes"] = dict(zip(p["workloads"], workloads, strict=False))
    p["models"] = [m for m in models if not args.models or m[0] in args.models]
    wanted = args.contenders or [c for c in CONTENDERS if c not in VARIANTS or args.device == "cpu"]
    p["contenders"] = [c for c in CONTENDERS if c in wanted]
    return p


# ----------------------------------------------------------------------------- checkpoints
def shrink_overrides(arch: str) -> dict[str, Any]:
    from prism_core.testing.tiny_models import tiny_config

    cfg = tiny_config(arch).to_dict()
    keys = [
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "num_hidden_layers",
        "layer_types",
        "initializer_range",
        "linear_num_key_heads",
        "linear_num_value_heads",
        "linear_key_head_dim",
        "linear_value_head_dim",
    ]
    return {k: cfg[k] for k in keys if k in cfg}


def build_config_checkpoint(
    config_file: Path, dtype_name: str, overrides: dict[str, Any] | None, seed: int = 0
) -> Path:
    """A random-weight checkpoint of the shape in ``config_file`` (cached): the GPU path's models."""
    import hashlib

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from prism_core.testing.tiny_models import (
        IM_END_ID,
        PAD_ID,
        build_qwen35_tokenizer,
        default_cache_dir,
        init_random_weights,
    )

    raw = json.loads(config_file.read_text())
    raw.update(overrides or {})
    key = hashlib.sha1(json.dumps([raw, dtype_name, seed], sort_keys=True).encode()).hexdigest()[:12]
    out = default_cache_dir() / f"bench-{config_file.stem}-{dtype_name}-{key}"
    if (out / "BENCH_RANDOM_MODEL.txt").exists():
        return out
    logger.info("building random-weight %s (%s) in %s", config_file.name, dtype_name, out)
    model_type = raw.pop("model_type")
    config = AutoConfig.for_model(model_type, **raw)
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    init_random_weights(model, seed)
    model.generation_config = GenerationConfig(eos_token_id=IM_END_ID, pad_token_id=PAD_ID, do_sample=False)
    tmp = Path(tempfile.mkdtemp(prefix=".bench-", dir=default_cache_dir()))
    model.save_pretrained(tmp)
    build_qwen35_tokenizer(tmp)
    (tmp / "BENCH_RANDOM_MODEL.txt").write_text(f"random weights, shape of {config_file.name}, seed {seed}\n")
    del model
    tmp.rename(out)
    return out


def model_path(entry: tuple[str, str | None, str | None], dtype_name: str, quick: bool) -> Path:
    _, config_file, arch = entry
    if config_file is None:
        from prism_core.testing.tiny_models import tiny_checkpoint

        assert arch is not None
        return tiny_checkpoint(arch)  # type: ignore[arg-type]
    overrides = shrink_overrides(arch) if (quick and arch) else None
    return build_config_checkpoint(HERE / "configs" / config_file, dtype_name, overrides)


def model_facts(path: Path) -> dict[str, Any]:
    """Parameter counts and the shape numbers the physical limits need (meta device, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    facts = {
        "params": total,
        "embedding_params": emb,
        "non_embedding_params": total - emb,
        "n_full": sum(t == "full_attention" for t in layer_types),
        "n_linear": sum(t == "linear_attention" for t in layer_types),
        "kv_heads": config.num_key_value_heads,
        "head_dim": getattr(config, "head_dim", config.hidden_size // config.num_attention_heads),
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "arch": type(model).__name__,
    }
    if facts["n_linear"]:
        kh, vh = config.linear_num_key_heads, config.linear_num_value_heads
        kd, vd = config.linear_key_head_dim, config.linear_value_head_dim
        facts.update(
            lin_v_heads=vh,
            lin_k_dim=kd,
            lin_v_dim=vd,
            conv_dim=2 * kh * kd + vh * vd,
            conv_kernel=config.linear_conv_kernel_dim,
        )
    return facts


# ----------------------------------------------------------------------------- workloads
def make_workloads(tokenizer_dir: Path, p: dict[str, Any], seed: int = 1234) -> dict[str, Any]:
    """Synthetic documents of given token lengths (±30 %), ~1/3 relevant, identical for every contender."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir).backend_tokenizer
    rnd = random.Random(seed)

    def text(n_tokens: int) -> str:
        words: list[str] = []
        while True:
            for _ in range(n_tokens + 16):
                r = rnd.random()
                if r < 0.04:
                    words.append(rnd.choice(NAMES))
                elif r < 0.07:
                    words.append(str(rnd.randint(2, 2030)))
                else:
                    words.append(rnd.choice(WORDS) + ("." if rnd.random() < 0.08 else ""))
            ids = tok.encode(" ".join(words), add_special_tokens=False).ids
            if len(ids) >= n_tokens:
                return tok.decode(ids[:n_tokens]).strip()

    def workload(name: str, kind: str, n_docs: int, n_queries: int) -> dict[str, Any]:
        mean = LENGTHS[kind]
        queries = []
        for qi in range(n_queries):
            docs = [text(max(8, round(mean * rnd.uniform(0.7, 1.3)))) for _ in range(n_docs)]
            n_rel = max(1, round(n_docs / 3))
            rel_idx = set(rnd.sample(range(n_docs), n_rel))
            relevant = [i in rel_idx for i in range(n_docs)]
            logits = [(0.5 + 3 * rnd.random()) * (1 if r else -1) for r in relevant]
            queries.append(
                {"query": QUERIES[qi % len(QUERIES)], "docs": docs, "relevant": relevant, "logits": logits}
            )
        return {"name": name, "kind": kind, "doc_tokens": mean, "n_docs": n_docs, "queries": queries}

    out = {"warmup": workload("warmup", "web", 3, 1)}
    out["warmup"]["queries"][0]["docs"][0] = text(LENGTHS["short"])
    for name in p["workloads"]:
        kind, n = p["workload_shapes"][name]
        out[name] = workload(name, kind, n, 1 if name in p["engine_only"] else p["queries"])
    return out


# ----------------------------------------------------------------------------- running the workers
def run_worker(spec: dict[str, Any], tmp: Path, log_path: Path) -> dict[str, Any]:
    spec_path = tmp / f"spec-{spec['model_name']}-{spec['contender']}.json"
    out_path = tmp / f"out-{spec['model_name']}-{spec['contender']}.json"
    spec_path.write_text(json.dumps(spec))
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        log.write(f"\n===== {spec['model_name']} / {spec['contender']}\n")
        log.flush()
        proc = subprocess.run(
            [sys.executable, str(HERE / "harness.py"), str(spec_path), str(out_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            timeout=spec["timeout_s"],
            check=False,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text().splitlines()[-15:]
        return {"error": f"worker exited with {proc.returncode}", "log_tail": tail, "wall_s": wall}
    out = json.loads(out_path.read_text())
    out["wall_s"] = wall
    return out


# ----------------------------------------------------------------------------- checks and figures
def check_same_work(
    model: str, runs: dict[str, Any], workloads: dict[str, Any], n_evidence: int
) -> dict[str, Any]:
    """Assert every contender did exactly the work the imposed verdicts ask for; compare real logits."""
    checks: dict[str, Any] = {}
    for wname in [w for w in workloads if w != "warmup"]:
        wl = workloads[wname]
        res = {c: _result(runs, c, wname) for c in runs}
        res = {c: r for c, r in res.items() if r is not None}
        expect = {
            "loop": lambda rel: n_evidence if rel else 2,
            "loop_score": lambda rel: 1,
            "cross_encoder": lambda rel: 0,
            "prism_score": lambda rel: 0,
            "prism_rerank": lambda rel: n_evidence if rel else 0,
            "prism_rerank_bt32k": lambda rel: n_evidence if rel else 0,
        }
        max_dlogit: dict[str, float] = {}
        for qi, q in enumerate(wl["queries"]):
            digests = {}
            for c, r in res.items():
                rec = r["per_query"][qi]
                got = rec["generated"]
                want = [expect[c](rel) for rel in q["relevant"]]
                assert got == want, f"{model}/{wname}/q{qi}: {c} generated {got}, expected {want}"
                if c.startswith("prism_rerank"):
                    assert rec["engine_relevant"] == q["relevant"], (
                        f"{model}/{wname}: imposed verdicts not applied"
                    )
                if rec["prompt_digest"][0] is not None:
                    digests[c] = rec["prompt_digest"]
            first = next(iter(digests.values()), None)
            for c, d in digests.items():
                assert d == first, f"{model}/{wname}/q{qi}: {c} saw different prompt ids"
            if "loop_score" in res:
                ref = res["loop_score"]["per_query"][qi]["real_logit"]
                for c, r in res.items():
                    if c in ("loop_score",):
                        continue
                    got = r["per_query"][qi]["real_logit"]
                    d = max(abs(a - b) for a, b in zip(got, ref, strict=False))
                    max_dlogit[c] = max(max_dlogit.get(c, 0.0), d)
        total_gen = {c: sum(sum(rq["generated"]) for rq in r["per_query"]) for c, r in res.items()}
        evidence_tokens = {
            c: sum(
                g
                for rq, q in zip(r["per_query"], wl["queries"], strict=False)
                for g, rel in zip(rq["generated"], q["relevant"], strict=False)
                if rel
            )
            for c, r in res.items()
            if c in ("loop", "prism_rerank")
        }
        if len(evidence_tokens) == 2:
            assert evidence_tokens["loop"] == evidence_tokens["prism_rerank"], (
                f"{model}/{wname}: evidence differs"
            )
        checks[wname] = {
            "generated_tokens": total_gen,
            "evidence_tokens": evidence_tokens,
            "max_abs_dlogit_vs_loop": max_dlogit,
        }
    return checks


def _result(runs: dict[str, Any], contender: str, workload: str) -> dict[str, Any] | None:
    run = runs.get(contender)
    if not run or "error" in run:
        return None
    return next((r for r in run["results"] if r["workload"] == workload), None)


def decode_state_bytes(f: dict[str, Any], ctx: int, dtype_bytes: int) -> float:
    """Per-sequence state bytes a decode step reads: full-attention KV + linear-attention state."""
    kv = f["n_full"] * 2 * f["kv_heads"] * f["head_dim"] * ctx * dtype_bytes
    lin = 0
    if f["n_linear"]:
        # recurrent state is kept in fp32 by transformers' Gated DeltaNet; conv state in the model dtype
        lin = f["n_linear"] * (
            f["lin_v_heads"] * f["lin_k_dim"] * f["lin_v_dim"] * 4
            + f["conv_dim"] * f["conv_kernel"] * dtype_bytes
        )
    return kv + lin


def physical_limits(
    f: dict[str, Any], extra: dict[str, Any], latency: float, peaks: tuple[float, float], dtype_bytes: int
) -> dict[str, Any]:
    """Fractions of the physical limit for one query of the Prism path (prefill FLOPs, decode bytes)."""
    flops, bw = peaks
    prefill_flops = 2 * f["non_embedding_params"] * extra["prefill_tokens"]  # real (unpadded) prompt tokens
    ideal_prefill = prefill_flops / flops
    weight_bytes = f["params"] * dtype_bytes
    ideal_decode = 0.0
    for call in extra["decode_calls"]:
        for s in range(1, call["steps"]):  # steps-1 forward passes; the first token comes from the prefill
            state = sum(decode_state_bytes(f, L + s, dtype_bytes) for L in call["prompt_lengths"])
            ideal_decode += (weight_bytes + state) / bw
    return {
        "prefill_tflops": prefill_flops / 1e12,
        "prefill_s": extra["prefill_s"],
        "prefill_ideal_s": ideal_prefill,
        "prefill_fraction": ideal_prefill / extra["prefill_s"] if extra["prefill_s"] else None,
        "generate_s": extra["generate_s"],
        "decode_ideal_s": ideal_decode,
        "decode_fraction": ideal_decode / extra["generate_s"] if extra["generate_s"] else None,
        "query_ideal_s": ideal_prefill + ideal_decode,
        "query_fraction": (ideal_prefill + ideal_decode) / latency,
    }


def analyse(
    device_results: dict[str, Any],
    p: dict[str, Any],
    peaks: tuple[float, float] | None,
) -> dict[str, Any]:
    """Speed-ups, memory growth, physical limits and targets, per model."""
    out: dict[str, Any] = {}
    for model, entry in device_results.items():
        runs, facts = entry["runs"], entry["facts"]
        rows = []
        for wname in p["workloads"]:
            for c in CONTENDERS:
                r = _result(runs, c, wname)
                if r is None:
                    continue
                base = _result(runs, BASELINE[c], wname)
                speedup = r["docs_per_s"] / base["docs_per_s"] if base else None
                row = {
                    "workload": wname,
                    "contender": c,
                    "docs_per_s": r["docs_per_s"],
                    "latency_median_s": r["latency_median_s"],
                    "latency_p90_s": r["latency_p90_s"],
                    "reps": r["reps"],
                    "cpu_s_per_doc": r["cpu_s_per_doc"],
                    "cache_mib": max((e.get("max_cache_mib_alive", -1) for e in r["extra"]), default=-1),
                    "cache_rows": max((e.get("max_cache_rows_alive", -1) for e in r["extra"]), default=-1),
                    "peak_rss_mib": r["memory"]["peak_rss_mib"],
                    "rss_growth_mib": r["memory"]["rss_growth_mib"],
                    "cuda_peak_mib": r["memory"]["cuda_peak_mib"],
                    "speedup": speedup,
                }
                if peaks and c.startswith("prism"):
                    lims = [
                        physical_limits(facts, e, lat, peaks, p["dtype_bytes"])
                        for e, lat in zip(r["extra"], r["latencies_s"], strict=False)
                    ]
                    row["limits"] = {
                        k: statistics.median([x[k] for x in lims if x[k] is not None] or [math.nan])
                        for k in lims[0]
                    }
                rows.append(row)
        out[model] = {"rows": rows, "targets": targets(rows, p)}
    return out


def targets(rows: list[dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
    def pick(c: str, w: str | None = None) -> list[dict[str, Any]]:
        return [r for r in rows if r["contender"] == c and (w is None or r["workload"] == w)]

    res = []

    def add(name: str, target: str, values: list[tuple[str, float | None]], ok: Any, fmt: str) -> None:
        vals = [(w, v) for w, v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not vals:
            res.append({"target": name, "goal": target, "measured": "not measured", "pass": None})
            return
        worst = min(vals, key=lambda x: x[1])
        measured = ", ".join(f"{w}: {fmt.format(v)}" for w, v in vals)
        res.append(
            {"target": name, "goal": target, "measured": measured, "worst": worst, "pass": bool(ok(worst[1]))}
        )

    if p["device"] == "cuda":
        w = p["target_workload"]
        add(
            "full rerank with evidence vs card loop",
            "≥ 20×",
            [(r["workload"], r["speedup"]) for r in pick("prism_rerank", w)],
            lambda v: v >= 20,
            "{:.1f}×",
        )
        add(
            "score-only throughput",
            "≥ 500 docs/s",
            [(r["workload"], r["docs_per_s"]) for r in pick("prism_score", w)],
            lambda v: v >= 500,
            "{:.0f} docs/s",
        )
        add(
            "prefill vs peak bf16 (score path)",
            "≥ 30 %",
            [
                (r["workload"], 100 * r["limits"]["prefill_fraction"])
                for r in pick("prism_score", w)
                if "limits" in r
            ],
            lambda v: v >= 30,
            "{:.1f} %",
        )
    else:
        add(
            "full rerank with evidence vs card loop",
            "≥ 5× (every workload)",
            [(r["workload"], r["speedup"]) for r in pick("prism_rerank")],
            lambda v: v >= 5,
            "{:.1f}×",
        )
        add(
            "score-only vs card loop's scoring",
            "≥ 10× (every workload)",
            [(r["workload"], r["speedup"]) for r in pick("prism_score")],
            lambda v: v >= 10,
            "{:.1f}×",
        )
    # Memory against documents per query, same document length, once the batches are full (the
    # first workloads hold less than a batch, so their peaks grow with the batch, as they should):
    # the prompt caches the engine holds at once (exact, from the runner) and the process's peak
    # (RSS on CPU, allocations on CUDA).
    sweep = sorted(
        (r for r in pick("prism_rerank") if r["workload"].startswith("web-") and r["cache_mib"] >= 0),
        key=lambda r: int(r["workload"].split("-")[1]),
    )
    full = [r for r in sweep if int(r["workload"].split("-")[1]) >= MEMORY_SWEEP_FROM]
    sweep = full if len(full) >= 2 else sweep
    if len(sweep) >= 2:
        lo, hi = sweep[0], sweep[-1]
        n_lo, n_hi = (int(r["workload"].split("-")[1]) for r in (lo, hi))
        key = "cuda_peak_mib" if p["device"] == "cuda" else "peak_rss_mib"
        growth = hi[key] - lo[key]
        tol = p["mem_tolerance_mib"]
        per_row = hi["cache_mib"] / max(1, hi["cache_rows"])
        caches = ", ".join(
            f"{r['workload']}: {r['cache_mib']:.1f} MiB ({r['cache_rows']} rows)" for r in sweep
        )
        peaks = ", ".join(f"{r['workload']}: {r[key]:.0f} MiB" for r in sweep)
        flat = hi["cache_mib"] <= 1.25 * lo["cache_mib"] + 0.5
        kind = "CUDA" if "cuda" in key else "RSS"
        slope = 1024 * growth / (n_hi - n_lo)
        res.append(
            {
                "target": "peak memory flat in docs/query (rerank)",
                "goal": f"caches held at once {lo['workload']} → {hi['workload']} ≤ 1.25×, and peak "
                f"{kind} growth ≤ {tol} MiB",
                "measured": f"caches held at once: {caches} (all {n_hi} documents' caches would be "
                f"≈{per_row * n_hi:.0f} MiB); peak {kind}: {peaks} (growth {growth:+.1f} MiB, "
                f"{slope:+.0f} KiB per extra document)",
                "pass": bool(flat and growth <= tol),
            }
        )
    return res


# ----------------------------------------------------------------------------- report
def plot(analysis: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    models = list(analysis)
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 5.4), squeeze=False)
    markers = {"loop": "o", "loop_score": "s", "cross_encoder": "^", "prism_score": "D", "prism_rerank": "P"}
    styles = {"loop": "--", "loop_score": "--", "cross_encoder": ":", "prism_score": "-", "prism_rerank": "-"}
    markers["prism_rerank_bt32k"], styles["prism_rerank_bt32k"] = "X", ":"
    for ax, model in zip(axes[0], models, strict=False):
        rows = [r for r in analysis[model]["rows"] if r["workload"].startswith("web-")]
        for c in CONTENDERS:
            pts = sorted(
                (int(r["workload"].split("-")[1]), r["docs_per_s"]) for r in rows if r["contender"] == c
            )
            if pts:
                xs, ys = zip(*pts, strict=False)
                ax.plot(xs, ys, styles[c], marker=markers[c], label=LABELS[c], linewidth=2, markersize=7)
                ax.annotate(
                    f"{ys[-1]:.3g}",
                    (xs[-1], ys[-1]),
                    textcoords="offset points",
                    xytext=(6, 0),
                    fontsize=8,
                    va="center",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        xs_all = sorted({int(r["workload"].split("-")[1]) for r in rows})
        ax.set_xticks(xs_all, [str(x) for x in xs_all])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("documents per query (~512-token documents)")
        ax.set_ylabel("documents per second (log)")
        ax.set_title(model)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt_s(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _rows_table(model: str, a: dict[str, Any], checks: dict[str, Any], device: str) -> list[str]:
    cuda = device == "cuda"
    head = ["workload", "contender", "docs/s", "latency/query median", "p90", "speed-up vs (1)", "CPU s/doc"]
    head += ["peak RSS", "RSS growth"] + (["CUDA peak"] if cuda else []) + ["max abs Δlogit vs loop"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for r in a["rows"]:
        dl = checks[model].get(r["workload"], {}).get("max_abs_dlogit_vs_loop", {}).get(r["contender"])
        baseline = r["contender"] in ("loop", "loop_score") or r["speedup"] is None
        cells = [
            r["workload"],
            LABELS[r["contender"]],
            f"{r['docs_per_s']:.1f}",
            fmt_s(r["latency_median_s"]),
            fmt_s(r["latency_p90_s"]),
            "—" if baseline else f"**{r['speedup']:.1f}×**",
            f"{r['cpu_s_per_doc']:.3f}",
            f"{r['peak_rss_mib']:.0f} MiB",
            f"{r['rss_growth_mib']:+.0f} MiB",
        ]
        if cuda:
            cells.append(f"{r['cuda_peak_mib']:.0f} MiB")
        cells.append("—" if dl is None else f"{dl:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _limits_table(a: dict[str, Any], peaks_label: str) -> list[str]:
    rows = [r for r in a["rows"] if "limits" in r]
    if not rows:
        return []
    lines = [
        f"Physical limit ({peaks_label}), median over queries. Prefill: 2 × non-embedding parameters × "
        "prompt tokens actually run, against peak dense bf16. Decode: (all weights + per-sequence state) "
        "bytes per step, against memory bandwidth.\n",
        "| workload | contender | prefill TFLOP | prefill time | prefill % of peak | decode time "
        "| decode % of bandwidth | query % of limit |",
        "| --- | --- |" + " ---: |" * 6,
    ]
    for r in rows:
        x = r["limits"]
        cells = [
            r["workload"],
            LABELS[r["contender"]],
            f"{x['prefill_tflops']:.2f}",
            fmt_s(x["prefill_s"]),
            _pct(x["prefill_fraction"]),
            fmt_s(x["generate_s"]),
            _pct(x["decode_fraction"]),
            _pct(x["query_fraction"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _engine_notes(model: str, data: dict[str, Any]) -> list[str]:
    """Where PrismReranker's time goes: prefill vs decode, and how many rows each decode call had."""
    runs = data["results"][model]["runs"]
    lines = []
    for c in ("prism_score", "prism_rerank", "prism_rerank_bt32k"):
        run = runs.get(c)
        if not run or "error" in run:
            continue
        parts = []
        for r in run["results"]:
            ex = r["extra"]
            lat = sum(r["latencies_s"][: len(ex)])
            pre, gen = sum(e["prefill_s"] for e in ex), sum(e["generate_s"] for e in ex)
            calls = [d["rows"] for e in ex for d in e["decode_calls"]]
            text = f"{r['workload']}: prefill {100 * pre / lat:.0f} %"
            if calls:
                text += f", decode {100 * gen / lat:.0f} % ({len(calls) / len(ex):.1f} decode calls/query, "
                text += f"{min(calls)}–{max(calls)} rows each)"
            parts.append(text)
        ex0 = run["results"][0]["extra"][0]
        knobs = f"`batch_tokens={ex0['batch_tokens']}`"
        if c != "prism_score" and ex0.get("decode_rows_cap"):
            knobs += f", `DECODE_ROWS={ex0['decode_rows_cap']}`"
        lines.append(f"- {LABELS[c]} ({knobs}), share of query time: " + "; ".join(parts) + ".")
        if c == "prism_rerank":
            held = ", ".join(
                f"{r['workload']}: {max(e.get('max_cache_rows_alive', 0) for e in r['extra'])} rows / "
                f"{max(e.get('max_cache_mib_alive', 0) for e in r['extra']):.1f} MiB"
                for r in run["results"]
            )
            lines.append(f"  Caches alive at once (kept rows + merged decode copies): {held}.")
    return [*lines, ""] if lines else []


def device_section(data: dict[str, Any], rel_png: str) -> str:
    meta, p, analysis, checks = data["meta"], data["plan"], data["analysis"], data["checks"]
    device = p["device"]
    L = [
        f"## {'GPU' if device == 'cuda' else 'CPU'} ({meta['device_name']})\n",
        f"Command: `{meta['command']}` · {meta['date']} · total run time {meta['run_time_s'] / 60:.1f} min "
        f"· commit `{meta['commit']}`  ",
        f"torch {meta['torch']}, transformers {meta['transformers']}, sentence-transformers {meta['st']}; "
        f"{meta['threads']} torch threads; load average (1/5/15 min) before {meta['load_before']}, "
        f"after {meta['load_after']}  ",
        f"Weights {p['dtype']}; {p['queries']} queries per workload; a relevant document generates "
        f"{p['evidence']} tokens (verdict included); ~1/3 of documents relevant; fast contenders repeat the "
        f"query set until ≥ {p['min_time']} s (≤ {p['max_reps']} passes).\n",
        "### Targets\n",
        "| model | target | goal | measured | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for model, a in analysis.items():
        for t in a["targets"]:
            verdict = "—" if t["pass"] is None else ("**PASS**" if t["pass"] else "**FAIL**")
            L.append(f"| {model} | {t['target']} | {t['goal']} | {t['measured']} | {verdict} |")
    L += ["", f"![throughput against documents per query]({rel_png})\n"]
    for model, a in analysis.items():
        f = data["results"][model]["facts"]
        L.append(
            f"### {model}: {f['arch']}, {f['layers']} layers, hidden {f['hidden']}, "
            f"{f['params'] / 1e6:.1f}M parameters ({f['embedding_params'] / 1e6:.1f}M embedding, tied)\n"
        )
        L += _rows_table(model, a, checks, device)
        L += _limits_table(a, meta["peaks_label"])
        L += _engine_notes(model, data)
        ce = data["results"][model]["runs"].get("cross_encoder", {})
        if "error" in ce:
            tail = " ".join(ce.get("log_tail", [])[-2:])
            L.append(f"CrossEncoder could not run on {model}: {ce['error']}: `{tail}`\n")
    return "\n".join(L)


METHOD = """\
# Prism-Reranker benchmark results

Written by `python benchmarks/run.py` (see `benchmarks/README.md`); do not edit by hand. Raw numbers:
`benchmarks/results/<device>/*.json`.

## What is compared

Four ways of serving the same query on **identical weights and identical inputs**:
(1) the model card's per-document `model.generate` loop
(`prism_core.testing.reference.ReferenceLoop`), full and with `max_new_tokens=1` for scores only;
(2) sentence-transformers `CrossEncoder` on the same checkpoint directory (scores only);
(3) `PrismReranker.score`; (4) `PrismReranker.rerank` with contribution and evidence.

**Imposed work.** The models have random weights: they neither decide relevance nor stop like the real
model. Every workload therefore fixes which documents are relevant (~1/3, chosen at random) and how many
tokens a relevant document generates (N), and every contender is made to do exactly that work:
- (1) relevant documents: `generate(max_new_tokens=N)`; irrelevant ones `max_new_tokens=2` (verdict +
  end of turn, as the real model stops). End-of-turn detection is off (`generation_config.eos_token_id =
  None`) so that random text cannot stop early; no `min_new_tokens` processor is used, because it adds a
  full-vocabulary `isin` per step (≈35 % of the loop's step time here) that the real loop never pays.
- (3)/(4) the engine's `ModelRunner` is replaced (after `load()`) by `benchmarks/harness.py:ImposedRunner`:
  the real prefill runs, then its verdict logits are overwritten with the imposed ones; relevant rows
  decode exactly N tokens (stop ids emptied, `</evidence>` check disabled). Irrelevant documents generate
  nothing: their score comes from the prefill, which is the engine's design (the loop pays a decode step
  for the end-of-turn token).
- The harness **asserts** for every query that (1) generated N tokens for exactly the relevant documents
  and 2 for the others, that (4) generated N tokens for exactly the same documents, that (1) scoring
  generated 1 token each, and that (1), (3) and (4) built bit-identical prompt ids. It also reports the
  largest difference between each contender's real (pre-override) verdict logit and the loop's.
- (2) CrossEncoder: sentence-transformers 6 loads a `*ForCausalLM` checkpoint as a causal-LM cross-encoder
  (`Transformer` → `LogitScore(yes, no)`), so **no classification head is attached**: its score is
  `logit_yes − logit_no` at the last position, the same quantity as Prism's. The tiny checkpoints carry no
  chat template, so the harness passes one (`processor_kwargs={"chat_template": …}`) that renders exactly
  the Prism prompt; its logits match the loop's (column *max abs Δlogit*). Default `batch_size=32`.

**Measured.** Documents per second (all documents of all timed queries ÷ total time); latency per query
(median and p90 over queries × passes); peak memory per contender × workload, each contender in a fresh
process (CPU: the kernel's RSS high-water mark `VmHWM`, reset through `/proc/self/clear_refs` before each
workload after `gc` + `malloc_trim`; *RSS growth* = peak − RSS just before the workload; CUDA:
`torch.cuda.max_memory_allocated`). Speed-ups are against (1) in the same run: (4) against the full loop,
(2) and (3) against the loop's scoring. Each contender is warmed up once (3 documents, untimed).
*CPU s/doc* is the contender process's user + system CPU time per document (less sensitive than wall
time to other load on the machine).

**Memory target.** With tiny models a whole query's prompt caches are only ~0.2 MiB per document, within
the run-to-run spread of peak RSS (±15 MiB for the same workload in one process), so RSS alone cannot
show whether caches accumulate. The harness therefore also counts, exactly, the prompt caches alive at
once (every cache the engine still references, kept batches and merged decode batches alike, via
weak references; rows and tensor bytes) at each prefill and decode call. The target ("peak memory
does not grow with the number of documents beyond the batch being processed") is read from 100 to 300
documents of the same length, where every query fills whole batches (with 10 or 30 documents the one
batch is smaller, so its activations are too): it passes when that count does not grow (≤ 1.25×) and
peak RSS grows by at most 64 MiB (CUDA: 512 MiB of `max_memory_allocated`). The 300-document workload
is one query, run by PrismReranker's contenders only (the loop's memory does not depend on it, and it
would take minutes).
Documents are synthetic English-like text cut to a token length (short ≈128, web ≈512, long ≈2,000
tokens, each ±30 %); the prompt adds ≈210 tokens.
"""


#: Everything from this heading on belongs to other benchmark scripts (backends, quality prior,
#: evaluation baselines, serving): a rewrite of the main report keeps it.
OTHER_SECTIONS_START = "<!-- other-benchmarks -->"


def write_report(out_dir: Path, sections: dict[str, str]) -> Path:
    path = out_dir / "RESULTS.md"
    kept = ""
    if path.exists():
        old = path.read_text()
        if OTHER_SECTIONS_START in old:
            kept = old[old.index(OTHER_SECTIONS_START) :]
    parts = [METHOD]
    for device in ("cpu", "cuda"):
        if device in sections:
            parts.append(sections[device])
        elif device == "cuda":
            parts.append(
                "## GPU\n\nNot run yet (no GPU on the machine that wrote this file). Run "
                "`python benchmarks/run.py --device cuda` on a CUDA machine; with a 10-minute limit per "
                "command, run it once per model: `--models qwen3_5-0.8b`, then `--models qwen3-0.8b`.\n"
            )
    if kept:
        parts.append(kept)
    path.write_text("\n".join(parts))
    return path


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument(
        "--quick", action="store_true", help="small workloads; on CPU, shrunk models built like the GPU ones"
    )
    ap.add_argument("--models", nargs="*", help="only these models (names as in the report)")
    ap.add_argument("--contenders", nargs="*", choices=CONTENDERS, help="only these contenders")
    ap.add_argument("--queries", type=int, help="queries per workload")
    ap.add_argument("--evidence-tokens", type=int, help="tokens generated per relevant document")
    ap.add_argument("--peak-tflops", type=float, help="peak dense bf16 TFLOP/s (default: by GPU name)")
    ap.add_argument("--hbm-tbps", type=float, help="memory bandwidth TB/s (default: by GPU name)")
    ap.add_argument("--threads", type=int, help="torch threads per worker (default: torch's default)")
    ap.add_argument("--report-only", action="store_true", help="rewrite report and plot from the raw JSON")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per contender process")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.report_only:
        out = HERE / "results" / ("quick" if args.quick else "")
        report, _ = render(out, out if args.quick else HERE)
        logger.info("wrote %s", report)
        return
    t_start = time.perf_counter()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda asked for, but CUDA is not available")
    p = plan(args)
    p["device"] = args.device
    p["dtype_bytes"] = 2 if p["dtype"] in ("bfloat16", "float16") else 4
    p["mem_tolerance_mib"] = 512 if args.device == "cuda" else 64
    if args.device == "cuda":
        name = torch.cuda.get_device_name(0)
        peaks = next((v for k, v in GPU_PEAKS.items() if k in name), None)
        if args.peak_tflops and args.hbm_tbps:
            peaks = (args.peak_tflops * 1e12, args.hbm_tbps * 1e12)
        peaks_label = (
            f"{name}: {peaks[0] / 1e12:.0f} TFLOP/s, {peaks[1] / 1e12:.2f} TB/s" if peaks else "unknown GPU"
        )
        device_name = name
    else:
        name = platform.processor() or platform.machine()
        with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        device_name = f"{name}, {os.cpu_count()} cores"
        # quick: exercise the limit arithmetic with H100 numbers
        peaks = (989e12, 3.35e12) if args.quick else None
        peaks_label = "H100 numbers, arithmetic check only: not meaningful on CPU"
    out_dir = HERE / "results" / ("quick" if args.quick else "")
    raw_dir = out_dir / args.device
    raw_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"workers-{args.device}.log"
    log_path.write_text("")

    paths = {m[0]: model_path(m, p["dtype"], args.quick) for m in p["models"]}
    if not paths:
        sys.exit("no model selected")
    workloads = make_workloads(next(iter(paths.values())), p)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="prism-bench-") as tmpdir:
        tmp = Path(tmpdir)
        wl_path = tmp / "workloads.json"
        wl_path.write_text(json.dumps(workloads))
        for model, path in paths.items():
            facts = model_facts(path)
            runs: dict[str, Any] = {}
            for contender in p["contenders"]:
                spec = VARIANTS.get(contender, {}) | {
                    "model_name": model,
                    "model_path": str(path),
                    "contender": contender,
                    "device": args.device,
                    "dtype": p["dtype"],
                    "evidence_tokens": p["evidence"],
                    "workloads": [
                        w
                        for w in p["workloads"]
                        if contender.startswith("prism") or w not in p["engine_only"]
                    ],
                    "workloads_path": str(wl_path),
                    "min_time_s": p["min_time"],
                    "max_reps": p["max_reps"],
                    "timeout_s": args.timeout,
                    "threads": args.threads,
                }
                logger.info("%s: %s ...", model, LABELS[contender])
                runs[contender] = run_worker(spec, tmp, log_path)
                if "error" in runs[contender]:
                    logger.error(
                        "%s / %s failed: %s\n%s",
                        model,
                        contender,
                        runs[contender]["error"],
                        "\n".join(runs[contender]["log_tail"]),
                    )
                else:
                    summary = ", ".join(
                        f"{r['workload']} {r['docs_per_s']:.1f} docs/s" for r in runs[contender]["results"]
                    )
                    logger.info("  %.0f s: %s", runs[contender]["wall_s"], summary)
            results[model] = {"path": str(path), "facts": facts, "runs": runs}
            (raw_dir / f"{model}.json").write_text(json.dumps(results[model], indent=1))

    checks = {m: check_same_work(m, r["runs"], workloads, p["evidence"]) for m, r in results.items()}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    import sentence_transformers
    import transformers

    meta = {
        "command": "python benchmarks/run.py"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "run_time_s": time.perf_counter() - t_start,
        "commit": commit or "?",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "st": sentence_transformers.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "device_name": device_name,
        "peaks": peaks,
        "peaks_label": peaks_label,
    }
    summary = {"meta": meta, "plan": p, "models": list(results), "checks": checks}
    s_path = raw_dir / "summary.json"
    if args.models and s_path.exists():  # a run split by model: keep the other models' figures
        old = json.loads(s_path.read_text())
        if old["plan"]["workloads"] == p["workloads"] and old["plan"]["evidence"] == p["evidence"]:
            summary["models"] = [m for m in old["models"] if m not in results] + list(results)
            summary["checks"] = {**old["checks"], **checks}
            meta["run_time_s"] += old["meta"]["run_time_s"]
            meta["command"] = old["meta"]["command"] + " and " + meta["command"]
    s_path.write_text(json.dumps(summary, indent=1))
    report, analyses = render(out_dir, HERE if not args.quick else out_dir)
    logger.info("wrote %s and %s (%.1f min)", report, raw_dir, meta["run_time_s"] / 60)
    for model, a in analyses.get(args.device, {}).items():
        for t in a["targets"]:
            verdict = {True: "PASS", False: "FAIL", None: "—"}[t["pass"]]
            logger.info("%s | %s | %s | %s | %s", model, t["target"], t["goal"], t["measured"], verdict)
    failed = [f"{m}/{c}" for m, r in results.items() for c, run in r["runs"].items() if "error" in run]
    if failed:
        sys.exit(f"contender processes failed: {', '.join(failed)} (see {log_path})")


def render(out_dir: Path, report_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Recompute figures from the raw JSON under ``out_dir``; write the plots and the report."""
    sections, analyses = {}, {}
    for device in ("cpu", "cuda"):
        s_path = out_dir / device / "summary.json"
        if not s_path.exists():
            continue
        s = json.loads(s_path.read_text())
        models = s.get("models") or list(s.get("analysis", {}))
        s["results"] = {m: json.loads((out_dir / device / f"{m}.json").read_text()) for m in models}
        peaks = tuple(s["meta"]["peaks"]) if s["meta"].get("peaks") else None
        s["analysis"] = analyses[device] = analyse(s["results"], s["plan"], peaks)
        png = out_dir / f"throughput_{device}.png"
        plot(s["analysis"], png, f"Prism-Reranker throughput, {s['meta']['device_name']}")
        sections[device] = device_section(s, os.path.relpath(png, report_dir))
    return write_report(report_dir, sections), analyses


if __name__ == "__main__":
    main()
