"""The benchmarks' scoring rules, applied to a model's answers to world-knowledge records.

Each answer type (records.ANSWER_TYPES) has one rule, the one its public benchmark uses:

    point     Where2Place / RoboPoint / RefSpatial-Bench: every `(...)` tuple of the answer is parsed; a
              tuple written with a decimal point is normalised to [0, 1] and scaled by the mask's size, a
              tuple of integers is in pixels, a 4-tuple is a box whose pixels all count. The score of a
              question is the fraction of the predicted pixels inside the (binarised) ground-truth mask
              (0 outside the image, 0 with no points); the dataset score is the mean over questions.
    box       accuracy at IoU >= 0.5 of the answer's first 4-tuple against the target box.
    yesno     RoboSpatial: correct iff the normalised answer starts with the ground truth.
    choice    exact match on the letter of "(B) ...".
    count     exact match on the first integer (digits or a number word zero..ten).
    distance  relative error |pred - gt| / gt of the first number, read with its unit (mm, cm, m; a bare
              number is in centimetres, the unit the questions ask for);
              an unparseable answer has relative error 1. Reported as the mean relative error and the
              accuracy within 25%.
    trace     the answer's `(x, y)` tuples, in order, are the predicted path (integers are pixels; points
              are clipped to the image). It and the true path are each resampled to 32 points evenly
              spaced along their length, and the score is the mean distance between corresponding
              points, in normalised image units: lower is better, at most sqrt(2) (the image diagonal),
              which is also the score of an answer without a point.
    text      exact match after normalisation (case, surrounding spaces and punctuation).

Beside each score stand two baselines that never look at the image. `chance` is a blind guess: a
uniformly random point, the whole image as the box, the majority answer, the median distance, the mean
trace. `fixed` answers every asking of one question (its exact text) with one answer: the mean centre of
the objects the question points to, the mean of its boxes, its majority answer, its median distance, its
mean trace. Both are drawn from reference records: by default the scored set itself, or the records a
model trained on (`vlm eval --reference`). Drawn from the scored set, `fixed` shows how much a set's
layouts repeat: where its scenes share one layout, a fixed answer scores well. Drawn from the training
records, it is what a model that learnt where things usually stand scores without looking; a model that
does not beat it shows no reading of the image.

A reasoning answer that chains steps and ends in `A: ...` (RefSpatial) is judged on the text after its
last `A:`, so the intermediate points of its steps do not count.

Distance targets are in centimetres. Masks are PNG images, nonzero = inside, paths relative to the root.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pokevla.common.errors import DatasetError
from pokevla.data.lerobot import decode_png
from pokevla.pretrain.records import IMAGE_TAG

IOU_HIT = 0.5
DISTANCE_TOLERANCE = 0.25
TRACE_SAMPLES = 32  # points each trace is resampled to before comparing
TRACE_WORST = math.sqrt(2.0)  # the image diagonal in normalised units: no trace is farther off
LOWER_IS_BETTER = ("distance", "trace")

_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)"
_TUPLE = re.compile(rf"\(\s*({_NUMBER}(?:\s*,\s*{_NUMBER})*)\s*\)")
_FINAL = re.compile(r"\bA:")
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_COUNT = re.compile(r"\b(\d+|" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_UNITS = {"mm": 0.1, "millimeter": 0.1, "millimetre": 0.1, "cm": 1.0, "centimeter": 1.0, "centimetre": 1.0,
          "m": 100.0, "meter": 100.0, "metre": 100.0}  # in centimetres
_DISTANCE = re.compile(rf"({_NUMBER})\s*(millimet(?:er|re)s?|centimet(?:er|re)s?|met(?:er|re)s?|mm|cm|m)?\b",
                       re.IGNORECASE)
_LETTER_IN_PARENS = re.compile(r"\(([A-Za-z])\)")
_BARE_LETTER = re.compile(r"^([A-Z])(?=$|[.:)])")  # not "A cup", "I think"


def find_tuples(text: str) -> list[tuple[tuple[float, ...], bool]]:
    """Every `(n1, n2, ...)` tuple of numbers in `text`, in order, each with `normalised`: True when
    one of its numbers is written with a decimal point (the [0, 1] convention), False for integers
    (pixels). Tuples holding anything but numbers are not tuples here."""
    found = []
    for match in _TUPLE.finditer(text):
        numbers = [n.strip() for n in match.group(1).split(",")]
        found.append((tuple(float(n) for n in numbers), any("." in n for n in numbers)))
    return found


def final_answer(text: str) -> str:
    """The text after the last `A:` of a step-by-step answer, or the whole text. An `A:` with nothing
    before it is no chain of steps (it may be the letter of a choice) and is kept."""
    parts = _FINAL.split(text)
    return parts[-1] if len(parts) > 1 and parts[0].strip() else text


def _to_pixels(values: Sequence[float], normalised: bool, width: int, height: int) -> list[int]:
    """x, y, (x, y, ...) alternating -> pixel columns / rows; normalised values are scaled, then floored,
    so [0, 1) covers the image and 1.0 is just outside it."""
    sizes = (width, height) * (len(values) // 2)
    return [math.floor(v * s) if normalised else math.floor(v) for v, s in zip(values, sizes)]


def parse_points(text: str, width: int, height: int) -> np.ndarray:
    """The predicted pixels of a pointing answer: (N, 2) int64 (x = column, y = row), N = 0 when nothing
    parses. 2-tuples are points (possibly outside the image); a 4-tuple (x1, y1, x2, y2) is a box and
    contributes its pixels inside the image, columns x1 <= x < x2 and rows y1 <= y < y2."""
    pixels = [np.zeros((0, 2), np.int64)]
    for values, normalised in find_tuples(text):
        if len(values) == 2:
            pixels.append(np.array([_to_pixels(values, normalised, width, height)], np.int64))
        elif len(values) == 4:
            x1, y1, x2, y2 = _to_pixels(values, normalised, width, height)
            xs = np.arange(max(x1, 0), min(x2, width))
            ys = np.arange(max(y1, 0), min(y2, height))
            grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
            pixels.append(grid.astype(np.int64))
    return np.concatenate(pixels)


def point_score(points: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of `points` ((N, 2) x, y pixels) on nonzero pixels of `mask` ((H, W) bool); points
    outside the image count as misses, no points score 0."""
    if len(points) == 0:
        return 0.0
    height, width = mask.shape
    x, y = points[:, 0], points[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    hits = mask[y[inside], x[inside]].sum()
    return float(hits) / len(points)


def first_box(text: str) -> tuple[tuple[float, ...], bool] | None:
    """The first 4-tuple of `text` with its `normalised` flag (see `find_tuples`), or None."""
    return next(((values, normalised) for values, normalised in find_tuples(text) if len(values) == 4), None)


def parse_box(text: str, width: int, height: int) -> tuple[float, ...] | None:
    """The first 4-tuple of `text` as (x1, y1, x2, y2) in [0, 1] image coordinates (integers are
    pixels and are divided by the image size), or None."""
    found = first_box(text)
    if found is None:
        return None
    values, normalised = found
    return values if normalised else tuple(v / s for v, s in zip(values, (width, height) * 2))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; a box with x2 <= x1 or y2 <= y1 is empty."""
    def area(box: Sequence[float]) -> float:
        return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)

    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def _normalise(text: str) -> str:
    """Lower case, without the spaces and punctuation around the words (quotes, '**', a final '.')."""
    return re.sub(r"^[\W_]+|[\W_]+$", "", text.lower())


def yesno_correct(answer: str, truth: str) -> bool:
    """RoboSpatial: the normalised answer starts with the normalised ground truth ("yes" / "no")."""
    return _normalise(answer).startswith(_normalise(truth))


def parse_yesno(answer: str) -> str | None:
    """"yes" or "no" when the normalised answer starts with one, else None (unparseable)."""
    start = _normalise(answer)
    return next((word for word in ("yes", "no") if start.startswith(word)), None)


def parse_choice(text: str) -> str | None:
    """The letter of a multiple-choice answer, upper case: the first "(B)", else a leading capital
    standing alone ("B", "B. ...", "B) ...", "B: ..."); None without one."""
    match = _LETTER_IN_PARENS.search(text) or _BARE_LETTER.match(text.strip())
    return match.group(1).upper() if match else None


def parse_count(text: str) -> int | None:
    """The first integer of `text`, in digits or as a word zero..ten, or None."""
    match = _COUNT.search(text)
    if match is None:
        return None
    token = match.group(1).lower()
    return int(token) if token.isdigit() else _WORDS.index(token)


def parse_distance(text: str) -> float | None:
    """The first number of `text` in centimetres, read with its unit (mm, cm, m or the words; none = cm)."""
    match = _DISTANCE.search(text)
    if match is None:
        return None
    unit = (match.group(2) or "cm").lower().rstrip("s")
    return float(match.group(1)) * _UNITS[unit]


def relative_error(prediction: float | None, truth: float) -> float:
    """|pred - gt| / gt; an unparseable prediction (None) has relative error 1."""
    return 1.0 if prediction is None else abs(prediction - truth) / truth


def parse_trace(text: str, width: int, height: int) -> np.ndarray:
    """The predicted path of a trace answer: its `(x, y)` tuples in order, (N, 2) in [0, 1] (integer tuples
    are pixels and are divided by the image size; points outside the image are clipped to its border);
    N = 0 when none parses."""
    points = [values if normalised else (values[0] / width, values[1] / height)
              for values, normalised in find_tuples(text) if len(values) == 2]
    return np.clip(np.array(points, dtype=np.float64).reshape(-1, 2), 0.0, 1.0)


def resample_trace(points: np.ndarray, count: int = TRACE_SAMPLES) -> np.ndarray:
    """(N, 2) path, N >= 1 -> (count, 2) points evenly spaced along its length, from its first point to its
    last (a path that never moves repeats its point)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    moved = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 0])
    points = points[moved]  # a repeated point would make the arc length stall, which interpolation cannot take
    if len(points) == 1:
        return np.repeat(points, count, axis=0)
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(at, along, points[:, 0]), np.interp(at, along, points[:, 1])], axis=1)


def trace_distance(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance between corresponding points of two paths ((N, 2), (M, 2), normalised), each resampled
    to TRACE_SAMPLES points; TRACE_WORST for a prediction without a point."""
    if len(prediction) == 0:
        return TRACE_WORST
    return float(np.linalg.norm(resample_trace(prediction) - resample_trace(truth), axis=1).mean())


# --- scoring a list of records -------------------------------------------------------------------


def read_mask(path: Path) -> np.ndarray:
    """(H, W) bool, nonzero pixels of the PNG (any colour channel of a colour PNG) = inside."""
    try:
        array = decode_png(path.read_bytes())
    except OSError as e:
        raise DatasetError(f"cannot read the mask {path}: {e.strerror or e}") from None
    return array[..., :3].any(axis=-1) if array.ndim == 3 else array != 0


class _Context:
    """What judging needs besides the answer: the root that mask and image paths resolve against,
    with each mask read once."""

    def __init__(self, root: Path):
        self.root = root
        self._masks: dict[str, np.ndarray] = {}

    def mask(self, path: str) -> np.ndarray:
        """`read_mask` of `path` (relative to the root), read once."""
        if path not in self._masks:
            self._masks[path] = read_mask(self.root / path)
        return self._masks[path]

    def image_size(self, record: dict) -> tuple[int, int]:
        """(width, height) of the record's first image (read from its header only)."""
        from PIL import Image

        image = record.get("image")
        path = image[0] if isinstance(image, list) else image
        if not isinstance(path, str):
            raise DatasetError(f"record {record.get('id')!r} has no image to read pixel coordinates against")
        try:
            with Image.open(self.root / path) as im:
                return im.size
        except OSError as e:
            raise DatasetError(f"cannot read the image {self.root / path}: {e.strerror or e}") from None


# A judge: (answer text, record, context) -> (score of this answer, whether anything could be parsed).
Judge = Callable[[str, dict, _Context], tuple[float, bool]]


def _judge_point(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    mask = ctx.mask(record["target"])
    points = parse_points(answer, mask.shape[1], mask.shape[0])
    return point_score(points, mask), len(points) > 0


def _judge_box(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    found = first_box(answer)
    if found is None:
        return 0.0, False
    # the image is read only when a box in pixels has to be normalised
    width, height = (1, 1) if found[1] else ctx.image_size(record)
    box = parse_box(answer, width, height)
    return float(box_iou(box, record["target"]) >= IOU_HIT), True


def _judge_yesno(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    return float(yesno_correct(answer, record["target"])), parse_yesno(answer) is not None


def _judge_choice(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    letter = parse_choice(answer)
    return float(letter is not None and letter == parse_choice(record["target"])), letter is not None


def _judge_count(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    count = parse_count(answer)
    return float(count is not None and count == record["target"]), count is not None


def _judge_distance(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    distance = parse_distance(answer)
    return relative_error(distance, record["target"]), distance is not None


def _judge_trace(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    normalised = [n for values, n in find_tuples(answer) if len(values) == 2]
    if not normalised:
        return TRACE_WORST, False
    # the image is read only when a point in pixels has to be normalised
    width, height = (1, 1) if all(normalised) else ctx.image_size(record)
    return trace_distance(parse_trace(answer, width, height), np.asarray(record["target"])), True


def _judge_text(answer: str, record: dict, ctx: _Context) -> tuple[float, bool]:
    return float(_normalise(answer) == _normalise(record["target"])), True


_JUDGES: dict[str, tuple[str, Judge]] = {
    "point": ("mask hit", _judge_point),
    "box": (f"IoU>={IOU_HIT}", _judge_box),
    "yesno": ("accuracy", _judge_yesno),
    "choice": ("letter accuracy", _judge_choice),
    "count": ("exact count", _judge_count),
    "distance": ("rel. error", _judge_distance),
    "trace": ("mean distance", _judge_trace),
    "text": ("exact match", _judge_text),
}

# The key under which targets are the same answer, for the majority baseline.
_ANSWER_KEYS: dict[str, Callable[[Any], Any]] = {
    "yesno": _normalise, "choice": parse_choice, "count": lambda t: t, "text": _normalise,
}


def _majority_target(reference: list[dict], answer_type: str) -> Any:
    """A target holding the most common answer of `reference` (ties: the smallest key as text)."""
    key = _ANSWER_KEYS[answer_type]
    counts = Counter(key(r["target"]) for r in reference)
    best = min(counts, key=lambda k: (-counts[k], str(k)))
    return next(r["target"] for r in reference if key(r["target"]) == best)


def _median_errors(records: list[dict], reference: list[dict]) -> list[float]:
    """Relative errors on `records` of always answering the median `reference` target."""
    median = statistics.median(r["target"] for r in reference)
    return [relative_error(median, r["target"]) for r in records]


def _chance(answer_type: str, records: list[dict], reference: list[dict], ctx: _Context) -> float:
    """The score a blind guesser gets on `records` (baselines from `reference`, the training targets):
    point: a uniformly random pixel, exactly the mask's area fraction per question;
    box: a box covering the whole image, a hit iff the target covers at least half of it (its IoU);
    yesno / choice / count / text: always the majority answer of the reference targets;
    distance: always the median reference target (its mean relative error);
    trace: always the mean reference trace (each resampled to TRACE_SAMPLES points, averaged point by point)."""
    if answer_type == "point":
        return float(np.mean([ctx.mask(r["target"]).mean() for r in records]))
    if answer_type == "box":
        return float(np.mean([box_iou((0.0, 0.0, 1.0, 1.0), r["target"]) >= IOU_HIT for r in records]))
    if answer_type == "distance":
        return float(np.mean(_median_errors(records, reference)))
    if answer_type == "trace":
        mean = np.mean([resample_trace(r["target"]) for r in reference], axis=0)
        return float(np.mean([trace_distance(mean, np.asarray(r["target"])) for r in records]))
    guess = str(_majority_target(reference, answer_type))
    judge = _JUDGES[answer_type][1]
    return float(np.mean([judge(guess, r, ctx)[0] for r in records]))


def _question(record: dict) -> str:
    """The text of a record's first question, without its image tag ("" for a record without one)."""
    turns = record.get("conversations") or [{}]
    return str(turns[0].get("value", "")).replace(IMAGE_TAG, "").strip()


def _mask_centre(mask: np.ndarray) -> np.ndarray:
    """(2,) the mean (x, y) of a mask's pixels, normalised to [0, 1] (the image centre for an empty mask)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return np.array([0.5, 0.5])
    return np.array([(cols.mean() + 0.5) / mask.shape[1], (rows.mean() + 0.5) / mask.shape[0]])


def _fixed_scores(answer_type: str, records: list[dict], reference: list[dict], ctx: _Context) -> list[float]:
    """Per record, the score of answering its question with the one answer that `reference` fixes for that
    question text (see the module's docstring): what a blind model that had learnt the layouts of
    `reference` would score. A question `reference` never asks gets the answer fixed over all of it."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in reference:
        groups[_question(r)].append(r)
    fixed: dict[str, Any] = {}

    def answer_for(question: str) -> Any:
        if question not in fixed:
            group = groups.get(question) or reference
            if answer_type == "point":
                # read once per question, not kept: a training reference holds tens of thousands of masks
                x, y = np.mean([_mask_centre(read_mask(Path(r.get("root", ctx.root)) / r["target"])) for r in group],
                               axis=0)
                fixed[question] = f"[({x:.3f}, {y:.3f})]"
            elif answer_type == "box":
                box = np.mean([r["target"] for r in group], axis=0)
                fixed[question] = "[({:.3f}, {:.3f}, {:.3f}, {:.3f})]".format(*box)
            elif answer_type == "distance":
                fixed[question] = statistics.median(r["target"] for r in group)
            elif answer_type == "trace":
                fixed[question] = np.mean([resample_trace(np.asarray(r["target"])) for r in group], axis=0)
            else:
                fixed[question] = str(_majority_target(group, answer_type))
        return fixed[question]

    scores = []
    for r in records:
        answer = answer_for(_question(r))
        if answer_type == "distance":
            scores.append(relative_error(answer, r["target"]))
        elif answer_type == "trace":
            scores.append(trace_distance(answer, np.asarray(r["target"])))
        else:
            scores.append(_JUDGES[answer_type][1](answer, r, ctx)[0])
    return scores


def _family_types(records: list[dict]) -> dict[str, str]:
    """family -> answer_type, checking that every record can be scored and each family has one type."""
    types: dict[str, str] = {}
    for record in records:
        family, answer_type = record.get("family"), record.get("answer_type")
        if family is None or answer_type not in _JUDGES or "target" not in record:
            raise DatasetError(f"record {record.get('id')!r} lacks family, answer_type or target; only "
                               f"generated knowledge records can be scored")
        if types.setdefault(family, answer_type) != answer_type:
            raise DatasetError(f"family {family!r} mixes answer types {types[family]!r} and {answer_type!r}")
    return types


def score_records(records: list[dict], answers: list[str], root: Path,
                  reference: list[dict] | None = None) -> dict:
    """Scores `answers[i]` against `records[i]`, per family.

    `root`: where the records' mask and image paths resolve. `reference`: the records the baselines are
    drawn from (the training split, each with its "root"; default: `records` themselves).
    Returns {"families": {family: {"answer_type", "metric", "n", "score", "chance", "fixed", "higher_is_better"}},
    "unparseable": {family: count}}; a distance family also has "within_25", "within_25_chance" and
    "within_25_fixed" (fractions of relative errors <= 25%).
    """
    if len(records) != len(answers):
        raise ValueError(f"{len(records)} records but {len(answers)} answers")
    ctx = _Context(Path(root))
    types = _family_types(records)
    _family_types(records + (reference or []))  # the reference must not give a family another type
    result: dict = {"families": {}, "unparseable": {}}
    for family, answer_type in sorted(types.items()):
        pairs = [(r, a) for r, a in zip(records, answers) if r["family"] == family]
        members = [r for r, _ in pairs]
        pool = members if reference is None else [r for r in reference if r["family"] == family]
        if not pool:
            raise DatasetError(f"the reference records have no record of family {family!r} for its baselines")
        metric, judge = _JUDGES[answer_type]
        judged = [judge(final_answer(a), r, ctx) for r, a in pairs]
        scores = [s for s, _ in judged]
        fixed = _fixed_scores(answer_type, members, pool, ctx)
        entry = {"answer_type": answer_type, "metric": metric, "n": len(pairs), "score": float(np.mean(scores)),
                 "chance": _chance(answer_type, members, pool, ctx), "fixed": float(np.mean(fixed)),
                 "higher_is_better": answer_type not in LOWER_IS_BETTER}
        if answer_type == "distance":
            def within(errors: list[float]) -> float:
                return float(np.mean([e <= DISTANCE_TOLERANCE for e in errors]))

            entry["within_25"] = within(scores)
            entry["within_25_chance"] = within(_median_errors(members, pool))
            entry["within_25_fixed"] = within(fixed)
        result["families"][family] = entry
        result["unparseable"][family] = sum(not parsed for _, parsed in judged)
    return result


def format_table(result: dict) -> str:
    """A Markdown table of `score_records`' result: family, metric, n, score, chance, fixed answer per
    question (a distance family takes two rows: the mean relative error, lower is better, and the
    accuracy within 25%)."""
    lines = ["| family | metric | n | score | chance | fixed answer per question |", "|---|---|---:|---:|---:|---:|"]
    for family, e in result["families"].items():
        metric = e["metric"] if e["higher_is_better"] else f"{e['metric']} (lower is better)"
        lines.append(f"| {family} | {metric} | {e['n']} | {e['score']:.3f} | {e['chance']:.3f} | {e['fixed']:.3f} |")
        if "within_25" in e:
            lines.append(f"| {family} | within 25% | {e['n']} | {e['within_25']:.3f} | {e['within_25_chance']:.3f} "
                         f"| {e['within_25_fixed']:.3f} |")
    return "\n".join(lines)
