"""Do a VLM's wrong pointing answers go to the object's usual place in the training images?

    python scripts/pointing_location_prior.py TRAIN.jsonl[,TRAIN.jsonl] RECORDS.jsonl ANSWERS.jsonl.gz

TRAIN: knowledge records the model trained on; RECORDS: the scored records; ANSWERS: the answers file
`pokevla vlm eval --json` wrote, as split under results/ (one {"id", "answer"} per line, gzipped).
Prints, per object named in point_object questions, the distances (image fractions) from the mean
predicted point to the true place and to the usual place (the mean of the object's training answers).
"""
import collections
import gzip
import json
import re
import sys

import numpy as np

QUESTION = re.compile(r"(?:Point to the|Locate the|Where is the) (.*?)(?: in the image)?[.?]")
POINT = re.compile(r"\(([0-9.]+), ([0-9.]+)\)")


def points(text: str) -> np.ndarray:
    return np.array([(float(x), float(y)) for x, y in POINT.findall(text)]).reshape(-1, 2)


def point_records(path: str):
    for line in open(path):
        if '"point_object"' in line:
            record = json.loads(line)
            yield QUESTION.search(record["conversations"][0]["value"]).group(1), record


def main(train: str, scored: str, answers_path: str) -> None:
    usual = collections.defaultdict(list)
    for path in train.split(","):
        for name, record in point_records(path):
            usual[name].append(points(record["conversations"][1]["value"]).mean(0))
    usual = {name: np.mean(places, 0) for name, places in usual.items()}
    answers = {a["id"]: a["answer"] for a in map(json.loads, gzip.open(answers_path, "rt"))}
    rows = collections.defaultdict(list)
    for name, record in point_records(scored):
        predicted = points(answers.get(record["id"], ""))
        if len(predicted) and name in usual:
            p, true = predicted.mean(0), points(record["conversations"][1]["value"]).mean(0)
            rows[name].append((np.linalg.norm(p - true), np.linalg.norm(p - usual[name]),
                               np.linalg.norm(true - usual[name])))
    print("| object | n | predicted to true | predicted to usual | true to usual |\n|---|---:|---:|---:|---:|")
    for name, values in sorted(rows.items(), key=lambda kv: -len(kv[1])):
        to_true, to_usual, true_usual = np.mean(values, 0)
        print(f"| {name} | {len(values)} | {to_true:.3f} | {to_usual:.3f} | {true_usual:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
