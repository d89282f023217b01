"""The CLI starts without the data libraries: every command pays its imports at start, and
numpy, pyarrow and polars cost about 0.4 s of it (docs/benchmarks.md, "CLI start").
Commands that read or write data import them where they use them; the rest (keys, lists,
status, submitting to Kafka, streams, connectors) start without."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pyarrow", "polars", "pandas", "scipy", "sklearn", "pyspark")


def test_the_cli_imports_no_data_library_at_start() -> None:
    code = (
        "import json, sys; import datrix.gateway.cli; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == [], out.stdout
