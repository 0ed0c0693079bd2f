"""Language dimension: offline, template-based instruction rewrites, deterministic per seed.

The published kinds, one per level: 1 paraphrase (polite frame + verb synonyms), 2 added context,
3 common-sense object descriptions, 4 reasoning framing, 5 all combined. The vocabulary and
templates ship in language.json; the original used an LLM, which cannot run offline here.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

KIND_BY_LEVEL = {1: "paraphrase", 2: "context", 3: "commonsense", 4: "reasoning", 5: "combined"}


@lru_cache(maxsize=1)
def vocabulary() -> dict:
    return json.loads((Path(__file__).with_name("language.json")).read_text(encoding="utf-8"))


def _substitute(text: str, table: dict[str, list[str]], rnd: random.Random) -> str:
    """Replaces every key (longest first, whole words) by one of its alternatives, in one pass.

    A key gets the same alternative at every occurrence, so "the plate ... on the plate" still names
    one object.
    """
    keys = sorted(table, key=len, reverse=True)
    chosen = {k: rnd.choice(table[k]) for k in sorted(table)}
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b")
    return pattern.sub(lambda m: chosen[m.group(1)], text)


def _describe_objects(text: str, rnd: random.Random) -> str:
    # "the black bowl" -> "the dark, rounded food-holding container": the description brings its own article.
    objects = vocabulary()["objects"]
    table = {f"the {k}": v for k, v in objects.items()} | objects
    return _substitute(text, table, rnd)


def _frame(templates: list[str], text: str, rnd: random.Random) -> str:
    return rnd.choice(templates).format(text)


def rewrite(instruction: str, level: int, seed: int) -> str:
    """The level's rewrite of `instruction`; the same (instruction, level, seed) gives the same text."""
    vocab = vocabulary()
    rnd = random.Random(f"{instruction}|{level}|{seed}")
    text = instruction.strip().lower().rstrip(".")
    kind = KIND_BY_LEVEL[level]
    if kind in ("paraphrase", "context"):
        text = _frame(vocab["polite"], _substitute(text, vocab["verbs"], rnd), rnd)
    if kind in ("commonsense", "combined"):
        text = _describe_objects(text, rnd)
    if kind in ("reasoning", "combined"):
        text = _frame(vocab["reasoning"], text, rnd)
    if kind in ("context", "combined"):
        text = _frame(vocab["context"], text, rnd)
    return _sentence_case(text)


def _sentence_case(text: str) -> str:
    text = re.sub(r"\bi\b", "I", text)
    text = re.sub(r"(^|[.?!] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text if text.endswith((".", "?")) else text + "."
