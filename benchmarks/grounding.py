"""The grounding check's speed: microseconds per (document, evidence) pair of a few hundred words.

    python benchmarks/grounding.py              # ≈1 min on 2 cores; prints a Markdown section
    python benchmarks/grounding.py --write      # ... and puts it into benchmarks/RESULTS.md

Workloads (every pair is checked; the same pairs for every row's statistics):

* ``builtin``: documents made of 8 consecutive passages of the built-in evaluation set
  (``prism_core/evaluation/data``, English prose with names, dates and numbers; ≈250 words), each
  with two evidences: two of its sentences as written, one with a digit when there is one
  (faithful), and the same with its first digit changed, or with an invented dated claim added when
  it has no digit (fabricated).
* ``numeric``: number-, date- and unit-dense passages in English, German, French, Chinese and
  Japanese (≈300 words or ≈600 characters each) with a faithful rewrite in another format
  (``1.083`` → ``1,083``, ``31 March 1889`` → ``1889-03-31``...) and a fabricated one.

Each pair is timed ``--repeat`` times with ``time.perf_counter``; a pair's time is its median, and
the table gives the median, p90 and max over pairs, plus the process CPU time per check over the
whole run. Single thread, pure Python (no model, no I/O).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
HEADING = "## Grounding check (CPU)"

NUMERIC = {
    "en": (
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
        "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. "
        "The tower is 330 metres (1,083 ft) tall, about the same height as an 81-storey building. It was the "
        "tallest man-made structure in the world until the Chrysler Building in New York City was finished "
        "in 1930. Its base is square, measuring 125 metres on each side. Tickets cost 29.40 EUR in 2023 and "
        "6.3 million people visited it in 2022. It opened on 31 March 1889. More at "
        "https://www.toureiffel.paris/en and info@toureiffel.paris. ",
        "The Eiffel Tower (Paris) is 330 m tall and opened on 1889-03-31; 6,300,000 visitors came in 2022.",
        "The Eiffel Tower (Paris) is 330 m tall and opened on 1889-03-31; 7,300,000 visitors came in 2022.",
    ),
    "de": (
        "Die Brücke ist 1.083 Meter lang und wurde am 5. März 2024 für 12,5 Mio. Euro eröffnet. "
        "Sie verbindet "
        "die Altstadt mit dem Hafen und trägt täglich rund 24 000 Fahrzeuge. Der Bau dauerte 31 Monate; "
        "beteiligt waren 420 Arbeiter. Die Pfeiler reichen 18,5 m tief in den Grund. ",
        "Die 1 083 m lange Brücke wurde am 05.03.2024 eröffnet und kostete 12,5 Millionen Euro.",
        "Die 1 083 m lange Brücke wurde am 06.03.2024 eröffnet und kostete 12,5 Millionen Euro.",
    ),
    "fr": (
        "La population de Paris était de 2 102 650 habitants au 1er janvier 2023, soit 20 % de la région. "
        "La ville couvre 105,4 km² et compte 20 arrondissements. Le budget municipal atteint 10,4 milliards "
        "d'euros. La tour Montparnasse mesure 210 mètres. ",
        "Paris comptait 2 102 650 habitants le 1er janvier 2023 ; la tour Montparnasse mesure 210 m.",
        "Paris comptait 2 102 650 habitants le 1er janvier 2023 ; la tour Montparnasse mesure 250 m.",
    ),
    "zh": (
        "东京塔高333米，于1958年12月23日开放，每年约有300万游客。塔身由4000吨钢材建成，"
        "主展望台高150米，特别展望台高250米。门票价格为1200日元。",
        "东京塔高333米，1958年12月23日开放，年游客约300万。",
        "东京塔高353米，1958年12月23日开放，年游客约300万。",
    ),
    "ja": (
        "東京タワーの高さは333メートルで、1958年12月23日に開業した。展望台は150メートルと250メートルの"
        "高さにあり、年間約300万人が訪れる。",
        "東京タワーは高さ333m、1958年12月23日開業、展望台は150mと250m。",
        "東京タワーは高さ333m、1958年12月23日開業、展望台は170mと250m。",
    ),
}


def _pairs(kind: str) -> list[tuple[str, str]]:
    if kind == "numeric":
        pairs = []
        for doc, faithful, fabricated in NUMERIC.values():
            repeat = max(1, round(300 / max(1, len(doc.split())))) if " " in doc else 4
            document = doc * repeat
            pairs += [(document, faithful), (document, fabricated)]
        return pairs
    from prism_core.evaluation import load_dataset

    texts = [d.content.replace("\n", ". ") for d in load_dataset("builtin").documents.values()]
    pairs = []
    for start in range(0, len(texts) - 7, 8):
        document = " ".join(texts[start : start + 8])
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", document) if len(s.split()) > 5]
        with_digits = [s for s in sentences if re.search(r"\d", s)]
        faithful = " ".join((with_digits[:1] + [s for s in sentences if s not in with_digits[:1]])[:2])
        if re.search(r"\d", faithful):  # change the first digit
            fabricated = re.sub(r"\d", lambda m: str((int(m.group(0)) + 3) % 10), faithful, count=1)
        else:  # or add a claim with a number
            fabricated = faithful + " It was first described in 1957."
        pairs += [(document, faithful), (document, fabricated)]
    return pairs


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from prism_core import check_grounding

    rows = []
    for kind in ("builtin", "numeric"):
        pairs = _pairs(kind)
        for document, evidence in pairs:  # warm-up: regexes compiled, caches filled
            check_grounding(document, evidence)
        per_pair = []
        flagged = [0, 0]  # faithful, fabricated (pairs alternate: faithful first)
        cpu_start = time.process_time()
        for index, (document, evidence) in enumerate(pairs):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                report = check_grounding(document, evidence)
                times.append(time.perf_counter() - t0)
            per_pair.append(statistics.median(times))
            flagged[index % 2] += bool(report.unsupported)
        cpu = (time.process_time() - cpu_start) / (len(pairs) * args.repeat)
        ordered = sorted(per_pair)
        rows.append(
            {
                "kind": kind,
                "pairs": len(pairs),
                "words": statistics.mean(len(d.split()) for d, _ in pairs),
                "chars": statistics.mean(len(d) for d, _ in pairs),
                "evidence_words": statistics.mean(len(e.split()) for _, e in pairs),
                "flagged": flagged,
                "median": statistics.median(per_pair),
                "p90": ordered[int(0.9 * (len(ordered) - 1))],
                "max": ordered[-1],
                "cpu": cpu,
            }
        )
    return {"rows": rows}


def render(result: dict[str, Any], started: dt.datetime, load: tuple[str, str], repeat: int) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    lines = [
        HEADING,
        "",
        f"Command: `python benchmarks/grounding.py --write` · {started:%Y-%m-%d %H:%M} · commit `{commit}` · "
        f"Python {platform.python_version()}, {os.cpu_count()} cores · load average (1/5/15 min) before "
        f"{load[0]}, after {load[1]}  ",
        "`prism_core.check_grounding(document, evidence)` per pair, single thread; a pair's time is the "
        f"median of {repeat} runs. Flagged: evidences with an unsupported item, of the faithful ones (should "
        "be none) and of the fabricated ones (should be all).",
        "",
        "| workload | pairs | doc words (chars) | evidence words | faithful flagged | fabricated flagged "
        "| median µs | p90 µs | max µs | CPU µs/check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['kind']} | {r['pairs']} | {r['words']:.0f} ({r['chars']:.0f}) | "
            f"{r['evidence_words']:.0f} | "
            f"{r['flagged'][0]}/{r['pairs'] // 2} | {r['flagged'][1]}/{r['pairs'] // 2} | "
            f"{1e6 * r['median']:.0f} | {1e6 * r['p90']:.0f} | "
            f"{1e6 * r['max']:.0f} | {1e6 * r['cpu']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="runs per pair (default 30)")
    parser.add_argument("--write", action="store_true", help="put the section into RESULTS.md")
    args = parser.parse_args(argv)
    started = dt.datetime.now()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result = measure(args)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    section = render(result, started, (load_before, load_after), args.repeat)
    sys.stdout.write(section)
    if args.write:
        from sections import replace_section

        replace_section(HERE / "RESULTS.md", HEADING, section)


if __name__ == "__main__":
    main()
