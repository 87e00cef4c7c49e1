"""Gradient monitor: fused norms vs a plain loop, verdicts, frozen vs dead, LoRA adapters, dtypes, a Trainer."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from conftest import TwoHeadNet, two_task_trainer
from torch import nn
from torch.utils.data import DataLoader

import acc
from acc.monitors import GradientMonitor, GradientThresholds, create_lora_monitor, layer_status

NAN, INF = math.nan, math.inf
TH = GradientThresholds()


class LoRALinear(nn.Module):
    """peft's layout: ``base`` frozen, ``lora_A.default`` (r x in) and ``lora_B.default`` (out x r, zero init)."""

    def __init__(self, base: nn.Linear, r: int = 4, *, freeze_b: bool = False) -> None:
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(r, base.out_features, bias=False)})
        nn.init.zeros_(self.lora_B["default"].weight)
        if freeze_b:  # the classic dead adapter: B stuck at zero, so A never gets a gradient either
            self.lora_B.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + 2.0 * self.lora_B["default"](self.lora_A["default"](x))


class TinyLoRANet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 16)
        self.embed.requires_grad_(False)  # frozen base layer
        self.q = LoRALinear(nn.Linear(16, 16))
        self.v = LoRALinear(nn.Linear(16, 16), freeze_b=True)
        self.head = nn.Linear(16, 3)
        self.unused = nn.Linear(4, 4)  # trainable, but never in the forward: no gradient at all

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(x))
        return self.head(torch.relu(self.v(self.q(h))))


def lora_step(model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()


@pytest.mark.parametrize(
    ("norm", "streak", "expected"),
    [
        (None, 0, "frozen"),
        (1.0, 0, "active"),
        (1e-6, 0, "vanishing"),
        (0.0, 1, "vanishing"),  # zero once is not dead yet
        (0.0, 3, "dead"),  # dead_after=3 zero samples in a row
        (101.0, 0, "exploding"),
        (NAN, 0, "exploding"),  # not finite is exploding, never "active"
        (INF, 0, "exploding"),
        (100.0, 0, "active"),  # the threshold itself is allowed
    ],
)
def test_layer_status_table(norm: float | None, streak: int, expected: str) -> None:
    assert layer_status(norm, streak, TH) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vanishing": 1.0, "exploding": 0.5}, "vanishing < exploding"),
        ({"imbalance": 1.0}, "imbalance"),
        ({"dead_after": 0}, "dead_after"),
        ({"dead_after": 1.5}, "dead_after"),
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GradientThresholds(**kwargs)  # type: ignore[arg-type]


def test_fused_layer_norms_match_a_plain_per_tensor_loop() -> None:
    model = TwoHeadNet()
    x = torch.randn(16, 8)
    out = model(x)
    (out["pred"].pow(2).mean() + out["logits"].logsumexp(-1).mean()).backward()
    monitor = GradientMonitor(model)
    norms = monitor.collect_gradients()
    for layer in ("body.0", "reg", "cls"):
        module = model.get_submodule(layer)
        plain = math.sqrt(sum(torch.linalg.vector_norm(p.grad).item() ** 2 for p in module.parameters()))
        assert norms[layer] == pytest.approx(plain, rel=1e-6)


def test_relative_update_is_the_weight_change_over_the_weight_norm() -> None:
    model = nn.Sequential(nn.Linear(5, 5), nn.Linear(5, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 5)).sum().backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    monitor = GradientMonitor(model)
    monitor.collect_gradients()
    opt.step()
    updates = monitor.collect_updates()
    for layer in ("0", "1"):
        names = [n for n in before if n.startswith(layer + ".")]
        delta = math.sqrt(sum((dict(model.named_parameters())[n] - before[n]).norm().item() ** 2 for n in names))
        weight = math.sqrt(sum(before[n].norm().item() ** 2 for n in names))
        assert updates[layer] == pytest.approx(delta / weight, rel=1e-5)
    assert monitor.get_layer_stats()["0"]["num_updates"] == 1


def test_nothing_reaches_the_host_until_report() -> None:
    model = TwoHeadNet()
    monitor = GradientMonitor(model, every=1)
    model(torch.randn(4, 8))["pred"].sum().backward()
    assert monitor.sample(1)
    monitor.after_step()
    assert monitor.get_layer_stats()["body.0"]["num_samples"] == 0  # still on the device
    (sample,) = monitor.report()
    assert sample.step == 1
    assert monitor.get_layer_stats()["body.0"]["num_samples"] == 1
    assert monitor.report() == []  # fetched once


def test_every_n_samples_only_those_steps() -> None:
    model = TwoHeadNet()
    monitor = GradientMonitor(model, every=3)
    sampled = []
    for step in range(1, 10):
        model(torch.randn(4, 8))["pred"].sum().backward()
        sampled.append(monitor.sample(step))
        monitor.after_step()
    assert [s for s, yes in zip(range(1, 10), sampled, strict=True) if yes] == [3, 6, 9]
    assert [s.step for s in monitor.report()] == [3, 6, 9]


def test_lora_adapters_grouped_per_module_with_a_dead_one_and_frozen_layers() -> None:
    model = TinyLoRANet()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    lora = create_lora_monitor(model)
    assert lora.layer_names == ["q", "v"]  # one "layer" per adapted module
    full = GradientMonitor(model)
    for step in range(1, 5):
        lora_step(model, opt, step)
        lora.sample(step, force=True)
        full.sample(step, force=True)
        opt.step()
        lora.after_step()
        full.after_step()
        lora.report()
        full.report()
    stats = lora.get_layer_stats()
    assert stats["q"]["status"] == "active"
    assert stats["v"]["status"] == "dead"  # lora_A gets exactly zero gradient through the frozen zero B
    summary = lora.get_summary()
    assert summary["total_layers"] == 2
    assert summary["active_layers"] == 1
    assert summary["dead_layers"] == ["v"]
    assert summary["text"] == "1/2 adapters active, 1 dead"
    assert summary["top_layers"][0]["name"] == "q"

    layers = full.get_layer_stats()
    assert layers["embed"]["status"] == "frozen"  # requires_grad=False: frozen, not dead
    assert layers["unused"]["status"] == "frozen"  # trainable but never used: no grad -> frozen, not dead
    assert layers["q.base"]["status"] == "frozen"
    assert layers["v.lora_A.default"]["status"] == "dead"
    assert layers["v.lora_B.default"]["status"] == "frozen"
    assert layers["head"]["status"] == "active"
    fields = full.status_fields()
    assert fields["lora_summary"]["dead_layers"] == ["v"]  # the adapter view of the same monitor
    assert set(fields["lora_stats"]) == {"q", "v"}
    assert "dead" in fields["layer_summary"]["text"] and "frozen" in fields["layer_summary"]["text"]


def test_custom_adapter_key() -> None:
    model = nn.ModuleDict({"enc": nn.Linear(3, 3), "enc_adapter": nn.Linear(3, 3), "dec_adapter": nn.Linear(3, 3)})
    monitor = GradientMonitor(model, adapter_key=r"(?P<module>\w+)_adapter", adapters_only=True)
    assert monitor.layer_names == ["enc", "dec"]
    by_fn = GradientMonitor(model, adapter_key=lambda n: "all" if "adapter" in n else None, adapters_only=True)
    assert by_fn.layer_names == ["all"]
    with pytest.raises(ValueError, match="no adapter parameters"):
        create_lora_monitor(nn.Linear(2, 2)).layer_names  # noqa: B018
    with pytest.raises(ValueError, match="regular expression"):
        GradientMonitor(model, adapter_key="(")


def test_exploding_vanishing_and_imbalance_verdicts() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    monitor = GradientMonitor(model)
    for p, scale in zip(model.parameters(), [1e3, 1e3, 1e-7, 1e-7, 1.0, 1.0], strict=True):
        p.grad = torch.full_like(p, scale)
    monitor.collect_gradients()
    s = monitor.get_summary()
    assert s["exploding_layers"] == ["0"]
    assert s["vanishing_layers"] == ["1"]
    assert s["imbalanced"] and s["imbalance_ratio"] == pytest.approx(1e10, rel=1e-3)
    types = {i["type"] for i in monitor.detect_issues()}
    assert types == {"exploding_gradients", "vanishing_gradients", "gradient_imbalance"}
    for p in model.parameters():
        p.grad = torch.full_like(p, NAN)
    monitor.collect_gradients()
    assert monitor.get_summary()["exploding_layers"] == ["0", "1", "2"]  # NaN gradients are never "active"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_dtypes(dtype: torch.dtype) -> None:
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 2))
    model[1].to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = model[0](torch.randn(8, 6))
    model[1](h.to(dtype)).float().sum().backward()
    monitor = GradientMonitor(model)
    norms = monitor.collect_gradients()
    plain = math.sqrt(sum(p.grad.float().norm().item() ** 2 for p in model[1].parameters()))
    assert norms["1"] == pytest.approx(plain, rel=1e-2)  # half-precision norms, float32 sums
    opt.step()
    assert monitor.collect_updates()["1"] > 0


def test_default_in_the_trainer_samples_every_25_steps(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10)
    trainer.fit(steps=60)
    (grads,) = [m for m in trainer.monitors if isinstance(m, GradientMonitor)]
    stats = grads.get_layer_stats()
    assert set(stats) == {"body.0", "reg", "cls"}
    assert stats["body.0"]["num_samples"] == 2  # steps 25 and 50
    assert stats["body.0"]["step"] == 50
    assert stats["body.0"]["num_updates"] == 2
    assert all(s["status"] == "active" for s in stats.values())
    assert grads.get_summary()["text"] == "3/3 layers active"
    assert grads._before is None  # the weight copy is released after its step


def test_lora_model_in_a_trainer_reports_the_dead_adapter(store: acc.RunStore) -> None:
    model = TinyLoRANet()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(8)]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    monitors = acc.monitors.default_monitors()
    monitors[0] = GradientMonitor(every=5)
    trainer = acc.Trainer(model, opt, data, tasks={"cls": "classification"}, store=store, monitors=monitors)
    trainer.fit(steps=30)
    status = trainer.status()
    assert status.lora_summary is not None
    assert status.lora_summary["dead_layers"] == ["v"]
    assert status.lora_summary["text"] == "1/2 adapters active, 1 dead"
    codes = {a["code"] for a in status.active_alerts}
    assert "dead_adapters" in codes  # a verdict, with a recommendation
    alert = next(a for a in status.active_alerts if a["code"] == "dead_adapters")
    assert "frozen zero" in alert["recommendation"]


def test_before_the_first_sample_layers_are_unknown_not_frozen() -> None:
    model = TinyLoRANet()
    stats = GradientMonitor(model).get_layer_stats()
    assert stats["head"]["status"] == "unknown"  # trainable, not sampled yet
    assert stats["embed"]["status"] == "frozen"  # requires_grad=False is known without a sample
    summary = create_lora_monitor(model).get_summary()
    assert summary["text"] == "no gradient sample yet (2 trainable adapters)"
    assert summary["dead_layers"] == [] and summary["unknown_layers"] == ["q", "v"]


def test_a_failed_job_does_not_keep_the_weight_copy(store: acc.RunStore) -> None:
    class FailingOptimizer(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:
            raise RuntimeError("optimizer exploded")

    model = TwoHeadNet()
    grads = GradientMonitor(every=1)
    data = [(torch.randn(8, 8), torch.randn(8, 1))] * 3
    trainer = acc.Trainer(
        model,
        FailingOptimizer(model.parameters(), lr=0.1),
        data,
        tasks={"reg": acc.tasks.Regression()},
        store=store,
        monitors=[grads],
    )
    with pytest.raises(RuntimeError, match="optimizer exploded"):
        trainer.fit(steps=2)
    assert grads._before is None and grads._pending == []
    assert grads.get_layer_stats()["body.0"]["num_samples"] == 1  # the sampled gradients still reported
