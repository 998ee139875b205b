"""bench.protocols.folds: outer folds, inner splits, the leakage guard and the protocol configs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import bench.protocols.folds as protocol
from bench.data.table import SampleTable
from bench.protocols.folds import (
    Fold,
    LeakageError,
    ProtocolError,
    ProtocolSpec,
    assert_disjoint,
    check_partition,
    inner_folds,
    inner_split,
    make_folds,
)

CONF = Path(protocol.__file__).parents[1] / "conf" / "protocol"


def table(counts: dict[str, int], n_classes: int = 3, dataset: str | dict = "synthetic", seed: int = 0,
          shuffle: bool = True) -> pd.DataFrame:
    """A sample table with ``counts[subject]`` rows per subject, rows shuffled, a non-range index."""
    rows = []
    for s, n in counts.items():
        for j in range(n):
            ds = dataset[s] if isinstance(dataset, dict) else dataset
            rows.append({"dataset": ds, "subject": s, "clip": f"{s}_{j}", "onset": 0, "apex": 1, "offset": 2,
                         "label": (j + len(rows)) % n_classes})
    df = pd.DataFrame(rows)
    if shuffle:
        df = df.sample(frac=1.0, random_state=seed)
    df.index = np.arange(len(df)) * 10 + 7  # positional indices must not depend on the index labels
    return df


COUNTS = {"s03": 4, "s01": 3, "s02": 1, "s05": 6, "s04": 2, "s06": 3}


def subj(df, idx):
    return set(df["subject"].to_numpy()[idx].tolist())


def test_loso_one_fold_per_subject_sorted_and_disjoint():
    df = table(COUNTS)
    folds = make_folds(df, "loso")
    assert [f.name for f in folds] == sorted(COUNTS)
    for f in folds:
        assert subj(df, f.test_idx) == {f.name} and f.test_subjects == (f.name,)
        assert f.name not in subj(df, f.train_idx)
        assert set(f.train_subjects) == set(COUNTS) - {f.name}
        assert f.n_test == COUNTS[f.name] and f.n_train == len(df) - COUNTS[f.name]
        assert np.all(np.diff(f.train_idx) > 0) and np.all(np.diff(f.test_idx) > 0)
    all_test = np.sort(np.concatenate([f.test_idx for f in folds]))
    np.testing.assert_array_equal(all_test, np.arange(len(df)))  # each row tested exactly once


def test_loso_is_independent_of_row_order_and_accepts_a_sample_table():
    a, b = table(COUNTS, seed=1), table(COUNTS, seed=2)
    fa = make_folds(SampleTable(df=a, classes=["x", "y", "z"], name="t"), "loso")
    fb = make_folds(b, "loso")
    for x, y in zip(fa, fb):
        assert x.name == y.name
        assert sorted(a["clip"].to_numpy()[x.test_idx]) == sorted(b["clip"].to_numpy()[y.test_idx])


def test_megc2019_validates_the_composite():
    counts = {"smic/s1": 2, "smic/s2": 2, "casme2/sub01": 3, "casme2/sub02": 1, "samm/006": 2}
    ds = {s: s.split("/")[0] for s in counts}
    df = table(counts, dataset=ds)
    folds = make_folds(df, "megc2019")
    assert [f.name for f in folds] == sorted(counts)
    for f in folds:  # a fold's test rows come from one source dataset: the per-dataset breakdown is sound
        assert len(set(df["dataset"].to_numpy()[f.test_idx])) == 1

    spelled = df.assign(dataset=df["dataset"].replace({"casme2": "CASME_II", "smic": "SMIC-HS"}))
    assert [f.name for f in make_folds(spelled, "megc2019")] == sorted(counts)  # published spellings
    bad = df.copy()
    bad.iloc[0, bad.columns.get_loc("dataset")] = "synthetic"
    with pytest.raises(ProtocolError, match="comes from 'synthetic'"):
        make_folds(bad, "megc2019")
    shared = table({"s1": 2, "s2": 2}, dataset="smic")
    shared.iloc[0, shared.columns.get_loc("dataset")] = "samm"
    with pytest.raises(ProtocolError, match="more than one source dataset"):
        make_folds(shared, "megc2019")
    with pytest.raises(ProtocolError, match="needs a 'dataset' column"):
        make_folds(df.drop(columns="dataset"), "megc2019")


def test_megc2019_warns_when_a_database_is_missing(caplog):
    df = table({"casme2/a": 2, "samm/b": 2}, dataset={"casme2/a": "casme2", "samm/b": "samm"})
    with caplog.at_level(logging.WARNING, logger="bench.protocols.folds"):
        make_folds(df, "megc2019")
    assert "lacks smic" in caplog.text


def test_group_kfold_grouped_balanced_and_seeded():
    counts = {f"s{i:02d}": n for i, n in enumerate([5, 4, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1])}
    df = table(counts)
    folds = make_folds(df, "group_kfold", k=3, seed=0)
    assert [f.name for f in folds] == ["fold0", "fold1", "fold2"]
    check_partition(folds, len(df))
    for f in folds:
        assert not subj(df, f.train_idx) & subj(df, f.test_idx)
    sizes = [f.n_test for f in folds]
    assert max(sizes) - min(sizes) <= max(counts.values())  # LPT balance bound
    assert sum(sizes) == len(df) and max(sizes) - min(sizes) <= 1  # here: 30 rows -> 10/10/10
    again = make_folds(table(counts, seed=5), "group_kfold", k=3, seed=0)
    assert [f.test_subjects for f in again] == [f.test_subjects for f in folds]  # row order free
    equal = table({f"s{i}": 2 for i in range(9)})
    splits = {tuple(f.test_subjects for f in make_folds(equal, "group_kfold", k=3, seed=s)) for s in range(6)}
    assert len(splits) > 1  # the seed decides among equally sized subjects
    wide = make_folds(table({f"s{i}": 1 for i in range(11)}), "group_kfold", k=10)
    assert wide[0].name == "fold0" and wide[9].name == "fold9"


@pytest.mark.parametrize("kw, match", [
    ({"protocol": "group_kfold", "k": 7}, "needs at least 7 subjects"),
    ({"protocol": "group_kfold", "k": 1}, "k >= 2"),
    ({"protocol": "lopo"}, r"^unknown protocol 'lopo'; available: loso, megc2019, group_kfold$"),
])
def test_bad_protocol_parameters(kw, match):
    with pytest.raises(ProtocolError, match=match):
        make_folds(table(COUNTS), **kw)


def test_bad_tables():
    with pytest.raises(ProtocolError, match="at least 2 subjects"):
        make_folds(table({"only": 3}), "loso")
    df = table(COUNTS)
    df.iloc[4, df.columns.get_loc("subject")] = None
    with pytest.raises(ProtocolError, match="row 4 of the sample table has no subject"):
        make_folds(df, "loso")


# ------------------------------------------------------------------------------- leakage guard


def test_assert_disjoint_fires_and_names_subjects_and_split():
    assert_disjoint(["a", "b"], ["c"])  # fine
    with pytest.raises(LeakageError, match=r"outer fold 's02'.*2 subject\(s\).*s02, s05") as e:
        assert_disjoint(["s01", "s02", "s05"], ["s05", "s02"], what="outer fold 's02'")
    assert isinstance(e.value, AssertionError)


def test_a_hand_built_leaking_fold_is_caught():
    df = table(COUNTS)
    subjects = df["subject"].to_numpy()
    good = make_folds(df, "loso")[0]
    leaking = Fold(name=good.name, train_idx=np.arange(len(df)), test_idx=good.test_idx,
                   test_subjects=good.test_subjects, train_subjects=tuple(sorted(COUNTS)))
    with pytest.raises(LeakageError, match="s01"):
        protocol.check_split(subjects, leaking.train_idx, leaking.test_idx, f"outer fold {leaking.name!r}")
    with pytest.raises(LeakageError):
        assert_disjoint(leaking.train_subjects, leaking.test_subjects)


def test_make_folds_own_check_fires(monkeypatch):
    # A bug in the index computation (every row kept in training) must be stopped by make_folds itself.
    def buggy(subjects, test_subjects):
        is_test = np.isin(subjects, list(test_subjects))
        return np.arange(len(subjects)), np.flatnonzero(is_test)

    monkeypatch.setattr(protocol, "_fold_indices", buggy)
    with pytest.raises(LeakageError, match=r"loso outer fold 's01'.*s01"):
        make_folds(table(COUNTS), "loso")


def test_make_folds_check_uses_the_rows_not_the_claimed_subjects(monkeypatch):
    # The buggy assignment puts one s02 row in training while claiming only s01 is tested.
    def buggy(subjects, test_subjects):
        is_test = np.isin(subjects, list(test_subjects))
        is_test[np.flatnonzero(subjects == "s02")[1:]] = True  # all but one s02 row tested too
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)

    monkeypatch.setattr(protocol, "_fold_indices", buggy)
    df = table({"s01": 2, "s02": 3, "s03": 2})
    with pytest.raises(LeakageError, match="s02"):
        make_folds(df, "loso")


# ---------------------------------------------------------------------------------- inner splits


def test_inner_split_by_subject_seeded_and_class_complete():
    df = table({f"s{i:02d}": 3 + i % 3 for i in range(10)}, n_classes=3)
    fold = make_folds(df, "loso")[0]
    fit, val = inner_split(df, fold.train_idx, val_fraction=0.2, seed=3, test_idx=fold.test_idx)
    assert len(subj(df, val)) == 2 and not subj(df, fit) & subj(df, val)
    assert subj(df, fit) | subj(df, val) == set(fold.train_subjects)
    np.testing.assert_array_equal(np.sort(np.r_[fit, val]), fold.train_idx)
    labels = df["label"].to_numpy()
    assert set(labels[fit]) == set(labels[fold.train_idx])
    fit2, val2 = inner_split(df, fold.train_idx, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(val, val2)
    vals = {tuple(sorted(subj(df, inner_split(df, fold.train_idx, seed=s)[1]))) for s in range(8)}
    assert len(vals) > 1
    _, v1 = inner_split(df, fold.train_idx, n_val_subjects=4, seed=0)
    assert len(subj(df, v1)) == 4


def test_inner_split_keeps_at_least_one_subject_each_side():
    df = table({"a": 2, "b": 2, "c": 2})
    fold = make_folds(df, "loso")[0]  # 2 training subjects
    for frac in (0.01, 0.99):
        fit, val = inner_split(df, fold.train_idx, val_fraction=frac)
        assert len(subj(df, fit)) == 1 and len(subj(df, val)) == 1
    with pytest.raises(ProtocolError, match="at least 2 training subjects"):
        inner_split(df, np.flatnonzero(df["subject"].to_numpy() == "a"))


def test_inner_split_prefers_fit_parts_holding_every_class():
    # Only subject "rare" has class 2: it must never be drawn into validation.
    df = table({f"s{i}": 4 for i in range(6)} | {"rare": 2}, n_classes=2, shuffle=False)
    df.loc[df.subject == "rare", "label"] = 2
    idx = np.arange(len(df))
    for seed in range(10):
        fit, val = inner_split(df, idx, n_val_subjects=3, seed=seed, stratify=False)
        assert "rare" in subj(df, fit)


def test_inner_split_guard_against_the_outer_test_fold():
    df = table(COUNTS)
    fold = make_folds(df, "loso")[0]
    wrong_train = np.arange(len(df))  # a caller bug: the test subject left in the training rows
    with pytest.raises(LeakageError, match="vs the outer test fold"):
        inner_split(df, wrong_train, test_idx=fold.test_idx)
    with pytest.raises(LeakageError, match="vs the outer test fold"):
        inner_folds(df, wrong_train, 3, test_idx=fold.test_idx)


def test_inner_split_own_check_fires(monkeypatch):
    real = protocol.check_split
    calls = []

    def spy(subjects, a, b, what):
        calls.append(what)
        # simulate a fit/val bug: move one validation row into fit before the check
        if what == "inner validation split":
            a = np.r_[a, b[:1]]
        real(subjects, a, b, what)

    monkeypatch.setattr(protocol, "check_split", spy)
    df = table(COUNTS)
    with pytest.raises(LeakageError, match="inner validation split"):
        inner_split(df, np.arange(len(df)))
    assert calls == ["inner validation split"]


def test_inner_folds_grouped_cover_and_seeded():
    df = table({f"s{i:02d}": 2 + i % 4 for i in range(12)}, n_classes=3)
    fold = make_folds(df, "loso")[0]
    folds = inner_folds(df, fold.train_idx, 3, seed=1, test_idx=fold.test_idx)
    assert len(folds) == 3
    vals = np.concatenate([v for _, v in folds])
    np.testing.assert_array_equal(np.sort(vals), fold.train_idx)  # each training row validated once
    for fit, val in folds:
        assert val.size and fit.size and not subj(df, fit) & subj(df, val)
        np.testing.assert_array_equal(np.sort(np.r_[fit, val]), fold.train_idx)
    again = inner_folds(df, fold.train_idx, 3, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    without_labels = inner_folds(df.drop(columns="label"), fold.train_idx, 3, seed=1)
    assert all(v.size for _, v in without_labels)
    with pytest.raises(ProtocolError, match="at least 20 training subjects"):
        inner_folds(df, fold.train_idx, 20)


def test_inner_folds_own_check_fires(monkeypatch):
    real = protocol.check_split

    def leaky(subjects, a, b, what):
        if what.startswith("inner tuning fold"):
            a = np.r_[a, b]
        real(subjects, a, b, what)

    monkeypatch.setattr(protocol, "check_split", leaky)
    df = table(COUNTS)
    with pytest.raises(LeakageError, match="inner tuning fold 0"):
        inner_folds(df, np.arange(len(df)), 2)


# ---------------------------------------------------------------------------------------- configs


def test_every_protocol_is_a_registered_function_with_a_config_file():
    assert list(protocol.PROTOCOLS) == ["loso", "megc2019", "group_kfold"]  # the order messages list them in
    assert {p.stem for p in CONF.glob("[!_]*.yaml")} == set(protocol.PROTOCOLS.names())
    for name in protocol.PROTOCOLS:
        assert protocol.PROTOCOLS.get(name).__name__ == name  # registered under its own name
        assert "name" not in yaml.safe_load((CONF / f"{name}.yaml").read_text())  # the file's name is its name


@pytest.mark.parametrize("name", list(protocol.PROTOCOLS))
def test_protocol_yaml_parses(name):
    from bench.core.config import compose, to_container

    cfg = to_container(compose([f"protocol={name}"]).protocol)
    spec = ProtocolSpec.from_mapping(cfg)
    assert spec.name == name
    assert spec.validation.mode == "none" and spec.validation.selection == "fixed_budget"
    if name == "group_kfold":
        assert spec.k == 5


def test_protocol_spec_builds_folds_and_inner_split():
    df = table({f"s{i}": 3 for i in range(8)})
    spec = ProtocolSpec.from_mapping({"name": "group_kfold", "k": 4, "seed": 0,
                                      "validation": {"mode": "subjects", "n_val_subjects": 2}})
    folds = spec.make_folds(df)
    assert len(folds) == 4
    fit, val = spec.inner_split(df, folds[0], unit_seed=7)
    assert len(subj(df, val)) == 2 and not subj(df, val) & set(folds[0].test_subjects)
    assert ProtocolSpec.from_mapping({"name": "loso"}).inner_split(df, folds[0]) is None


@pytest.mark.parametrize("cfg, match", [
    ({"name": "loso", "validation": {"selection": "best_epoch"}}, "needs validation.mode=subjects"),
    ({"name": "loso", "validation": {"mode": "folds"}}, "mode must be one of"),
    ({"name": "loso", "validation": {"val_frac": 0.2}}, "unknown protocol.validation key"),
    ({"name": "loso", "kk": 3}, "unknown protocol key"),
    ({"name": "kfold"}, "unknown protocol 'kfold'"),
    ({"name": "loso", "validation": {"mode": "subjects", "val_fraction": 1.5}}, r"val_fraction must be in \(0, 1\)"),
])
def test_protocol_spec_rejects_bad_configs(cfg, match):
    with pytest.raises(ProtocolError, match=match):
        ProtocolSpec.from_mapping(cfg)
