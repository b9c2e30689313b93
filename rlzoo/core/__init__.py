"""Shared pure functions: advantages, policy-gradient losses, the agent contract, evaluation."""
