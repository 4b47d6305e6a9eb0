"""Networks, mutation encodings and search algorithms. Knows nothing of the CLI or of tasks."""

import evoboard.agents.classifier_mlp  # noqa: F401  (registers the classifier_mlp policy)
import evoboard.agents.cnn  # noqa: F401  (registers the nature_cnn policy)
import evoboard.agents.small_cnn  # noqa: F401  (registers the small_cnn policy)
from evoboard.agents import transformer  # noqa: F401  (registers the char_transformer policy)
from evoboard.agents.policies import POLICIES, Policy, PopulationActor, make_policy

__all__ = ["POLICIES", "Policy", "PopulationActor", "make_policy"]
