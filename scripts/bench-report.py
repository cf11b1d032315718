#!/usr/bin/env python3
"""Aggregates the BENCH lines of a benchmark run (see bench/bench.h).

    bench-report.py LOG OUTDIR

Writes OUTDIR/results.csv, OUTDIR/results.md and one PNG per (benchmark,
metric), and prints the ratio table: for each benchmark, case and metric, the
best kevent variant against the best epoll and the best io_uring variant of
the same run. Metrics ending in _per_s are better when higher, the others when
lower.
"""
import collections
import statistics
import sys
from pathlib import Path

log, outdir = Path(sys.argv[1]), Path(sys.argv[2])
outdir.mkdir(parents=True, exist_ok=True)

samples = collections.OrderedDict()
for line in log.read_text(errors="replace").splitlines():
    parts = line.split()
    if len(parts) == 6 and parts[0] == "BENCH":
        _, bench, case, mech, metric, value = parts
        samples.setdefault((bench, case, mech, metric), []).append(float(value))
if not samples:
    sys.exit(f"bench-report: no BENCH lines in {log}")


def higher_is_better(metric):
    return metric.endswith("_per_s")


def family(mech):
    # kevent lines on sources that the other mechanisms do not have (the
    # harvest benchmark's user events) are not kevent's best for the ratios:
    # they show as the "other" column.
    if mech.startswith("kevent") and mech.endswith("+user"):
        return "kevent user events"
    if mech.startswith("kevent"):
        return "kevent"
    if "io_uring" in mech:
        return "io_uring"
    if "epoll" in mech:
        return "epoll"
    return mech


def fmt(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


stats = {}
for key, vals in samples.items():
    stats[key] = (statistics.median(vals), min(vals), max(vals), len(vals))

with open(outdir / "results.csv", "w") as f:
    f.write("benchmark,case,mechanism,metric,median,min,max,rounds\n")
    for (b, c, m, metric), (med, lo, hi, n) in stats.items():
        f.write(f"{b},{c},{m},{metric},{med:.6g},{lo:.6g},{hi:.6g},{n}\n")

# Ratio rows: best kevent vs best epoll / io_uring per (benchmark, case, metric).
ratios = []
groups = collections.OrderedDict()
for (b, c, m, metric), st in stats.items():
    if metric == "syscalls_per_event":
        continue
    groups.setdefault((b, c, metric), {}).setdefault(family(m), []).append((m, st[0]))
for (b, c, metric), fams in groups.items():
    pick = max if higher_is_better(metric) else min
    best = {fam: pick(v, key=lambda x: x[1]) for fam, v in fams.items()}
    if "kevent" not in best:
        continue
    k = best["kevent"]
    row = [b, c, metric, f"{k[0]} {fmt(k[1])}"]
    k_lo, k_hi = stats[(b, c, k[0], metric)][1:3]
    # "other": the best of the remaining baselines (libaio, pread threads,
    # inotify, plain sendfile, ...), for benchmarks that are not about epoll.
    rest = [best[f] for f in best if f not in ("kevent", "epoll", "io_uring")]
    if rest:
        best["other"] = pick(rest, key=lambda x: x[1])
    for other in ("epoll", "io_uring", "other"):
        if other in best and best[other][1] > 0:
            o = best[other]
            o_lo, o_hi = stats[(b, c, o[0], metric)][1:3]
            # "~": the two min-max ranges overlap, so the order may be noise.
            mark = "~" if k_lo <= o_hi and o_lo <= k_hi else ""
            row += [f"{o[0]} {fmt(o[1])}", f"{k[1] / o[1]:.2f}{mark}"]
        else:
            row += ["-", "-"]
    ratios.append(row)

header = ["benchmark", "case", "metric", "best kevent", "best epoll", "kevent ÷ epoll",
          "best io_uring", "kevent ÷ io_uring", "best other", "kevent ÷ other"]
md = ["# Benchmark results", "",
      "Medians over the rounds of one VM run (QEMU TCG: absolute numbers are emulation "
      "numbers; compare ratios). `_per_s`: higher is better; ns, us: lower is better. "
      "A ratio marked `~` compares two mechanisms whose min–max ranges overlap: "
      "the difference may be noise.", "",
      "## Ratios", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
md += ["| " + " | ".join(r) + " |" for r in ratios]
md += ["", "## All results (median [min–max], rounds)", "",
       "| benchmark | case | mechanism | metric | median | min–max | rounds |",
       "|---|---|---|---|---|---|---|"]
for (b, c, m, metric), (med, lo, hi, n) in stats.items():
    md.append(f"| {b} | {c} | {m} | {metric} | {fmt(med)} | {fmt(lo)}–{fmt(hi)} | {n} |")
(outdir / "results.md").write_text("\n".join(md) + "\n")

# Plots: one per (benchmark, metric), grouped by case.
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = collections.OrderedDict()
    for (b, c, m, metric), st in stats.items():
        plots.setdefault((b, metric), collections.OrderedDict()).setdefault(c, {})[m] = st
    for (b, metric), cases in plots.items():
        mechs = list(dict.fromkeys(m for per in cases.values() for m in per))
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cases) * len(mechs) / 3), 4))
        width = 0.8 / len(mechs)
        for j, m in enumerate(mechs):
            xs, ys, err = [], [], [[], []]
            for i, (c, per) in enumerate(cases.items()):
                if m in per:
                    med, lo, hi, _ = per[m]
                    xs.append(i + j * width)
                    ys.append(med)
                    err[0].append(med - lo)
                    err[1].append(hi - med)
            ax.bar(xs, ys, width, yerr=err, label=m, capsize=2)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
        ax.set_xticklabels(list(cases), rotation=20, fontsize=8)
        ax.set_ylabel(metric)
        if metric != "syscalls_per_event" and b in ("harvest", "pingpong"):
            ax.set_yscale("log")
        ax.set_title(f"{b}: {metric} (median, min–max)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(outdir / f"{b}-{metric}.png", dpi=100)
        plt.close(fig)
except ImportError:
    print("bench-report: matplotlib missing, no plots", file=sys.stderr)

widths = [max(len(str(r[i])) for r in ratios + [header]) for i in range(len(header))]
print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
for r in ratios:
    print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
print("(~: the min-max ranges of the two overlap; the difference may be noise)")
print(f"\nresults: {outdir}/results.md, results.csv and {len(list(outdir.glob('*.png')))} plots")
