"""Allow ``python -m generator`` (same program name, so shell completion works too)."""

from generator.cli import main

main(prog_name="k10fleet")
