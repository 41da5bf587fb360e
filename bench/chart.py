"""Bar chart of a bench run: python bench/chart.py results.json results.png

One panel per scenario, one horizontal bar per server (median requests/s), monoceros
highlighted, the ceiling grey. The peak RSS of each server is written after its bar.
Needs matplotlib; bench/run.py calls this with the peers virtualenv's interpreter.
"""

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "monoceros": "#d62728",
    "monoceros-inline": "#ff7f0e",
    "ceiling": "#9e9e9e",
    "uvicorn": "#1f77b4",
    "granian": "#2ca02c",
}
OTHER = "#aec7e8"


def main(src: str, dst: str) -> None:
    with open(src) as f:
        report = json.load(f)
    meta, results = report["meta"], report["results"]
    scenarios = meta["scenarios"]
    cols = 3 if len(scenarios) > 4 else max(1, len(scenarios))
    rows = math.ceil(len(scenarios) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(scenarios) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, scenarios, strict=False):
        rows_ = [r for r in results if r["scenario"] == name]
        labels = [r["server"] for r in rows_]
        values = [r.get("rps", 0) if r["status"] != "failed" else 0 for r in rows_]
        colours = [COLOURS.get(s, OTHER) for s in labels]
        ypos = range(len(labels))
        ax.barh(ypos, values, color=colours)
        ax.set_yticks(list(ypos), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        top = max(values) if values and max(values) > 0 else 1
        ax.set_xlim(0, top * 1.45)
        for y, r, v in zip(ypos, rows_, values, strict=True):
            if r["status"] == "failed":
                text = "FAILED"
            else:
                peak = r.get("rss_peak_kib")
                text = f"{v:,.0f}" + (f"  ({peak / 1024:.0f} MiB)" if peak else "")
                if r["status"] == "errors":
                    text += "  errors!"
            ax.text(v + top * 0.01, y, text, va="center", fontsize=7)
    fig.suptitle(
        f"Median requests/s (peak RSS of the server tree), 1 worker on 1 core, wrk on the other; "
        f"{meta['started']}, {meta['repeats']} x {meta['duration']} s",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
