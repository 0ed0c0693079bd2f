"""Pictures and pages from results files: success bar charts and a markdown report."""

from __future__ import annotations

from pathlib import Path

from pokevla.common.io import atomic_path, write_text_atomic


def success_bar_chart(results: dict, path: str | Path, reference: dict | None = None) -> None:
    """Per-task success rates as bars (and a reference policy's, e.g. the expert, beside them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t["task_id"] for t in results["per_task"]]
    rates = [100 * (t["success_rate"] or 0.0) for t in results["per_task"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(tasks) + 2), 3.2), dpi=120)
    width = 0.4 if reference else 0.6
    xs = range(len(tasks))
    ax.bar([x - (width / 2 if reference else 0) for x in xs], rates, width, label=_label(results), color="#3b75af")
    if reference:
        ref = {t["task_id"]: 100 * (t["success_rate"] or 0.0) for t in reference["per_task"]}
        ax.bar([x + width / 2 for x in xs], [ref.get(t, 0.0) for t in tasks], width, label=_label(reference), color="#aaaaaa")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(list(xs), [str(t) for t in tasks])
    ax.set_xlabel(f"{results['suite']} task")
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    overall = results["overall"]
    ax.set_title(f"{results['suite']}: {100 * (overall['success_rate'] or 0):.1f}% of {overall['episodes']} episodes", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _label(results: dict) -> str:
    return "PokeVLA" if results["policy"]["kind"] == "checkpoint" else f"scripted {results['policy']['kind']}"


def markdown_report(title: str, sections: list[tuple[str, str]], path: str | Path) -> None:
    body = [f"# {title}", ""]
    for heading, text in sections:
        body += [f"## {heading}", "", text.rstrip(), ""]
    write_text_atomic(path, "\n".join(body))


def results_table_md(results: dict) -> str:
    rows = ["| task | instruction | success | rate |", "|---:|---|---:|---:|"]
    for t in results["per_task"]:
        rate = f"{100 * t['success_rate']:.0f}%" if t["success_rate"] is not None else "-"
        rows.append(f"| {t['task_id']} | {t['instruction']} | {t['successes']}/{t['trials']} | {rate} |")
    o = results["overall"]
    low, high = o["interval95"]
    rows.append(f"| all | | {o['successes']}/{o['episodes']} | {100 * (o['success_rate'] or 0):.1f}% "
                f"(95% interval {100 * low:.0f}-{100 * high:.0f}%) |")
    return "\n".join(rows)
