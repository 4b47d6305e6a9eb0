"""Networks, mutation encodings and search algorithms. Knows nothing of the CLI or of tasks."""

from agents.policies import PopulationActor, policy_for

__all__ = ["PopulationActor", "policy_for"]
