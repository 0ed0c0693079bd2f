"""Renders again the scenes of one split of a knowledge dataset's journal, with today's generator, into a
new folder: to score saved answers after the dataset itself was deleted, or to compare models on
exactly the scenes an earlier one was scored on.

    python scripts/rerender_scenes.py JOURNAL.jsonl SPLIT OUT [--resolution 128] [--fast-render] [--seed 0] [--workers 2]

Scenes are seeded by (suite, task, index, seed), so the same scenes come back. Their questions do not
always: the families drawn per frame follow the generator's version. `pokevla vlm score` refuses an
answer whose recorded question differs from its record's. Scenes render as held-out scenes do: no
restyled table, moved camera or scattered layout. Prints one line per scene.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from pokevla.common.io import write_json_atomic
from pokevla.pretrain import engine
from pokevla.sim.parallel import map_unordered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("journal")
    parser.add_argument("split", choices=("train", "val", "heldout"))
    parser.add_argument("out")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--fast-render", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    entries = [e for e in map(json.loads, Path(args.journal).read_text().splitlines()) if e["split"] == args.split]
    suites = tuple(sorted({e["suite"] for e in entries}))
    config = engine.KnowledgeConfig(suites=suites, out=args.out, samples=max(1, len(entries)),
                                    resolution=args.resolution, fast_render=args.fast_render, seed=args.seed)
    vocabulary = engine.asset_labels()
    jobs = [engine.SceneJob(e["suite"], e["task_id"], e["index"], args.split, args.resolution, args.fast_render,
                            args.seed, absent_labels=vocabulary) for e in entries]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    with contextlib.closing(map_unordered(engine.run_scene, jobs, args.workers, config.cluster)) as results:
        for result in results:
            done.append(engine.write_scene(out, result))
            print(f"{len(done)}/{len(jobs)} {done[-1]['scene']}: {done[-1]['records']} records", flush=True)
    engine.write_meta(out, config, done)
    meta = json.loads((out / engine.META).read_text())  # which scenes these are, beside the generator's settings
    write_json_atomic(out / engine.META, {**meta, "rerendered": {"journal": args.journal, "split": args.split}})


if __name__ == "__main__":
    main()
