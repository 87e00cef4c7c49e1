"""Task types compute the losses users expect and fail with errors that name the task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import acc
from acc.tasks import (
    Classification,
    ClassificationTask,
    KLDivergence,
    KLDivergenceTask,
    Reconstruction,
    ReconstructionTask,
    Regression,
    RegressionTask,
    Task,
    TaskError,
    as_task,
)


def test_seed_class_names_are_the_same_classes() -> None:
    assert ReconstructionTask is Reconstruction
    assert KLDivergenceTask is KLDivergence
    assert ClassificationTask is Classification
    assert RegressionTask is Regression


def test_reconstruction_is_l1_against_the_input_even_when_flattened() -> None:
    images = torch.rand(4, 1, 8, 8)
    recon = torch.rand(4, 64)
    loss = Reconstruction()((recon, None, None), (images, torch.zeros(4)))
    assert loss.item() == pytest.approx(F.l1_loss(recon, images.reshape(4, 64)).item())


def test_kl_divergence_of_a_standard_normal_posterior_is_zero() -> None:
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert KLDivergence()({"mu": mu, "logvar": logvar}, None).item() == pytest.approx(0.0)
    mu = torch.ones(3, 5)  # KL = 0.5 * sum(mu^2) = 2.5 per example
    assert KLDivergence()((None, mu, logvar), None).item() == pytest.approx(2.5)


def test_classification_and_regression_read_keys_and_indices() -> None:
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert Classification()({"logits": logits}, (None, labels)).item() == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )
    pred, target = torch.randn(6, 1), torch.randn(6)
    assert Regression(output=0, target="y")((pred,), {"y": target}).item() == pytest.approx(
        F.mse_loss(pred.squeeze(1), target).item()
    )


def test_custom_task_with_its_own_thresholds_and_weight() -> None:
    task = Task(lambda out, batch: out.sum(), task_type="regression", weight=0.3, thresholds=(1.0, 2.0))
    assert task(torch.tensor([0.5, 0.25]), None).item() == pytest.approx(0.75)
    assert task.classify("t", 1.5) is acc.LossHealth.WARNING
    assert task.describe() == {"task_type": "regression", "weight": 0.3, "thresholds": [1.0, 2.0], "class": "Task"}


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda out, batch: 1.0, "returned float"),
        (lambda out, batch: torch.ones(3), r"shape \(3,\)"),
        (lambda out, batch: torch.tensor(1), "torch.int64"),
        (lambda out, batch: 1 / 0, "division by zero"),
    ],
)
def test_a_bad_loss_is_a_clear_error_naming_the_task(fn: object, message: str) -> None:
    with pytest.raises(TaskError, match=rf"task 'my_task'.*{message}"):
        Task(fn)(None, None, name="my_task")  # type: ignore[arg-type]


def test_missing_inputs_name_the_task_and_the_key() -> None:
    with pytest.raises(TaskError, match=r"task 'kl'.*'mu'"):
        KLDivergence()({"z": torch.zeros(1)}, None, name="kl")
    with pytest.raises(TaskError, match=r"task 'cls'.*no labels"):
        Classification()(torch.randn(2, 3), torch.randn(2, 3), name="cls")


def test_as_task_from_names_functions_and_rejects_nonsense() -> None:
    assert isinstance(as_task("KLDivergenceTask"), KLDivergence)
    assert as_task("mse").task_type == "regression"
    assert as_task(lambda o, b: o).task_type == "custom"
    with pytest.raises(ValueError, match="not a built-in task type"):
        as_task("banana")
    with pytest.raises(ValueError, match="unknown task_type"):
        Task(lambda o, b: o, task_type="banana")
    with pytest.raises(TypeError, match="must be a Task"):
        as_task(42)  # type: ignore[arg-type]
