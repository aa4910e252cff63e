"""Encoder + task head + URIEL projection head, and the two losses.

Deviation from the authors' code (paper.md, bugs 1–2): the URIEL target is a float vector compared
element-wise with a projection of the same shape (no long cast, no broadcasting), and the projection is a
submodule of the model, so the optimiser trains it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.tasks.base import stable_seed

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


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str,
         pooler_output: torch.Tensor | None = None) -> torch.Tensor:
    """First-token state (``cls``), the mask-weighted mean over tokens (``mean``), or the encoder's
    pooler output (``pooler``: tanh-dense on the first token, loaded with the encoder)."""
    if how == "pooler":
        if pooler_output is None:
            raise ValueError("pooling 'pooler' needs an encoder loaded with its pooler (load_encoder(pooler=True))")
        return pooler_output
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
        self._projection_draws = config.projection == "mlp" and config.proj_dropout > 0
        self._seed = config.seed

    def forward(self, input_ids, attention_mask, token_type_ids=None, *, project: bool = True,
                step: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(task logits, URIEL projection or None when ``project`` is False)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.encoder(**kwargs)
        hidden = out.last_hidden_state
        pooler_output = getattr(out, "pooler_output", None)
        # Pooling and both heads in fp32 even under bf16 autocast: bf16 logits flip argmaxes between
        # close classes (~1% of examples with 60 intents), and the heads cost nothing next to the encoder.
        with torch.autocast(hidden.device.type, enabled=False):
            pooled = pool(hidden.float(), attention_mask, self.pooling,
                          pooler_output.float() if pooler_output is not None else None)
            pooled = self.dropout(pooled)
            return self.task_head(pooled), self._project(pooled, step) if project else None

    def _project(self, pooled: torch.Tensor, step: int) -> torch.Tensor:
        if not (self.training and self._projection_draws):
            return self.projection(pooled)
        # The projection's dropout draws from a stream of its own, a function of (seed, step): trials that
        # differ only in λ or the projection then share every other dropout mask (matched baselines), and a
        # resumed trial replays the same masks.
        cuda = pooled.device.type == "cuda"
        with torch.random.fork_rng(devices=[pooled.device] if cuda else []):
            seed = stable_seed("projection-dropout", self._seed, step)
            if cuda:
                torch.cuda.manual_seed(seed)
            else:
                torch.default_generator.manual_seed(seed)
            return self.projection(pooled)


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
