"""The release tooling behind `python -m release` (the Pulumi program's gate, plan, verify and adoption)."""

# This program's own version (not a trading release's): printed by `python -m release --version`.
__version__ = "0.2.0"
