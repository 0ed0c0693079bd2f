"""Compares an expert calibration on official LIBERO-Plus variants with the expert's unperturbed episodes.

For each variant episode of `pokevla robustness eval --policy expert` (its folder is the argument),
the reference is the expert's episode of the same task and init state in the suites' 50-trial
results (results/expert_*.json). Prints a markdown table per suite and dimension, then every episode
whose outcome differs from its reference.

    python scripts/expert_calibration_vs_unperturbed.py RUN_DIR [MANIFEST]
"""
import collections
import json
import sys

refs = {"libero_object": "results/expert_libero_object.json", "libero_spatial": "results/expert_libero_spatial_50trials.json",
        "libero_goal": "results/expert_libero_goal_50trials.json", "libero_10": "results/expert_libero_10_50trials.json"}
ref = {}
for s, f in refs.items():
    for e in json.load(open(f))["episodes"]:
        ref[(s, e["task_id"], e["trial"])] = e["success"]
eps = [json.loads(l) for l in open(sys.argv[1] + "/episodes.jsonl")]
man = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[2] if len(sys.argv) > 2 else "results/liberoplus_official/manifest.jsonl")}
table = collections.defaultdict(lambda: [0, 0, 0, 0])  # episodes, successes, reference successes, agree
rows = []
for e in eps:
    trial = man[e["id"]]["trial"]
    r = ref[(e["suite"], e["task_id"], trial)]
    t = table[(e["suite"], e["dimension"])]
    t[0] += 1; t[1] += e["success"]; t[2] += r; t[3] += (e["success"] == r)
    if e["success"] != r:
        rows.append((e["suite"], e["dimension"], e["level"], e["task_id"], e["instruction"][:60], "variant", e["success"], "reference", r))
print("| suite | dimension | variants | expert success | expert, same task and init state, unperturbed | same outcome |")
print("|---|---|---:|---:|---:|---:|")
tot = [0, 0, 0, 0]
for k in sorted(table):
    t = table[k]; tot = [a + b for a, b in zip(tot, t)]
    print(f"| {k[0]} | {k[1]} | {t[0]} | {t[1]}/{t[0]} | {t[2]}/{t[0]} | {t[3]}/{t[0]} |")
print(f"| all | | {tot[0]} | {tot[1]}/{tot[0]} | {tot[2]}/{tot[0]} | {tot[3]}/{tot[0]} |")
for r in rows: print(r)
