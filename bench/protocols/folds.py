"""Evaluation protocols: outer folds, inner validation / tuning splits, and the leakage guard.

Every split here is by SUBJECT: no subject is ever on both sides of any split (outer train/test,
inner fit/validation, inner tuning folds). Each split is checked in code by ``assert_disjoint`` on
the subjects actually found at the split's row positions (not on what the split claims), and a
violation raises ``LeakageError``.

Indices are POSITIONAL row indices into the sample table's DataFrame (``df.iloc``), whatever its
index. Everything is deterministic: LOSO folds follow the sorted subject ids; group k-fold and the
inner splits are functions of an explicit seed only (never of row order or global random state).

Protocols (``make_folds(df, protocol, **params)``), each one function registered in ``PROTOCOLS`` under
its own name (``@register_protocol``; its config file is ``bench/conf/protocol/<name>.yaml``), which
turns the table's subjects into ``(fold name, test subjects)`` groups:

* ``loso``: one fold per subject, named by the subject id.
* ``megc2019``: LOSO over the MEGC2019 composite (SMIC + CASME II + SAMM, 68 subjects); checks that
  the table's ``dataset`` column holds only ``smic``/``casme2``/``samm`` and that no subject id is
  shared by two source datasets, so the per-dataset breakdown of the pooled predictions is sound.
* ``group_kfold``: ``k`` folds grouped by subject, roughly balanced in sample count, for quick runs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.core.registry import Registry
from bench.core.schemas import KFoldProtocolNode, ProtocolNode, ValidationSpec
from bench.data.databases import normalise_database

log = logging.getLogger(__name__)

# name -> fn(df, subjects, uniq, *, k, seed, dataset_col) -> [(fold name, test subjects)]; iterated in
# registration order (loso, megc2019, group_kfold), which the messages list
PROTOCOLS = Registry("protocol")
register_protocol = PROTOCOLS.register
MEGC2019_DATASETS = ("smic", "casme2", "samm")
MEGC2019_SUBJECTS = {"smic": 16, "casme2": 24, "samm": 28}  # 68 in all (the challenge's composite)


class LeakageError(AssertionError):
    """A subject is on both sides of a split. The message names the subjects and the split."""


class ProtocolError(ValueError):
    """A protocol cannot be built from this table / these parameters; the message says why."""


# --------------------------------------------------------------------------------------- guard


def assert_disjoint(train_subjects: Iterable[Any], test_subjects: Iterable[Any],
                    what: str = "outer fold") -> None:
    """Raise ``LeakageError`` when a subject is in both collections (``what`` names the split)."""
    overlap = sorted({str(s) for s in train_subjects} & {str(s) for s in test_subjects})
    if overlap:
        shown = ", ".join(overlap[:10]) + (f" (+{len(overlap) - 10} more)" if len(overlap) > 10 else "")
        raise LeakageError(
            f"subject leakage in {what}: {len(overlap)} subject(s) on both sides: {shown}")


def _subjects_of(df: pd.DataFrame, subject_col: str) -> np.ndarray:
    if subject_col not in df.columns:
        raise ProtocolError(f"the sample table has no {subject_col!r} column; columns: {list(df.columns)}")
    s = df[subject_col]
    bad = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
    if bad.any():
        raise ProtocolError(f"row {int(np.flatnonzero(bad)[0])} of the sample table has no subject id")
    return s.astype(str).to_numpy()


def check_split(subjects: np.ndarray, a_idx: np.ndarray, b_idx: np.ndarray, what: str) -> None:
    """Check one split from the subject ids found at its positions: indices in range and no subject
    (hence no row) on both sides. ``subjects`` is the per-row subject array of the whole table."""
    n = len(subjects)
    for idx, side in ((a_idx, "train"), (b_idx, "test")):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ProtocolError(f"{what}: {side} index out of range for a table of {n} rows")
    # (a row on both sides is also a subject on both sides, so this covers shared rows too)
    assert_disjoint(subjects[a_idx], subjects[b_idx], what=what)


# --------------------------------------------------------------------------------------- folds


@dataclass(eq=False)
class Fold:
    """One outer fold. ``train_idx`` / ``test_idx`` are sorted positional row indices."""

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    test_subjects: tuple[str, ...]
    train_subjects: tuple[str, ...]

    @property
    def n_train(self) -> int:
        return int(self.train_idx.size)

    @property
    def n_test(self) -> int:
        return int(self.test_idx.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (for run.json / logs)."""
        return {"name": self.name, "test_subjects": list(self.test_subjects),
                "n_train": self.n_train, "n_test": self.n_test}


def _table_df(table) -> pd.DataFrame:
    """Accept a ``SampleTable`` or its DataFrame."""
    df = getattr(table, "df", table)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a SampleTable or a pandas DataFrame, got {type(table).__name__}")
    if len(df) == 0:
        raise ProtocolError("the sample table is empty")
    return df


def _fold_indices(subjects: np.ndarray, test_subjects: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positional (train_idx, test_idx) for one set of test subjects."""
    is_test = np.isin(subjects, np.asarray(list(test_subjects), dtype=object))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _build_folds(subjects: np.ndarray, groups: list[tuple[str, list[str]]], protocol: str) -> list[Fold]:
    folds = []
    for name, test_subj in groups:
        train_idx, test_idx = _fold_indices(subjects, test_subj)
        what = f"{protocol} outer fold {name!r}"
        # The guard looks at the subjects actually at these positions, not at ``test_subj``.
        check_split(subjects, train_idx, test_idx, what)
        if test_idx.size == 0:
            raise ProtocolError(f"{what} has no test samples")
        if train_idx.size == 0:
            raise ProtocolError(f"{what} has no training samples (the table has a single subject?)")
        folds.append(Fold(name=name, train_idx=train_idx, test_idx=test_idx,
                          test_subjects=tuple(sorted(set(subjects[test_idx].tolist()))),
                          train_subjects=tuple(sorted(set(subjects[train_idx].tolist())))))
    check_partition(folds, len(subjects))
    return folds


def check_partition(folds: Sequence[Fold], n_rows: int) -> None:
    """Every row is tested exactly once over the folds (what pooling the predictions assumes)."""
    counts = np.zeros(n_rows, dtype=np.int64)
    for f in folds:
        np.add.at(counts, f.test_idx, 1)
    if (counts != 1).any():
        i = int(np.flatnonzero(counts != 1)[0])
        raise ProtocolError(f"row {i} is tested {int(counts[i])} times over the folds (must be exactly once)")


def _balanced_groups(sizes: Mapping[str, int], k: int, seed: int) -> list[list[str]]:
    """Assign subjects to k groups, largest first to the lightest group (LPT scheduling).

    Written here because sklearn's GroupKFold either balances sizes but ignores the seed
    (shuffle=False) or uses the seed but does not balance (shuffle=True). The seeded shuffle decides
    the order among equally sized subjects, so the split is a function of (sizes, k, seed) only.
    """
    names = sorted(sizes)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda s: -sizes[s])  # stable: keeps the seeded order among ties
    load = np.zeros(k, dtype=np.int64)
    out: list[list[str]] = [[] for _ in range(k)]
    for s in order:
        j = int(np.argmin(load))  # lowest index among equally loaded groups: deterministic
        out[j].append(s)
        load[j] += sizes[s]
    return [sorted(g) for g in out]


def _check_megc2019(df: pd.DataFrame, subjects: np.ndarray, dataset_col: str) -> None:
    if dataset_col not in df.columns:
        raise ProtocolError(f"protocol megc2019 needs a {dataset_col!r} column naming each row's source "
                            f"dataset ({'/'.join(MEGC2019_DATASETS)}); columns: {list(df.columns)}")
    ds = np.array([normalise_database(d) for d in df[dataset_col].astype(str)], dtype=object)
    bad = ~np.isin(ds, np.asarray(MEGC2019_DATASETS, dtype=object))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ProtocolError(
            f"protocol megc2019 is LOSO over the SMIC + CASME II + SAMM composite, but row {i} comes from "
            f"{df[dataset_col].iloc[i]!r} (allowed: {', '.join(MEGC2019_DATASETS)}); use protocol=loso")
    per_subject = pd.Series(ds).groupby(subjects).nunique()
    shared = per_subject[per_subject > 1]
    if len(shared):
        raise ProtocolError(
            f"subject id(s) {', '.join(map(str, shared.index[:5]))} occur in more than one source dataset; "
            "composite subject ids must be unique (e.g. prefixed 'casme2/sub01'), otherwise two people "
            "would share one LOSO fold")
    present = sorted(set(ds.tolist()))
    missing = [d for d in MEGC2019_DATASETS if d not in present]
    if missing:
        log.warning("megc2019 protocol: the composite lacks %s; the scores are not comparable with the "
                    "MEGC2019 68-subject composite", ", ".join(missing))
    for d in present:
        n = len(set(subjects[ds == d].tolist()))
        if n != MEGC2019_SUBJECTS[d]:
            log.info("megc2019 protocol: %s has %d subjects (the MEGC2019 composite has %d)",
                     d, n, MEGC2019_SUBJECTS[d])


@register_protocol
def loso(df: pd.DataFrame, subjects: np.ndarray, uniq: list[str], **_: Any) -> list[tuple[str, list[str]]]:
    """Leave one subject out: one fold per subject, named by the subject id (sorted ids)."""
    return [(s, [s]) for s in uniq]


@register_protocol
def megc2019(df: pd.DataFrame, subjects: np.ndarray, uniq: list[str], *, dataset_col: str = "dataset",
             **_: Any) -> list[tuple[str, list[str]]]:
    """LOSO over the MEGC2019 composite, after checking the table is one (``_check_megc2019``)."""
    _check_megc2019(df, subjects, dataset_col)
    return loso(df, subjects, uniq)


@register_protocol
def group_kfold(df: pd.DataFrame, subjects: np.ndarray, uniq: list[str], *, k: Any = 5, seed: int = 0,
                **_: Any) -> list[tuple[str, list[str]]]:
    """``k`` folds grouped by subject, balanced in sample count, named ``fold0`` ... (seeded)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ProtocolError(f"group_kfold needs an integer k >= 2, got {k!r}")
    if k > len(uniq):
        raise ProtocolError(f"group_kfold with k={k} needs at least {k} subjects, the table has {len(uniq)}")
    sizes = pd.Series(subjects).value_counts().to_dict()
    width = len(str(k - 1))
    return [(f"fold{i:0{width}d}", g) for i, g in enumerate(_balanced_groups(sizes, int(k), int(seed)))]


def _check_protocol_name(name: Any) -> None:
    if not (isinstance(name, str) and name in PROTOCOLS):
        raise ProtocolError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}")


def make_folds(table, protocol: str, *, k: int = 5, seed: int = 0, subject_col: str = "subject",
               dataset_col: str = "dataset", validation: Any = None, description: Any = None) -> list[Fold]:
    """Outer folds of ``protocol`` (a name in ``PROTOCOLS``: ``loso`` | ``megc2019`` | ``group_kfold``) over a
    sample table.

    ``k`` and ``seed`` are used by ``group_kfold`` only (the outer split is deliberately independent of
    the training seeds of a study, so every cell and seed is tested on identical folds).
    ``validation`` / ``description`` are accepted and ignored so that a protocol config node can be
    splatted in (``make_folds(df, cfg["name"], **rest)``); ``ProtocolSpec`` is the validated route.
    """
    df = _table_df(table)
    subjects = _subjects_of(df, subject_col)
    uniq = sorted(set(subjects.tolist()))
    if len(uniq) < 2:
        raise ProtocolError(f"protocol {protocol!r} needs at least 2 subjects, the table has {len(uniq)}")
    _check_protocol_name(protocol)
    groups = PROTOCOLS.get(protocol)(df, subjects, uniq, k=k, seed=seed, dataset_col=dataset_col)
    return _build_folds(subjects, groups, protocol)


# ---------------------------------------------------------------------------------- inner splits


def _train_view(df: pd.DataFrame, train_idx, subject_col: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    train_idx = np.unique(np.asarray(train_idx, dtype=np.int64))
    if train_idx.size == 0:
        raise ProtocolError("empty training index")
    if train_idx.min() < 0 or train_idx.max() >= len(df):
        raise ProtocolError(f"training index out of range for a table of {len(df)} rows")
    subjects = _subjects_of(df, subject_col)
    uniq = sorted(set(subjects[train_idx].tolist()))
    return train_idx, subjects, uniq


def _check_against_test(subjects: np.ndarray, train_idx: np.ndarray, test_idx, what: str) -> None:
    if test_idx is not None:
        check_split(subjects, train_idx, np.asarray(test_idx, dtype=np.int64).ravel(),
                    f"{what} vs the outer test fold")


def _labels_of(df: pd.DataFrame, label_col: str | None) -> np.ndarray | None:
    if label_col is None or label_col not in df.columns:
        return None
    return df[label_col].to_numpy()


def inner_split(table, train_idx, *, val_fraction: float | None = 0.2, n_val_subjects: int | None = None,
                seed: int = 0, stratify: bool = True, label_col: str | None = "label",
                subject_col: str = "subject", n_draws: int = 64,
                test_idx=None) -> tuple[np.ndarray, np.ndarray]:
    """Split an outer fold's training rows into (fit_idx, val_idx) by holding out whole SUBJECTS.

    ``n_val_subjects`` (if given) or ``round(val_fraction * n_train_subjects)`` subjects go to
    validation, clamped to at least 1 and at most n-1. Among ``n_draws`` seeded random draws of
    validation subjects the first best one is kept by: (1) every class of the training rows also
    present in the fit part (so the model sees every class), then, with ``stratify``, (2) the smallest
    L1 distance between the validation and the full training class distributions. Deterministic in
    ``seed``; independent of row order. With ``test_idx`` (the outer fold's test rows) both parts
    are also checked against the test subjects.
    """
    df = _table_df(table)
    train_idx, subjects, uniq = _train_view(df, train_idx, subject_col)
    n = len(uniq)
    if n < 2:
        raise ProtocolError(f"an inner validation split needs at least 2 training subjects, got {n}")
    if n_val_subjects is not None:
        n_val = int(n_val_subjects)
    elif val_fraction is not None:
        if not 0.0 < float(val_fraction) < 1.0:
            raise ProtocolError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        n_val = int(round(float(val_fraction) * n))
    else:
        raise ProtocolError("inner_split needs val_fraction or n_val_subjects")
    if not 1 <= n_val <= n - 1:
        log.info("inner_split: %d validation subject(s) clamped to %d (of %d training subjects)",
                 n_val, min(max(n_val, 1), n - 1), n)
        n_val = min(max(n_val, 1), n - 1)

    tr_subj = subjects[train_idx]
    labels = _labels_of(df, label_col)
    if labels is not None:
        tr_lab = labels[train_idx]
        classes = np.unique(tr_lab)
        overall = np.array([(tr_lab == c).mean() for c in classes])
    rng = np.random.default_rng(seed)
    best_key, best_val = None, None
    for _ in range(max(1, int(n_draws))):
        val_subj = [uniq[i] for i in rng.permutation(n)[:n_val]]
        is_val = np.isin(tr_subj, np.asarray(val_subj, dtype=object))
        if labels is None:
            key: tuple = (0, 0.0)
        else:
            missing = len(set(classes.tolist()) - set(tr_lab[~is_val].tolist()))
            dist = 0.0
            if stratify:
                v = tr_lab[is_val]
                dist = float(np.abs(np.array([(v == c).mean() for c in classes]) - overall).sum())
            key = (missing, round(dist, 12))
        if best_key is None or key < best_key:
            best_key, best_val = key, is_val
        if labels is None or (not stratify and key[0] == 0):
            break  # nothing further to optimise
    assert best_val is not None
    fit_idx, val_idx = train_idx[~best_val], train_idx[best_val]
    if best_key and best_key[0]:
        log.warning("inner_split: no draw of %d validation subject(s) keeps every class in the fit part "
                    "(%d class(es) only in validation)", n_val, best_key[0])
    check_split(subjects, fit_idx, val_idx, "inner validation split")
    _check_against_test(subjects, train_idx, test_idx, "inner validation split")
    return fit_idx, val_idx


def inner_folds(table, train_idx, k: int, seed: int = 0, *, label_col: str | None = "label",
                subject_col: str = "subject", test_idx=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """k subject-grouped (fit_idx, val_idx) folds over an outer fold's training rows (nested tuning).

    Uses scikit-learn's ``StratifiedGroupKFold`` (shuffled, seeded) when labels exist, so each inner
    validation fold has a class mix close to the whole; if that leaves a fold empty (possible with
    very few subjects) it falls back to size-balanced subject groups. Every fold is leak-checked
    (and, with ``test_idx``, checked against the outer fold's test subjects).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    df = _table_df(table)
    train_idx, subjects, uniq = _train_view(df, train_idx, subject_col)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ProtocolError(f"inner_folds needs an integer k >= 2, got {k!r}")
    if k > len(uniq):
        raise ProtocolError(f"inner_folds with k={k} needs at least {k} training subjects, got {len(uniq)}")
    tr_subj = subjects[train_idx]
    labels = _labels_of(df, label_col)
    val_sets: list[np.ndarray] = []
    if labels is not None:
        with warnings.catch_warnings():
            # "The least populated class has only n members": expected with rare micro-expression
            # classes; the grouping constraint wins and the split is still valid.
            warnings.simplefilter("ignore", UserWarning)
            sgkf = StratifiedGroupKFold(n_splits=int(k), shuffle=True, random_state=int(seed))
            val_sets = [v for _, v in sgkf.split(np.zeros(len(train_idx)), labels[train_idx], tr_subj)]
    if not val_sets or any(v.size == 0 for v in val_sets):
        if val_sets:
            log.info("inner_folds: stratified grouping left a fold empty; using size-balanced groups")
        sizes = pd.Series(tr_subj).value_counts().to_dict()
        val_sets = [np.flatnonzero(np.isin(tr_subj, np.asarray(g, dtype=object)))
                    for g in _balanced_groups(sizes, int(k), int(seed))]
    out = []
    for i, v in enumerate(val_sets):
        is_val = np.zeros(len(train_idx), dtype=bool)
        is_val[v] = True
        fit_idx, val_idx = train_idx[~is_val], train_idx[is_val]
        check_split(subjects, fit_idx, val_idx, f"inner tuning fold {i}")
        out.append((fit_idx, val_idx))
    _check_against_test(subjects, train_idx, test_idx, "inner tuning folds")
    return out


# ---------------------------------------------------------------------------------------- config

VALIDATION_MODES = ("none", "subjects")
SELECTION_MODES = ("fixed_budget", "best_epoch")
ProtocolBase = ProtocolNode  # the keys every protocol file has (the schema, in bench.core.schemas)


@dataclass(frozen=True)
class ProtocolSpec(KFoldProtocolNode):
    """A protocol config node as plain values; build it with ``ProtocolSpec.from_mapping(cfg)``.

    Its fields are the schema ``protocol/_schema_kfold`` (``bench.core.schemas.KFoldProtocolNode``: the
    keys of every protocol file, plus group_kfold's ``k``); this class adds the parsing and the splits.
    """

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> "ProtocolSpec":
        """Build from a composed ``protocol`` node (a raw protocol file has no ``name``: its name is its
        file's, filled in by composing); a mapping without ``name`` means ``loso``. Types are checked by
        the dataclass's annotations, as at compose time."""
        from bench.core.schemas import typed

        cfg = dict(cfg)
        cfg.pop("defaults", None)  # a raw file's Hydra defaults list (it names the schema), not a key
        known = {*cls.__dataclass_fields__, "description"}
        extra = sorted(set(cfg) - known)
        if extra:
            raise ProtocolError(f"unknown protocol key(s) {', '.join(extra)}; known: {', '.join(sorted(known))}")
        cfg.pop("description", None)
        cfg.setdefault("name", "loso")  # a bare mapping means LOSO (the schema's name is the file's)
        name = str(cfg["name"])
        _check_protocol_name(name)
        v = dict(cfg.pop("validation", None) or {})
        vknown = set(ValidationSpec.__dataclass_fields__)
        vextra = sorted(set(v) - vknown)
        if vextra:
            raise ProtocolError(f"unknown protocol.validation key(s) {', '.join(vextra)}; "
                                f"known: {', '.join(sorted(vknown))}")
        try:
            spec = typed(cls, {**cfg, "validation": v}, "protocol")
        except ValueError as e:
            raise ProtocolError(str(e)) from None
        val = spec.validation
        if val.mode not in VALIDATION_MODES:
            raise ProtocolError(f"protocol.validation.mode must be one of {VALIDATION_MODES}, got {val.mode!r}")
        if val.selection not in SELECTION_MODES:
            raise ProtocolError(f"protocol.validation.selection must be one of {SELECTION_MODES}, "
                                f"got {val.selection!r}")
        if val.selection == "best_epoch" and val.mode == "none":
            raise ProtocolError("protocol.validation.selection=best_epoch needs validation.mode=subjects "
                                "(the epoch must never be chosen on the test subject)")
        if val.mode == "subjects" and val.n_val_subjects is None and not 0.0 < float(val.val_fraction) < 1.0:
            raise ProtocolError(f"protocol.validation.val_fraction must be in (0, 1), got {val.val_fraction!r}")
        return spec

    def make_folds(self, table) -> list[Fold]:
        return make_folds(table, self.name, k=self.k, seed=self.seed)

    def inner_split(self, table, fold: Fold, unit_seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """The outer fold's (fit_idx, val_idx), or None when ``validation.mode`` is ``none``."""
        v = self.validation
        if v.mode == "none":
            return None
        return inner_split(table, fold.train_idx, val_fraction=v.val_fraction,
                           n_val_subjects=v.n_val_subjects, seed=unit_seed if v.seed is None else v.seed,
                           stratify=v.stratify, test_idx=fold.test_idx)


__all__ = [
    "PROTOCOLS", "register_protocol", "loso", "megc2019", "group_kfold", "MEGC2019_DATASETS", "LeakageError",
    "ProtocolError", "Fold", "assert_disjoint",
    "check_split", "check_partition", "make_folds", "inner_split", "inner_folds", "ValidationSpec",
    "ProtocolBase", "ProtocolSpec",
]
