"""Writes the records of some families of a generated knowledge split as a LLaVA JSON file (or JSON
lines, for OUT.jsonl), for `pokevla pretrain --data` or a `--mix` weight of its own (a pointing-only
pilot, or more weight on grounding).

    python scripts/knowledge_subset.py DATA SPLIT FAMILY[,FAMILY] OUT.json

OUT should lie in DATA, so that its image paths resolve against the folder as they do for the split
itself. Each record keeps its "family", so that `--augment-crop` crops the families it may crop.
Prints the records kept per family.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from pokevla.common.io import write_json_atomic, write_text_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("split")
    parser.add_argument("families")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    wanted = set(args.families.split(","))
    kept, counts = [], Counter()
    with open(args.data / f"{args.split}.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record["family"] in wanted:
                kept.append({key: record[key] for key in ("id", "image", "conversations", "family")})
                counts[record["family"]] += 1
    missing = wanted - set(counts)
    if missing:
        raise SystemExit(f"{args.data / args.split}.jsonl has no record of {', '.join(sorted(missing))}")
    if args.out.suffix == ".jsonl":
        write_text_atomic(args.out, "".join(json.dumps(record) + "\n" for record in kept))
    else:
        write_json_atomic(args.out, kept)
    print(f"{len(kept)} records: {dict(counts)}")


if __name__ == "__main__":
    main()
