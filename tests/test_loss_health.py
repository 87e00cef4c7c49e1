"""Loss health: the seed's contract, by tables (NaN/Inf rows included)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acc.loss_health import (
    DEFAULT_THRESHOLDS,
    LossHealth,
    LossSummary,
    LossSummaryAccumulator,
    Thresholds,
    classify_loss,
    compute_loss_summary,
    health_codes,
    health_within,
    infer_task_type,
    loss_trend,
    normalize_task_type,
    worst_health,
)

H, W, C = LossHealth.HEALTHY, LossHealth.WARNING, LossHealth.CRITICAL
NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("task_name", "value", "expected"),
    [
        ("recon", 0.4, C),  # the seed's two examples
        ("recon", 0.02, H),
        ("recon", 0.05, W),  # a bound belongs to the worse band
        ("recon", 0.149, W),
        ("recon", 0.15, C),
        ("recon_loss", 0.01, H),
        ("reconstruction", 0.1, W),
        ("kl", 4.9, H),
        ("kl", 5.0, W),
        ("kl_div", 14.0, W),
        ("kl", 15.0, C),
        ("ce", 0.3, H),
        ("cls_loss", 1.0, W),
        ("classification", 2.0, C),
        ("mse", 0.05, H),
        ("reg", 0.2, W),
        ("val_mse", 0.7, C),
        ("recon", NAN, C),
        ("recon", INF, C),
        ("kl", -INF, C),
        ("whatever", NAN, C),
        ("whatever", 1e9, H),  # custom type: no thresholds, finite is healthy
    ],
)
def test_classify_loss_short_form_infers_type_from_name(task_name: str, value: float, expected: LossHealth) -> None:
    assert classify_loss(task_name, value) is expected


@pytest.mark.parametrize(
    ("task_type", "value", "expected"),
    [
        ("reconstruction", 0.02, H),
        ("ReconstructionTask", 0.1, W),
        ("KLDivergenceTask", 20.0, C),
        ("kl", 3.0, H),
        ("ClassificationTask", 0.49, H),
        ("cross_entropy", 1.5, W),
        ("RegressionTask", 0.6, C),
        ("mse", 0.09, H),
        ("ReconstructionTask", NAN, C),
        ("RegressionTask", -INF, C),
        ("custom", 123.0, H),
        ("custom", INF, C),
    ],
)
def test_classify_loss_full_form(task_type: str, value: float, expected: LossHealth) -> None:
    # the name says nothing, so the given type decides
    assert classify_loss("task7", task_type, value) is expected


def test_an_unknown_type_falls_back_to_the_name_and_never_raises() -> None:
    assert classify_loss("recon", "no-such-type", 0.4) is C
    assert classify_loss("thing", "no-such-type", 0.4) is H
    assert classify_loss("thing", None, 0.4) is H


def test_per_instance_thresholds_override_the_defaults() -> None:
    assert classify_loss("recon", 0.1) is W
    assert classify_loss("recon", 0.1, thresholds=(0.2, 0.3)) is H
    assert classify_loss("recon", "reconstruction", 0.25, thresholds=Thresholds(0.2, 0.3)) is W
    assert classify_loss("custom_task", "custom", 5.0, thresholds=(1.0, 2.0)) is C
    assert classify_loss("recon", NAN, thresholds=(1e9, 1e10)) is C


@pytest.mark.parametrize("bad", [(0.5, 0.1), (NAN, 1.0)])
def test_thresholds_reject_nonsense(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Thresholds(*bad)


def test_a_non_number_loss_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="real number"):
        classify_loss("recon", "abc")  # type: ignore[call-overload]


def test_default_thresholds_match_the_design() -> None:
    assert DEFAULT_THRESHOLDS["reconstruction"] == Thresholds(0.05, 0.15)
    assert DEFAULT_THRESHOLDS["kl"] == Thresholds(5.0, 15.0)
    assert DEFAULT_THRESHOLDS["classification"] == Thresholds(0.5, 2.0)
    assert DEFAULT_THRESHOLDS["regression"] == Thresholds(0.1, 0.5)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("recon", "reconstruction"),
        ("train/recon_loss", "reconstruction"),
        ("kl", "kl"),
        ("loss_kld", "kl"),
        ("ce", "classification"),
        ("digit_cls", "classification"),
        ("classifier_loss", "classification"),
        ("val_mse", "regression"),
        ("regression", "regression"),
        ("record", "custom"),  # "rec" only as a whole word
        ("accuracy", "custom"),
        ("loss", "custom"),
    ],
)
def test_infer_task_type(name: str, expected: str) -> None:
    assert infer_task_type(name) == expected


def test_normalize_task_type_accepts_seed_class_names_and_aliases() -> None:
    assert normalize_task_type("KLDivergenceTask") == "kl"
    assert normalize_task_type("ReconstructionTask") == "reconstruction"
    assert normalize_task_type("Cross-Entropy") == "classification"
    assert normalize_task_type("nope") is None


def test_worst_health() -> None:
    assert worst_health([]) is H
    assert worst_health([H, "warning", H]) is W
    assert worst_health([W, C, H]) is C


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 0.9, 0.5, 0.4], "improving"),
        ([0.4, 0.5, 0.9, 1.0], "worsening"),
        ([1.0, 1.01, 0.99, 1.0], "flat"),  # within 5 %
        ([1.0, 0.5], "flat"),  # too few points for a trend
        ([1.0, NAN, 0.9, INF, 0.5, 0.4], "improving"),  # non-finite values ignored
        ([0.0, 0.0, 0.0, 0.0], "flat"),
    ],
)
def test_loss_trend(values: list[float], expected: str) -> None:
    assert loss_trend(values) == expected


def _records(task: str, values: list[float], task_type: str | None = None) -> list[dict[str, object]]:
    return [{"step": i, "task_name": task, "task_type": task_type, "loss": v} for i, v in enumerate(values)]


def test_compute_loss_summary_groups_by_task_and_uses_finite_values() -> None:
    records = _records("recon", [0.3, 0.2, 0.1, 0.04], "reconstruction") + _records("kl", [20.0, 18.0, 12.0, 14.0])
    summaries = compute_loss_summary(records)
    recon, kl = summaries["recon"], summaries["kl"]
    assert recon == LossSummary(
        task_name="recon",
        task_type="reconstruction",
        mean=pytest.approx(0.16),
        final=0.04,
        min=0.04,
        max=0.3,
        trend="improving",
        health=H,
        n_steps=4,
        n_nonfinite=0,
        last_step=3,
    )
    assert kl.task_type == "kl"  # inferred from the name
    assert (kl.final, kl.health, kl.trend) == (14.0, W, "improving")


def test_non_finite_values_are_counted_and_make_the_task_critical() -> None:
    summary = compute_loss_summary(_records("recon", [0.03, NAN, 0.02, INF], "reconstruction"))["recon"]
    assert summary.n_nonfinite == 2
    assert summary.n_steps == 4
    assert summary.health is C
    assert summary.final == 0.02  # the last finite value
    assert summary.mean == pytest.approx(0.025)
    assert (summary.min, summary.max) == (0.02, 0.03)


def test_all_non_finite_task_has_nan_statistics() -> None:
    summary = compute_loss_summary(_records("kl", [NAN, NAN]))["kl"]
    assert math.isnan(summary.mean) and math.isnan(summary.final)
    assert summary.health is C


def test_summary_orders_records_by_step_and_honours_thresholds() -> None:
    records = list(reversed(_records("custom_loss", [5.0, 4.0, 3.0, 2.0], "custom")))
    summary = compute_loss_summary(records, thresholds={"custom_loss": (1.0, 2.5)})["custom_loss"]
    assert summary.final == 2.0
    assert summary.trend == "improving"
    assert summary.health is W


def test_summary_to_dict_round_trips() -> None:
    summary = compute_loss_summary(_records("kl", [1.0, NAN]))["kl"]
    data = summary.to_dict()
    assert data["health"] == "critical"
    again = LossSummary.from_dict(data)
    assert again.health is C
    assert again.n_nonfinite == 1


def test_a_record_without_loss_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="task_name"):
        compute_loss_summary([{"step": 1, "task_name": "x"}])


@pytest.mark.parametrize("bounds", [None, Thresholds(0.1, 0.3), Thresholds(0.2, 0.2)])
def test_health_codes_agree_with_health_within_value_by_value(bounds: Thresholds | None) -> None:
    values = np.array([0.0, 0.05, 0.1, 0.2, 0.29, 0.3, 5.0, -1.0, math.nan, math.inf, -math.inf])
    by_code = [LossHealth.HEALTHY, LossHealth.WARNING, LossHealth.CRITICAL]
    assert [by_code[c] for c in health_codes(values, bounds)] == [health_within(v, bounds) for v in values]


def test_add_many_is_add_per_value_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=n) * 10.0**e for n, e in [(50, 0), (7, 8), (1, -9), (33, 3)]]
    blocks[1][3] = math.nan
    blocks[3][[0, 5]] = [math.inf, -math.inf]
    one, many = LossSummaryAccumulator("recon", "reconstruction"), LossSummaryAccumulator("recon", "reconstruction")
    step = 0
    for block in blocks:
        for v in block:
            step += 1
            one.add(float(v), step)
        many.add_many(block, step)
    assert many.summary() == one.summary()
    assert many._prefix == one._prefix  # the running sums, exactly
    empty = LossSummaryAccumulator("recon")
    empty.add_many(np.array([]), None)
    assert empty.summary().n_steps == 0
