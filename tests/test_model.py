"""The model's losses against a hand computation, and the projection being trained."""

import math

import pytest
import torch
from transformers import BertConfig, BertModel

from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.lambdas import LambdaSchedule
from alchemy_tune.trial.model import AlchemyModel, build_projection, pool, task_loss, uriel_loss


def tiny_bert():
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16, max_position_embeddings=32), add_pooling_layer=False)


def test_loss_matches_hand_computation():
    config = TrialConfig(projection="linear", dropout=0.0)
    model = AlchemyModel(tiny_bert(), num_outputs=3, uriel_dim=4, config=config).eval()
    ids = torch.tensor([[2, 5, 7, 0], [3, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    labels = torch.tensor([2, 0])
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 1.0]])
    logits, proj = model(ids, mask)
    lam = 10.0
    total = LambdaSchedule("constant", lam, 10).combine(task_loss("classification", logits, labels),
                                                         uriel_loss(proj, targets), 0)
    # by hand, element by element
    ce = 0.0
    for b in range(2):
        row = logits[b].tolist()
        log_z = math.log(sum(math.exp(v) for v in row))
        ce += -(row[labels[b]] - log_z)
    ce /= 2
    mse = sum((proj[b, d].item() - targets[b, d].item()) ** 2 for b in range(2) for d in range(4)) / 8
    assert total.item() == pytest.approx(ce + lam * mse, rel=1e-5)


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 1.0]]


def test_uriel_loss_refuses_broadcasting():
    # the authors' bug: a [B, D, 1] vs [B, D, D] broadcast; here shapes must match exactly
    with pytest.raises(ValueError, match="shape"):
        uriel_loss(torch.zeros(2, 4, 1), torch.zeros(2, 4))


def test_projection_designs():
    mlp = build_projection(8, 5, TrialConfig(projection="mlp", proj_depth=3, proj_width=16, proj_layernorm=True,
                                             proj_sigmoid=True, proj_activation="relu", proj_dropout=0.1))
    linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 16), (16, 5)]
    assert isinstance(mlp[-1], torch.nn.Sigmoid)
    out = mlp(torch.randn(4, 8) * 100)
    assert out.shape == (4, 5) and bool(((out >= 0) & (out <= 1)).all())


def test_regression_loss_is_mse_on_single_output():
    logits = torch.tensor([[0.5], [0.0]])
    assert task_loss("pair_regression", logits, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.125)


def test_heads_and_losses_run_in_fp32_under_bf16_autocast():
    """bf16 logits flip the argmax between close classes: under autocast the encoder may run in bf16, the
    pooling, both heads and both losses stay fp32."""
    model = AlchemyModel(tiny_bert(), 60, 505, TrialConfig(projection="mlp"))
    ids = torch.randint(5, 50, (4, 12))
    mask = torch.ones_like(ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        unguarded = model.task_head(hidden[:, 0])
        logits, projected = model(ids, mask)
        l_task = task_loss("classification", logits, torch.zeros(4, dtype=torch.long))
        l_uriel = uriel_loss(projected, torch.rand(4, 505))
    assert unguarded.dtype == torch.bfloat16  # autocast is on: a head outside the guard would run in bf16
    assert logits.dtype == projected.dtype == l_task.dtype == l_uriel.dtype == torch.float32
