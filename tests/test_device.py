"""Device policies that CPU machines can check: precision choice, determinism switch, per-trial peak memory."""

import math

import torch

from alchemy_tune.trial.device import FP32, PeakMemory, choose_precision, set_determinism


def test_bf16_only_where_native():
    assert choose_precision(torch.device("cpu"), True) == FP32
    assert choose_precision(torch.device("cpu"), False) == FP32


def test_determinism_switches_both_ways():
    try:
        set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        set_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_peak_rss_is_per_trial_after_a_reset():
    meter = PeakMemory(torch.device("cpu"))
    big = torch.ones(300 * 2**20 // 4)  # 300 MB, touched
    high = meter.rss_mb()
    del big
    meter.reset()
    assert meter.rss_mb() < high - 200  # the earlier peak is forgotten (a reused Ray worker's next trial)
    assert math.isnan(meter.gpu_mb())
