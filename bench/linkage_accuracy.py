"""Accuracy and speed of the master patient index's matching on a synthetic population.

    .venv/bin/python bench/linkage_accuracy.py --records 50000 --seed 7
    .venv/bin/python bench/linkage_accuracy.py --records 50000 --seed 7 --calibrate
    .venv/bin/python bench/linkage_accuracy.py --records 1000000 --seed 7 --speed-only

Draws a population of site records with the errors of manual entry
(`vaxhub.identity.population`), reads each record's match keys, links them
with the committed model (`vaxhub.identity.linkage`, thresholds from
`vaxhub/identity/data/match_model.json`) and prints, counted over record
pairs:

- precision: linked pairs that are one true person / linked pairs;
- recall: linked pairs that are one true person / pairs of one true person;
- F1;
- wrong-link rate: linked pairs whose records belong to different true
  people / linked pairs (= 1 − precision), where "linked pairs" are all
  record pairs placed in one cluster, i.e. given one health record;
- clusters that merge two or more people;
- the review queue (pairs graded "possible" left in different clusters)
  and how many of its pairs are true matches;
- records/s of the linker (blocking, scoring, clustering; key extraction
  timed apart).

The peer measured in the same run is a deterministic rule set (same CCCD,
CMND or BHXH number, or same folded full name and full birth date), the
usual first attempt at a patient index.

`--calibrate` sweeps the link threshold over the same scored pairs and
prints the threshold of best recall with a wrong-link rate of at most 0.1%,
and the review queue at several review thresholds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from vaxhub.identity.comparisons import prepare  # noqa: E402
from vaxhub.identity.evaluation import (  # noqa: E402
    DEFAULT_LINK_GRID,
    WRONG_LINK_TARGET,
    PairwiseMetrics,
    best_link_threshold,
    pairwise_metrics,
    review_sweep,
    sweep,
)
from vaxhub.identity.keys import match_keys  # noqa: E402
from vaxhub.identity.linkage import (  # noqa: E402
    LinkageStats,
    candidate_pairs,
    cluster,
    review_pairs,
    score_pairs,
)
from vaxhub.identity.population import generate_linkage_population  # noqa: E402
from vaxhub.identity.scoring import CountingFrequencies, MatchModel  # noqa: E402
from vaxhub.identity.training import REVIEW_GRID  # noqa: E402

console = Console(width=130)


def deterministic_peer(keys, truth) -> PairwiseMetrics:
    """Union of records sharing a number, or folded full name and full date."""
    parent = list(range(len(keys)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        rules = [f"id:{k.cccd}" if k.cccd else None, f"cmnd:{k.cmnd}" if k.cmnd else None,
                 f"bhxh:{k.bhxh}" if k.bhxh else None]
        if k.full_date and k.given:
            rules.append(f"nd:{k.family} {k.middle} {k.given}:{k.birth_year}-{k.birth_month}-{k.birth_day}")
        for rule in filter(None, rules):
            if rule in first:
                a, b = find(first[rule]), find(i)
                parent[max(a, b)] = min(a, b)
            else:
                first[rule] = i
    return pairwise_metrics([find(i) for i in range(len(keys))], truth)


def metrics_rows(table: Table, label: str, m: PairwiseMetrics) -> None:
    table.add_row(
        label, f"{m.precision:.5f}", f"{m.recall:.4f}", f"{m.f1:.4f}",
        f"{m.wrong_link_rate:.4%}", f"{m.wrong_pairs:,}", f"{m.linked_pairs:,}", f"{m.merged_clusters:,}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Master patient index accuracy and speed")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calibrate", action="store_true", help="sweep the thresholds")
    parser.add_argument("--speed-only", action="store_true", help="skip the peer and the accuracy tables")
    args = parser.parse_args()

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        started = time.perf_counter()
        task = progress.add_task("population", total=None)
        population = generate_linkage_population(args.records, seed=args.seed)
        progress.update(task, total=1, completed=1)
        generated = time.perf_counter() - started

        task = progress.add_task("match keys", total=len(population.records))
        started = time.perf_counter()
        keys = []
        for n, record in enumerate(population.records, 1):
            keys.append(match_keys(record.patient))
            if n % 10_000 == 0:
                progress.update(task, completed=n)
        progress.update(task, completed=len(keys))
        keyed = time.perf_counter() - started
        truth = [r.person_id for r in population.records]
        model = MatchModel.default().for_population(len(keys))
        ids = [r.record_id for r in population.records]

        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        stats = LinkageStats(records=len(keys))
        t0 = time.perf_counter()
        prepared = [prepare(k) for k in keys]
        tf = CountingFrequencies.from_keys(keys)
        t1 = time.perf_counter()
        pairs = candidate_pairs(prepared, stats=stats, progress=report)
        t2 = time.perf_counter()
        scored = score_pairs(prepared, pairs, model, tf, progress=report)
        t3 = time.perf_counter()
        labels = cluster(prepared, scored, model)
        reviews = review_pairs(ids, scored, labels, model)
        t4 = time.perf_counter()

    linking = t4 - t0
    timing = Table(title=f"{len(keys):,} records, seed {args.seed}")
    for column in ("step", "seconds", "records/s"):
        timing.add_column(column, justify="right" if column != "step" else "left")
    for step, seconds in (("population (generator)", generated), ("match keys from FHIR", keyed),
                          ("prepare + term frequencies", t1 - t0), ("blocking", t2 - t1),
                          (f"scoring {len(scored):,} candidate pairs", t3 - t2),
                          ("clustering + review queue", t4 - t3), ("linker total", linking)):
        timing.add_row(step, f"{seconds:.1f}", f"{len(keys) / seconds:,.0f}" if seconds else "-")
    console.print(timing)
    console.print(f"skipped blocks (over the size limit): {stats.skipped_blocks} "
                  f"holding {stats.skipped_block_records} records")
    if args.speed_only:
        return

    metrics = pairwise_metrics(labels, truth)
    table = Table(title="pairwise accuracy (wrong-link rate = linked pairs of two different people / linked pairs)")
    for column in ("linker", "precision", "recall", "F1", "wrong-link rate", "wrong pairs",
                   "linked pairs", "merged clusters"):
        table.add_column(column, justify="right" if column != "linker" else "left")
    metrics_rows(table, f"model (link ≥ {model.link_threshold:.6g})", metrics)
    metrics_rows(table, "peer: deterministic rules", deterministic_peer(keys, truth))
    console.print(table)
    index = {record_id: i for i, record_id in enumerate(ids)}
    true_reviews = sum(1 for p in reviews if truth[index[p.record_a]] == truth[index[p.record_b]])
    console.print(
        f"true pairs {metrics.true_pairs:,}; people {metrics.people:,}; clusters {metrics.clusters:,}; "
        f"review queue {len(reviews):,} pairs (review ≥ {model.review_threshold:.6g}), "
        f"{true_reviews:,} of them one person; twins {len(population.twins)}, "
        f"namesake groups {len(population.namesakes)}"
    )
    verdict = "within" if metrics.wrong_link_rate <= WRONG_LINK_TARGET else "ABOVE"
    console.print(f"wrong-link rate {metrics.wrong_link_rate:.4%}: {verdict} the {WRONG_LINK_TARGET:.1%} target")

    if args.calibrate:
        points = sweep(prepared, scored, truth, model, DEFAULT_LINK_GRID)
        grid = Table(title="link threshold sweep")
        for column in ("link threshold", "precision", "recall", "F1", "wrong-link rate"):
            grid.add_column(column, justify="right")
        for p in points:
            m = p.metrics
            grid.add_row(f"{p.link_threshold:.10f}", f"{m.precision:.5f}", f"{m.recall:.4f}",
                         f"{m.f1:.4f}", f"{m.wrong_link_rate:.4%}")
        console.print(grid)
        best = best_link_threshold(points)
        if best is None:
            console.print("no threshold keeps the wrong-link rate within 0.1%")
        else:
            console.print(f"best link threshold with wrong-link ≤ 0.1%: {best.link_threshold:.10g} "
                          f"(recall {best.metrics.recall:.4f}, wrong-link {best.metrics.wrong_link_rate:.4%})")
        queue = Table(title=f"review queue at link ≥ {model.link_threshold:.6g}")
        for column in ("review threshold", "queue pairs", "one person", "share"):
            queue.add_column(column, justify="right")
        for r in review_sweep(prepared, scored, truth, model, REVIEW_GRID):
            queue.add_row(f"{r.review_threshold:g}", f"{r.queue:,}", f"{r.true_in_queue:,}",
                          f"{r.true_in_queue / r.queue:.1%}" if r.queue else "-")
        console.print(queue)


if __name__ == "__main__":
    main()
