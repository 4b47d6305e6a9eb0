"""``python -m evoboard.suite.studies.reference [DIR] [--rederive NOTE]``: DIR/claims.md (default
results/reference) from its studies; with ``--rederive``, every study's claims tested again on its rows first."""

import argparse

from evoboard.suite.studies.reference import collect_claims, rederive_claims

parser = argparse.ArgumentParser(prog="python -m evoboard.suite.studies.reference")
parser.add_argument("folder", nargs="?", default="results/reference")
parser.add_argument("--rederive", metavar="NOTE", help="test the claims again on the rows there; NOTE joins each stamp")
args = parser.parse_args()
print(rederive_claims(args.folder, args.rederive) if args.rederive else collect_claims(args.folder))
