"""The Chinchilla objective's derivatives, and batched inner refits: the same fits as one
at a time."""

from __future__ import annotations

import numpy as np
import pytest
from test_fit_chinchilla import synthetic_runs

from scaletrack.analysis.calibration import calibrate_scatter
from scaletrack.analysis.chinchilla import fit_chinchilla, refit_frames
from scaletrack.analysis.chinchilla_newton import (
    _evaluate,
    _evaluate_recentred,
    _make_problem,
)

# natural-coordinate starts (log A, log B, log E, alpha, beta): near the truth, and far off
STARTS = np.array([
    [np.log(400.0), np.log(1800.0), np.log(1.7), 0.34, 0.36],
    [5.0, 10.0, 0.5, 0.5, 0.5],
    [10.0, 5.0, -1.0, 1.0, 0.5],
])


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_and_hessian_match_finite_differences(weighted):
    df = synthetic_runs(n=40, noise=0.02)
    prob = _make_problem(*(df[c].to_numpy() for c in ("N", "D", "loss")), 1e-3)
    theta = prob.to_centred(STARTS) + 0.01
    w = np.random.default_rng(1).poisson(1.0, (len(theta), 40)).astype(float) if weighted \
        else None
    _, g, hess = _evaluate(prob, theta, w)
    _, g_only, none = _evaluate(prob, theta, w, hessian=False)
    assert none is None and np.array_equal(g_only, g)
    step = 1e-6
    for i in range(5):
        up, down = theta.copy(), theta.copy()
        up[:, i] += step
        down[:, i] -= step
        f_up, g_up, _ = _evaluate(prob, up, w)
        f_down, g_down, _ = _evaluate(prob, down, w)
        scale = np.abs(g).max(axis=1) + 1e-12
        assert np.all(np.abs((f_up - f_down) / (2 * step) - g[:, i]) <= 1e-5 * scale)
        col = (g_up - g_down) / (2 * step)
        hscale = np.abs(hess).max(axis=(1, 2))[:, None]
        assert np.all(np.abs(col - hess[:, :, i]) <= 1e-6 * hscale)


def test_recentred_rows_have_the_derivatives_of_their_own_centring():
    df = synthetic_runs(n=50)
    n, d, loss = (df[c].to_numpy() for c in ("N", "D", "loss"))
    own = _make_problem(n, d, loss, 1e-3)
    other = _make_problem(n * 3.0, d / 7.0, loss, 1e-3)  # centred elsewhere
    other = type(other)(x1=own.x1 + own.x1_mean - 1.5, x2=own.x2 + own.x2_mean + 2.0,
                        y=own.y, x1_mean=1.5, x2_mean=-2.0, delta=1e-3)
    theta = own.to_centred(STARTS)
    shift = np.tile([own.x1_mean - 1.5, own.x2_mean + 2.0], (len(STARTS), 1))
    f0, g0, h0 = _evaluate(own, theta, None)
    f1, g1, h1 = _evaluate_recentred(other, theta, None, shift)
    assert np.allclose(f1, f0, rtol=1e-10)
    assert np.allclose(g1, g0, rtol=1e-8, atol=1e-10 * np.abs(g0).max())
    assert np.allclose(h1, h0, rtol=1e-8, atol=1e-10 * np.abs(h0).max())


@pytest.mark.parametrize("fix", [None, {"E": 0.0}, {"A": 400.0}])
def test_batched_refits_equal_one_at_a_time(fix):
    df = synthetic_runs(seed=2, n=90, noise=0.02)
    c = 6.0 * df["N"] * df["D"]
    frames = [df[c < c.quantile(q)] for q in (0.9, 0.7, 0.5)]
    frames += [df[df["N"] < df["N"].quantile(0.8)], df.iloc[:4]]  # the last is too small
    batched = refit_frames(frames, STARTS, fix=fix)
    assert batched[-1] is None
    for frame, got in zip(frames[:-1], batched[:-1], strict=True):
        alone = fit_chinchilla(frame, n_bootstrap=0, starts=STARTS, fix=fix, calibrate=False)
        assert got is not None and got.n_points == len(frame)
        assert got.status == alone.status
        assert got.extra["converged"] and got.extra["n_starts"] == alone.extra["n_starts"]
        assert got.extra["objective"] == pytest.approx(alone.extra["objective"], rel=1e-9)
        for name, value in alone.params.items():
            assert got.params[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
        assert np.allclose(got.residuals, alone.residuals, rtol=0, atol=1e-7)


def test_calibration_with_batched_refits_matches_sequential():
    df = synthetic_runs(seed=5, n=70)
    plain = fit_chinchilla(df, n_bootstrap=20, calibrate=False)

    def refit(sub):
        return fit_chinchilla(sub, n_bootstrap=0, starts=STARTS, calibrate=False)

    seq = calibrate_scatter(plain, df, refit)
    bat = calibrate_scatter(plain, df, refit,
                            refit_many=lambda frames: refit_frames(frames, STARTS))
    assert bat.extra["inner_reach"]["split"] == seq.extra["inner_reach"]["split"]
    assert np.allclose(bat.extra["inner_reach"]["r"], seq.extra["inner_reach"]["r"],
                       rtol=0, atol=1e-8)
