"""The policy that turns drift, schedules and feedback into a new candidate and drives it to rollout.

Arrives with the retraining issue. May import every hub-side part.
"""
