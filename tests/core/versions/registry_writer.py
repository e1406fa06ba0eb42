"""One writer of the concurrency test, run as its own process: records `count` new versions of
the model `shared` (and the one file every writer records), moving `shared@champion` to each and
rolling it back now and then. Prints what it did as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from registry_models import tiny_onnx

from studio.core.model.artifact import load
from studio.core.versions.registry import Registry, VersionError


def main(root: str, folder: str, writer: int, count: int, go: str) -> None:
    registry = Registry(Path(root))
    models = [load(tiny_onnx(Path(folder) / f"w{writer}-{i}" / "shared.onnx", writer * 1000 + i))
              for i in range(count)]
    common = load(Path(folder) / "common" / "shared.onnx")
    while not Path(go).exists():  # every writer starts at once
        time.sleep(0.005)
    recorded, moves, rollbacks = [], 0, 0
    for i, model in enumerate(models):
        version = registry.record(model).version
        recorded.append(version.reference)
        registry.set_alias("shared", "champion", version.version)
        moves += 1
        if i % 2:
            try:
                registry.rollback("shared", "champion")
                rollbacks += 1
            except VersionError:
                pass  # another writer's move left nothing earlier to go back to
        registry.set_tag(version, f"writer-{writer}", str(i))
    common_version = registry.record(common).version.reference
    print(json.dumps({"recorded": recorded, "common": common_version, "moves": moves,
                      "rollbacks": rollbacks}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
