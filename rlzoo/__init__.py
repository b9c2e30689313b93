"""rlzoo: pure-functional, jit-compiled reinforcement-learning agents in JAX."""

__version__ = "0.1.0"
