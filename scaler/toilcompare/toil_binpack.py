#!/usr/bin/python3
"""Driver that runs Toil's own bin packer on inputs sent by gaffer's tests.

This is not a port: it imports Toil (Debian package `toil`) and calls
toil.provisioners.clusterScaler.binPacking, so gaffer's BinPack can be
checked against the real thing on the same inputs.

Protocol: one JSON request per line on stdin, one JSON answer per line on
stdout, until stdin closes.

  request: {"nodes": [shape, ...], "jobs": [[shape, count], ...], "target": seconds}
       or: {"overhead": [shape, ...]}   # answer: {"shapes": [shape after overhead, ...]}
  shape:   {"wall": seconds, "mem": bytes, "cores": number, "disk": bytes, "pre": bool}
  answer:  {"nodes": [count per request node, in request order],
            "unfit": [[shape, count], ...]}   # unfit counts are job counts
"""
import json
import sys

from toil.provisioners.abstractProvisioner import Shape
from toil.provisioners.clusterScaler import ClusterScaler, binPacking


def shape(d):
    return Shape(d["wall"], d["mem"], d["cores"], d["disk"], d["pre"])


def plain(s):
    return {"wall": s.wallTime, "mem": s.memory, "cores": s.cores, "disk": s.disk, "pre": s.preemptible}


def answer(req):
    if "overhead" in req:
        # _reserve_overhead only uses the two overhead helpers, so a bare
        # instance (no provisioner, no leader) is enough to call it.
        bare = ClusterScaler.__new__(ClusterScaler)
        return {"shapes": [plain(bare._reserve_overhead(shape(s))) for s in req["overhead"]]}
    nodes = [shape(n) for n in req["nodes"]]
    jobs = []
    for s, count in req["jobs"]:
        js = shape(s)
        jobs.extend([js] * count)
    counts, unfit = binPacking(nodes, jobs, req["target"])
    unfit_counts = {}
    for j in jobs:
        if j in unfit:
            unfit_counts[j] = unfit_counts.get(j, 0) + 1
    return {
        "nodes": [counts[n] for n in nodes],
        "unfit": [[plain(s), c] for s, c in unfit_counts.items()],
    }


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
