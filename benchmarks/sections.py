"""Writing one generated section of ``RESULTS.md`` (used by the benchmark scripts' ``--write``)."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the generated part of the section ``heading`` in ``path`` with ``text`` (or append it).

    The generated part runs from the heading to the next ``## `` heading, or to a ``### Reading``
    line inside the section, which is kept (written by hand).
    """
    current = path.read_text(encoding="utf-8")
    start = current.find(heading)
    if start < 0:
        path.write_text(current.rstrip("\n") + "\n\n" + text, encoding="utf-8")
        return
    reading = current.find("\n### Reading", start)
    following = current.find("\n## ", start + len(heading))
    end = reading if reading >= 0 and (following < 0 or reading < following) else following
    rest = current[end + 1 :] if end >= 0 else ""
    path.write_text(current[:start] + text + ("\n" + rest if rest else ""), encoding="utf-8")
