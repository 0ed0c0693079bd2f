"""`pokevla pretrain` (stage 1: PokeVLM on world-knowledge conversations) and `pokevla vlm`
(`init` an untrained baseline, `ask` one question, `eval` a split with the official scoring rules,
`score` answers written earlier or by another model with the same rules)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


REFERENCE_HELP = ("draw the baselines (chance, fixed answer per question) from the train split of these generated "
                  "folders, the records the model trained on (default: from the scored records)")


def register(subparsers) -> None:
    from pokevla.common.config import add_dataclass_args
    from pokevla.model.config import add_config_args
    from pokevla.pretrain.config import PretrainConfig

    parser = subparsers.add_parser(
        "pretrain", help="pre-train PokeVLM (stage 1) on world-knowledge conversations (resumable)",
        description="New run: --preset P --data DIR[,DIR] --out RUN [flags]. Resume: --out RUN --resume. "
                    "From an earlier stage-1 run (alignment, then fine-tuning; or a new mixture): --init RUN. "
                    "Then stage 2: pokevla train --init RUN ... DDP: torchrun --nproc-per-node N -m pokevla.cli pretrain ...",
    )
    add_dataclass_args(parser, PretrainConfig, group="pretrain")
    add_config_args(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.set_defaults(func=_pretrain)

    vlm = subparsers.add_parser("vlm", help="a stage-1 PokeVLM: make an untrained one, ask it, evaluate it")
    sub = vlm.add_subparsers(dest="vlm_command", metavar="SUBCOMMAND", required=True)
    init = sub.add_parser("init", help="save an untrained PokeVLM (the baseline pre-training starts from)")
    add_config_args(init)
    init.add_argument("--out", required=True, help="model folder to write")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=_init)

    ask = sub.add_parser("ask", help="answer one question about one or more images (greedy)")
    ask.add_argument("--checkpoint", required=True, help="a pretrain run (its last checkpoint) or a model folder")
    ask.add_argument("--image", action="append", default=[], help="an image file (repeat for several)")
    ask.add_argument("--question", required=True)
    _generation_args(ask)
    ask.set_defaults(func=_ask)

    evaluate = sub.add_parser("eval", help="answer every record of a split and score the answers per family")
    evaluate.add_argument("--checkpoint", required=True, help="a pretrain run (its last checkpoint) or a model folder")
    evaluate.add_argument("--data", required=True, help="a generated knowledge folder")
    evaluate.add_argument("--split", default="heldout", choices=("train", "val", "heldout"))
    evaluate.add_argument("--families", default="",
                          help="score only these families, e.g. point_object,box_object (default: all)")
    evaluate.add_argument("--limit", type=int, default=0, help="score only the first N records (0: all)")
    evaluate.add_argument("--json", help="also write the scores and the answers to this file")
    evaluate.add_argument("--batch-size", type=int, default=16,
                          help="records answered together (greedy, left-padded: the same answers as one at a time)")
    evaluate.add_argument("--reference", default="", metavar="DIR[,DIR]", help=REFERENCE_HELP)
    _generation_args(evaluate)
    evaluate.set_defaults(func=_eval)

    score = sub.add_parser("score", help="score answers already written (by `vlm eval --json` or any model)")
    score.add_argument("--answers", required=True,
                       help='a `vlm eval --json` file, or JSON lines of {"id", "answer"[, "question"]} (.gz read '
                            'too); an answer whose question differs from its record\'s is refused')
    score.add_argument("--data", required=True, help="the generated knowledge folder the answers are to")
    score.add_argument("--split", default="heldout", choices=("train", "val", "heldout"))
    score.add_argument("--families", default="", help="score only these families (default: all answered)")
    score.add_argument("--reference", default="", metavar="DIR[,DIR]", help=REFERENCE_HELP)
    score.add_argument("--json", help="also write the scores to this file")
    score.set_defaults(func=_score)


def _generation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="longest answer, in tokens (a 6-point trace is about 100 byte tokens)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def _pretrain(args: argparse.Namespace) -> int:
    from pokevla.common.config import format_config
    from pokevla.common.errors import ConfigError
    from pokevla.pretrain.config import PretrainConfig
    from pokevla.pretrain.loop import pretrain
    from pokevla.train.commands import run_configs
    from pokevla.train.runner import loss_summary

    _, model_cfg, cfg = run_configs(args, "pretrain", PretrainConfig, ("data", "mix"))
    if args.resume and (hasattr(args, "pretrain__data") or hasattr(args, "pretrain__mix")):  # from the data named now
        cfg = dataclasses.replace(cfg, data=getattr(args, "pretrain__data", ""), mix=getattr(args, "pretrain__mix", ""))
    if not args.resume and not (cfg.data or cfg.mix):
        raise ConfigError("--data (or --mix) is required for a new run")
    print("model:\n" + format_config(model_cfg, 1))
    print("pretrain:\n" + format_config(cfg, 1))
    summary = pretrain(cfg, model_cfg, resume=args.resume)
    val = summary["val"].get("val/loss")
    print(f"step {summary['step']}: {loss_summary(summary)}"
          + (f", held-out loss {val:.4f}" if val is not None else "") + f"; checkpoint {summary['checkpoint']}")
    return 0


def _init(args: argparse.Namespace) -> int:
    import torch

    from pokevla.common.errors import ConfigError
    from pokevla.common.io import check_writable_dir
    from pokevla.model.config import config_from_args
    from pokevla.pretrain.vlm import PokeVLM

    config = config_from_args(args)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new folder")
    check_writable_dir(out.parent)
    torch.manual_seed(args.seed)
    PokeVLM(config).save_pretrained(out)
    print(f"untrained PokeVLM ({config.preset}) written to {out}")
    return 0


def _load(checkpoint: str, device: str):
    from pokevla.pretrain.vlm import PokeVLM
    from pokevla.train.checkpoints import resolve_model_dir

    return PokeVLM.from_pretrained(resolve_model_dir(checkpoint), device=device).eval()


def _read_image(path: Path, what: str):
    """uint8 (H, W, 3) of the image file `path`; `what` names it in the one-line error."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from pokevla.common.errors import PokeVLAError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise PokeVLAError(f"{what}: no such file") from None
    except (OSError, UnidentifiedImageError) as e:
        raise PokeVLAError(f"{what}: not a readable image ({e})") from None


def _check_generation(args: argparse.Namespace) -> None:
    from pokevla.common.config import require_at_least

    require_at_least({"--max-new-tokens": (args.max_new_tokens, 1)})


def _ask(args: argparse.Namespace) -> int:
    _check_generation(args)
    images = [_read_image(Path(p), f"--image {p}") for p in args.image]
    model = _load(args.checkpoint, args.device)
    print(model.generate(images, args.question, args.max_new_tokens))
    return 0


def _of_families(records: list[dict], families: str, path) -> list[dict]:
    """The records of the comma-separated `families` (all records when empty); a name the data lacks is an error."""
    from pokevla.common.errors import ConfigError

    wanted = [name.strip() for name in families.split(",") if name.strip()]
    if not wanted:
        return records
    present = sorted({r.get("family") for r in records if r.get("family") is not None})
    unknown = [name for name in wanted if name not in present]
    if unknown:
        raise ConfigError(f"--families: {', '.join(unknown)} not in {path}; its families are {', '.join(present) or 'none'}")
    return [r for r in records if r.get("family") in wanted]


def _eval(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from pokevla.common.config import require_at_least
    from pokevla.common.io import check_writable_file
    from pokevla.pretrain.formats import load_source, open_source
    from pokevla.pretrain.records import record_images

    _check_generation(args)
    require_at_least({"--limit": (args.limit, 0), "--batch-size": (args.batch_size, 1)})
    if args.json:
        check_writable_file(args.json, "--json")
    source = open_source(args.data, args.split)
    references = _reference_sources(args.reference)
    loaded = load_source(source, on_skip=lambda line: print(line, file=sys.stderr))
    records = _of_families(loaded.records, args.families, source.path)
    records = records[:args.limit] if args.limit else records
    model = _load(args.checkpoint, args.device)
    answers: list[str] = []
    with tqdm(total=len(records), desc="vlm eval", unit="record") as bar:
        for start in range(0, len(records), args.batch_size):
            batch = records[start:start + args.batch_size]
            items = [([_read_image(Path(r["root"]) / p, f"{source.path} record {r['id']}: image {p}")
                       for p in record_images(r)], _question(r)) for r in batch]
            answers += model.generate_batch(items, args.max_new_tokens)
            bar.update(len(batch))
    _report(args, source, loaded.skipped, records, answers, references, {"checkpoint": args.checkpoint},
            {"answers": [{"id": r["id"], "question": _question(r), "answer": a} for r, a in zip(records, answers)]})
    return 0


def _report(args: argparse.Namespace, source, skipped: int, records: list[dict], answers: list[str],
            references: list, origin: dict, extra: dict | None = None) -> None:
    """Scores `answers` to `records` (baselines from the `references` sources' records, if any), prints the
    table and, with --json, writes it with `origin` and `extra`."""
    import sys

    from pokevla.common.io import write_json_atomic
    from pokevla.pretrain.scoring import format_table, score_records

    reference = _reference_records(references, {r["family"] for r in records if "family" in r})
    result = score_records(records, answers, source.root, reference)
    print(format_table(result))
    if skipped:
        print(f"{skipped} record(s) of {source.path} skipped", file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, {**origin, "data": str(source.path), "split": args.split,
                                      "reference": [str(s.path) for s in references],
                                      "result": result, "skipped": skipped, **(extra or {})})


def _reference_sources(spec: str) -> list:
    """The train splits of the comma-separated --reference folders (opened, so a wrong one fails at once)."""
    from pokevla.pretrain.formats import open_source

    return [open_source(folder.strip(), "train") for folder in spec.split(",") if folder.strip()]


def _reference_records(sources: list, families: set[str]) -> list[dict] | None:
    """The records of the --reference `sources` in `families` (None without --reference)."""
    import sys

    from pokevla.pretrain.formats import load_source

    if not sources:
        return None
    records: list[dict] = []
    for source in sources:
        loaded = load_source(source, on_skip=lambda line: print(line, file=sys.stderr))
        records += [r for r in loaded.records if r.get("family") in families]
    return records


def _question(record: dict) -> str:
    return record["conversations"][0]["value"]


def _read_answers(path: str) -> dict[str, dict]:
    """id -> {"id", "answer"[, "question"]}, from a `vlm eval --json` file or JSON lines of such rows
    (gzipped or not)."""
    import gzip
    import json

    from pokevla.common.errors import DatasetError

    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            text = f.read()
    except (OSError, EOFError, ValueError) as e:  # ValueError: not UTF-8 text
        raise DatasetError(f"--answers {path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSON lines (or broken, said below)
    if isinstance(whole, dict) and isinstance(whole.get("answers"), list):
        rows, where = list(enumerate(whole["answers"], 1)), "answer"
    else:
        rows, where = [], "line"
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError:
                    raise DatasetError(f"--answers {path} line {number}: not valid JSON") from None
    answers: dict[str, dict] = {}
    for number, row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("answer"), str)
                and isinstance(row.get("question", ""), str)):
            raise DatasetError(f'--answers {path}: {where} {number} is not {{"id": str, "answer": str}} '
                               '(with an optional "question": str)')
        if row["id"] in answers:
            raise DatasetError(f"--answers {path}: record {row['id']!r} is answered twice")
        answers[row["id"]] = row
    if not answers:
        raise DatasetError(f"--answers {path} holds no answer")
    return answers


def _score(args: argparse.Namespace) -> int:
    import sys

    from pokevla.common.errors import DatasetError
    from pokevla.common.io import check_writable_file
    from pokevla.pretrain.formats import load_source, open_source

    if args.json:
        check_writable_file(args.json, "--json")
    answers = _read_answers(args.answers)
    source = open_source(args.data, args.split)
    references = _reference_sources(args.reference)
    loaded = load_source(source, on_skip=lambda line: print(line, file=sys.stderr))
    known = {r["id"] for r in loaded.records}
    stray = [i for i in answers if i not in known]
    if stray:
        raise DatasetError(f"--answers {args.answers}: {len(stray)} answer(s) to records {source.path} does not hold "
                           f"(first: {stray[0]!r}); give the --data and --split they were written for")
    answered = [r for r in loaded.records if r["id"] in answers]
    records = _of_families(answered, args.families, f"the answered records of {source.path}")
    for record in records:  # ids repeat when a folder is generated again: its questions may not
        asked = answers[record["id"]].get("question")
        if asked is not None and asked != _question(record):
            raise DatasetError(f"--answers {args.answers}: record {record['id']!r} was answered for another question "
                               f"({asked!r}; {source.path} asks {_question(record)!r}): give the data they were "
                               "written for")
    print(f"{len(records)} answered record(s) of {len(loaded.records)} in {source.path}", file=sys.stderr)
    _report(args, source, loaded.skipped, records, [answers[r["id"]]["answer"] for r in records], references,
            {"answers_file": args.answers})
    return 0
