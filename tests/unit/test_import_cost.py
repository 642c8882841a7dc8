"""``import prism_core`` and a remote client pay for no deep-learning stack (issue 17)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import prism_core
from prism_core import RemoteReranker, PrismResult, check_grounding, EngineConfig
RemoteReranker("http://127.0.0.1:9")  # constructing connects to nothing
print(json.dumps({name: name in sys.modules for name in ("torch", "transformers", "sentence_transformers")}))
"""


def test_import_and_a_remote_client_import_no_torch_or_transformers() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"torch": False, "transformers": False, "sentence_transformers": False}


def test_local_backends_are_still_reachable_from_the_package() -> None:
    probe = "import sys, prism_core; prism_core.PrismReranker; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "True"  # asking for a local backend imports what it needs
