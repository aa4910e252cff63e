import math

import pytest
import torch

from alchemy_tune.lambdas import LambdaSchedule


def test_static_schedules():
    assert LambdaSchedule("constant", 10, 100).lambda_at(50) == 10
    warm = LambdaSchedule("warmup", 10, 100, warmup=0.2)
    assert warm.lambda_at(0) == 0 and warm.lambda_at(10) == pytest.approx(5) and warm.lambda_at(40) == 10
    assert LambdaSchedule("linear_decay", 10, 100).lambda_at(75) == pytest.approx(2.5)
    cos = LambdaSchedule("cosine_decay", 10, 100)
    assert cos.lambda_at(0) == pytest.approx(10) and cos.lambda_at(50) == pytest.approx(5)
    assert cos.lambda_at(100) == pytest.approx(0, abs=1e-9)


def test_lambda_zero_is_plain_task_loss():
    s = LambdaSchedule("constant", 0.0, 10)
    assert not s.uses_uriel
    task, uriel = torch.tensor(1.5), torch.tensor(3.0)
    assert s.combine(task, uriel, 0).item() == pytest.approx(1.5)


def test_alchemyscale_follows_the_paper_rule():
    s = LambdaSchedule("alchemyscale", 0.0, 1000, interval=100)
    task, uriel = torch.tensor(2.0), torch.tensor(0.02)
    loss = s.combine(task, uriel, 0)
    # first batch: w = mean(L) / L
    w0 = torch.tensor([1.01 / 2.0, 1.01 / 0.02])
    assert torch.allclose(s.scale_weights, w0)
    assert loss.item() == pytest.approx(float(w0[0] * 2.0 + w0[1] * 0.02), rel=1e-5)
    s.combine(torch.tensor(1.0), torch.tensor(0.01), 50)  # not an update step
    assert torch.allclose(s.scale_weights, w0)
    s.combine(torch.tensor(1.0), torch.tensor(0.01), 100)
    r = torch.tensor([0.505 / 1.0, 0.505 / 0.01])
    r[1] = torch.maximum(r[1], 1.1 * w0[1])
    assert torch.allclose(s.scale_weights, 0.1 * r + 0.9 * w0)
    assert s.effective_lambda(100) == pytest.approx(float(s.scale_weights[1] / s.scale_weights[0]))


def test_alchemytune_weights_learn_and_do_not_collapse():
    s = LambdaSchedule("alchemytune", 0.0, 100)
    opt = torch.optim.SGD(s.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        s.combine(torch.tensor(2.0), torch.tensor(0.05), 0).backward()
        opt.step()
    # uncertainty weighting converges to weight = 1 / L for each loss, far from zero
    weights = torch.exp(-s.log_vars.detach())
    assert weights[0].item() == pytest.approx(1 / 2.0, rel=0.05)
    assert weights[1].item() == pytest.approx(1 / 0.05, rel=0.05)
    assert s.effective_lambda(0) == pytest.approx(40, rel=0.1)
    assert not math.isnan(s.effective_lambda(0))
