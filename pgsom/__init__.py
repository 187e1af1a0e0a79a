"""pgsom: the reproducible artifact for "Policy Gradient with Second-Order Momentum (PG-SOM)".

One module per concern (SPEC section 7): ``config`` (frozen run configs), ``envs`` (CartPole,
tested against gymnasium), ``policy`` (softmax MLP stacked over runs), ``estimators``
(returns, gradient, diag-Hessian, Fisher), ``transforms`` (update rules), ``runner`` (batched
training, sharding, caching), ``store`` (results cache), ``stats``, ``exact_mdp``, ``plots``,
``report``.
"""

__version__ = "0.1.0"
