"""Runs the bench drivers against the local nginx fake, interleaved, and
prints one table (bench/run.sh starts nginx and calls this).

Every figure comes from the same run. CPU time is the stable figure on a
shared, loaded machine: each client reports the CPU time (user + system,
getrusage/CLOCK_PROCESS_CPUTIME_ID) of its measured loop only, after its
warm-up; curl and wrk cannot, so theirs is the child's rusage (curl: minus a
one-URL run, to drop start-up). Peak RSS is the child's ru_maxrss. Rounds
run every implementation of a mode one after the other, in a rotating order,
and the table shows medians over rounds.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

MODES = [
    ("track", 2000, "sequential track GETs"),
    ("search", 200, "sequential ~97 KB searches"),
    ("multi16", 1000, "track GETs, 16 in flight"),
    ("batch50", 100, "sequential 50-track batch GETs"),
]
SCHEMES = ("http", "https")
INTERPRETERS = ("lua5.1", "lua5.4", "luajit")
SDK_NAME = "ts-sdk (node)"
BASELINE_NAME = "baseline (luajit ffi)"
# The floor on the other interpreters: a minimal C binding (bench/floor.c)
# plus cjson on the same interpreter, so the interpreter's cost is on both
# sides of the ratio.
FLOOR_INTERPRETERS = ("lua5.1", "lua5.4")
FLOOR_PREFIX = "floor (C binding) "
TOKEN_CALLS = 5_000_000
LONG_REQUESTS = 100_000
# Request counts of the two callgrind runs per row (BENCH_IR=1).
IR_COUNTS = {"track": (50, 250), "search": (5, 25), "multi16": (50, 250), "batch50": (3, 15)}
TARGET = {"sdk": 6.0, "token_rate": 5e6, "rss_kib": 1024}
# Targets per request. Instructions (BENCH_IR=1) are the headline: LuaJIT
# rows against the LuaJIT FFI baseline, the other interpreters' rows against
# the C binding floor on the same interpreter. CPU ratios (which swing by
# +-20% between runs on a shared machine) are judged only without BENCH_IR.
IR_LIMIT_LUAJIT = 1.03
IR_LIMIT_FLOOR = 1.10
BASE_LIMIT = {"track": 1.05, "search": 1.15, "multi16": 1.10, "batch50": 1.10}
FLOOR_LIMIT = 1.10


class Bench:
    def __init__(self, args):
        self.root, self.out = args.root, args.out
        self.base = {"http": args.http, "https": args.https}
        self.ca = args.ca
        self.server_pid = args.server_pid
        self.cpu = os.environ.get("BENCH_CLIENT_CPU", "1")
        self.scale = float(os.environ.get("BENCH_SCALE", "1"))
        self.rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
        self.wrk_seconds = os.environ.get("BENCH_WRK_SECONDS", "2")
        self.ids_file = os.path.join(self.out, "www", "ids.txt")
        self.token = json.load(open(os.path.join(self.out, "www", "token.json")))["access_token"]
        self.logs = os.path.join(self.out, "logs")
        self.seq = 0

    # -- running one child ------------------------------------------------

    def server_cpu_ns(self):
        """nginx's CPU time so far, in ns (schedstat: time on a CPU)."""
        try:
            return int(open(f"/proc/{self.server_pid}/schedstat").read().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def child(self, argv, env=None, stdout_path=None):
        """Runs argv pinned to the client core. Returns (stdout text, rusage,
        server CPU seconds); raises on a non-zero exit."""
        self.seq += 1
        name = f"{self.seq:04d}-{os.path.basename(argv[0])}"
        out_path = stdout_path or os.path.join(self.logs, name + ".out")
        err_path = os.path.join(self.logs, name + ".err")
        full_env = dict(os.environ, BENCH_IDS=self.ids_file, **(env or {}))
        server0 = self.server_cpu_ns()
        with open(out_path, "w") as o, open(err_path, "w") as e:
            e.write(" ".join(argv) + "\n")
            e.flush()
            p = subprocess.Popen(["taskset", "-c", self.cpu] + argv, stdout=o, stderr=e,
                                 env=full_env, cwd=self.root)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        server1 = self.server_cpu_ns()
        server_s = (server1 - server0) / 1e9 if server0 is not None and server1 is not None else None
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}; see {err_path}")
        text = open(out_path).read() if stdout_path is None else ""
        return text, ru, server_s

    def driver(self, argv, env=None):
        text, ru, server_s = self.child(argv, env)
        r = json.loads(text.strip().splitlines()[-1])
        n = r["n"]
        return {
            "cpu_us": r["cpu_us"] / n, "rps": n / r["wall_s"] if r["wall_s"] > 0 else 0,
            "rss_kib": ru.ru_maxrss, "conns": r.get("conns"),
            "server_us": server_s * 1e6 / n if server_s is not None else None, "raw": r,
        }

    # -- implementations ----------------------------------------------------

    def urls(self, scheme):
        base = self.base[scheme]
        return base + "/v1", base + "/api/token"

    def module_command(self, interp, mode, scheme, n):
        api, token_url = self.urls(scheme)
        lua_dir = os.environ.get("BENCH_LUA_DIR", "lua")
        build_dir = os.environ.get("BENCH_BUILD_DIR", "build")
        env = {"LUA_PATH": f"{lua_dir}/?.lua;{lua_dir}/?/init.lua;;", "LUA_CPATH": f"{build_dir}/{interp}/?.so;;"}
        ca = self.ca if scheme == "https" else ""
        return [interp, "bench/module.lua", mode, api, token_url, str(n), ca], env

    def baseline_command(self, mode, scheme, n):
        api, token_url = self.urls(scheme)
        ca = self.ca if scheme == "https" else ""
        return ["luajit", "bench/baseline.lua", mode, api, token_url, str(n), ca], {}

    def floor_command(self, interp, mode, scheme, n):
        api, token_url = self.urls(scheme)
        env = {"LUA_CPATH": f"{self.out}/floor/{interp}/?.so;;"}
        ca = self.ca if scheme == "https" else ""
        return [interp, "bench/floor.lua", mode, api, token_url, str(n), ca], env

    def floor(self, interp, mode, scheme, n):
        return self.driver(*self.floor_command(interp, mode, scheme, n))

    def module(self, interp, mode, scheme, n):
        return self.driver(*self.module_command(interp, mode, scheme, n))

    def baseline(self, mode, scheme, n):
        return self.driver(*self.baseline_command(mode, scheme, n))

    def instructions(self, command):
        """Instructions executed (callgrind's Ir) by one driver run."""
        argv, env = command
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                             capture_output=True, text=True, cwd=self.root,
                             env=dict(os.environ, BENCH_IDS=self.ids_file, **env))
        found = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode != 0 or not found:
            raise RuntimeError(f"callgrind failed on {' '.join(argv)}: {out.stderr[-2000:]}")
        return int(found.group(1))

    def instructions_per_request(self, name, mode, scheme):
        """Ir per request: the difference of two run lengths, so that start-up,
        warm-up and the token fetch cancel out."""
        n1, n2 = IR_COUNTS[mode]
        if name == BASELINE_NAME:
            make = lambda n: self.baseline_command(mode, scheme, n)
        elif name.startswith(FLOOR_PREFIX):
            make = lambda n: self.floor_command(name.split()[-1], mode, scheme, n)
        else:
            make = lambda n: self.module_command(name.split()[-1], mode, scheme, n)
        return (self.instructions(make(n2)) - self.instructions(make(n1))) / (n2 - n1)

    def sdk(self, mode, scheme, n):
        api, token_url = self.urls(scheme)
        return self.driver(["node", "bench/sdk.mjs", mode, api, token_url, str(n)],
                           {"NODE_EXTRA_CA_CERTS": self.ca})

    def request_url(self, mode, scheme, i):
        api = self.urls(scheme)[0]
        ids = self.ids()
        if mode == "search":
            return api + "/search?q=Muse&type=track%2Cartist%2Calbum"
        if mode == "batch50":
            return api + "/tracks?ids=" + "%2C".join(ids[(i + k) % len(ids)] for k in range(50))
        return api + "/tracks/" + ids[i % len(ids)]

    def ids(self):
        if not hasattr(self, "_ids"):
            self._ids = [line for line in open(self.ids_file).read().split() if line]
        return self._ids

    def curl(self, mode, scheme, n):
        """curl transfers only (no JSON decode): the floor for a transfer."""
        def config(count):
            path = os.path.join(self.logs, f"curl-{mode}-{scheme}-{count}.cfg")
            with open(path, "w") as f:
                for i in range(count):
                    f.write(f'url = "{self.request_url(mode, scheme, i)}"\noutput = "/dev/null"\n')
            return path

        def run(count):
            argv = ["curl", "-s", "-K", config(count), "-w", "%{num_connects}\\n",
                    "-H", "Accept: application/json", "-H", "Authorization: Bearer " + self.token]
            if scheme == "https":
                argv += ["--cacert", self.ca]
            if mode == "multi16":
                argv += ["--parallel", "--parallel-max", "16"]
            t0 = time.monotonic()
            text, ru, server_s = self.child(argv)
            return text, ru, server_s, time.monotonic() - t0

        _, ru1, _, wall1 = run(1)
        text, ru, server_s, wall = run(n + 1)
        cpu = (ru.ru_utime + ru.ru_stime) - (ru1.ru_utime + ru1.ru_stime)
        positive = lambda v: v if v > 0 else None  # too short a run to tell
        return {
            "cpu_us": positive(cpu * 1e6 / n), "rps": positive(n / max(wall - wall1, 1e-9) if wall > wall1 else 0),
            "rss_kib": ru.ru_maxrss,
            "conns": sum(int(x) for x in text.split()),
            "server_us": server_s * 1e6 / n if server_s is not None else None,
        }

    def wrk(self, mode, scheme, n):
        """wrk for a fixed time: the floor for the server and the loopback."""
        url = self.request_url(mode, scheme, 0)
        conns = 16 if mode == "multi16" else 1
        argv = ["wrk", "-t1", f"-c{conns}", f"-d{self.wrk_seconds}s",
                "-H", "Authorization: Bearer " + self.token, url]
        text, ru, server_s = self.child(argv)
        done = int(re.search(r"(\d+) requests in", text).group(1))
        rate = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
        return {
            "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6 / done, "rps": rate, "rss_kib": ru.ru_maxrss,
            "conns": conns, "server_us": server_s * 1e6 / done if server_s is not None else None,
        }

    def implementations(self):
        impls = [(f"lua-spotify {i}", (lambda i: lambda *a: self.module(i, *a))(i)) for i in INTERPRETERS]
        impls.append((BASELINE_NAME, self.baseline))
        impls += [(FLOOR_PREFIX + i, (lambda i: lambda *a: self.floor(i, *a))(i)) for i in FLOOR_INTERPRETERS]
        if os.environ.get("BENCH_SDK", "1") != "0":
            impls.append((SDK_NAME, self.sdk))
        impls += [("curl (transfer only)", self.curl), ("wrk (transfer only)", self.wrk)]
        only = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
        keep = lambda name: (not only or name in (SDK_NAME, BASELINE_NAME) or name.startswith(FLOOR_PREFIX)
                             or any(w in name for w in only))
        return [(name, fn) for name, fn in impls if keep(name)]

    # -- the run ------------------------------------------------------------

    def run(self):
        impls = self.implementations()
        results = {}
        for rnd in range(self.rounds):
            order = impls[rnd % len(impls):] + impls[:rnd % len(impls)]
            for mode, count, _ in MODES:
                n = max(1, int(count * self.scale))
                for scheme in SCHEMES:
                    for name, fn in order:
                        results.setdefault((name, mode, scheme), []).append(fn(mode, scheme, n))
            print(f"round {rnd + 1}/{self.rounds} done", file=sys.stderr, flush=True)
        rows = [self.summarise(name, mode, scheme, results[(name, mode, scheme)])
                for mode, _, _ in MODES for scheme in SCHEMES for name, _ in impls]
        if os.environ.get("BENCH_IR", "0") != "0":
            for r in rows:
                if r["name"] in (BASELINE_NAME,) or r["name"].startswith(("lua-spotify", FLOOR_PREFIX)):
                    r["ir"] = self.instructions_per_request(r["name"], r["mode"], r["scheme"])
            print("instruction counts done", file=sys.stderr, flush=True)
        self.add_ratios(rows)
        rows += self.token_rows(impls) + self.long_rows(impls)
        return rows

    @staticmethod
    def summarise(name, mode, scheme, runs):
        med = lambda key: statistics.median(r[key] for r in runs) if all(r.get(key) is not None for r in runs) else None
        return {
            "name": name, "mode": mode, "scheme": scheme, "cpu_us": med("cpu_us"), "rps": med("rps"),
            "rss_mib": max(r["rss_kib"] for r in runs) / 1024,
            "conns": max(r["conns"] for r in runs) if all(r.get("conns") is not None for r in runs) else None,
            "server_us": med("server_us"), "note": "",
        }

    @staticmethod
    def add_ratios(rows):
        ref = {(r["name"], r["mode"], r["scheme"]): r for r in rows}
        for r in rows:
            base = ref.get((BASELINE_NAME, r["mode"], r["scheme"]))
            sdk = ref.get((SDK_NAME, r["mode"], r["scheme"]))
            ratio = lambda a, b: a / b if a is not None and b else None
            r["x_base"] = ratio(r["cpu_us"], base and base["cpu_us"])
            r["sdk_over"] = ratio(sdk and sdk["cpu_us"], r["cpu_us"])
            r["ir_base"] = ratio(r.get("ir"), base and base.get("ir"))
            floor = ref.get((FLOOR_PREFIX + r["name"].split()[-1], r["mode"], r["scheme"]))
            if r["name"].startswith("lua-spotify") and floor:
                r["x_floor"] = ratio(r["cpu_us"], floor["cpu_us"])
                r["ir_floor"] = ratio(r.get("ir"), floor.get("ir"))
            if r["name"].startswith("lua-spotify"):
                misses = []
                if "luajit" in r["name"]:
                    ir, ir_limit, cpu, cpu_limit, what = r["ir_base"], IR_LIMIT_LUAJIT, r["x_base"], BASE_LIMIT[r["mode"]], "base"
                else:
                    ir, ir_limit, cpu, cpu_limit, what = r.get("ir_floor"), IR_LIMIT_FLOOR, r.get("x_floor"), FLOOR_LIMIT, "floor"
                if ir is not None:
                    if ir > ir_limit:
                        misses.append(f">{ir_limit}x {what} Ir")
                elif cpu is not None and cpu > cpu_limit:
                    misses.append(f">{cpu_limit}x {what}")
                if r["sdk_over"] is not None and r["sdk_over"] < TARGET["sdk"]:
                    misses.append(f"<{TARGET['sdk']:g}x under SDK")
                r["note"] = "MISS " + ", ".join(misses) if misses else "ok"

    def token_rows(self, impls):
        rows = []
        n = max(1, int(TOKEN_CALLS * self.scale))
        for name, _ in impls:
            if not name.startswith("lua-spotify"):
                continue
            interp = name.split()[-1]
            r = self.module(interp, "token", "http", n)
            per_cpu_s = 1e6 / r["cpu_us"]
            rows.append({
                "name": name, "mode": "access_token", "scheme": "-", "cpu_us": r["cpu_us"], "rps": r["rps"],
                "rss_mib": r["rss_kib"] / 1024, "conns": r["conns"], "server_us": None,
                "x_base": None, "sdk_over": None,
                "note": f"{per_cpu_s / 1e6:.2f} M calls/cpu-s "
                        + ("ok" if per_cpu_s >= TARGET["token_rate"] else "MISS <5M/s"),
            })
        return rows

    def long_rows(self, impls):
        if os.environ.get("BENCH_LONG", "1") == "0":
            return []
        rows = []
        n = max(1, int(LONG_REQUESTS * self.scale))
        for name, _ in impls:
            if not name.startswith("lua-spotify"):
                continue
            interp = name.split()[-1]
            r = self.module(interp, "long", "https", n)
            growth = r["raw"]["rss_growth_kib"]
            rows.append({
                "name": name, "mode": f"rss-{n}", "scheme": "https", "cpu_us": r["cpu_us"], "rps": r["rps"],
                "rss_mib": r["rss_kib"] / 1024, "conns": r["conns"], "server_us": r["server_us"],
                "x_base": None, "sdk_over": None,
                "note": f"RSS {growth:+d} KiB " + ("ok" if growth < TARGET["rss_kib"] else "MISS >=1 MiB"),
            })
        return rows


COLUMNS = [
    ("implementation", "name", "{}"), ("mode", "mode", "{}"), ("proto", "scheme", "{}"),
    ("cpu us/req", "cpu_us", lambda v: f"{v:.3f}" if v < 1 else f"{v:.1f}"), ("req/s", "rps", "{:.0f}"), ("peak RSS MiB", "rss_mib", "{:.1f}"),
    ("conns", "conns", "{}"), ("nginx us/req", "server_us", "{:.0f}"), ("x baseline", "x_base", "{:.2f}"),
    ("x floor", "x_floor", "{:.2f}"), ("SDK / row", "sdk_over", "{:.1f}"), ("Ir/req", "ir", "{:,.0f}"),
    ("Ir x base", "ir_base", "{:.2f}"), ("Ir x floor", "ir_floor", "{:.2f}"),
    ("target", "note", "{}"),
]


def shown_columns(rows):
    """Every column that has a figure in some row (Ir only with BENCH_IR=1)."""
    return [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)]


def cells(row, columns):
    def show(key, fmt):
        v = row.get(key)
        if v is None:
            return "-"
        return fmt(v) if callable(fmt) else fmt.format(v)
    return [show(key, fmt) for _, key, fmt in columns]


def text_table(rows):
    columns = shown_columns(rows)
    table = [[h for h, _, _ in columns]] + [cells(r, columns) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = []
    for k, line in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 3 or i == len(columns) - 1 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows):
    columns = shown_columns(rows)
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cells(r, columns)) + " |" for r in rows]
    return "\n".join(lines)


def command_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine_facts(root):
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    sdk = "?"
    try:
        sdk = json.load(open(os.path.join(root, "bench/node_modules/@spotify/web-api-ts-sdk/package.json")))["version"]
    except OSError:
        pass
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(os.cpu_count())), ("cpu", model), ("kernel", platform.release()),
        ("lua5.1", command_line(["lua5.1", "-v"])), ("lua5.4", command_line(["lua5.4", "-v"])),
        ("luajit", command_line(["luajit", "-v"])), ("node", command_line(["node", "--version"])),
        ("@spotify/web-api-ts-sdk", sdk), ("curl", command_line(["curl", "--version"])),
        ("nginx", command_line(["nginx", "-v"])), ("wrk", command_line(["wrk", "-v"])),
        ("load average at end", open("/proc/loadavg").read().strip()),
    ]


def main():
    p = argparse.ArgumentParser()
    for flag in ("--root", "--out", "--http", "--https", "--ca", "--server-pid"):
        p.add_argument(flag, required=True)
    args = p.parse_args()
    bench = Bench(args)
    rows = bench.run()
    print(text_table(rows))
    facts = machine_facts(args.root)
    print("\n" + "; ".join(f"{k}: {v}" for k, v in facts))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("# Bench run\n\n" + "\n".join(f"- {k}: {v}" for k, v in facts) + "\n\n")
        f.write(f"Rounds: {bench.rounds}, scale: {bench.scale:g}, client core {bench.cpu}.\n\n")
        f.write(markdown_table(rows) + "\n")
    print(f"\nwritten: {os.path.join(args.out, 'results.md')}")


if __name__ == "__main__":
    main()
