"""The Discounting Chain's numbers that the chain experiments analyse (bias_map.py, meta_grad_bias.py),
without JAX: common_envs.py, which builds the environment, imports JAX at its top, and the analyses
redraw their figures in seconds without it. tests/test_bias_map.py checks these against common_envs:
the same delays and reward, and at γ* its true values of chain 0 and of the paying chain are equal.

Chain c pays once, DELAYS[c] steps after the choice: 1.0, except the paying chain (--mapping-seed),
which pays BEST. With discount γ the inner objective values chain 0 at 1 (paid at once) and the paying
chain m at BEST·γ^(d_m − 1), so below γ*_m = BEST^(−1/(d_m − 1)) it prefers the myopic chain 0.
"""

import math

DELAYS = (1, 3, 10, 30, 100)
BEST = 1.1


def gamma_star(mapping_seed):
    """The discount at which the inner objective is indifferent between chain 0 and the paying chain
    (BEST·γ^(d − 1) = 1); nan for chain 0 itself, which is both."""
    delay = DELAYS[mapping_seed]
    return BEST ** (-1.0 / (delay - 1)) if delay > 1 else math.nan


def initial_bias_s0(mapping_seed, gamma):
    """Expected outer-loss advantage at s0 when the outer loss uses the inner critic V^{π,γ} instead of
    V^{π,γ′=1}, for the uniform initial policy (λ′ = 0): A(s0, a) = r_0 + V^γ(a, 1) − V^γ(s0), whose
    mean over a is (1 − γ)·Σ_{a≥1} π(a) ρ_a γ^(d_a − 2). With the outer critic it is 0."""
    rewards = [BEST if c == mapping_seed else 1.0 for c in range(len(DELAYS))]
    return (1 - gamma) * sum(rewards[c] * gamma ** (DELAYS[c] - 2) for c in range(1, len(DELAYS))) / len(DELAYS)
