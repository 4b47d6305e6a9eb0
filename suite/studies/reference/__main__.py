"""``python -m evoboard.suite.studies.reference [DIR]``: DIR/claims.md (default results/reference) from its studies."""

import sys

from evoboard.suite.studies.reference import collect_claims

print(collect_claims(sys.argv[1] if len(sys.argv) > 1 else "results/reference"))
