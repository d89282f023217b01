"""A scan report as one self-contained HTML page.

``render_html(report, parquet_path, title)`` returns a single document with inline CSS and
inline SVG charts: no JavaScript, no fonts, no images and no references to anything outside
the page (a Content-Security-Policy meta tag tells the browser to fetch nothing at all).

The report itself carries the numbers (scores, issues, profiles); the Parquet file is read
again only for what the report does not hold, in three cheap reads:

* histograms  - the numeric columns, once: one streaming ``select`` counts the values of
                each of ``BINS`` bins per column (memory independent of the rows). The bin
                range is the column's IQR fences widened to ``HIST_K`` IQRs (cut to
                min/max), so a few far outliers do not squash the distribution into one
                bar; values beyond it are counted in the edge bins and the caption says
                how many;
* null matrix - up to ``NULL_SAMPLE`` rows spread evenly across the file: the rows are cut
                into ``NULL_SAMPLE`` equal stretches and one row is drawn from each (seeded),
                so a pattern with a period (nulls in every 10th row) shows as scattered
                marks, as it is, instead of aliasing into blocks as a fixed stride would;
* variants    - the columns with case/whitespace variants (inconsistent_format issues),
                once: their values grouped by spelling-independent key, so each card lists
                the spellings of a category with their counts, whitespace made visible;
* samples     - up to ``SAMPLE_ROWS`` affected rows of the exact-duplicates issue and of each
                outliers issue, read by position; the cells of PII columns (those with a
                ``pii_detected`` issue) masked like their top values (``pii.mask_value``).

Every string that comes from the data or the report goes through ``_esc`` (``html.escape``,
and ``://`` broken with a character reference so no URL-looking text appears in the source).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.formats import category_key
from datrix.jobs.quality.pii import mask_value
from datrix.jobs.report import DIMENSIONS, ColumnProfile, Issue, ScanReport

__all__ = ["render_html"]

BINS = 20
HISTOGRAM_COLUMNS = 64  # numeric columns whose histograms one query counts
HIST_K = 3.0  # histogram range: [p25 - K*IQR, p75 + K*IQR], cut to [min, max]
NULL_SAMPLE = 200
SAMPLE_ROWS = 10
CELL_CHARS = 40  # longest cell text shown in sample tables before it is cut
NUMERIC = frozenset({"integer", "float"})
NULL_SAMPLE_SEED = 0
VARIANT_KEYS = 6  # categories listed per card with their spellings
# Integer columns whose values are names, not quantities: shown without thousands separators
ID_NAME = re.compile(r"(^|[_\s.-])(id|key|code|no|nr|num|number)$|^(id|key|code)$|[a-z]Id$")

SEVERITY_COLOURS = {"critical": "#c62828", "warning": "#ef8f00", "info": "#1e6fd9"}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,
sans-serif;color:#1d2330;background:#f4f6fa}
main{max-width:1220px;margin:0 auto;padding:24px}
header{background:#1d2b45;color:#fff;padding:20px 24px;border-radius:10px}
header h1{margin:0 0 4px;font-size:24px;word-break:break-word}
header .meta{opacity:.85}
section{background:#fff;border-radius:10px;padding:18px 22px;margin-top:18px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{margin:0 0 12px;font-size:18px}
h3{margin:14px 0 6px;font-size:15px;word-break:break-all}
.scores{display:flex;gap:28px;align-items:center;flex-wrap:wrap}
.dims{flex:1;min-width:320px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e7ee;vertical-align:top}
th{background:#f0f2f7;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sev{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
.cols{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.col h3{margin-top:0}
.col{border:1px solid #e3e7ee;border-radius:8px;padding:10px 12px}
.col .type{color:#5a6478;font-size:12px;font-weight:400}
.kv{display:grid;grid-template-columns:auto 1fr auto 1fr;gap:1px 10px;font-size:12px;
margin:6px 0}
.kv span:nth-child(odd){color:#5a6478}
.caption{color:#5a6478;font-size:12px}
.sample td,.sample th{white-space:nowrap;font-size:12px}
td.hl{background:#ffe3e0;font-weight:600}
.empty{color:#5a6478;font-style:italic}
.spelling{white-space:pre;background:#f0f2f7;border-radius:3px;padding:0 2px}
ul.variants{margin:2px 0 0;padding-left:18px}
svg text{font-family:inherit}
"""


def render_html(
    report: ScanReport,
    parquet_path: Path,
    title: str,
    *,
    scan_id: str | None = None,
    scanned_at: str | None = None,
    label_assessed: bool = True,
    overall_dimensions: Sequence[str] | None = None,
) -> str:
    """Render ``report`` (a scan of ``parquet_path``) as one self-contained HTML document.

    ``scan_id`` and ``scanned_at`` go in the header; ``label_assessed`` False shows label
    quality as "n/a" (no label column was named); ``overall_dimensions`` are named under
    the scores as what the overall averaged."""
    path = Path(parquet_path)
    profiles = report.column_profiles
    numeric = [p for p in profiles if p.type in NUMERIC]
    histograms = _histograms(path, numeric)
    variant_columns = sorted(
        {i.column for i in report.issues if i.type == "inconsistent_format" and i.column}
    )
    variants = _variants(path, [c for c in variant_columns if c in {p.name for p in profiles}])
    ids = {p.name for p in profiles if _id_like(p, report.rows)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched: inline styles and inline SVG only.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)} - Datrix quality report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        _header(report, title, scan_id, scanned_at),
        _scores(report, label_assessed, overall_dimensions),
        _issues(report.issues),
        _profiles(profiles, histograms, report.rows, variants, ids),
        _null_matrix(path, report),
        _samples(path, report, ids),
        "</main></body></html>",
    ]
    return "\n".join(parts)


# -- helpers -----------------------------------------------------------------------------


def _esc(value: object) -> str:
    """``html.escape`` of ``str(value)``; ``://`` is written as a character reference so the
    page source never holds anything that looks like a URL (it renders the same)."""
    return html.escape(str(value)).replace("://", "&#58;//")


def _id_like(profile: ColumnProfile, rows: int) -> bool:
    """An integer column of identifiers or codes: named like one (id, customer_id, zip_code,
    key, ...), or every value distinct. Its numbers are shown as written, without
    thousands separators (``12345``, not ``12,345``)."""
    if profile.type != "integer":
        return False
    present = rows - profile.null_count
    return bool(ID_NAME.search(profile.name.strip().lower()) or ID_NAME.search(profile.name)) or (
        present > 1 and profile.distinct_count == present
    )


def _num(value: Any, plain: bool = False) -> str:
    """A number for display: integers with separators, floats to 4 significant digits;
    ``plain`` (identifiers): integral values as their digits, no separators."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if plain and isinstance(value, int | float) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return _esc(value)


def _cell(value: Any, plain: bool = False) -> str:
    """A data value for a sample table: escaped, cut to ``CELL_CHARS`` characters."""
    if value is None:
        return '<span class="empty">null</span>'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _num(value, plain)
    text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "\u2026"
    return _esc(text)


def _score_colour(score: float) -> str:
    if score >= 90:
        return "#2e7d32"
    if score >= 70:
        return "#ef8f00"
    return "#c62828"


def _even_positions(rows: int, n: int, seed: int = NULL_SAMPLE_SEED) -> list[int]:
    """Up to ``n`` row positions spread evenly over ``0..rows-1``: every row when there
    are at most ``n``, else one row drawn at random (seeded) from each of ``n`` equal
    stretches. A fixed stride would alias with periodic patterns (a stride of 10.05 over
    nulls in every 10th row hits them for 20 samples, misses them for the next 180)."""
    if rows <= n:
        return list(range(rows))
    bounds = np.linspace(0, rows, n + 1).astype(np.int64)
    rng = np.random.default_rng(seed)
    picks = bounds[:-1] + (rng.random(n) * (bounds[1:] - bounds[:-1])).astype(np.int64)
    return [int(p) for p in picks]


def _read_rows(
    path: Path, positions: Sequence[int], columns: list[str] | None = None
) -> pl.DataFrame:
    """The rows at ``positions`` (0-based, in file order), in the order given."""
    if not positions:
        return pl.DataFrame()
    lf = pl.scan_parquet(path, glob=False)
    if columns is not None:
        lf = lf.select(columns)
    wanted = pl.Series("__pos", list(positions), dtype=pl.UInt32)
    query = lf.with_row_index("__pos").filter(pl.col("__pos").is_in(wanted.implode()))
    found = query.collect(engine="streaming")  # never the whole file in memory
    order = pl.DataFrame({"__pos": wanted})
    return order.join(found, on="__pos", how="left", maintain_order="left").drop("__pos")


# -- sections ----------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _header(
    report: ScanReport, title: str, scan_id: str | None = None, scanned_at: str | None = None
) -> str:
    scan = ""
    if scan_id is not None or scanned_at is not None:
        parts = []
        if scan_id is not None:
            parts.append(f'scan <span class="scan-id">{_esc(scan_id)}</span>')
        if scanned_at is not None:
            parts.append(f'<time class="scanned-at">{_esc(scanned_at)}</time>')
        scan = '<div class="meta">' + " &middot; ".join(parts) + "</div>"
    return (
        f"<header><h1>{_esc(title)}</h1>"
        f'<div class="meta">{_plural(report.rows, "row")} &times; '
        f"{_plural(report.columns, 'column')}"
        f" &middot; {_plural(len(report.issues), 'issue')} &middot; engine "
        f"{_esc(report.engine)}</div>{scan}</header>"
    )


def _gauge(score: float) -> str:
    """A ring gauge for the overall score (0..100)."""
    radius, stroke = 62.0, 16.0
    circumference = 2 * math.pi * radius
    filled = circumference * max(0.0, min(100.0, score)) / 100.0
    colour = _score_colour(score)
    return (
        '<svg width="170" height="170" viewBox="0 0 170 170" role="img" '
        f'aria-label="overall score {score:.1f}">'
        f'<circle cx="85" cy="85" r="{radius}" fill="none" stroke="#e6e9f0" '
        f'stroke-width="{stroke}"/>'
        f'<circle cx="85" cy="85" r="{radius}" fill="none" stroke="{colour}" '
        f'stroke-width="{stroke}" stroke-dasharray="{filled:.2f} {circumference:.2f}" '
        'transform="rotate(-90 85 85)" stroke-linecap="butt"/>'
        f'<text x="85" y="88" text-anchor="middle" font-size="34" font-weight="700" '
        f'fill="{colour}" class="overall-score">{score:.1f}</text>'
        '<text x="85" y="112" text-anchor="middle" font-size="13" fill="#5a6478">'
        "overall</text></svg>"
    )


def _dimension_bars(report: ScanReport, label_assessed: bool = True) -> str:
    scores = report.score.as_dict()
    row_h, label_w, bar_w = 30, 130, 360
    height = row_h * len(DIMENSIONS) + 4
    out = [
        f'<svg width="{label_w + bar_w + 70}" height="{height}" role="img" '
        'aria-label="dimension scores">'
    ]
    for i, dim in enumerate(DIMENSIONS):
        value = float(scores[dim])
        y = i * row_h + 4
        if dim == "label_quality" and not label_assessed:
            out.append(
                f'<text x="0" y="{y + 16}" font-size="13" fill="#1d2330">'
                f"{_esc(dim.replace('_', ' '))}</text>"
                f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="18" rx="4" '
                'fill="#e6e9f0"/>'
                f'<text x="{label_w + 8}" y="{y + 17}" font-size="12" fill="#5a6478">'
                "not assessed: no label column named</text>"
                f'<text x="{label_w + bar_w + 8}" y="{y + 17}" font-size="13" '
                'font-weight="600" class="label-quality">n/a</text>'
            )
            continue
        width = bar_w * max(0.0, min(100.0, value)) / 100.0
        out.append(
            f'<text x="0" y="{y + 16}" font-size="13" fill="#1d2330">'
            f"{_esc(dim.replace('_', ' '))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="18" rx="4" '
            'fill="#e6e9f0"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="18" rx="4" '
            f'fill="{_score_colour(value)}"/>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}" font-size="13" '
            f'font-weight="600">{value:.1f}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _scores(
    report: ScanReport, label_assessed: bool = True, dims: Sequence[str] | None = None
) -> str:
    caption = ""
    if dims is not None:
        caption = (
            '<p class="caption overall-of">overall: weighted mean of '
            + _esc(", ".join(d.replace("_", " ") for d in dims))
            + "</p>"
        )
    return (
        '<section id="scores"><h2>Quality score</h2><div class="scores">'
        f"<div>{_gauge(float(report.score.overall))}</div>"
        f'<div class="dims">{_dimension_bars(report, label_assessed)}</div></div>'
        f"{caption}</section>"
    )


def _severity(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#5a6478")
    return f'<span class="sev" style="background:{colour}">{_esc(severity)}</span>'


def _issues(issues: list[Issue]) -> str:
    if not issues:
        return '<section id="issues"><h2>Issues</h2><p class="empty">No issues found.</p>' + (
            "</section>"
        )
    ordered = sorted(issues, key=lambda i: (-i.impact_score, i.id))
    rows = [
        f'<tr id="issue-{_esc(i.id)}"><td>{_esc(i.id)}</td><td>{_esc(i.type)}</td>'
        f"<td>{_esc(i.column) if i.column is not None else '<span class=empty>dataset</span>'}"
        f"</td><td>{_severity(i.severity)}</td>"
        f'<td class="num">{i.affected_count:,}</td>'
        f'<td class="num">{i.affected_pct:.2f}%</td>'
        f'<td class="num">{i.impact_score:.1f}</td><td>{_esc(i.description)}</td></tr>'
        for i in ordered
    ]
    return (
        f'<section id="issues"><h2>Issues ({len(issues):,}, by impact)</h2>'
        '<div class="scroll"><table><thead><tr><th>ID</th><th>Type</th><th>Column</th>'
        '<th>Severity</th><th class="num">Affected</th><th class="num">%</th>'
        '<th class="num">Impact</th><th>Description</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


# -- column profiles ---------------------------------------------------------------------


class _Histogram:
    __slots__ = ("above", "below", "counts", "high", "low")

    def __init__(self, low: float, high: float, counts: list[int], below: int, above: int):
        self.low, self.high, self.counts = low, high, counts
        self.below, self.above = below, above


def _bin_range(profile: ColumnProfile) -> tuple[float, float] | None:
    extra = profile.extra
    lo, hi = extra.get("min"), extra.get("max")
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return None
    low, high = float(lo), float(hi)
    q1, q3 = extra.get("p25"), extra.get("p75")
    if isinstance(q1, int | float) and isinstance(q3, int | float):
        iqr = float(q3) - float(q1)
        if iqr > 0:
            low = max(low, float(q1) - HIST_K * iqr)
            high = min(high, float(q3) + HIST_K * iqr)
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return None
    return low, high


def _histograms(path: Path, numeric: list[ColumnProfile]) -> dict[str, _Histogram]:
    """``BINS``-bin histograms of the numeric columns: one streaming pass over those
    columns counting, per column, the values in each bin (values outside the range in the
    end bins) and those below and above it; memory does not grow with the rows."""
    ranges = {p.name: r for p in numeric if (r := _bin_range(p)) is not None}
    if not ranges:
        return {}
    data = pl.scan_parquet(path, glob=False).select(list(ranges))
    schema = data.collect_schema()
    exprs: list[pl.Expr] = []
    for i, (name, (low, high)) in enumerate(ranges.items()):
        col = pl.col(name).cast(pl.Float64)
        if schema[name].is_float():
            col = pl.when(col.is_nan()).then(None).otherwise(col)
        width = (high - low) / BINS
        idx = ((col - low) / width).floor().clip(0, BINS - 1) if width > 0 else col * 0.0
        idx = idx.cast(pl.Int8)
        exprs += [(idx == b).sum().alias(f"{i}:{b}") for b in range(BINS)]
        exprs += [(col < low).sum().alias(f"{i}:below"), (col > high).sum().alias(f"{i}:above")]
    # HISTOGRAM_COLUMNS columns a query: one query of every column's expressions is
    # planned in a time that grows with their square (3,000 columns: 7 s)
    row: dict[str, Any] = {}
    per_query = (BINS + 2) * HISTOGRAM_COLUMNS
    for start in range(0, len(exprs), per_query):
        batch = data.select(exprs[start : start + per_query])
        row.update(batch.collect(engine="streaming").row(0, named=True))
    return {
        name: _Histogram(
            low,
            high,
            [int(row[f"{i}:{b}"] or 0) for b in range(BINS)],
            int(row[f"{i}:below"] or 0),
            int(row[f"{i}:above"] or 0),
        )
        for i, (name, (low, high)) in enumerate(ranges.items())
    }


def _histogram_svg(name: str, hist: _Histogram, plain: bool = False) -> str:
    width, height, pad = 330, 110, 4
    plot_h = height - 22
    peak = max(hist.counts) or 1
    bar_w = (width - 2 * pad) / BINS
    bars = []
    for i, count in enumerate(hist.counts):
        h = plot_h * count / peak
        edge = (i == 0 and hist.below) or (i == BINS - 1 and hist.above)
        fill = "#8e5bd6" if edge else "#3f7fd9"
        lo = hist.low + i * (hist.high - hist.low) / BINS
        bars.append(
            f'<rect x="{pad + i * bar_w + 0.5:.1f}" y="{plot_h - h + 2:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" fill="{fill}">'
            f"<title>{_esc(_num(lo, plain))}\u2026: {count:,}</title></rect>"
        )
    return (
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="histogram of {_esc(name)}">'
        f'<line x1="{pad}" y1="{plot_h + 2}" x2="{width - pad}" y2="{plot_h + 2}" '
        'stroke="#9aa3b5"/>'
        + "".join(bars)
        + f'<text x="{pad}" y="{height - 4}" font-size="11" fill="#5a6478">'
        f"{_num(hist.low, plain)}</text>"
        f'<text x="{width - pad}" y="{height - 4}" font-size="11" fill="#5a6478" '
        f'text-anchor="end">{_num(hist.high, plain)}</text></svg>'
    )


def _variants(path: Path, columns: list[str]) -> dict[str, list[list[tuple[str, int]]]]:
    """Per column, the categories spelled several ways (case/whitespace), each as its
    spellings with counts, commonest first; the ``VARIANT_KEYS`` categories with the most
    off-spelling values first. One streaming group-by per column."""
    found: dict[str, list[list[tuple[str, int]]]] = {}
    for name in columns:
        counts = (
            pl.scan_parquet(path, glob=False)
            .select(pl.col(name).cast(pl.String).alias("value"))
            .drop_nulls()
            .group_by("value")
            .len(name="count")
            .with_columns(category_key(pl.col("value")).alias("key"))
            .filter(pl.col("value").n_unique().over("key") > 1)
            .collect(engine="streaming")
        )
        groups: dict[str, list[tuple[str, int]]] = {}
        for value, count, key in counts.sort(
            ["count", "value"], descending=[True, False]
        ).iter_rows():
            groups.setdefault(str(key), []).append((str(value), int(count)))
        ranked = sorted(groups.values(), key=lambda g: (-sum(c for _, c in g[1:]), g[0][0]))
        if ranked:
            found[name] = ranked[:VARIANT_KEYS]
    return found


def _spelling(value: str) -> str:
    """A spelling with its whitespace visible: quoted, spaces kept (white-space:pre),
    tabs and other whitespace as their escapes."""
    shown = "".join(c if c == " " or not c.isspace() else repr(c)[1:-1] for c in value)
    return f'<span class="spelling">&lsquo;{_esc(shown)}&rsquo;</span>'


def _variants_html(groups: list[list[tuple[str, int]]]) -> str:
    items = "".join(
        "<li>" + ", ".join(f"{_spelling(v)} ({c:,})" for v, c in group) + "</li>"
        for group in groups
    )
    return f'<div class="caption">spelled several ways:<ul class="variants">{items}</ul></div>'


def _top_values_svg(name: str, top: list[dict[str, Any]], rows: int) -> str:
    top = top[:8]
    row_h, label_w, bar_w = 18, 130, 150
    height = row_h * len(top) + 4
    peak = max((int(t.get("count", 0)) for t in top), default=0) or 1
    out = [
        f'<svg class="topvalues" width="{label_w + bar_w + 110}" height="{height}" '
        f'role="img" aria-label="top values of {_esc(name)}">'
    ]
    for i, t in enumerate(top):
        count = int(t.get("count", 0))
        label = str(t.get("value"))
        if len(label) > 18:
            label = label[:17] + "\u2026"
        y = i * row_h + 2
        w = bar_w * count / peak
        share = f" ({100.0 * count / rows:.1f}%)" if rows else ""
        out.append(
            f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">'
            f"{_esc(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="12" fill="#2f9e8f"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11" fill="#5a6478">'
            f"{count:,}{share}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _date_pairs(p: ColumnProfile) -> list[tuple[str, str]]:
    """Range, time zone and origin of a date column; how a column was stored when not as
    read (types.py)."""
    extra = p.extra
    pairs: list[tuple[str, str]] = []
    if p.type in ("date", "datetime"):
        pairs += [(k, _esc(extra[k])) for k in ("min", "max") if extra.get(k) is not None]
        if extra.get("timezone"):
            pairs.append(("time zone", _esc(extra["timezone"])))
        if extra.get("inferred_from"):
            pairs.append(("typed from", f"{_esc(extra['inferred_from'])} (stored as given)"))
    if extra.get("stored_as"):
        pairs.append(("stored as", _esc(extra["stored_as"])))
    return pairs


def _time_histogram_svg(name: str, bins: list[dict[str, Any]]) -> str:
    """Counts by time (``dates.py`` bins: start, end, count)."""
    width, height, pad = 330, 110, 4
    plot_h = height - 22
    counts = [int(b.get("count", 0)) for b in bins]
    peak = max(counts, default=0) or 1
    bar_w = (width - 2 * pad) / max(1, len(bins))
    bars = []
    for i, b in enumerate(bins):
        h = plot_h * counts[i] / peak
        bars.append(
            f'<rect x="{pad + i * bar_w + 0.5:.1f}" y="{plot_h - h + 2:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" fill="#3f7fd9">'
            f"<title>{_esc(b.get('start'))} \u2013 {_esc(b.get('end'))}: {counts[i]:,}"
            "</title></rect>"
        )
    first, last = str(bins[0].get("start", ""))[:10], str(bins[-1].get("end", ""))[:10]
    return (
        f'<svg class="hist time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="values of {_esc(name)} by time">'
        f'<line x1="{pad}" y1="{plot_h + 2}" x2="{width - pad}" y2="{plot_h + 2}" '
        'stroke="#9aa3b5"/>'
        + "".join(bars)
        + f'<text x="{pad}" y="{height - 4}" font-size="11" fill="#5a6478">{_esc(first)}</text>'
        f'<text x="{width - pad}" y="{height - 4}" font-size="11" fill="#5a6478" '
        f'text-anchor="end">{_esc(last)}</text></svg>'
    )


def _kv(pairs: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="kv">'
        + "".join(f"<span>{_esc(k)}</span><span>{v}</span>" for k, v in pairs)
        + "</div>"
    )


def _profiles(
    profiles: list[ColumnProfile],
    histograms: dict[str, _Histogram],
    rows: int,
    variants: dict[str, list[list[tuple[str, int]]]] | None = None,
    ids: set[str] | None = None,
) -> str:
    cards = []
    for p in profiles:
        extra = p.extra
        plain = p.name in (ids or set())
        pairs = [
            ("nulls", f"{p.null_count:,} ({p.null_pct:.2f}%)"),
            ("distinct", f"{p.distinct_count:,}"),
        ]
        if p.null_count and extra.get("missingness"):
            pairs.append(("missing", _esc(extra["missingness"])))
        if p.type in NUMERIC:
            pairs += [(k, _num(extra.get(k), plain)) for k in ("min", "max", "mean", "std")]
            pairs += [(k, _num(extra.get(k), plain)) for k in ("p25", "p50", "p75")]
            if extra.get("nan_count"):
                pairs.append(("NaN", _num(extra.get("nan_count"))))
        pairs += _date_pairs(p)
        chart = ""
        hist = histograms.get(p.name)
        if hist is not None:
            chart = _histogram_svg(p.name, hist, plain)
            if hist.below or hist.above:
                chart += (
                    f'<div class="caption">{hist.below + hist.above:,} values beyond the '
                    "range are counted in the edge bins (purple)</div>"
                )
        top = extra.get("top_values") or []
        if hist is None and extra.get("histogram"):  # a date column's (dates.py)
            chart = _time_histogram_svg(p.name, extra["histogram"])
            if extra.get("histogram_excludes"):
                chart += f'<div class="caption">without {_esc(extra["histogram_excludes"])}</div>'
        elif hist is None and top:
            chart = _top_values_svg(p.name, top, rows)
        top_text = ""
        if top and p.type in NUMERIC:
            top_text = (
                '<div class="caption">top: '
                + ", ".join(
                    f"{_num(t.get('value'), plain)} ({int(t.get('count', 0)):,})" for t in top[:5]
                )
                + "</div>"
            )
        cards.append(
            f'<div class="col"><h3>{_esc(p.name)} <span class="type">{_esc(p.type)}</span>'
            f"</h3>{_kv(pairs)}{chart}{top_text}"
            + (_variants_html(variants[p.name]) if variants and p.name in variants else "")
            + "</div>"
        )
    return (
        '<section id="columns"><h2>Columns</h2><div class="cols">'
        + "".join(cards)
        + "</div></section>"
    )


# -- null pattern matrix -----------------------------------------------------------------


def _null_matrix(path: Path, report: ScanReport) -> str:
    names = [p.name for p in report.column_profiles]
    positions = _even_positions(report.rows, NULL_SAMPLE)
    head = '<section id="nulls"><h2>Null pattern</h2>'
    if not names or not positions:
        return head + '<p class="empty">No rows.</p></section>'
    nulls = (
        _read_rows(path, positions, names).select(pl.all().is_null()).to_numpy().astype(bool)
    )  # rows x columns
    cell_w = max(2.0, min(5.0, 820 / len(positions)))
    cell_h = 12
    label_w = 170
    width = label_w + cell_w * len(positions) + 10
    height = cell_h * len(names) + 24
    out = [
        f'<svg class="nullmatrix" width="{width:.0f}" height="{height}" role="img" '
        'aria-label="null pattern">'
    ]
    for j, name in enumerate(names):
        y = j * cell_h
        label = name if len(name) <= 24 else name[:23] + "\u2026"
        out.append(
            f'<text x="{label_w - 6}" y="{y + 10}" font-size="10" text-anchor="end">'
            f"{_esc(label)}</text>"
            f'<rect x="{label_w}" y="{y + 1}" width="{cell_w * len(positions):.1f}" '
            f'height="{cell_h - 2}" fill="#d7e6f7"/>'
        )
        column = nulls[:, j]
        i = 0
        while i < len(positions):  # one rect per run of nulls
            if column[i]:
                start = i
                while i < len(positions) and column[i]:
                    i += 1
                out.append(
                    f'<rect x="{label_w + start * cell_w:.1f}" y="{y + 1}" '
                    f'width="{(i - start) * cell_w:.1f}" height="{cell_h - 2}" '
                    'fill="#c62828"/>'
                )
            else:
                i += 1
    y = len(names) * cell_h + 14
    out.append(
        f'<text x="{label_w}" y="{y}" font-size="10" fill="#5a6478">row {positions[0]:,}'
        f'</text><text x="{label_w + cell_w * len(positions):.1f}" y="{y}" font-size="10" '
        f'fill="#5a6478" text-anchor="end">row {positions[-1]:,}</text></svg>'
    )
    caption = (
        f'<p class="caption">{len(positions):,} rows spread evenly across the file '
        f"(of {report.rows:,}"
        + (
            f": one drawn from each of {len(positions):,} equal stretches"
            if len(positions) < report.rows
            else ""
        )
        + "); red = null, blue = present.</p>"
    )
    return head + caption + '<div class="scroll">' + "".join(out) + "</div></section>"


# -- duplicate and outlier samples -------------------------------------------------------


def _samples(path: Path, report: ScanReport, ids: set[str] | None = None) -> str:
    chosen = [i for i in report.issues if i.type in ("exact_duplicates", "outliers")]
    chosen.sort(key=lambda i: (i.type != "exact_duplicates", -i.impact_score, i.id))
    wanted: dict[str, list[int]] = {
        # a slice: a RowSet unpacks only the first SAMPLE_ROWS rows, never all of them
        i.id: list(report.affected_rows.get(i.id, [])[:SAMPLE_ROWS])
        for i in chosen
    }
    positions = sorted({r for rows in wanted.values() for r in rows})
    head = '<section id="samples"><h2>Duplicate and outlier samples</h2>'
    if not chosen:
        return head + '<p class="empty">No duplicate or outlier issues.</p></section>'
    frame = _read_rows(path, positions) if positions else pl.DataFrame()
    by_position = {pos: i for i, pos in enumerate(positions)}
    columns = frame.columns
    # The report shows no personal data: cells of PII columns are masked (a•••@e•••.com).
    pii = {i.column for i in report.issues if i.type == "pii_detected" and i.column}
    parts = [head]
    for issue in chosen:
        rows = wanted[issue.id]
        parts.append(
            f'<h3 id="sample-{_esc(issue.id)}">{_esc(issue.id)} &middot; {_esc(issue.type)}'
            + (f" &middot; {_esc(issue.column)}" if issue.column is not None else "")
            + f' <span class="type">({issue.affected_count:,} rows, first '
            f"{len(rows):,} shown)</span></h3>"
        )
        if not rows:
            parts.append('<p class="empty">No affected rows recorded.</p>')
            continue
        ordered = list(columns)
        if issue.column in ordered:  # the flagged column first, highlighted
            ordered.remove(issue.column)
            ordered.insert(0, issue.column)
        header = "".join(f"<th>{_esc(c)}</th>" for c in ordered)
        body = []
        for pos in rows:
            record = frame.row(by_position[pos], named=True)
            record = {c: mask_value(v) if c in pii else v for c, v in record.items()}
            cells = "".join(
                f'<td class="hl">{_cell(record[c], c in (ids or set()))}</td>'
                if c == issue.column
                else f"<td>{_cell(record[c], c in (ids or set()))}</td>"
                for c in ordered
            )
            body.append(f'<tr><td class="num">{pos:,}</td>{cells}</tr>')
        parts.append(
            '<div class="scroll"><table class="sample"><thead><tr><th class="num">row</th>'
            + header
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table></div>"
        )
    parts.append("</section>")
    return "".join(parts)
