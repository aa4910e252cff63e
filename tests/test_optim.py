"""Parameter groups, weight decay and the LR schedule of a trial, on the real model and optimiser."""

import pytest
import torch
from transformers import BertConfig, BertModel

from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.lambdas import LambdaSchedule
from alchemy_tune.trial.model import AlchemyModel
from alchemy_tune.trial.optim import build_optimizer, lr_factor, no_decay_names, total_steps


def small_model(**changes) -> AlchemyModel:
    config = TrialConfig(**{"projection": "mlp", "proj_layernorm": True, **changes})
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16, max_position_embeddings=32), add_pooling_layer=False)
    return AlchemyModel(bert, num_outputs=3, uriel_dim=4, config=config)


def lrs(optimizer, scheduler, steps: int) -> list[list[float]]:
    """The LR of every group used by each of ``steps`` optimiser updates (as the trial loop steps them)."""
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_starts_at_zero_then_decays_linearly_to_zero():
    config = TrialConfig(lr=1e-3, warmup_ratio=0.2, weight_decay=0.0)
    model = small_model()
    optimizer, scheduler = build_optimizer(model, LambdaSchedule("constant", 10, 10), config, total=10)
    used = [g[0] for g in lrs(optimizer, scheduler, 10)]
    # warm-up over 2 steps: 0, 0.5, then the peak at step 2 and a linear fall that would reach 0 at step 10
    expected = [0.0, 0.5e-3] + [1e-3 * (10 - s) / 8 for s in range(2, 10)]
    assert used == pytest.approx(expected)
    assert lr_factor(0, 0, 10) == 1.0  # no warm-up: the first update uses the full LR


def test_weight_decay_skips_biases_and_layernorm_weights():
    model = small_model()
    skip = no_decay_names(model)
    assert "encoder.embeddings.LayerNorm.weight" in skip
    assert "encoder.encoder.layer.0.output.LayerNorm.weight" in skip
    assert "projection.1.weight" in skip  # the projection's own LayerNorm (proj_layernorm)
    assert "task_head.bias" in skip and "encoder.encoder.layer.0.attention.self.query.bias" in skip
    assert "task_head.weight" not in skip and "encoder.encoder.layer.0.attention.self.query.weight" not in skip

    config = TrialConfig(weight_decay=0.5, lr=0.1)
    optimizer, _ = build_optimizer(model, LambdaSchedule("constant", 10, 10), config, total=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():  # a zero gradient: Adam's update is 0, so only weight decay moves a weight
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        decayed = not torch.equal(p.detach(), before[name])
        assert decayed is (name not in skip and bool(before[name].abs().sum() > 0)), name


def test_alchemytune_log_variances_have_their_own_group():
    config = TrialConfig(lr=1e-4, tune_lr=0.02, weight_decay=0.01, lambda_schedule="alchemytune")
    schedule = LambdaSchedule("alchemytune", 10, 100)
    optimizer, scheduler = build_optimizer(small_model(), schedule, config, total=100)
    groups = optimizer.param_groups
    own = [g for g in groups if any(p is schedule.log_vars for p in g["params"])]
    assert len(own) == 1 and len(own[0]["params"]) == 1 and own[0]["weight_decay"] == 0.0
    index = groups.index(own[0])
    used = lrs(optimizer, scheduler, 100)
    assert {u[index] for u in used} == {0.02}  # no LR decay for them
    assert used[-1][0] == pytest.approx(1e-6) and used[0][0] == pytest.approx(1e-4)  # the model's LR decays


def test_total_steps_and_max_steps():
    assert total_steps(TrialConfig(batch_size=32, epochs=2.0), 500) == (32, 16)
    assert total_steps(TrialConfig(batch_size=32, epochs=100.0, max_steps=500), 500) == (500, 16)
