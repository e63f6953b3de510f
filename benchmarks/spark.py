"""Spark's ALS (``fit --engine spark``) against implicit's in-memory ALS: time and peak memory by size.

    python benchmarks/spark.py                                  # 20M and 212.5M records (hours on 2 cores)
    python benchmarks/spark.py --sizes 25000x800 --master 'local[2]'
    python benchmarks/spark.py --sizes 25000x8500 --spark-iterations 2   # per-iteration cost at 212.5M

For each size, ``recroute synth`` writes the same synthetic data twice (seed
0): as Parquet in row groups (what Spark reads) and as the .npz the
in-memory fit reads. Then each fit runs as a user runs it — ``recroute fit
--engine spark --data DIR`` and ``recroute fit --data FILE.npz --router
als`` — in its own process, with 32 factors and 15 iterations unless told
otherwise, while this script samples the resident memory of the process and
of its children (in local mode Spark's driver and executors are one JVM,
the child of the Python driver) every 0.2 s. The Spark fit's stage times
come from its progress lines. Writes docs/results/spark_scale.json and the
figure docs/spark_scale.png; prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
CLI = "import sys; from recroute.cli import main; sys.argv[0] = 'recroute'; main()"


def recroute(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found + [g for c in found for g in children(c)]


def run_measured(*args: str, label: str) -> dict:
    """Run a recroute command; wall time, peak RSS of it and of its children (the JVM), its output."""
    start = time.perf_counter()
    child = recroute(*args)
    peaks = {"driver": 0, "children": 0, "total": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            own, kids = rss(child.pid), sum(rss(c) for c in children(child.pid))
            peaks["driver"], peaks["children"] = max(peaks["driver"], own), max(peaks["children"], kids)
            peaks["total"] = max(peaks["total"], own + kids)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    for line in child.stderr:  # progress as it comes
        lines.append(line.rstrip())
        if not line.startswith(("netlib", "WARNING", "Setting", "To adjust")):
            print(f"    {label}: {line.rstrip()}", file=sys.stderr, flush=True)
    out = child.stdout.read()
    child.wait()
    stop.set()
    sampler.join()
    failed = None
    if child.returncode:  # kept in the results: how far it got, and why it stopped
        failed = next((line for line in reversed(lines) if line.startswith("recroute: error")), lines[-1:])
        print(f"{label} failed: {failed}", file=sys.stderr, flush=True)
    return {"failed": failed, "wall_s": round(time.perf_counter() - start, 1), "peak_driver_gib": round(peaks["driver"] / GIB, 2),
            "peak_children_gib": round(peaks["children"] / GIB, 2), "peak_total_gib": round(peaks["total"] / GIB, 2),
            "stdout": out.strip(), "stderr": lines}


def stages(lines: list[str]) -> dict:
    found = {}
    for line in lines:
        match = re.fullmatch(r"(.+): (\d+(?:\.\d+)?) s", line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def measure(prompts: int, llms: int, args) -> dict:
    records = prompts * llms
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    parquet, npz = work / f"synth_{prompts}x{llms}_parquet", work / f"synth_{prompts}x{llms}.npz"
    row = {"prompts": prompts, "llms": llms, "records": records, "master": args.master,
           "driver_memory": args.driver_memory, "factors": args.factors}
    print(f"{prompts:,} × {llms:,} = {records:,} records", file=sys.stderr, flush=True)
    if not parquet.exists():
        made = run_measured("synth", "--format", "parquet", "--prompts", str(prompts), "--llms", str(llms),
                            "--dim", str(args.dim), "--out", str(parquet), label="synth parquet")
        row["synth_parquet_s"], row["synth_parquet_peak_gib"] = made["wall_s"], made["peak_total_gib"]
    row["parquet_mib"] = round(disk(parquet) / 2**20)
    iterations = args.spark_iterations or args.iterations
    spark = run_measured("fit", "--engine", "spark", "--data", str(parquet), "--router", "als",
                         "--param", f"factors={args.factors}", "--param", f"iterations={iterations}",
                         "--spark-master", args.master, "--spark-conf", f"spark.driver.memory={args.driver_memory}",
                         "--out", str(work / f"router_spark_{prompts}x{llms}"), label="spark")
    row["spark"] = {"iterations": iterations, "stages_s": stages(spark["stderr"]),
                    **{k: v for k, v in spark.items() if k not in ("stderr",)}}
    if not args.skip_implicit:
        if not npz.exists():
            run_measured("synth", "--prompts", str(prompts), "--llms", str(llms), "--dim", str(args.dim),
                         "--out", str(npz), label="synth npz")
        implicit = run_measured("fit", "--data", str(npz), "--router", "als", "--param", f"factors={args.factors}",
                                "--param", f"iterations={args.iterations}", "--out",
                                str(work / f"router_als_{prompts}x{llms}"), label="implicit")
        row["implicit"] = {"iterations": args.iterations, **{k: v for k, v in implicit.items() if k != "stderr"}}
    return row


def table(rows: list[dict]) -> str:
    out = ["| records | prompts × LLMs | engine | iterations | fit wall | read+check | cells+ids | ALS | sample | "
           "cold-start map | peak driver (Python) | peak JVM (driver+executors) | peak total |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["spark"]
        st = s["stages_s"]
        if s.get("wall_s") is None:
            out.append(f"| {r['records']:,} | {r['prompts']:,} × {r['llms']:,} | Spark {r['master']}, "
                       f"{s.get('numBlocks', '')} ALS blocks | {s['iterations']} | failed | "
                       f"{st.get('read and check', '')} | {st.get('cells and ids', '')} | out of memory | | | | | |")
            continue
        sample = next((v for k, v in st.items() if k.startswith("sample of")), "")
        engine = f"Spark {r['master']}" + (" (failed: out of memory)" if s.get("failed") else "")
        out.append(f"| {r['records']:,} | {r['prompts']:,} × {r['llms']:,} | {engine} | {s['iterations']} | "
                   f"{s['wall_s']:.0f} s | {st.get('read and check', '')} | {st.get('cells and ids', '')} | "
                   f"{st.get('ALS', '')} | {sample} | {st.get('cold-start map', '')} | {s['peak_driver_gib']} GiB | "
                   f"{s['peak_children_gib']} GiB | {s['peak_total_gib']} GiB |")
        if "implicit" in r:
            i = r["implicit"]
            out.append(f"| {r['records']:,} | {r['prompts']:,} × {r['llms']:,} | implicit (in memory) | "
                       f"{i['iterations']} | {i['wall_s']:.0f} s | | | | | | {i['peak_driver_gib']} GiB | | "
                       f"{i['peak_total_gib']} GiB |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = sorted((r for r in rows if r["spark"].get("wall_s") is not None), key=lambda r: r["records"])
    x = [r["records"] / 1e6 for r in rows]
    per_iter = [r["spark"]["stages_s"].get("ALS", 0) / r["spark"]["iterations"] for r in rows]
    fixed = [sum(v for k, v in r["spark"]["stages_s"].items() if k != "ALS" and k != "spark session") for r in rows]
    left.plot(x, [r["spark"]["wall_s"] for r in rows], "o-", label="Spark fit, wall")
    left.plot(x, fixed, "s--", label="Spark: read, check, ids, sample, cold start")
    left.plot(x, per_iter, "^:", label="Spark: one ALS iteration")
    left.plot([r["records"] / 1e6 for r in rows if "implicit" in r],
              [r["implicit"]["wall_s"] for r in rows if "implicit" in r], "D-", label="implicit fit, wall")
    left.set_xlabel("records (millions)")
    left.set_ylabel("seconds")
    left.set_xscale("log")
    left.set_yscale("log")
    left.legend(fontsize=7)
    right.plot(x, [r["spark"]["peak_total_gib"] for r in rows], "o-", label="Spark: Python driver + JVM")
    right.plot(x, [r["spark"]["peak_children_gib"] for r in rows], "s--", label="Spark: JVM (driver+executors)")
    right.plot([r["records"] / 1e6 for r in rows if "implicit" in r],
               [r["implicit"]["peak_total_gib"] for r in rows if "implicit" in r], "D-", label="implicit")
    right.set_xlabel("records (millions)")
    right.set_ylabel("peak resident GiB")
    right.set_xscale("log")
    right.legend(fontsize=7)
    fig.suptitle(f"ALS fit, {rows[0]['master']}, {rows[0]['factors']} factors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000x800,25000x8500", help="PROMPTSxLLMS, comma-separated")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--spark-iterations", type=int, default=None,
                        help="ALS iterations of the Spark fit only (to measure one iteration's cost at a size)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--skip-implicit", action="store_true")
    parser.add_argument("--workdir", default="/tmp/recroute-spark-bench")
    parser.add_argument("--json", default=str(ROOT / "docs" / "results" / "spark_scale.json"))
    parser.add_argument("--png", default=str(ROOT / "docs" / "spark_scale.png"))
    args = parser.parse_args()
    rows = []
    previous = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else []
    for size in args.sizes.split(","):
        prompts, llms = (int(v) for v in size.lower().split("x"))
        rows.append(measure(prompts, llms, args))
        keep = [r for r in previous if (r["records"], r["spark"]["iterations"]) not in
                {(n["records"], n["spark"]["iterations"]) for n in rows}]
        Path(args.json).write_text(json.dumps(keep + rows, indent=1) + "\n")  # after each size: a long run keeps its rows
    every = json.loads(Path(args.json).read_text())
    plot(every, Path(args.png))
    print(table(every))


if __name__ == "__main__":
    main()
