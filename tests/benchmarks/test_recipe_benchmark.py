"""``python -m benchmarks.recipe``: the reference recipe is fixed, whatever candidate is given."""

from __future__ import annotations

from benchmarks import recipe


def test_a_candidates_trainer_keys_never_reach_the_reference_recipe():
    """``trainer.epochs=20 trainer.lr=2e-3`` is the candidate; OFF-ApexNet's reference stays the
    trainer defaults' 40 epochs at lr 1e-3 (before the fix it became 40 epochs at lr 2e-3)."""
    plain = recipe.reference_trainer("off_apexnet")
    given = recipe.reference_trainer("off_apexnet", ["study.models=[off_apexnet]", "trainer.epochs=20",
                                                     "trainer.lr=2e-3", "trainer.scheduler=onecycle"])
    assert given == plain
    assert (given["epochs"], given["lr"], given["scheduler"]) == (40, 1e-3, "none")
    assert recipe.reference_trainer("ststnet")["epochs"] == 40  # issue 15's reference, unchanged
