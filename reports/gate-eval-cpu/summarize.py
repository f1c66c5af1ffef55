"""One line per gate run of the evaluation: exit code, verdict counts, median ratio,
median detectable slowdown, passes and seconds (run from this folder, runs/ beside it)."""
import glob
import json
import os
import statistics

for path in sorted(glob.glob("runs/*/compare.json")):
    run = path.split("/")[-2]
    doc = json.load(open(path))
    gate = json.load(open(os.path.join(os.path.dirname(path), "gate.json")))
    timed = [c["timing"] for c in doc["cases"] if c.get("timing")]
    ratio = statistics.median(t["ratio"] for t in timed)
    detectable = statistics.median(t["detectable"] for t in timed)
    passes = max(gate["repeats"].values())
    print(f"{run:6s} exit {doc['exit_code']} cases {len(doc['cases'])} {doc['counts']} "
          f"median ratio {ratio:.3f} detectable {detectable:.3f} passes {passes} "
          f"{gate['seconds']:.0f} s")
