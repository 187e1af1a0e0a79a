"""Compiled fast paths, each tested against the package's reference implementation.

``fused``: CartPole episodes, the softmax-MLP policy and its per-episode estimates (gradient,
score sum, exact diagonal Hessian, Fisher-vector products) in numba, for the runner's
``backend="fused"``.
"""
