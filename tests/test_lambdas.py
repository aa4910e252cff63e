import math

import pytest
import torch

from alchemy_tune.trial.lambdas import LambdaSchedule


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
    s = LambdaSchedule("alchemytune", 0.0, 100, floor=0.0)
    opt = torch.optim.SGD(s.parameters(), lr=0.1)
    for i in range(300):
        opt.zero_grad()
        # the losses change after the first batch, so the weights must learn to get to 1 / L
        s.combine(torch.tensor(2.0 if i else 0.5), torch.tensor(0.05 if i else 0.5), 0).backward()
        opt.step()
    # uncertainty weighting converges to weight = 1 / L for each loss, far from zero
    weights = torch.exp(-s.log_vars.detach())
    assert weights[0].item() == pytest.approx(1 / 2.0, rel=0.05)
    assert weights[1].item() == pytest.approx(1 / 0.05, rel=0.05)
    assert s.effective_lambda(0) == pytest.approx(40, rel=0.1)
    assert s.weights(0) == pytest.approx(tuple(weights.tolist()))


def test_alchemytune_starts_at_the_first_batchs_optimum():
    s = LambdaSchedule("alchemytune", 0.0, 100, floor=0.01)
    assert s.weights(0) == (1.0, 1.0)  # before any batch
    s.combine(torch.tensor(1.8), torch.tensor(0.24), 0)
    assert s.weights(0) == pytest.approx((1 / 1.8, 1 / (0.24 + 0.01)), rel=1e-5)
    s.combine(torch.tensor(0.5), torch.tensor(0.02), 1)  # later batches do not reset it
    assert s.weights(1) == pytest.approx((1 / 1.8, 1 / 0.25), rel=1e-5)
    # the start survives a checkpoint: a resumed trial does not start over from its first batch
    again = LambdaSchedule("alchemytune", 0.0, 100, floor=0.01)
    again.load_state_dict(s.state_dict())
    again.combine(torch.tensor(0.5), torch.tensor(0.02), 2)
    assert again.weights(2) == pytest.approx(s.weights(1))


def test_alchemytune_floor_caps_the_uriel_weight():
    def weight_after(floor: float) -> float:
        s = LambdaSchedule("alchemytune", 0.0, 100, floor=floor)
        opt = torch.optim.Adam(s.parameters(), lr=0.05)
        for i in range(2000):  # the URIEL loss falls toward 0, as when the projection fits its targets
            opt.zero_grad()
            s.combine(torch.tensor(1.0), torch.tensor(0.1 * 0.99 ** i), i).backward()
            opt.step()
        return s.weights(0)[1]

    assert weight_after(0.0) > 1_000  # without a floor the weight runs away (1 / L, L -> 2e-10)
    capped = weight_after(0.01)
    assert math.isfinite(capped) and 90 <= capped <= 100  # 1 / (L + floor) <= 1 / floor


def test_static_schedules_report_their_weights():
    assert LambdaSchedule("constant", 10, 100).weights(5) == (1.0, 10.0)
    assert LambdaSchedule("warmup", 10, 100, warmup=0.2).weights(10) == pytest.approx((1.0, 5.0))
    assert LambdaSchedule("constant", 0, 100).weights(5) == (1.0, 0.0)
