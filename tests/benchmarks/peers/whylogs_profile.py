"""whylogs profile of one file, for bench_scan.py. Runs inside its own venv
(~/.cache/datrix/peers/whylogs: whylogs 1.6.x needs numpy<2), never the project's.

    python whylogs_profile.py FILE      -> one JSON line on stdout

``seconds`` times ``why.log(df).view()`` only (the pandas read and the imports are left
out, which favours whylogs); ``read_seconds`` is the pandas read. whylogs counts no
duplicate rows.
"""

import json
import os
import sys
import time

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

import pandas as pd
import whylogs as why


def main(path):
    start = time.perf_counter()
    csv = path.endswith(".csv")
    df = pd.read_csv(path, engine="pyarrow") if csv else pd.read_parquet(path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    view = why.log(df).view()
    seconds = time.perf_counter() - start
    summary = view.to_pandas()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "read_seconds": round(read_s, 3),
                "rows": len(df),
                "columns": len(df.columns),
                "profiled_columns": len(summary),
                "version": why.__version__,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
