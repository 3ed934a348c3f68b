"""Where the instructions per request differ between two drivers: each
callgrind profile is taken at two run lengths (as bench.py's BENCH_IR=1
does, so start-up cancels), and the self cost of every function and object
is set against the other driver's.

usage: python3 bench/ir_diff.py OURS_N1 OURS_N2 REF_N1 REF_N2 N1 N2 [TOP]
  (callgrind.out files, e.g. from valgrind --tool=callgrind
   --callgrind-out-file=FILE lua5.4 bench/module.lua track ... N)
"""
import re
import subprocess
import sys


def self_costs(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s*(\[.*\])?$", line)
        if not m or "=>" in line or m.group(2).startswith("PROGRAM TOTALS"):
            continue
        obj = (m.group(3) or "").strip("[]").split("/")[-1] or m.group(2).split(":")[0].split("/")[-1]
        key = (m.group(2), obj)
        costs[key] = costs.get(key, 0) + int(m.group(1).replace(",", ""))
    return costs


def per_request(f1, f2, n1, n2):
    a, b = self_costs(f1), self_costs(f2)
    return {k: (b.get(k, 0) - a.get(k, 0)) / (n2 - n1) for k in set(a) | set(b)}


def by_object(costs):
    out = {}
    for (_, obj), v in costs.items():
        out[obj] = out.get(obj, 0) + v
    return out


def table(ours, ref, top):
    rows = sorted(set(ours) | set(ref), key=lambda k: -abs(ours.get(k, 0) - ref.get(k, 0)))[:top]
    for k in rows:
        a, b = ours.get(k, 0), ref.get(k, 0)
        name = k if isinstance(k, str) else f"{k[0]} [{k[1]}]"
        print(f"{a - b:12,.0f} {a:12,.0f} {b:12,.0f}  {name}")


def main():
    o1, o2, r1, r2, n1, n2 = sys.argv[1:7]
    top = int(sys.argv[7]) if len(sys.argv) > 7 else 30
    ours, ref = per_request(o1, o2, int(n1), int(n2)), per_request(r1, r2, int(n1), int(n2))
    ta, tb = sum(ours.values()), sum(ref.values())
    print(f"Ir/request: ours {ta:,.0f}, reference {tb:,.0f}, difference {ta - tb:,.0f} ({ta / tb:.3f}x)\n")
    print(f"{'difference':>12} {'ours':>12} {'reference':>12}  object")
    table(by_object(ours), by_object(ref), 12)
    print(f"\n{'difference':>12} {'ours':>12} {'reference':>12}  function [object]")
    table(ours, ref, top)


if __name__ == "__main__":
    main()
