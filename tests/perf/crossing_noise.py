"""How far the error crossing lands from the truth by chance, by level length: a simulation.

``python tests/perf/crossing_noise.py [--sweeps 400] [--seed 1]``

Each sweep is bench_verdict's refusing case without a network: levels at ``REFUSE_FACTORS`` x
the truth (Erlang-B with 8 slots of 0.5 s reaches 5% refused at 9.09/s), a Poisson count of
requests per level and a binomial count of refusals at the Erlang-B share, judged by qpsweep's
own ``error_crossing`` (isotonic, interpolated) and, for comparison, by a logistic fit of the
share over log load (binomial maximum likelihood over all levels).  A second shape, a token
bucket refusing ``1 - r / load`` above ``r``, shows the logistic fit's bias.  Prints, per shape,
level length and estimator, the sd and mean of the relative error and the share of sweeps
more than 10% off.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capacity_servers import erlang_b, rate_at_blocking

from qpsweep.analysis.estimate import Window, error_crossing

LIMIT = 0.05
FACTORS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)  # bench_verdict's REFUSE_FACTORS
TRUTH = rate_at_blocking(8, 0.5, LIMIT)


def logistic_crossing(x: np.ndarray, k: np.ndarray, n: np.ndarray, limit: float) -> float:
    """Where ``logit p = a + b log x``, fitted by Newton's method, reaches ``limit``."""
    design = np.column_stack([np.ones_like(x), np.log(x)])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ beta)))
        hessian = design.T @ (design * (n * p * (1 - p) + 1e-9)[:, None])
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), design.T @ (k - n * p))
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    a, b = beta
    return float(np.exp((np.log(limit / (1 - limit)) - a) / b)) if b > 0 else float("nan")


def share(shape: str, load: float) -> float:
    """The refused share at ``load``; both shapes cross ``LIMIT`` at ``TRUTH``."""
    if shape == "erlang":
        return erlang_b(8, load * 0.5)
    return max(0.0, 1 - TRUTH * (1 - LIMIT) / load)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("shape   level s  estimator  sd     mean    >10% off")
    for shape in ("erlang", "bucket"):
        for level_s in (10.0, 30.0, 60.0):
            errors: dict[str, list[float]] = {"isotonic": [], "logistic": []}
            for _ in range(args.sweeps):
                n = rng.poisson(np.array(FACTORS) * TRUTH * level_s)
                k = rng.binomial(n, [share(shape, f * TRUTH) for f in FACTORS])
                x = n / level_s
                ws = [
                    Window(i, float(x[i]), level_s / 2, 0, 0, 0, None, None, int(n[i]), int(k[i]))
                    for i in range(len(FACTORS))
                ]
                found = error_crossing(ws, LIMIT, 0.99)
                errors["isotonic"].append(np.nan if found is None else found.value / TRUTH - 1)
                errors["logistic"].append(logistic_crossing(x, k, n, LIMIT) / TRUTH - 1)
            for name, values in errors.items():
                e = np.array(values)
                off = float(np.mean(np.abs(e) > 0.10))
                print(
                    f"{shape:<7} {level_s:>7g}  {name:<9} {np.nanstd(e):.3f}  "
                    f"{np.nanmean(e):+.3f}  {off:.3f}"
                )


if __name__ == "__main__":
    main()
