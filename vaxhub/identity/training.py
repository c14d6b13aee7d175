"""How the weights in `data/match_model.json` are obtained (run offline).

    pip install -e '.[training]'      # Splink, DuckDB, PyArrow: never needed online
    .venv/bin/python -m vaxhub.identity.training --out vaxhub/identity/data/match_model.json

1. A labelled synthetic population (`population`) is drawn.
2. m and u probabilities of every comparison level are estimated with
   Splink (https://moj-analytical-services.github.io/splink/): u by random
   sampling of record pairs (`estimate_u_using_random_sampling`), m by
   expectation maximisation (`estimate_parameters_using_expectation_maximisation`)
   in two sessions, one blocked on the phone and one on birth date and given
   name; a comparison used by a session's blocking rule is estimated in the
   other one. Splink scores exactly our comparison levels: each level's SQL
   condition calls a DuckDB function that runs `comparisons.compare` on the
   two records, so training and online scoring cannot drift apart. The
   labels are not used for m and u.
   `--method counting` instead counts levels over the labelled pairs (m over
   all pairs of one true person, u over random pairs of different people);
   it needs nothing beyond vaxhub and serves as a cross-check.
3. The prior (probability that two random records are one person) is the
   labelled share of matching pairs in the training population, stored with
   that population's size (`MatchModel.for_population` rescales it).
4. The thresholds are calibrated on a second population (another seed):
   the link threshold of best recall whose wrong-link rate stays within
   half the 0.1% target, and the lowest review threshold down to which
   every band of pairs added to the review queue is still at least a tenth
   true matches (below that, operators would mostly look at strangers).

Only the exported JSON is read at run time (`MatchModel.default()`).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from .comparisons import COMPARISONS, NULL, PreparedKeys, compare, prepare
from .evaluation import DEFAULT_LINK_GRID, WRONG_LINK_TARGET, best_link_threshold, review_sweep, sweep
from .keys import match_keys
from .linkage import candidate_pairs, score_pairs
from .population import generate_linkage_population
from .scoring import CountingFrequencies, MatchModel

PSEUDO_COUNT = 0.5  # added to every level's count, so that no level has m or u of zero
CALIBRATION_MARGIN = 0.5  # calibrate to half the wrong-link target, for other seeds
REVIEW_TRUE_SHARE = 0.10
REVIEW_GRID = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def labelled_records(records: int, seed: int) -> tuple[list[PreparedKeys], list[str]]:
    population = generate_linkage_population(records, seed=seed)
    prepared = [prepare(match_keys(r.patient)) for r in population.records]
    return prepared, [r.person_id for r in population.records]


def prior_from_labels(truth: Sequence[str]) -> float:
    n = len(truth)
    matching = sum(c * (c - 1) // 2 for c in Counter(truth).values())
    return matching / (n * (n - 1) // 2)


def _random_non_matches(truth: Sequence[str], count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    n = len(truth)
    found = []
    while len(found) < count:
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j and truth[i] != truth[j]:
            found.append((i, j))
    return found


def _true_pairs(truth: Sequence[str]) -> list[tuple[int, int]]:
    by_person: dict[str, list[int]] = {}
    for i, person in enumerate(truth):
        by_person.setdefault(person, []).append(i)
    return [(a, b) for members in by_person.values() for k, a in enumerate(members) for b in members[k + 1:]]


def _probabilities(counts: list[Counter[int]]) -> dict[str, dict[str, float]]:
    out = {}
    for comparison, counter in zip(COMPARISONS, counts):
        levels = range(1, len(comparison.levels))
        total = sum(counter[level] for level in levels) + PSEUDO_COUNT * len(levels)
        out[comparison.name] = {
            comparison.levels[level]: (counter[level] + PSEUDO_COUNT) / total for level in levels
        }
    return out


def _level_counts(prepared: Sequence[PreparedKeys], pairs: Sequence[tuple[int, int]]) -> list[Counter[int]]:
    counts: list[Counter[int]] = [Counter() for _ in COMPARISONS]
    for i, j in pairs:
        for counter, level in zip(counts, compare(prepared[i], prepared[j])):
            if level != NULL:
                counter[level] += 1
    return counts


def estimate_by_counting(
    prepared: Sequence[PreparedKeys], truth: Sequence[str], *, u_pairs: int, seed: int
) -> dict[str, dict[str, dict[str, float]]]:
    """m and u of every level counted over labelled pairs."""
    m = _probabilities(_level_counts(prepared, _true_pairs(truth)))
    u = _probabilities(_level_counts(prepared, _random_non_matches(truth, u_pairs, seed)))
    return {c: {level: {"m": m[c][level], "u": u[c][level]} for level in m[c]} for c in m}


# ---------------------------------------------------------------------------
# Splink
# ---------------------------------------------------------------------------

def _splink_table(prepared: Sequence[PreparedKeys]):
    import pyarrow as pa

    def text(values):
        return pa.array([v if v else None for v in values], pa.string())

    keys = [p.keys for p in prepared]
    dates = [
        None if k.birth_year is None else
        f"{k.birth_year:04d}" + (f"-{k.birth_month:02d}" if k.birth_month else "")
        + (f"-{k.birth_day:02d}" if k.birth_day else "")
        for k in keys
    ]
    return pa.table({
        "unique_id": pa.array(range(len(keys)), pa.int64()),
        "family": text(k.family for k in keys),
        "middle": text(k.middle for k in keys),
        "given": text(k.given for k in keys),
        "birth_date": text(dates),
        "gender": text(k.gender for k in keys),
        "cccd": text(k.cccd for k in keys),
        "cmnd": text(k.cmnd for k in keys),
        "bhxh": text(k.bhxh for k in keys),
        "phone": text(k.phone for k in keys),
        "province": text(k.province for k in keys),
    })


def _register_level_functions(connection, prepared: Sequence[PreparedKeys]) -> None:
    """One DuckDB function per comparison, `vaxhub_<name>(id_l, id_r,
    anchor_l, anchor_r)`, giving the level from `compare` (vectorised over
    Arrow batches; recent pairs are cached since Splink's CASE asks once per
    level)."""
    import pyarrow as pa
    from duckdb.sqltypes import BIGINT, TINYINT, VARCHAR

    cache: dict[tuple[int, int], tuple[int, ...]] = {}

    def levels(i: int, j: int) -> tuple[int, ...]:
        found = cache.get((i, j))
        if found is None:
            if len(cache) > 500_000:
                cache.clear()
            found = cache[(i, j)] = compare(prepared[i], prepared[j])
        return found

    def level_function(index: int):
        def level_of(left, right, _anchor_l, _anchor_r):
            return pa.array(
                [levels(i, j)[index] for i, j in zip(left.to_pylist(), right.to_pylist())],
                pa.int8(),
            )

        return level_of

    for index, comparison in enumerate(COMPARISONS):
        connection.create_function(
            f"vaxhub_{comparison.name}", level_function(index), [BIGINT, BIGINT, VARCHAR, VARCHAR],
            TINYINT, type="arrow", null_handling="special",
        )


def _splink_settings(prior: float) -> dict[str, Any]:
    comparisons = []
    for comparison in COMPARISONS:
        # The record column of the same name is passed (and ignored) so that
        # Splink sees which comparisons an EM blocking rule fixes.
        anchor = comparison.name
        call = f"vaxhub_{comparison.name}(unique_id_l, unique_id_r, {anchor}_l, {anchor}_r)"
        levels = []
        for number, name in enumerate(comparison.levels):
            level: dict[str, Any] = {"sql_condition": f"{call} = {number}", "label_for_charts": name}
            if number == NULL:
                level["is_null_level"] = True
            levels.append(level)
        comparisons.append({"output_column_name": comparison.name, "comparison_levels": levels})
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": prior,
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": ["l.phone = r.phone"],
        "retain_intermediate_calculation_columns": False,
    }


def estimate_with_splink(
    prepared: Sequence[PreparedKeys], truth: Sequence[str], *, u_pairs: int, seed: int
) -> tuple[dict[str, dict[str, dict[str, float]]], list[str]]:
    """m by EM and u by random sampling, with Splink on DuckDB; also the
    levels Splink could not estimate (too rare in its samples), which keep
    the counted value."""
    import duckdb
    from splink import DuckDBAPI, Linker

    connection = duckdb.connect()
    _register_level_functions(connection, prepared)
    api = DuckDBAPI(connection=connection)
    table = api.register(_splink_table(prepared), table_name="records")
    linker = Linker(table, _splink_settings(prior_from_labels(truth)), log_level="WARNING")
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=seed)
    for rule in ("l.phone = r.phone", "l.birth_date = r.birth_date and l.given = r.given"):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    settings = linker.misc.save_model_to_json()
    fallback = estimate_by_counting(prepared, truth, u_pairs=min(u_pairs, 200_000), seed=seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    counted: list[str] = []
    for comparison in settings["comparisons"]:
        name = comparison["output_column_name"]
        out[name] = {}
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            label = level["label_for_charts"]
            m, u = level.get("m_probability"), level.get("u_probability")
            counted += [f"{name}.{label}.{p}" for p, v in (("m", m), ("u", u)) if not v]
            out[name][label] = {
                "m": m if m else fallback[name][label]["m"],
                "u": u if u else fallback[name][label]["u"],
            }
    return out, counted


# ---------------------------------------------------------------------------
# Calibration and the command
# ---------------------------------------------------------------------------


def calibrate(model: MatchModel, records: int, seed: int, target: float) -> tuple[float, float, dict]:
    """(link threshold, review threshold, figures) on a fresh population."""
    prepared, truth = labelled_records(records, seed)
    model = model.for_population(len(prepared))
    tf = CountingFrequencies.from_keys(p.keys for p in prepared)
    scored = score_pairs(prepared, candidate_pairs(prepared), model, tf)
    points = sweep(prepared, scored, truth, model, DEFAULT_LINK_GRID)
    best = best_link_threshold(points, target)
    if best is None:
        raise SystemExit(f"no link threshold keeps the wrong-link rate within {target:.3%}")
    linked = model.with_thresholds(best.link_threshold, min(best.link_threshold, model.review_threshold))
    reviews = review_sweep(prepared, scored, truth, linked, REVIEW_GRID)
    review = best.link_threshold
    # Lower the review threshold band by band while each band added to the
    # queue still holds at least REVIEW_TRUE_SHARE true matches.
    previous = None
    for point in sorted(reviews, key=lambda r: -r.review_threshold):
        if previous is not None:
            added = point.queue - previous.queue
            if added and (point.true_in_queue - previous.true_in_queue) / added < REVIEW_TRUE_SHARE:
                break
        review, previous = point.review_threshold, point
    figures = {
        "records": records, "seed": seed, "wrong_link_rate": best.metrics.wrong_link_rate,
        "recall": best.metrics.recall, "precision": best.metrics.precision,
    }
    return best.link_threshold, review, figures


def recalibrate(model: MatchModel, seed: int, calibration_records: int) -> MatchModel:
    """The same weights with thresholds calibrated anew (after a change of
    the rules or of the population generator)."""
    link, review, figures = calibrate(
        model, calibration_records, seed + 1, WRONG_LINK_TARGET * CALIBRATION_MARGIN
    )
    doc = model.to_document()
    doc["link_threshold"], doc["review_threshold"] = link, review
    doc["metadata"] = {**model.metadata, "calibrated_on": figures, "date": date.today().isoformat()}
    return MatchModel.from_document(doc)


def train(method: str, records: int, seed: int, u_pairs: int, calibration_records: int) -> MatchModel:
    prepared, truth = labelled_records(records, seed)
    counted: list[str] = []
    if method == "splink":
        levels, counted = estimate_with_splink(prepared, truth, u_pairs=u_pairs, seed=seed)
        import splink

        trained_with = f"splink {splink.__version__} (u: random sampling, m: EM)"
    else:
        levels = estimate_by_counting(prepared, truth, u_pairs=u_pairs, seed=seed)
        trained_with = "counting on labelled synthetic pairs"
    prior = prior_from_labels(truth)
    draft = MatchModel(levels, prior=prior, link_threshold=0.99, review_threshold=0.5,
                       prior_records=len(truth))
    link, review, figures = calibrate(
        draft, calibration_records, seed + 1, WRONG_LINK_TARGET * CALIBRATION_MARGIN
    )
    return MatchModel(
        levels, prior=prior, link_threshold=link, review_threshold=review, prior_records=len(truth),
        metadata={
            "trained_with": trained_with,
            "counted_not_estimated": counted,
            "trained_on": {"records": records, "seed": seed, "u_pairs": u_pairs},
            "prior": "share of matching pairs among all pairs of the training population",
            "calibrated_on": figures,
            "date": date.today().isoformat(),
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--method", choices=("splink", "counting"), default="splink")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--u-pairs", type=int, default=5_000_000)
    parser.add_argument("--calibration-records", type=int, default=60_000)
    parser.add_argument("--thresholds-only", action="store_true",
                        help="keep the weights in --out and calibrate its thresholds again")
    args = parser.parse_args(argv)
    if args.thresholds_only:
        current = MatchModel.from_document(json.loads(args.out.read_text("utf-8")))
        model = recalibrate(current, args.seed, args.calibration_records)
    else:
        model = train(args.method, args.records, args.seed, args.u_pairs, args.calibration_records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model.to_document(), indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.out}: link ≥ {model.link_threshold:.10g}, review ≥ {model.review_threshold:.10g}")


if __name__ == "__main__":
    main()
