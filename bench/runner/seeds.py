"""Seeds until decided (``study.seeds=auto``): more seeds only where a comparison is still undecided.

Every cell starts with ``SeedPolicy.start`` seeds (0, 1, 2). After each round the comparisons with
the baseline are decided (``bench.evaluation.verdicts``); each undecided one gives both its cells
(the representation's and the baseline's: same dataset, flow and model) the next seed, up to
``max_seeds`` per cell. The walk stops when every comparison is decided or each undecided one has
reached the cap. Units are keyed by config and seed, so a resumed run replays the same rounds from its
finished units (the decisions are deterministic: the bootstrap is seeded) and trains only what is
missing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

from bench.core.hashing import stable_hash
from bench.plan.planner import Cell, SeedPolicy, without_locations

Combo = tuple[str, str, str, str]  # (dataset, flow, representation, model) names: a cell without its seed


@dataclass
class SeedRound:
    """What one round added, and why (recorded in run.json, read by the report)."""

    round: int
    undecided: list[str] = field(default_factory=list)  # the comparisons that asked for a seed
    added: dict[str, int] = field(default_factory=dict)  # cell (without seed) -> the seed added
    capped: list[str] = field(default_factory=list)  # undecided comparisons already at max_seeds


def combo(cell: Cell) -> Combo:
    return (cell.dataset.name, cell.flow.name, cell.representation.name, cell.model.name)


def combo_label(c: Combo) -> str:
    return "|".join(c)


def seeds_per_combo(cells: Iterable[Cell]) -> dict[Combo, list[int]]:
    """The seeds each cell (without its seed) has so far, sorted."""
    out: dict[Combo, list[int]] = {}
    for cell in cells:
        out.setdefault(combo(cell), []).append(int(cell.seed))
    return {k: sorted(v) for k, v in out.items()}


def with_seed(cell: Cell, seed: int) -> Cell:
    """The same cell under another seed: config and settings shared, key recomputed as the planner does."""
    return dataclasses.replace(cell, seed=int(seed),
                               cfg_hash=stable_hash({"cfg": without_locations(cell.cfg), "seed": int(seed)}))


def grow(cells: list[Cell], undecided: list[tuple[Combo, Combo]], policy: SeedPolicy, round_no: int
         ) -> tuple[list[Cell], SeedRound]:
    """The cells of the next round: one more seed for each cell of an undecided comparison below the cap.

    A cell shared by several undecided comparisons (the baseline) gets one seed per round, not one per
    comparison; a comparison whose two cells both have ``max_seeds`` stays undecided and is reported capped."""
    have = seeds_per_combo(cells)
    first = {combo(c): c for c in cells}
    rnd = SeedRound(round=round_no)
    wanted: list[Combo] = []
    for a, b in undecided:
        name = f"{combo_label(a)} vs {b[2]}"
        if min(len(have.get(a, [])), len(have.get(b, []))) >= policy.max_seeds:  # paired on common seeds
            rnd.capped.append(name)
            continue
        rnd.undecided.append(name)
        wanted += [c for c in (a, b) if c in first and c not in wanted and len(have[c]) < policy.max_seeds]
    new = []
    for c in wanted:
        seed = max(have[c]) + 1
        new.append(with_seed(first[c], seed))
        rnd.added[combo_label(c)] = seed
    return new, rnd


# ---------------------------------------------------------------- the rounds


def rule_of(plan) -> "Rule":
    """The verdict rule of the run's report options (what the report decides by), capped at ``max_seeds``."""
    from bench.core.config import to_container
    from bench.report.tables import ReportOptions

    rule = ReportOptions.from_mapping(to_container(plan.base.report_options)).rule()
    return dataclasses.replace(rule, max_seeds=plan.seed_policy.max_seeds)


def undecided_pairs(predictions, n_classes: int, baseline: str, rule) -> list[tuple[Combo, Combo]]:
    """The comparisons (every source database pooled) that more seeds could still decide, as cell pairs.

    A comparison that only more subjects could decide (``needs == "subjects"``) gets no seed: seeds
    would not move it. Per-source rows of a composite are reported, not chased (each has a fraction of
    the subjects, so most would ask for subjects the data do not have)."""
    from bench.evaluation.verdicts import FULL, SEEDS, UNDECIDED, verdicts

    if len(predictions) == 0:
        return []
    tab = verdicts(predictions, n_classes, baseline, rule=rule)
    tab = tab[(tab["source"] == FULL) & (tab["verdict"] == UNDECIDED) & (tab["needs"] == SEEDS)]
    pairs = []
    for r in tab.to_dict("records"):
        ds, fl = str(r.get("dataset", "")), str(r.get("flow", ""))
        pairs.append(((ds, fl, str(r["representation"]), str(r["model"])),
                      (ds, fl, str(r["baseline"]), str(r["model"]))))
    return pairs


def until_decided(plan, prep, store, ctx, units, out) -> tuple[list[dict], float, dict]:
    """Round after round, a seed more for the cells of undecided comparisons; returns the failed rows,
    the training seconds and what happened (``run.json``'s ``seeds_auto``). ``units`` grows in place."""
    from bench.results.tables import collect
    from bench.runner.execute import run_units
    from bench.runner.outputs import gather_records
    from bench.runner.tasks import plan_units

    policy, rule = plan.seed_policy, rule_of(plan)
    baseline, n_classes = str(plan.base.report_options.baseline), len(prep.first_table().classes)
    rounds, failed, seconds, stopped = [], [], 0.0, "every comparison decided"
    for round_no in range(1, policy.max_seeds - policy.start + 2):  # the last round only finds the caps
        predictions = collect(gather_records(store, units.keys))[1]
        new, rnd = grow(plan.cells, undecided_pairs(predictions, n_classes, baseline, rule), policy, round_no)
        if rnd.undecided or rnd.capped:
            rounds.append(dataclasses.asdict(rnd))
        if not new:
            stopped = f"{len(rnd.capped)} comparison(s) undecided at max_seeds={policy.max_seeds}" if rnd.capped else stopped
            break
        print(f"seeds=auto, round {round_no}: {len(rnd.undecided)} comparison(s) undecided; one more seed for "
              f"{len(new)} cell(s)", file=out)
        plan.cells.extend(new)
        more = plan_units(_only(plan, new), prep, store, ctx)
        units.keys.extend(more.keys)
        f, s = run_units(more, store, plan.base.executor, ctx.run_dir, bool(plan.base.progress), out)
        failed, seconds = failed + f, seconds + s
        if f:
            stopped = f"stopped after round {round_no}: {len(f)} unit(s) failed"
            break
    seeds = {combo_label(k): len(v) for k, v in seeds_per_combo(plan.cells).items()}
    return failed, seconds, {"start": policy.start, "max_seeds": policy.max_seeds, "rope": rule.rope,
                             "decide_at": rule.decide_at, "rounds": rounds, "seeds": seeds, "stopped": stopped}


def _only(plan, cells: list[Cell]):
    """The plan restricted to some of its cells (the round's new ones)."""
    return dataclasses.replace(plan, cells=cells)
