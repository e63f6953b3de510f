"""Where the memory of an ALS fit goes, at RouterEval's size (the README's memory account).

    python benchmarks/memory.py                       # 25,000 × 8,500 (about 6 minutes)
    python benchmarks/memory.py --size 5000x1000

Writes the synthetic matrix, then in this process loads it and fits the ALS
router (64 factors, 15 iterations) while a thread samples the resident set
every 50 ms. Prints what holds how many bytes (sizes follow from the shape)
and the resident memory measured after each step and at its peak.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from scale import synthesize  # benchmarks/ is on the path when this script runs

GIB = 2**30


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class PeakSampler(threading.Thread):
    """The highest resident set seen since the last ``take()``."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = rss()

    def run(self):
        while True:
            self.peak = max(self.peak, rss())
            time.sleep(0.05)

    def take(self) -> int:
        peak, self.peak = max(self.peak, rss()), rss()
        return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="25000x8500")
    args = parser.parse_args()
    prompts, llms = (int(v) for v in args.size.lower().split("x"))
    cells = prompts * llms
    sampler = PeakSampler()
    sampler.start()
    rows = []
    def step(name: str, action):
        result = action()
        rows.append([name, f"{rss() / GIB:.2f}", f"{sampler.take() / GIB:.2f}"])
        return result

    import faiss  # noqa: F401  the libraries a fit loads, imported first so that their code is not counted as data
    import implicit.cpu.als  # noqa: F401
    import numpy as np
    import torch  # noqa: F401

    from recroute.loaders import load
    from recroute.report import format_table
    from recroute.routers import make_router

    step("python and the libraries imported", lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synth.npz"
        synthesize(prompts, llms, path)
        data = step("outcome matrix loaded", lambda: load(path))
    router = step("ALS fitted (64 factors, 15 iterations)",
                  lambda: make_router("als", factors=64, iterations=15).fit(data))
    del data
    step("outcome matrix dropped, fitted router kept", lambda: None)
    held = [
        ("outcome matrix (float32)", cells * 4, "the whole time"),
        ("confidence matrix (float32)", cells * 4, "built in row blocks, freed once its CSR exists"),
        ("CSR of the records: float32 values + int32 columns", cells * 8, "during the fit"),
        ("implicit's transposed copy (LLMs as rows)", cells * 8, "during the fit"),
        ("prompt and LLM factors (64 float32 each)", (prompts + llms) * 64 * 4, "during the fit"),
        ("fitted router's arrays (cold-start map, LLM vectors, index)",
         sum(np.asarray(v).nbytes for v in router.state().values()), "kept"),
    ]
    print(format_table(["held by", "GiB", "alive"], [[name, f"{size / GIB:.3f}", alive] for name, size, alive in held]))
    print()
    print(format_table(["step", "RSS after (GiB)", "peak during (GiB)"], rows))


if __name__ == "__main__":
    main()
