"""Networks, mutation encodings and search algorithms. Knows nothing of the CLI or of tasks."""

from agents.policies import POLICIES, Policy, PopulationActor, make_policy

__all__ = ["POLICIES", "Policy", "PopulationActor", "make_policy"]
