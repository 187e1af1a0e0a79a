"""pgsom: the reproducible artifact for "Policy Gradient with Second-Order Momentum (PG-SOM)".

One module per concern: ``config`` (frozen run configs), ``envs`` (CartPole, tested against
gymnasium), ``policy`` (softmax MLP stacked over runs), ``estimators`` (returns, gradient,
diag-Hessian, Fisher), ``transforms`` (update rules), ``runner`` (batched training),
``kernels.fused`` (the compiled training kernel), ``sweep`` (sharding through an executor or a
Dask cluster, caching), ``store`` (results cache), ``numerics`` and ``jupyter_kernel`` (the
portable numerics mode), ``stats``, ``exact_mdp``, ``plots``, ``report``, ``bench``,
``verify``.

Importing pgsom first sets the portable numerics mode for numpy, torch and MKL (see
:mod:`pgsom.numerics`); it must stay free of heavy imports.
"""

from pgsom import numerics as _numerics

_numerics.apply()

__version__ = "0.1.0"
