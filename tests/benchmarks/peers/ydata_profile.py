"""ydata-profiling minimal report of one file, for bench_scan.py. Runs inside its own venv
(~/.cache/datrix/peers/ydata), never the project's.

    python ydata_profile.py FILE      -> one JSON line on stdout

``seconds`` times ``ProfileReport(df, minimal=True).to_json()`` only (the pandas read and
the imports are left out; the JSON is not parsed, which would add the harness's time).
Minimal mode counts no duplicate rows.
"""

import json
import os
import sys
import time
import warnings

os.environ.setdefault("YDATA_PROFILING_NO_ANALYTICS", "True")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from ydata_profiling import ProfileReport, __version__  # noqa: E402


def main(path):
    start = time.perf_counter()
    csv = path.endswith(".csv")
    df = pd.read_csv(path, engine="pyarrow") if csv else pd.read_parquet(path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    report = ProfileReport(df, minimal=True, progress_bar=False).to_json()
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "read_seconds": round(read_s, 3),
                "rows": len(df),
                "columns": len(df.columns),
                "json_bytes": len(report),
                "version": __version__,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
