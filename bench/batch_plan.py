"""Wall time of `rnnconvert batch`: a plan of every fixture x every target, serial vs parallel.

    python -m bench.batch_plan                # --jobs 1, then --jobs <cores>
    python -m bench.batch_plan --jobs 4 --targets onnx keras

Each run is a fresh `rnnconvert batch plan.yaml --force` process (what a user runs), in a temporary
directory; refused conversions (a feature a target cannot express) count as run.  Not a timed test.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"onnx": ".onnx", "keras": ".keras", "h5": ".h5", "torch": ".pt", "safetensors": ".safetensors",
           "canonical": ".rnnc"}


def build_plan(folder: Path, targets) -> dict:
    jobs = []
    for case in sorted((ROOT / "fixtures").glob("*/*/")):
        for model in sorted(case.glob("model.*")):
            if model.suffix not in (".h5", ".keras", ".onnx", ".pt", ".safetensors"):
                continue
            stem = f"{case.parent.name}-{case.name}-{model.suffix[1:]}"
            job = {"src": str(model), "dst": [f"out/{stem}{TARGETS[t]}" for t in targets]}
            if (case / "arch.json").exists():
                job["arch"] = str(case / "arch.json")
            jobs.append(job)
    return {"jobs": jobs}


def run(plan: Path, jobs: int) -> tuple[float, dict]:
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))
    report = plan.parent / f"report-{jobs}.json"
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "rnnconvert", "batch", str(plan), "--force", "--jobs", str(jobs),
                    "--report", str(report)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - t, cpu, json.loads(report.read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        import yaml
        plan = Path(tmp) / "plan.yaml"
        plan_dict = build_plan(Path(tmp), args.targets)
        plan.write_text(yaml.safe_dump(plan_dict))
        n = sum(len(j["dst"]) for j in plan_dict["jobs"])
        print(f"plan: {len(plan_dict['jobs'])} fixture files x {len(args.targets)} targets = {n} conversions")
        print(f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")
        for jobs in (1, args.jobs):
            seconds, cpu, report = run(plan, jobs)
            print(f"--jobs {jobs:<3} {seconds:7.1f} s wall {cpu:7.1f} s cpu  ({report['processes']} processes; "
                  f"{json.dumps(report['counts'], sort_keys=True)}; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
