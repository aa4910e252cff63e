"""Encoder + task head + URIEL projection head, and the two losses.

Deviation from the authors' code (paper.md, bugs 1–2): the URIEL target is a float vector compared
element-wise with a projection of the same shape (no long cast, no broadcasting), and the projection is a
submodule of the model, so the optimiser trains it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrialConfig

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


def build_projection(hidden: int, uriel_dim: int, config: TrialConfig) -> nn.Module:
    """``linear`` as in the paper, or an MLP of ``proj_depth`` linear layers; optional sigmoid output."""
    layers: list[nn.Module] = []
    if config.projection == "linear":
        layers.append(nn.Linear(hidden, uriel_dim))
    else:
        width, d_in = config.proj_width, hidden
        for _ in range(config.proj_depth - 1):
            layers.append(nn.Linear(d_in, width))
            if config.proj_layernorm:
                layers.append(nn.LayerNorm(width))
            layers.append(_ACTIVATIONS[config.proj_activation]())
            if config.proj_dropout:
                layers.append(nn.Dropout(config.proj_dropout))
            d_in = width
        layers.append(nn.Linear(d_in, uriel_dim))
    if config.proj_sigmoid:
        # URIEL values lie in [0, 1]; a sigmoid keeps the prediction in range.
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """First-token state (``cls``) or the mask-weighted mean over tokens (``mean``)."""
    if how == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class AlchemyModel(nn.Module):
    """A transformers encoder with a task head and a URIEL projection head on the pooled representation."""

    def __init__(self, encoder: nn.Module, num_outputs: int, uriel_dim: int, config: TrialConfig):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        self.task_head = nn.Linear(hidden, num_outputs)
        self.projection = build_projection(hidden, uriel_dim, config)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        pooled = self.dropout(pool(hidden, attention_mask, self.pooling))
        return self.task_head(pooled), self.projection(pooled)


def task_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification; MSE on the single output for pair regression."""
    if kind == "classification":
        return F.cross_entropy(logits.float(), labels)
    return F.mse_loss(logits.float().squeeze(-1), labels.float())


def uriel_loss(projected: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between each example's projection and its language's URIEL vector, both [batch, dim]."""
    if projected.shape != targets.shape:
        # The authors' bug 1 was exactly a silent broadcast here; refuse instead.
        raise ValueError(f"projection shape {tuple(projected.shape)} != URIEL target shape {tuple(targets.shape)}")
    return F.mse_loss(projected.float(), targets.float())
