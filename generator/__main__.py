"""Allow ``python -m generator`` (same program name, so shell completion works too)."""

from generator.cli import run

run()
