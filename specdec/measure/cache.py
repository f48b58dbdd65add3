"""The converted-model cache (specdec.measure.bundled): list what it holds and prune it.

Entries are <cache root>/models/<name>-<sha256[:16]>/ (complete conversions) and .tmp-* directories
left by a conversion that was killed. Pruning never touches anything outside <cache root>/models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from specdec.errors import SpecdecError
from specdec.measure import bundled


def entries(root: Path | None = None) -> list[dict]:
    """One dict per directory under <root>/models, largest first: name, path, bytes, complete, bundled
    (a conversion of the current bundled pair), converted (its marker's source, when recorded)."""
    models = Path(root or bundled.cache_root()) / "models"
    current = {bundled.entry_dir(b.name, b.sha256, root).name for b in bundled.BUNDLES.values()}
    out = []
    for d in sorted(models.iterdir()) if models.is_dir() else []:
        if not d.is_dir():
            continue
        complete = bundled.is_complete(d)
        marker = {}
        if complete:
            try:
                marker = json.loads((d / bundled.MARKER).read_text())
            except (OSError, ValueError):
                pass
        out.append({"name": d.name, "path": str(d), "bytes": bundled.dir_bytes(d), "complete": complete,
                    "bundled": d.name in current, "source": marker.get("source") or ", ".join(marker.get("packages", [])[:1])})
    return sorted(out, key=lambda e: -e["bytes"])


def prune(names: list[str] | None = None, *, everything: bool = False, root: Path | None = None) -> list[dict]:
    """Delete cache entries; returns the ones deleted. Default: unfinished (.tmp-*, unmarked) entries and
    conversions that are not of the current bundled pair; names: exactly those; everything: all."""
    found = entries(root)
    by_name = {e["name"]: e for e in found}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SpecdecError(f"no cache entry {unknown[0]!r}; `python -m specdec cache list` shows them")
        chosen = [by_name[n] for n in names]
    elif everything:
        chosen = found
    else:
        chosen = [e for e in found if not e["complete"] or not e["bundled"]]
    for e in chosen:
        shutil.rmtree(e["path"], ignore_errors=True)
    return chosen
