"""Near-duplicate records: unsupervised record linkage within one table.

A *near duplicate* is a pair of rows that are not identical but very likely describe the
same entity: under a Fellegi-Sunter model whose weights are learned from the table itself
the pair's match probability is at least 1/2, and the values it agrees on are too rare to
agree that much by chance among all the table's row pairs (``CHANCE_LIMIT``). Exact
duplicate rows are removed before the search, so a row that repeats another exactly is
reported only as an exact duplicate. Nothing is configured per table: Febrl, the
benchmark generator's customers and a scan's arbitrary table go through the same call.

Columns. Every column of a comparable type takes part except constant ones and *id-like*
ones (integer, string or temporal, no null, a distinct value on every deduplicated row:
surrogate keys, record ids, insertion timestamps), which never agree within a pair.
Strings are compared lower-cased, without spaces; every value is hashed once (numpy
uint64 matrix) and equality, blocking and value counts work on the hashes.

1. *Candidates* (blocking): pairs that agree exactly on a *key*, one column or two
   columns together. A key's cost, the number of pairs it yields (``sum n_v (n_v - 1) /
   2`` over its value counts), is computed exactly; a key may cost ``KEY_BUDGET_PER_ROW``
   pairs per row, all keys together ``TOTAL_BUDGET_PER_ROW``, and the cheapest
   ``MAX_KEYS`` are used, single columns first. A true duplicate is lost only when it
   disagrees on every key, which with several keys is rare (Febrl 3: one true pair of
   6,538). With fewer than ``LSH_BELOW_KEYS`` keys (only common values everywhere),
   MinHash LSH over field tokens adds the pairs that agree on most fields (``hash(column,
   value)`` tokens, 10 bands of 3 of 30 cheap permutations, in numpy). Buckets larger
   than ``MAX_BUCKET`` are linked as a star around their first row, so a thousand copies
   of one record under new ids cost linear work.
2. *Comparison levels* per field: null (either side), equal, close (Jaro-Winkler >=
   ``CLOSE_JW``), fair (>= ``FAIR_JW``), different; text and integer fields get the
   similarity levels, others are equal or different. Two text columns that the
   candidates show exactly swapped at least ``MIN_SWAPS`` times, and ``SWAP_RATIO`` times
   as often as random pairs do (first/last name, address lines), are also compared
   crosswise, and the better reading is kept.
3. *Weights* (``fit_model``). ``u``, the chance that two random rows show a level: exact
   from the value counts for equality, counted on ``U_SAMPLE`` random row pairs for the
   similarity levels. ``m``, the chance that a duplicate shows it: EM with ``u`` fixed,
   once per key on the sampled candidates of that key's block with the key's columns
   left out (as Splink does: candidates agree on their key by construction, and an EM
   that counted it would call every candidate a match), shrunk towards a prior by
   ``PRIOR_STRENGTH`` pseudo-pairs so that a table with three duplicates does not learn
   nonsense. The number of duplicates in the table, hence the prior odds of a match
   among all row pairs, comes from the same runs. A field's weight at a level is
   ``log(m / u)``: agreeing on an e-mail address weighs far more than agreeing on a
   gender, and a field the data often garbles costs little when it disagrees.
4. *Decision*. A candidate is a near duplicate when its summed weights plus the prior
   log-odds are >= 0 and its *evidence*, the summed ``-log u`` of the levels it agrees at,
   reaches the level that fewer than ``CHANCE_LIMIT`` random pairs of the table would
   reach (``chance_threshold``: the exact distribution of a random pair's evidence under
   independent columns): in a table of a few weak columns (orders with a product, a
   quantity and a status), pairs agree on most of them by chance. Cheap bounds from the
   hashes, tightened one text field at a time (``hopeful_pairs``), drop nearly every
   unrelated candidate before most string comparisons.

Segments (``find_near_duplicates_in``). The search holds the compared columns and their
(rows x columns) hashes, about 1 GB per million rows of a 50-column table, so a bounded
table (``table.ScanTable``) of more than ``SEGMENT_ROWS`` rows
(``DATRIX_NEAR_DUP_SEGMENT_ROWS``) left after the exact copies is searched in
``P = ceil(rows / SEGMENT_ROWS)`` hash segments, one at a time: the table is read once, a
chunk at a time, into one spill file per segment (``_segment_frames``), and peak memory
is one segment's worth. A table in memory is searched whole. A row's
segment is ``hash(value) % P`` of one *partition column*'s normalised value (the row
number ``% P`` where it is null), so rows agreeing on that column are searched together
wherever they lie in the file; contiguous row ranges would miss a copy appended far from
its original. The partition column (``partition_column``) is the compared column that
would be the best single-column blocking key: the least chance agreement between random
rows (``_agreement``: many distinct values, none frequent), id-like columns excluded
(``select_columns``), preferring at most ``MAX_PARTITION_NULLS`` nulls, and none whose
most frequent value would fill half a segment. The consequence: a pair that differs on
that column, or has a null there, is found only when both rows fall in the same segment
by chance (one in ``P``); the result records ``segments`` and ``partition_column`` and the
finding's description says so. Columns are chosen from the whole table's profile; the model
(``u``, the weights, the prior) is fitted per segment on that segment's rows, so it
describes exactly the pairs searched there (the partition column, for one, agrees about
``P`` times as often within a segment as in the table), and the chance threshold counts
the pairs of all segments together, as the whole-table search counts the table's. Whole or
segmented, how many segments and on which column is ``plan_search``, which the Spark engine
asks too (``jobs/quality/spark_near_duplicates.py``: the same segments searched by the same
``_detect`` on the executors, so both engines report the same pairs).

Measured (``tests/benchmarks/bench_febrl.py``, 2 busy shared cores): Febrl 1/2/3 F1
1.0000 / 1.0000 / 0.9999 (one true pair of 6,538 missed), the same with the types a CSV
read gives; no pair on the Febrl originals alone or on generated data with its near
copies removed; pair precision and recall 1.0 on ``datrix.jobs.bench.generate`` data at 20k,
100k and 1M rows, the 1M-row detection in 15-25 s (profiling, exact duplicates apart).

Modules (one per step): ``columns`` (what is compared, normalisation), ``hashing`` (value
hashes and counts), ``lsh`` (MinHash LSH), ``blocking`` (keys, candidate pairs),
``comparison`` (levels, swapped columns), ``model`` (Fellegi-Sunter: u, m by EM, prior,
chance threshold, scores), ``search`` (the search in memory, ``find_near_duplicates``, the
result) and ``segments`` (``find_near_duplicates_in``). This package exports what callers
use.
"""

from datrix.jobs.quality.near_duplicates.blocking import (
    KEY_BUDGET_PER_ROW,
    LSH_BELOW_KEYS,
    MAX_CANDIDATES,
    BlockingKey,
    candidate_pairs,
    choose_keys,
    key_pairs,
)
from datrix.jobs.quality.near_duplicates.blocking import _bucket_codes as _bucket_codes
from datrix.jobs.quality.near_duplicates.columns import normalise, select_columns, surrogate_keys
from datrix.jobs.quality.near_duplicates.comparison import (
    CLOSE,
    DIFFERENT,
    EQUAL,
    FAIR,
    LEVELS,
    MIN_SWAPS,
    NULL,
    Comparator,
    find_swaps,
)
from datrix.jobs.quality.near_duplicates.hashing import HASH_BATCH, value_counts, value_hashes
from datrix.jobs.quality.near_duplicates.hashing import _pair_cost as _pair_cost
from datrix.jobs.quality.near_duplicates.lsh import _bucket_pairs as _bucket_pairs
from datrix.jobs.quality.near_duplicates.lsh import lsh_pairs, minhash, mix_tokens
from datrix.jobs.quality.near_duplicates.model import (
    EVIDENCE_STEP,
    FieldModel,
    chance_threshold,
    fit_model,
    run_em,
    score_pairs,
)
from datrix.jobs.quality.near_duplicates.search import (
    DEFINITION,
    NearDuplicates,
    find_near_duplicates,
)
from datrix.jobs.quality.near_duplicates.segments import (
    SEGMENT_ROWS,
    SearchPlan,
    find_near_duplicates_in,
    partition_column,
    plan_search,
    segment_expr,
    segment_numbers,
)

__all__ = [
    "CLOSE",
    "DEFINITION",
    "DIFFERENT",
    "EQUAL",
    "EVIDENCE_STEP",
    "FAIR",
    "HASH_BATCH",
    "KEY_BUDGET_PER_ROW",
    "LEVELS",
    "LSH_BELOW_KEYS",
    "MAX_CANDIDATES",
    "MIN_SWAPS",
    "NULL",
    "SEGMENT_ROWS",
    "BlockingKey",
    "Comparator",
    "FieldModel",
    "NearDuplicates",
    "SearchPlan",
    "candidate_pairs",
    "chance_threshold",
    "choose_keys",
    "find_near_duplicates",
    "find_near_duplicates_in",
    "find_swaps",
    "fit_model",
    "key_pairs",
    "lsh_pairs",
    "minhash",
    "mix_tokens",
    "normalise",
    "partition_column",
    "plan_search",
    "run_em",
    "score_pairs",
    "segment_expr",
    "segment_numbers",
    "select_columns",
    "surrogate_keys",
    "value_counts",
    "value_hashes",
]
