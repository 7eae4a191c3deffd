"""The policy that turns drift, schedules and feedback into a new candidate and drives it to rollout.

``_policy.py``: :func:`decide_retrain`, the pure decision (settings ``[retrain]``);
``_chain.py``: :func:`run_retrain` and ``approve``, recent data → pipeline →
register → validate → release → publish → rollout; ``_cli.py``: ``pumpops
retrain run|policy`` and ``pumpops approve`` (``docs/retrain.md``).
May import every hub-side part (the package itself imports nothing).
"""
