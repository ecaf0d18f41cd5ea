"""Record the digests in schemas/provenance.json after a reviewed change to a shipped schema:

    python -m tests.provenance
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
PROVENANCE = SCHEMAS / "provenance.json"


def shipped() -> dict[str, str]:
    """Every shipped schema (relative path -> sha256), the provenance file itself excepted
    (READMEs beside the schemas are prose about them, not schemas)."""
    return {str(p.relative_to(SCHEMAS)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(SCHEMAS.rglob("*.json")) if p != PROVENANCE}


def update() -> None:
    doc = json.loads(PROVENANCE.read_text(encoding="utf-8"))
    for rel, digest in shipped().items():
        if rel not in doc["files"]:
            raise SystemExit(f"{rel}: not in {PROVENANCE.name}; add its kind and source first")
        doc["files"][rel]["sha256"] = digest
    PROVENANCE.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    update()
