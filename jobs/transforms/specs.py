"""What a fix does: the configs of the transform library, engine-free.

Each config is a frozen dataclass with a ``rule``, the stable name provenance records
(``"impute.median"``, ``"pii.hash"``, ...). The engines (``polars_transforms``,
``spark_transforms``) apply them with the same results; ``spec_for_issue`` gives the
default fix of each issue type a scan reports, and ``ORDER`` the order the fixes of one
run are applied in (``in_order``).

Options (``spec_for_issue``'s ``options``, from the user) override the defaults:

- ``dedupe_keep``: ``most_complete`` (default) or ``merge``;
- ``impute``: ``median`` (default: the median of a numeric column, the mode of any other),
  ``mode``, ``group`` (with ``impute_by``: the column to group by), ``knn``, ``iterative``;
- ``normalise``: ``canonical`` (default), ``trim``, ``casefold``;
- ``outliers``: ``winsorise`` (default) or ``null``;
- ``pii``: ``redact``, ``redact_spans``, ``hash``, ``tokenise``, ``drop_column`` (default:
  ``redact`` for a column whose values are PII, ``redact_spans`` for PII inside free
  text: ``pii_action``);
- ``coerce``: ``number`` or ``date`` (default: what the issue's description says).

An unknown option or value is a ValueError naming the choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

DedupeMode = Literal["exact", "near"]
DedupeKeep = Literal["most_complete", "merge"]
ImputeMethod = Literal["median", "mode", "group", "knn", "iterative"]
NormaliseMode = Literal["trim", "casefold", "canonical"]
OutlierAction = Literal["winsorise", "null"]
SentinelAction = Literal["null"]
PiiAction = Literal["redact", "redact_spans", "hash", "tokenise", "drop_column"]
CoerceTo = Literal["number", "date"]


def _check(name: str, value: str, allowed: object) -> None:
    choices: tuple[str, ...] = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _check_column(kind: str, column: object) -> None:
    if not isinstance(column, str) or not column:
        raise ValueError(f"{kind} needs a column name, not {column!r}")


def _check_rows(kind: str, rows: object) -> None:
    if not isinstance(rows, tuple) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows
    ):
        raise ValueError(f"{kind} rows must be a tuple of non-negative row numbers")


@dataclass(frozen=True)
class Dedupe:
    """Remove duplicate rows. ``exact``: rows equal in every column (the first is kept:
    the scan's rule); ``near``: the near-duplicate clusters of the scan's detector, keeping
    the most complete row of each cluster (``most_complete``) or that row with its nulls
    filled from the cluster's other rows (``merge``). ``rows`` (optional): remove exactly
    these rows (the issue's redundant rows, by ``ROW_ID``) instead of finding them again;
    ``keep`` then does nothing. The fix job leaves it None (a fix run finds the duplicates
    again after the earlier fixes of the run, e.g. after normalising); the impact
    measurement passes the scan's rows."""

    mode: DedupeMode
    keep: DedupeKeep = "most_complete"
    rows: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check("Dedupe mode", self.mode, DedupeMode)
        _check("Dedupe keep", self.keep, DedupeKeep)
        if self.rows is not None:
            _check_rows("Dedupe", self.rows)

    @property
    def rule(self) -> str:
        return f"dedupe.{self.mode}"

    @property
    def column(self) -> None:
        return None


@dataclass(frozen=True)
class Impute:
    """Fill a column's nulls (and NaNs). ``median``: the median of a numeric column, the
    mode of any other (the rule then says ``impute.mode``); ``mode``; ``group``: the
    median/mode within the groups of ``by``, the whole column's where a group has none;
    ``knn`` / ``iterative``: scikit-learn's KNNImputer / IterativeImputer over the table's
    numeric columns (numeric columns only)."""

    column: str
    method: ImputeMethod = "median"
    by: str | None = None

    def __post_init__(self) -> None:
        _check_column("Impute", self.column)
        _check("Impute method", self.method, ImputeMethod)
        if self.method == "group" and not self.by:
            raise ValueError("Impute method 'group' needs by= (the column to group by)")
        if self.by is not None and self.method != "group":
            raise ValueError(f"Impute by= is only for method 'group', not {self.method!r}")
        if self.by == self.column:
            raise ValueError(f"Impute cannot group column {self.column!r} by itself")

    @property
    def rule(self) -> str:
        return f"impute.{self.method}"


@dataclass(frozen=True)
class Normalise:
    """Rewrite a text column's values: ``trim`` (outer whitespace), ``casefold``
    (lower-case), ``canonical`` (every spelling of a category, i.e. every value with the
    same trimmed, space-collapsed, lower-cased key, becomes the category's commonest
    spelling: the scan's inconsistent_format rule)."""

    column: str
    mode: NormaliseMode = "canonical"

    def __post_init__(self) -> None:
        _check_column("Normalise", self.column)
        _check("Normalise mode", self.mode, NormaliseMode)

    @property
    def rule(self) -> str:
        return f"normalise.{self.mode}"


@dataclass(frozen=True)
class Outliers:
    """Winsorise (clip to the range of the column's other values) or null the outliers:
    ``rows`` (the issue's rows), or None to find them again with the scan's detector."""

    column: str
    rows: tuple[int, ...] | None
    action: OutlierAction = "winsorise"

    def __post_init__(self) -> None:
        _check_column("Outliers", self.column)
        if self.rows is not None:
            _check_rows("Outliers", self.rows)
        _check("Outliers action", self.action, OutlierAction)

    @property
    def rule(self) -> str:
        return f"outliers.{self.action}"


@dataclass(frozen=True)
class Sentinels:
    """Null the listed cells (sentinel codes, impossible values)."""

    column: str
    rows: tuple[int, ...]
    action: SentinelAction = "null"

    def __post_init__(self) -> None:
        _check_column("Sentinels", self.column)
        _check_rows("Sentinels", self.rows)
        _check("Sentinels action", self.action, SentinelAction)

    @property
    def rule(self) -> str:
        return f"sentinels.{self.action}"


@dataclass(frozen=True)
class Pii:
    """Personal data in a column: ``redact`` (the whole value becomes ``<REDACTED>``),
    ``redact_spans`` (each detected span becomes ``<EMAIL>``, ``<PHONE>``, ...), ``hash``
    (``h_`` + HMAC-SHA256 hex with the tenant's salt), ``tokenise`` (``tok_`` + AES-SIV,
    reversible with the tenant's key), ``drop_column``."""

    column: str
    action: PiiAction = "redact_spans"

    def __post_init__(self) -> None:
        _check_column("Pii", self.column)
        _check("Pii action", self.action, PiiAction)

    @property
    def rule(self) -> str:
        return f"pii.{self.action}"


@dataclass(frozen=True)
class CoerceTypes:
    """Parse a column's values as numbers (Float64) or dates (Date); a value that does not
    parse becomes null, and that change is recorded."""

    column: str
    to: CoerceTo

    def __post_init__(self) -> None:
        _check_column("CoerceTypes", self.column)
        _check("CoerceTypes to", self.to, CoerceTo)

    @property
    def rule(self) -> str:
        return f"coerce.{self.to}"


FixSpec = Dedupe | Impute | Normalise | Outliers | Sentinels | Pii | CoerceTypes

# The order the fixes of one run are applied in: types first (later fixes compare
# numbers), wrong values nulled or clipped before they are imputed from, spellings and
# PII before duplicates are looked for (normalised copies are exact copies).
ORDER: tuple[str, ...] = (
    "coerce",
    "sentinels",
    "outliers",
    "normalise",
    "pii",
    "impute",
    "dedupe.exact",
    "dedupe.near",
)


def stage(spec: FixSpec) -> str:
    """The ``ORDER`` entry of a spec."""
    if isinstance(spec, Dedupe):
        return spec.rule
    return spec.rule.split(".", 1)[0]


def in_order(specs: Iterable[FixSpec]) -> list[FixSpec]:
    """``specs`` in ``ORDER`` (stable: specs of one stage keep their given order); repeats
    are dropped."""
    unique = list(dict.fromkeys(specs))
    for spec in unique:
        if not isinstance(spec, FixSpec):
            raise ValueError(f"not a fix spec: {spec!r}")
    return sorted(unique, key=lambda s: ORDER.index(stage(s)))


OPTIONS: Mapping[str, object] = {
    "dedupe_keep": DedupeKeep,
    "impute": ImputeMethod,
    "impute_by": None,  # a column name
    "normalise": NormaliseMode,
    "outliers": OutlierAction,
    "pii": PiiAction,
    "coerce": CoerceTo,
}


def check_options(options: Mapping[str, str]) -> None:
    """ValueError for an unknown option or value (``spec_for_issue``'s options)."""
    for key, value in options.items():
        if key not in OPTIONS:
            raise ValueError(f"unknown fix option {key!r} (options: {', '.join(sorted(OPTIONS))})")
        if not isinstance(value, str) or not value:
            raise ValueError(f"fix option {key!r} needs a value")
        allowed = OPTIONS[key]
        if allowed is not None:
            _check(f"fix option {key!r}", value, allowed)
    if options.get("impute") == "group" and not options.get("impute_by"):
        raise ValueError("fix option impute=group needs impute_by=<column>")


def coerce_target(description: str) -> CoerceTo:
    """number or date from a type_mismatch issue's description ("... are not dates")."""
    return "date" if "not dates" in description or "not a date" in description else "number"


def pii_action(column: str, description: str) -> PiiAction:
    """The default fix of a pii_detected issue, from its description. The whole-value rule
    ("column 'phone' holds personal data: ...": most values ARE an address, a number, ...)
    redacts the whole value: its shapes are looser than the per-value detector's checks
    (a phone number libphonenumber does not validate, such as a generator's +1-722-...), so
    span redaction would leave flagged values in the column. PII inside free text ("column
    'note' has personal data inside its values ...") redacts the detected spans only, and
    keeps the text around them. Without a description (or another one), spans."""
    if description.startswith(f"column {column!r} holds personal data:"):
        return "redact"
    return "redact_spans"


def spec_for_issue(
    issue_type: str,
    column: str | None,
    rows: Sequence[int],
    options: Mapping[str, str],
    description: str = "",
) -> FixSpec | None:
    """The fix of one scan issue (module docstring for ``options``), or None when the
    issue type has no automatic fix (label issues, drift, class imbalance, ...).

    ``rows`` are the issue's affected rows (0-based, in the scanned version);
    ``description`` the issue's text, where type_mismatch says number or date and
    pii_detected whether the values are PII or hold it inside text (``pii_action``)."""
    check_options(options)
    if issue_type == "exact_duplicates":
        return Dedupe("exact", options.get("dedupe_keep", "most_complete"))  # type: ignore[arg-type]
    if issue_type == "near_duplicates":
        return Dedupe("near", options.get("dedupe_keep", "most_complete"))  # type: ignore[arg-type]
    if column is None:
        return None
    if issue_type == "null_values":
        method = options.get("impute", "median")
        by = options.get("impute_by") if method == "group" else None
        return Impute(column, method, by)  # type: ignore[arg-type]
    if issue_type == "outliers":
        return Outliers(column, tuple(int(r) for r in rows), options.get("outliers", "winsorise"))  # type: ignore[arg-type]
    if issue_type in ("sentinel_values", "impossible_values"):
        return Sentinels(column, tuple(int(r) for r in rows))
    if issue_type == "inconsistent_format":
        return Normalise(column, options.get("normalise", "canonical"))  # type: ignore[arg-type]
    if issue_type == "type_mismatch":
        return CoerceTypes(column, options.get("coerce", coerce_target(description)))  # type: ignore[arg-type]
    if issue_type == "pii_detected":
        return Pii(column, options.get("pii", pii_action(column, description)))  # type: ignore[arg-type]
    return None
