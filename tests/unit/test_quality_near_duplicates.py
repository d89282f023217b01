"""Near-duplicate detection: MinHash estimates, comparison levels, the chance threshold, EM,
blocking keys, a small Febrl-like record-linkage case, and the engine on small hand-made
frames (typos, case/whitespace, surrogate keys, exact copies, big buckets)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality import near_duplicates as nd
from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.near_duplicates import blocking
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.profiling import profile_columns
from datrix.jobs.report import Issue, ScanOptions, ScanReport


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def near_issue(report: ScanReport) -> Issue | None:
    found = [i for i in report.issues if i.type == "near_duplicates"]
    assert len(found) <= 1
    return found[0] if found else None


def customers(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    first = ["Anna", "Ben", "Carla", "David", "Eva", "Frank", "Gina", "Hugo"]
    last = ["Johnson", "Miller", "Schmidt", "Garcia", "Nguyen", "Rossi", "Novak", "Berg"]
    cities = ["Berlin", "Paris", "Madrid", "Rome", "Vienna"]
    return pl.DataFrame(
        {
            "id": np.arange(1000, 1000 + n, dtype=np.int64),
            "first": [first[i] for i in rng.integers(0, len(first), n)],
            "last": [last[i] for i in rng.integers(0, len(last), n)],
            "email": [f"user{i}.{int(rng.integers(0, 10**6))}@example.com" for i in range(n)],
            "phone": [f"+49 30 {int(x):07d}" for x in rng.integers(0, 10**7, n)],
            "city": [cities[i] for i in rng.integers(0, len(cities), n)],
            "street": [f"{int(x)} Main Street" for x in rng.integers(1, 500, n)],
            "amount": np.round(rng.uniform(0, 1000, n), 2),
            "visits": rng.integers(0, 50, n),
            "vip": rng.random(n) < 0.3,
        }
    )


def with_row(frame: pl.DataFrame, source: int, **changes: object) -> pl.DataFrame:
    row = frame[source].to_dicts()[0]
    row.update(changes)
    return pl.concat([frame, pl.DataFrame([row], schema=frame.schema)])


def test_minhash_estimates_jaccard() -> None:
    """30 cheap permutations of mixed tokens: the mean agreement over many pairs is the
    Jaccard similarity (here 0.5 and 0.9)."""
    rng = np.random.default_rng(7)
    for shared, size, jaccard in ((20, 30, 0.5), (38, 40, 38 / 42)):
        pairs = 300
        left = rng.integers(0, 2**63, (size, pairs), dtype=np.uint64)
        right = left.copy()
        right[shared:] = rng.integers(0, 2**63, (size - shared, pairs), dtype=np.uint64)
        sig_l = nd.minhash(nd.mix_tokens(left))
        sig_r = nd.minhash(nd.mix_tokens(right))
        estimate = float((sig_l == sig_r).mean())
        assert estimate == pytest.approx(jaccard, abs=0.03)


def test_minhash_of_consecutive_integers_is_unbiased() -> None:
    """Structured tokens (raw consecutive numbers) go through the mixer first."""
    left = np.arange(40, dtype=np.uint64)[:, None] + np.arange(0, 4000, 40, dtype=np.uint64)
    right = left.copy()
    right[20:] += np.uint64(10**6)  # 20 of 40 shared -> J = 1/3
    estimate = float((nd.minhash(nd.mix_tokens(left)) == nd.minhash(nd.mix_tokens(right))).mean())
    assert estimate == pytest.approx(1 / 3, abs=0.05)


def comparator(frame: pl.DataFrame) -> nd.Comparator:
    return nd.Comparator(frame, nd.value_hashes(frame, frame.columns), frame.columns)


def test_comparison_levels() -> None:
    frame = pl.DataFrame(
        {
            "s": ["Johnson", " john son ", "Jonson", "Smith", None],
            "n": [1, 1, 2, 1, 1],
            "code": [4011, 4011, 4017, 9, 4011],
            "x": [1.5, 1.5, 1.5, 2.5, None],
        }
    )
    compare = comparator(frame)
    assert compare.text.tolist() == [True, True, True, False]
    levels = compare.levels(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]))
    # (0,1): equal after lower-casing and dropping spaces; (0,2): a typo (Jaro-Winkler
    # 0.97); (0,3): different; (0,4): null on one side. Integers get similarity levels
    # (4011 / 4017: 0.9), floats are only equal or different.
    assert levels.tolist() == [
        [nd.EQUAL, nd.EQUAL, nd.EQUAL, nd.EQUAL],
        [nd.CLOSE, nd.DIFFERENT, nd.FAIR, nd.EQUAL],
        [nd.DIFFERENT, nd.EQUAL, nd.DIFFERENT, nd.DIFFERENT],
        [nd.NULL, nd.EQUAL, nd.EQUAL, nd.NULL],
    ]


def test_swapped_columns_are_compared_crosswise() -> None:
    frame = pl.DataFrame(
        {
            "first": ["anna", "berg", "carla", "novak", "carla"],
            "last": ["berg", "anna", "novak", "karla", "rossi"],
        }
    )
    compare = comparator(frame)
    a, b = np.array([0, 2, 2]), np.array([1, 3, 4])
    none = (np.full(100, 2), np.full(100, 4))  # random pairs showing no swap
    assert nd.find_swaps(compare.hashes, compare.text, (a, b), none) == []  # one is no pattern
    compare.swaps = [(0, 1)]
    # (0,1) exactly swapped; (2,3) swapped, one with a typo (carla / karla); (2,4): the
    # first names agree, so the straight reading stands
    assert compare.levels(a, b).tolist() == [
        [nd.EQUAL, nd.EQUAL],
        [nd.FAIR, nd.EQUAL],
        [nd.EQUAL, nd.DIFFERENT],
    ]
    many = np.zeros(nd.MIN_SWAPS, dtype=np.int64)
    assert nd.find_swaps(compare.hashes, compare.text, (many, many + 1), none) == [(0, 1)]
    # as often among random pairs: chance, not a pattern
    assert nd.find_swaps(compare.hashes, compare.text, (many, many + 1), (a[:1], b[:1])) == []


def test_chance_threshold_counts_every_way_of_agreeing() -> None:
    u = np.zeros((2, nd.LEVELS))
    u[:, nd.EQUAL] = 0.1
    u[:, nd.DIFFERENT] = 0.9
    present = np.ones(2)
    one = math.log(10)  # the evidence of agreeing on one column
    # One column, 5 pairs: 0.5 chance agreements expected, so any agreement is enough.
    assert 0 < nd.chance_threshold(u[:1], present[:1], 5) <= one
    # Two columns, 8 pairs: agreeing on one column or other happens 0.19 * 8 = 1.5 times
    # by chance, so it takes both (0.01 * 8).
    assert one < nd.chance_threshold(u, present, 8) <= 2 * one + 2 * nd.EVIDENCE_STEP
    # When the second column is present on both sides of only a quarter of the pairs,
    # agreeing on one column happens 0.98 times by chance: enough.
    assert nd.chance_threshold(u, np.array([1.0, 0.25]), 8) <= one
    # 200 pairs: even agreeing on both happens twice by chance; nothing is enough.
    assert nd.chance_threshold(u, present, 200) > 2 * one + 2 * nd.EVIDENCE_STEP


def test_em_recovers_m_probabilities() -> None:
    rng = np.random.default_rng(3)
    columns, pairs, share = 6, 20_000, 0.2
    m = np.array([0.0, 0.8, 0.1, 0.05, 0.05])
    u = np.zeros((columns, nd.LEVELS))
    u[:, nd.EQUAL] = [0.01, 0.02, 0.05, 0.001, 0.1, 0.01]
    u[:, nd.CLOSE] = 0.01
    u[:, nd.FAIR] = 0.04
    u[:, nd.DIFFERENT] = 1 - u[:, 1:4].sum(axis=1)
    match = rng.random(pairs) < share
    levels = np.empty((pairs, columns), dtype=np.int8)
    for k in range(columns):
        levels[match, k] = rng.choice(5, int(match.sum()), p=m)
        levels[~match, k] = rng.choice(5, int((~match).sum()), p=np.r_[0.0, u[k, 1:]])
    estimate, estimated_share = nd.run_em(levels, u, np.ones(columns, dtype=bool))
    assert estimated_share == pytest.approx(share, abs=0.01)
    assert estimate[:, 1:] == pytest.approx(np.tile(m[1:], (columns, 1)), abs=0.02)
    score, _ = nd.score_pairs(levels, nd.FieldModel(estimate, u, estimated_share))
    assert ((score >= 0) == match).mean() > 0.99


def test_em_per_key_ignores_the_blocked_column() -> None:
    """Candidates that agree on their blocking key and on nothing else are not matches:
    a single EM over them would call every candidate a match (nothing in u explains the
    agreement on the key); the per-key EM leaves the key out and finds none."""
    rng = np.random.default_rng(5)
    pairs, columns = 5_000, 5
    u = np.zeros((columns, nd.LEVELS))
    u[:, nd.EQUAL] = 0.01
    u[:, nd.DIFFERENT] = 0.99
    levels = np.where(rng.random((pairs, columns)) < 0.01, nd.EQUAL, nd.DIFFERENT)
    levels = levels.astype(np.int8)
    levels[:, 0] = nd.EQUAL  # every candidate came from the key on column 0
    text = np.zeros(columns, dtype=bool)
    _, naive_share = nd.run_em(levels, u, text)
    key = nd.BlockingKey((0,), cost=pairs)
    all_pairs = 10_000 * 9_999 / 2
    model = nd.fit_model(levels, u, text, [key], np.ones(columns), all_pairs, pairs)
    assert naive_share > 0.9
    assert model.match_share * all_pairs < 1  # under one duplicate in the whole table


def test_blocking_keys_within_budget() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    frame = pl.DataFrame(
        {
            "email": [f"u{i}" for i in range(n)],  # cheap: every value once
            "zip": rng.integers(0, 1000, n),  # ~1.25M pairs: over the budget alone
            "name": rng.integers(0, 2000, n),  # over the budget alone
            "flag": rng.integers(0, 2, n),  # never a key
        }
    )
    hashes = nd.value_hashes(frame, frame.columns)
    costs = [nd._pair_cost(c) for c in nd.value_counts(hashes)]
    assert costs[0] == 0 and costs[1] > nd.KEY_BUDGET_PER_ROW * n
    keys = nd.choose_keys(hashes, costs)
    # email alone; zip and name together (~625 pairs); the flag joins no key
    assert [sorted(k.columns) for k in keys] == [[0], [1, 2]]
    assert keys[1].cost == pytest.approx(625, rel=0.2)
    pairs = nd.key_pairs(hashes, keys)
    assert pairs.height == keys[1].cost
    assert (hashes[pairs["a"], 1] == hashes[pairs["b"], 1]).all()


SYLLABLES = ["an", "bel", "cor", "dan", "el", "fin", "gar", "hol", "is", "jor", "kel", "lin"]
SYLLABLES += ["mor", "nel", "or", "par", "quin", "ros", "sten", "tor", "ul", "van", "wil"]


def _typo(rng: np.random.Generator, text: str) -> str:
    i = int(rng.integers(0, len(text) - 1))
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + "e" + text[i:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def febrl_like(originals: int, copies: int, seed: int) -> tuple[pl.DataFrame, set[tuple[int, int]]]:
    """Person records in the manner of Febrl: copies with one to three changes each (a
    typo, a missing value, first and last name swapped), shuffled among the originals."""
    rng = np.random.default_rng(seed)

    def word(parts: int) -> str:
        return "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), parts))

    given = [word(2) for _ in range(150)]
    states = ["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"]
    records: list[dict[str, str | None]] = [
        {
            "given_name": given[int(rng.integers(0, len(given)))],
            "surname": word(3),
            "street_number": str(int(rng.integers(1, 200))),
            "address": word(2) + " street",
            "suburb": word(2),
            "postcode": str(int(rng.integers(2000, 7000))),
            "state": states[int(rng.integers(0, len(states)))],
            "date_of_birth": f"{int(rng.integers(1920, 2005))}{int(rng.integers(1, 13)):02d}"
            f"{int(rng.integers(1, 29)):02d}",
            "soc_sec_id": str(int(rng.integers(1_000_000, 9_999_999))),
        }
        for _ in range(originals)
    ]
    fields = list(records[0])
    links = []
    for source in rng.choice(originals, copies, replace=False):
        copy = dict(records[source])
        for _ in range(int(rng.integers(1, 4))):
            name = fields[int(rng.integers(0, len(fields)))]
            action = rng.random()
            value = copy[name]
            if action < 0.6 and value is not None and len(value) > 1:
                copy[name] = _typo(rng, value)
            elif action < 0.8:
                copy[name] = None
            else:
                copy["given_name"], copy["surname"] = copy["surname"], copy["given_name"]
        if copy == records[source]:  # the changes cancelled out
            copy["soc_sec_id"] = str(int(rng.integers(1_000_000, 9_999_999)))
        links.append((int(source), len(records)))
        records.append(copy)
    order = rng.permutation(len(records))
    position = np.empty_like(order)
    position[order] = np.arange(len(records))
    frame = pl.DataFrame([records[i] for i in order], schema=dict.fromkeys(fields, pl.String))
    truth = {
        (int(min(position[a], position[b])), int(max(position[a], position[b]))) for a, b in links
    }
    return frame, truth


def find(frame: pl.DataFrame) -> nd.NearDuplicates:
    source = frame.lazy()
    schema = dict(source.collect_schema())
    rows, stats = profile_columns(source, schema)
    return nd.find_near_duplicates(
        source, schema, stats, rows, duplicate_rows(source, frame.columns)
    )


def test_febrl_like_record_linkage() -> None:
    """Copies with up to three typos, missing values and swapped names are found by the
    same call a scan makes (no configuration), and nothing else is; without the copies,
    nothing is found."""
    frame, truth = febrl_like(800, 200, seed=1)
    found = set(find(frame).pairs)
    hits = len(found & truth)
    precision, recall = hits / max(1, len(found)), hits / len(truth)
    assert precision >= 0.99 and recall >= 0.97, (precision, recall)
    originals, _ = febrl_like(800, 0, seed=1)
    assert find(originals).pairs == []


def test_typos_case_and_whitespace_copies_are_found(tmp_path: Path) -> None:
    base = customers(300)
    frame = with_row(base, 3, id=5000, last=base["last"][3][:2] + base["last"][3][3:])  # typo
    frame = with_row(
        frame,
        10,
        id=5001,
        city=str(base["city"][10]).upper(),
        street=" " + base["street"][10].replace(" ", "  ") + " ",
    )
    frame = with_row(frame, 20)  # an exact copy: reported as such, not as a near duplicate
    # The same customer (name, e-mail, phone, address) with a new amount and visit count:
    # the same record, updated.
    frame = with_row(frame, 30, id=5002, amount=-1.0, visits=999)
    # A namesake in the same city: different e-mail, phone and street. Not a duplicate.
    frame = with_row(
        frame,
        40,
        id=5003,
        email="someone.else@example.org",
        phone="+49 30 0000001",
        street="7 Other Road",
        amount=1.0,
    )
    report = scan(tmp_path, frame)
    issue = near_issue(report)
    assert issue is not None
    assert issue.column is None and issue.dimension == "consistency"
    assert report.affected_rows[issue.id] == [3, 10, 30, 300, 301, 303]
    assert issue.affected_count == 6
    assert "3 near-duplicate pairs" in issue.description
    assert "'id' ignored as key" in issue.description
    exact = next(i for i in report.issues if i.type == "exact_duplicates")
    assert report.affected_rows[exact.id] == [302]
    assert issue.fix_available  # datrix fix dedupes near copies (Dedupe("near"))


def test_exact_copies_of_a_near_copy(tmp_path: Path) -> None:
    base = customers(200)
    name = str(base["first"][5])
    frame = with_row(base, 5, id=9000, first=name + name[-1])
    frame = with_row(frame, 200)  # repeats the near copy exactly
    report = scan(tmp_path, frame)
    issue = near_issue(report)
    assert issue is not None
    assert report.affected_rows[issue.id] == [5, 200]  # row 201 is only an exact duplicate


def test_clean_data_has_no_near_duplicates(tmp_path: Path) -> None:
    assert near_issue(scan(tmp_path, customers(500, seed=3))) is None


def test_rows_equal_but_for_their_key_in_a_big_bucket(tmp_path: Path) -> None:
    """100 copies of one customer under new ids share every bucket; the bucket is linked
    to its first row (linear work) and every copy is still found."""
    base = customers(300, seed=4)
    copies = pl.concat([base[7]] * 100).with_columns(id=pl.int_range(7000, 7100, dtype=pl.Int64))
    report = scan(tmp_path, pl.concat([base, copies]))
    issue = near_issue(report)
    assert issue is not None
    assert report.affected_rows[issue.id] == [7, *range(300, 400)]
    assert "100 near-duplicate pairs" in issue.description
    assert report.score.consistency < 100.0


def test_chance_agreement_is_no_evidence(tmp_path: Path) -> None:
    """Orders that differ only by their id in a narrow, low-cardinality table agree by
    chance, not because they are one record entered twice."""
    rng = np.random.default_rng(2)
    n = 2000
    orders = pl.DataFrame(
        {
            "order_id": np.arange(n),
            "product": [f"P{int(i)}" for i in rng.integers(0, 20, n)],
            "qty": rng.integers(1, 4, n),
            "status": [["open", "paid", "sent"][int(i)] for i in rng.integers(0, 3, n)],
        }
    )
    assert near_issue(scan(tmp_path, orders)) is None


def test_candidate_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(blocking, "MAX_CANDIDATES", 5)
    base = customers(300, seed=5)
    copies = pl.concat([base[0]] * 40).with_columns(id=pl.int_range(7000, 7040, dtype=pl.Int64))
    issue = near_issue(scan(tmp_path, pl.concat([base, copies])))
    assert issue is not None
    assert "candidate limit" in issue.description
    assert issue.affected_count == 6  # the first 5 star pairs around row 0


def test_tiny_and_odd_frames(tmp_path: Path) -> None:
    assert near_issue(scan(tmp_path, pl.DataFrame({"a": [1]}))) is None
    lists = pl.DataFrame({"l": [[1], [1], [2]], "id": [1, 2, 3]})
    assert near_issue(scan(tmp_path, lists)) is None  # nothing comparable left
    nulls = pl.DataFrame(
        {"id": [1, 2, 3], "x": [None, None, None]}, schema_overrides={"x": pl.String}
    )
    assert near_issue(scan(tmp_path, nulls)) is None  # agreeing on nothing is no evidence


def test_value_hashes_of_kept_rows_only() -> None:
    """With a mask, the hashes are those of the filtered frame (the frame is not copied),
    column-major, whatever the number of columns per batch."""
    rng = np.random.default_rng(3)
    n = 1_000
    frame = pl.DataFrame(
        {f"c{k}": rng.integers(0, 50, n) for k in range(nd.HASH_BATCH + 2)}
        | {"s": [None if i % 7 == 0 else f" Name {i % 40} " for i in range(n)]}
    )
    keep = rng.random(n) < 0.8
    whole = nd.value_hashes(frame, frame.columns)
    kept = nd.value_hashes(frame, frame.columns, keep)
    assert whole.flags.f_contiguous and kept.flags.f_contiguous
    assert np.array_equal(kept, nd.value_hashes(frame.filter(pl.Series(keep)), frame.columns))
    assert np.array_equal(kept, whole[keep])
    assert (kept[:, -1] == 0).sum() == sum(1 for i in np.flatnonzero(keep) if i % 7 == 0)


def test_comparator_gathers_kept_rows_from_the_whole_frame() -> None:
    frame = pl.DataFrame({"s": ["Johnson", "copy", "john son", "Jonson", "Smith"]})
    keep = np.array([True, False, True, True, True])
    kept_rows = np.flatnonzero(keep)
    mapped = nd.Comparator(frame, nd.value_hashes(frame, ["s"], keep), ["s"], rows=kept_rows)
    direct = comparator(frame.filter(pl.Series(keep)))
    a, b = np.array([0, 0, 0, 1]), np.array([1, 2, 3, 2])
    assert mapped.height == direct.height == 4
    assert mapped.levels(a, b).tolist() == direct.levels(a, b).tolist()
    assert mapped.levels(a, b)[:, 0].tolist() == [nd.EQUAL, nd.CLOSE, nd.DIFFERENT, nd.CLOSE]


def _grouped_candidates(
    hashes: np.ndarray, keys: list[nd.BlockingKey], tokens_from: list[int], limit: int
) -> pl.DataFrame:
    """The candidates as a group-by of all keys' and bands' pairs (the reference)."""
    parts = [nd.key_pairs(hashes, keys)]
    if len(keys) < nd.LSH_BELOW_KEYS:
        parts.append(nd.lsh_pairs(hashes[:, tokens_from]))
    found = pl.concat(parts).group_by("a", "b").len(name="hits")
    if found.height > limit:
        found = found.sort(["hits", "a", "b"], descending=[True, False, False]).head(limit)
    return found.sort("a", "b")


@pytest.mark.parametrize("limit", [nd.MAX_CANDIDATES, 50])
def test_candidate_pairs_match_a_group_by(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Pairs counted as sorted uint64 codes: the same pairs, hits and order as a group-by,
    and with a cut, the same pairs kept (most hits first, ties by (a, b))."""
    monkeypatch.setattr(blocking, "MAX_CANDIDATES", limit)
    rng = np.random.default_rng(5)
    n = 3_000
    frame = pl.DataFrame(
        {
            "a": rng.integers(0, 600, n),
            "b": rng.integers(0, 900, n),
            "c": rng.integers(0, 20, n),
            "d": rng.integers(0, 20, n),
        }
    )
    hashes = nd.value_hashes(frame, frame.columns)
    keys = [nd.BlockingKey((0,), 0.0), nd.BlockingKey((1,), 0.0)]  # < LSH_BELOW_KEYS
    candidates, truncated = nd.candidate_pairs(hashes, keys, [0, 1, 2, 3])
    expected = _grouped_candidates(hashes, keys, [0, 1, 2, 3], limit)
    assert truncated == (limit == 50)
    assert candidates.schema == expected.schema
    assert candidates.equals(expected)
    assert candidates["hits"].max() > 1  # pairs met by several keys and bands
    empty, cut = nd.candidate_pairs(hashes[:1], keys, [0, 1])  # one row: no pair
    assert empty.height == 0 and not cut and empty.schema == expected.schema


def test_bucket_codes_are_the_bucket_pairs() -> None:
    """Small buckets give all their pairs, big ones a star around their first row, null
    keys and single rows none: as ``_bucket_pairs``."""
    rng = np.random.default_rng(9)
    keys = rng.integers(0, 400, 5_000).astype(np.uint64)
    keys[rng.random(keys.size) < 0.1] = 0
    keys[::50] = 7  # one bucket of 100 rows (a star)
    keys[1::97] = 11  # one of ~52 rows
    n = keys.size
    pairs = nd._bucket_pairs(keys)
    expected = np.sort(pairs["a"].to_numpy().astype(np.uint64) * np.uint64(n) + pairs["b"])
    assert np.array_equal(np.sort(nd._bucket_codes(keys, n)), expected)
    assert nd._bucket_codes(np.zeros(3, dtype=np.uint64), 3).size == 0
