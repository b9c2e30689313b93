"""Objectives, clipping rules, BAPO's bound search and group advantages against numpy."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlzoo.core import group_advantages as ga
from rlzoo.core import objectives as obj

# Two sequences of four tokens; the last token of the second is padding.
RATIOS = np.array([[0.5, 0.9, 1.1, 1.5], [0.5, 0.9, 1.25, 4.0]], np.float32)
ADV = np.array([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]], np.float32)
MASK = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)


def token_grads(fn, **kwargs):
    """d loss_t / d log_ratio_t for every token (the loss is a sum of per-token terms)."""

    def total(log_ratio):
        loss, _ = fn(log_ratio, jnp.asarray(ADV), jnp.asarray(MASK), **kwargs)
        return loss.sum()

    return np.asarray(jax.grad(total)(jnp.log(jnp.asarray(RATIOS))))


def np_clip_loss(ratio, adv, low, high):
    return -np.minimum(ratio * adv, np.clip(ratio, low, high) * adv)


@pytest.mark.parametrize(
    "fn,kwargs,low,high",
    [
        (obj.ppo_clip, {}, 0.8, 1.2),
        (obj.clip_higher, {}, 0.8, 1.28),
        (obj.bapo, {"c_low": 0.6, "c_high": 1.3}, 0.6, 1.3),
    ],
)
def test_clip_rules_match_numpy_and_zero_the_right_gradients(fn, kwargs, low, high):
    loss, info = fn(jnp.log(RATIOS), ADV, MASK, **kwargs)
    expected = np.where(MASK, np_clip_loss(RATIOS, ADV, low, high), 0.0)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    grads = token_grads(fn, **kwargs)
    # A > 0: no gradient above ``high``; A < 0: none below ``low``; none on padding.
    zero = ((ADV > 0) & (high < RATIOS)) | ((ADV < 0) & (low > RATIOS)) | ~MASK
    assert np.all(grads[zero] == 0.0)
    assert np.all(grads[~zero] != 0.0)
    np.testing.assert_array_equal(info["clipped_high"], MASK & (ADV > 0) & (high < RATIOS))
    np.testing.assert_array_equal(info["clipped_low"], MASK & (ADV < 0) & (low > RATIOS))


def test_ppo_clip_hand_values():
    # r = 1.5, A = 1: min(1.5, 1.2) = 1.2 -> loss -1.2; r = 0.5, A = -1: min(-0.5, -0.8) -> 0.8
    loss, _ = obj.ppo_clip(jnp.log(RATIOS), ADV, MASK)
    assert loss[0, 3] == pytest.approx(-1.2) and loss[1, 0] == pytest.approx(0.8)


def test_dual_clip_caps_negative_advantages_at_c():
    mask = np.ones_like(MASK)
    loss, info = obj.dual_clip(jnp.log(RATIOS), ADV, mask, eps=0.2, c=3.0)
    base = np_clip_loss(RATIOS, ADV, 0.8, 1.2)
    expected = np.where(ADV < 0, np.minimum(base, -3.0 * ADV), base)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert loss[1, 3] == pytest.approx(3.0)  # r = 4 > c: capped at -c A = 3
    grads = jax.grad(lambda lr: obj.dual_clip(lr, ADV, mask)[0].sum())(jnp.log(RATIOS))
    assert grads[1, 3] == 0.0 and grads[1, 2] != 0.0
    assert info["clipped_dual"][1, 3] and not info["clipped_dual"][1, 2]


def test_topr_weights_negatives_by_truncated_sequence_ratio():
    log_probs = jnp.log(jnp.full(RATIOS.shape, 0.5))
    log_ratio = jnp.log(RATIOS)

    def total(lp):
        return obj.topr(log_ratio, ADV, MASK, lp)[0].sum()

    grads = np.asarray(jax.grad(total)(log_probs))
    seq_ratio = np.exp(np.sum(np.where(MASK, np.log(RATIOS), 0.0), axis=1))
    weights = np.where(ADV >= 0, 1.0, np.minimum(seq_ratio[:, None], 1.0))
    np.testing.assert_allclose(grads, np.where(MASK, -weights * ADV, 0.0), rtol=1e-5)
    # The second sequence's ratio is 0.5 * 0.9 * 1.25 = 0.5625: its weight is not capped.
    assert weights[1, 0] == pytest.approx(0.5625)


def test_apa_is_a_squared_error_towards_the_anchor():
    lp, anchor = jnp.log(jnp.full((2, 4), 0.5)), jnp.log(jnp.full((2, 4), 0.25))
    loss, _ = obj.apa(lp, anchor, ADV, MASK, lam=2.0)
    expected = np.square(np.log(2.0) - ADV / 2.0) * MASK
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_aggregations():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 0.0]], np.float32)
    assert obj.aggregate(x, MASK, "token_mean") == pytest.approx(70.0 / 7)
    assert obj.aggregate(x, MASK, "sequence_mean") == pytest.approx((2.5 + 20.0) / 2)
    assert obj.aggregate(x, MASK, "sequence_sum") == pytest.approx((10 / 4 + 60 / 4) / 2)
    dropped = MASK & np.array([[True], [False]])  # a sequence with no token does not count
    assert obj.aggregate(x, dropped, "sequence_mean") == pytest.approx(2.5)
    with pytest.raises(ValueError, match="token_mean"):
        obj.aggregate(x, MASK, "mean")


def test_kl_estimators():
    lp, ref = np.log([0.5, 0.2]), np.log([0.25, 0.4])
    np.testing.assert_allclose(obj.kl_estimate(lp, ref, "k1"), lp - ref, rtol=1e-6)
    d = ref - lp
    np.testing.assert_allclose(obj.kl_estimate(lp, ref, "k3"), np.exp(d) - d - 1, rtol=1e-6)
    assert np.all(np.asarray(obj.kl_estimate(lp, ref, "k3")) >= 0)
    with pytest.raises(ValueError, match="k1, k3"):
        obj.kl_estimate(lp, ref, "k2")


def test_overlong_penalty():
    out = obj.overlong_penalty(jnp.array([4, 6, 7, 8, 9]), max_length=8, cache_length=4)
    np.testing.assert_allclose(out, [0.0, -0.5, -0.75, -1.0, -1.0])


# ------------------------------------------------------------------ BAPO


def np_bapo(r, a, p, m, c_low=0.6, c_high=1.2, low_max=0.9, high_max=3.0, dl=0.02, dh=0.05,
            rho0=0.4, share="signed"):  # fmt: skip
    """The paper's search in plain numpy (float64), step by step."""
    r, a, p, m = (np.asarray(x, np.float64) for x in np.broadcast_arrays(r, a, p, m))
    w = p * m

    def rho(lo, hi):
        pos = np.minimum(r * a, np.clip(r, 0, hi) * a)
        num = abs(np.sum(np.where(a > 0, w * pos, 0.0)))
        terms = w * np.minimum(r * a, np.clip(r, lo, hi) * a)
        den = abs(np.sum(terms)) if share == "signed" else np.sum(np.abs(terms))
        return num / max(den, 1e-12)

    steps = 0
    while rho(c_low, c_high) < rho0 and c_low + dl <= low_max + 1e-5:
        if c_high + dh <= high_max + 1e-5:
            c_high += dh
        else:
            c_low += dl
        steps += 1
    return c_low, c_high, steps


def random_batch(seed, negative_bias):
    rng = np.random.default_rng(seed)
    shape = (8, 6)
    ratios = np.exp(rng.normal(0.0, 0.4, shape)).astype(np.float32)
    adv = (rng.normal(0.0, 1.0, (8, 1)) - negative_bias).astype(np.float32) * np.ones(shape)
    probs = rng.uniform(0.05, 1.0, shape).astype(np.float32)
    mask = rng.uniform(size=shape) < 0.85
    return ratios, adv.astype(np.float32), probs, mask


@pytest.mark.parametrize("seed,bias", [(0, 0.0), (1, 0.8), (2, 1.5), (3, -0.5)])
def test_bapo_search_matches_numpy(seed, bias):
    batch = random_batch(seed, bias)
    c_low, c_high = jax.jit(obj.bapo_clip_bounds)(*batch)
    ref_low, ref_high, _ = np_bapo(*batch)
    assert float(c_low) == pytest.approx(ref_low, abs=1e-5)
    assert float(c_high) == pytest.approx(ref_high, abs=1e-5)


@pytest.mark.parametrize("seed,bias", [(2, 0.3), (3, 0.3), (0, 0.5)])
def test_bapo_absolute_share_search_matches_numpy(seed, bias):
    batch = random_batch(seed, bias)
    c_low, c_high = jax.jit(partial(obj.bapo_clip_bounds, share="absolute"))(*batch)
    ref_low, ref_high, steps = np_bapo(*batch, share="absolute")
    assert steps > 0  # the batch makes the search move...
    assert np_bapo(*batch)[2] == 0  # ...where the signed reading stops at the start
    assert float(c_low) == pytest.approx(ref_low, abs=1e-5)
    assert float(c_high) == pytest.approx(ref_high, abs=1e-5)


def test_bapo_shares_on_a_hand_made_batch():
    # Unclipped ratios of 1 and unit behaviour probabilities: positive mass P = 3, negative
    # mass N = 4. Signed: 3 / |3 - 4| = 3 (it passes 1); absolute: 3 / (3 + 4).
    ratios = np.ones(7, np.float32)
    adv = np.array([1, 1, 1, -1, -1, -1, -1], np.float32)
    probs, mask = np.ones(7, np.float32), np.ones(7, bool)
    signed = obj.bapo_positive_share(ratios, adv, probs, mask, 0.6, 1.2)
    absolute = obj.bapo_positive_share(ratios, adv, probs, mask, 0.6, 1.2, "absolute")
    assert float(signed) == pytest.approx(3.0)
    assert float(absolute) == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="share"):
        obj.bapo_clip_bounds(ratios, adv, probs, mask, share="abs")


def test_bapo_stops_at_the_maxima_when_rho0_is_unreachable():
    # Only negative advantages: the positive share is 0 whatever the bounds.
    ratios, _, probs, mask = random_batch(5, 0.0)
    adv = -np.ones_like(ratios)
    c_low, c_high = obj.bapo_clip_bounds(ratios, adv, probs, mask)
    ref_low, ref_high, steps = np_bapo(ratios, adv, probs, mask)
    assert float(c_high) == pytest.approx(3.0, abs=1e-5) and ref_high == pytest.approx(3.0)
    # c_high reaches 3.0 in 36 steps, then c_low rises while c_low + 0.02 <= 0.9: to 0.9.
    assert float(c_low) == pytest.approx(0.9, abs=1e-5) and ref_low == pytest.approx(0.9)
    assert steps == 36 + 15


def test_bapo_reached_rho0_keeps_the_start_bounds():
    ratios, _, probs, mask = random_batch(6, 0.0)
    c_low, c_high = obj.bapo_clip_bounds(ratios, np.ones_like(ratios), probs, mask)
    assert (float(c_low), float(c_high)) == pytest.approx((0.6, 1.2))


def test_bapo_settings_are_traced_and_vmappable():
    batch = random_batch(1, 0.8)
    rho0s = jnp.array([0.0, 0.4, 0.9])
    lows, highs = jax.vmap(lambda r0: obj.bapo_clip_bounds(*batch, rho0=r0))(rho0s)
    for r0, lo, hi in zip([0.0, 0.4, 0.9], lows, highs, strict=True):
        ref_low, ref_high, _ = np_bapo(*batch, rho0=r0)
        assert (float(lo), float(hi)) == pytest.approx((ref_low, ref_high), abs=1e-5)


def test_bapo_authors_ordering_raises_the_lower_bound_first():
    ratios, _, probs, mask = random_batch(5, 0.0)
    adv = -np.ones_like(ratios)  # the positive/negative ratio is 0: both bounds go to max
    c_low, c_high = obj.bapo_clip_bounds(ratios, adv, probs, mask, ordering="authors")
    assert (float(c_low), float(c_high)) == pytest.approx((0.9, 3.0), abs=1e-5)
    # pos = min(3, c_high) = 1.2 and neg = max(0.5, c_low) = 0.6 at the start: 2.0 < 2.4.
    # c_low goes first (to 0.9, which lowers the ratio to 1.33), then c_high until
    # c_high / 0.9 >= 2.4, i.e. c_high = 1.2 + 20 x 0.05 = 2.2.
    ratios, adv = np.array([3.0, 0.5], np.float32), np.array([1.0, -1.0], np.float32)
    c_low, c_high = obj.bapo_clip_bounds(
        ratios, adv, np.ones(2), np.ones(2, bool), ordering="authors", rho0=2.4
    )
    assert (float(c_low), float(c_high)) == pytest.approx((0.9, 2.2), abs=1e-5)


def test_bapo_impossible_range_is_refused():
    batch = random_batch(0, 0.0)
    with pytest.raises(ValueError, match=r"c_low starts at 0.95 above its maximum 0.9"):
        obj.bapo_clip_bounds(*batch, c_low_start=0.95)
    with pytest.raises(ValueError, match="unknown BAPO setting"):
        obj.bapo_clip_bounds(*batch, rho=0.3)


# ------------------------------------------------------------------ group advantages

REWARDS = np.array([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def test_group_advantages_against_numpy():
    mean = REWARDS.mean(1, keepdims=True)
    std = REWARDS.std(1, ddof=1, keepdims=True)
    np.testing.assert_allclose(ga.grpo(REWARDS), (REWARDS - mean) / (std + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(ga.dr_grpo(REWARDS), REWARDS - mean, rtol=1e-6)
    loo = np.stack([[r[i] - np.delete(r, i).mean() for i in range(4)] for r in REWARDS])
    np.testing.assert_allclose(ga.rloo(REWARDS), loo, rtol=1e-6)
    assert np.all(np.asarray(ga.grpo(REWARDS))[1] == 0.0)  # equal rewards: no signal
    np.testing.assert_array_equal(ga.informative_groups(REWARDS), [True, False, True])


def test_bnpo_against_numpy_and_scipy_free_beta_density():
    p = REWARDS.mean(1)
    m, v = p.mean(), p.var(ddof=1)
    a, b = (m * (1 - m) / v - 1) * m, (m * (1 - m) / v - 1) * (1 - m)
    alpha, beta = max(1 + a / 3, 1.0), max(1 + b / 3, 1.0)
    from math import gamma

    def density(x):
        return (
            x ** (alpha - 1)
            * (1 - x) ** (beta - 1)
            * gamma(alpha + beta)
            / (gamma(alpha) * gamma(beta))
        )

    # The weight 1 / f is capped at 1e6 (f = 0 at p = 1 for the all-correct group).
    with np.errstate(divide="ignore"):
        weights = [min(1.0 / density(pi), 1e6) for pi in p]
    expected = np.stack([w * (r - pi) for r, pi, w in zip(REWARDS, p, weights, strict=True)])
    np.testing.assert_allclose(ga.bnpo(REWARDS), expected, rtol=1e-4, atol=1e-6)


def test_group_of_one_is_refused():
    with pytest.raises(ValueError, match="group_size >= 2"):
        ga.grpo(np.ones((4, 1)))
    with pytest.raises(ValueError, match="unknown advantage"):
        ga.group_advantages(REWARDS, "ppo")
