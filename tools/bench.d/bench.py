#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""rsplice benchmark driver (run through tools/bench, as root).

Sets up two topologies of private network namespaces, runs every data path
(direct, rsplice sockmap, rsplice splice, ssh -R, two-hop socat) through the
same measurements in one run, prints Markdown tables on stdout, progress on
stderr, and writes a JSON file and an SVG plot.  Everything it creates is
removed in `cleanup()` (tools/bench runs a second sweep after it exits).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
HERE = os.path.dirname(os.path.abspath(__file__))
TAG = os.environ.get("BENCH_TAG", "rsb%d" % os.getpid())
PIN_DIR = os.environ.get("BENCH_PIN_DIR", "/sys/fs/bpf/rsplice-bench-%s" % TAG)
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = float(1 << 30)

PATHS = ["direct", "sockmap", "splice", "ssh", "socat"]
# not in the default run: the sockmap path without its queue bound, to
# measure what the bound costs (--paths sockmap,sockmap-unbounded)
EXTRA_PATHS = ["sockmap-unbounded"]
PATH_LABEL = {"direct": "direct", "sockmap": "rsplice sockmap", "splice": "rsplice splice",
              "ssh": "ssh -R", "socat": "socat 2-hop",
              "sockmap-unbounded": "rsplice sockmap --max-queued 0"}
TOPOS = ["lo", "ns"]
TOPO_LABEL = {"lo": "loopback", "ns": "4 netns + veth"}
SVC_PORTS = {"iperf": 5201, "echo": 9000, "gen": 9100}

T0 = time.monotonic()
CFG = {}  # options the path setup needs
STATE = {"procs": [], "netns": [], "pinned": False, "run_sshd_made": False, "work": None}


def log(msg):
    sys.stderr.write("[bench %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


# ------------------------------------------------------------- processes ---

def ns_argv(ns, argv):
    return ["nsenter", "--net=/run/netns/%s" % ns, "--"] + list(argv)


def spawn(ns, argv, logname, stdin=subprocess.DEVNULL, stdout=None):
    lf = open(os.path.join(STATE["work"], logname), "ab")
    lf.write(("=== %s\n" % " ".join(argv)).encode())
    lf.flush()
    p = subprocess.Popen(ns_argv(ns, argv), stdin=stdin, stdout=stdout or lf,
                         stderr=lf, start_new_session=True)
    STATE["procs"].append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=3.0):
    if p is None or p.poll() is not None:
        return
    try:
        os.kill(p.pid, sig)
        p.wait(wait)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def run(ns, argv, timeout, check=True):
    r = subprocess.run(ns_argv(ns, argv) if ns else argv, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (argv[0], r.returncode,
                                                 (r.stderr or r.stdout).strip()[-300:]))
    return r


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError("%s: %s" % (cmd, r.stderr.strip()))
    return r


def listening(ns, port):
    r = run(ns, ["ss", "-Hltn", "( sport = :%d )" % port], 10, check=False)
    return bool(r.stdout.strip())


def wait_for(fn, secs, what):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            if fn():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


# ------------------------------------------------------------ /proc data ---

def machine_busy():
    """Busy jiffies summed over all CPUs (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree(pids):
    seen, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def proc_cpu(pids):
    """utime+stime(+reaped children) jiffies of the process trees rooted at pids."""
    tot = 0
    for p in tree(pids):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tot += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return tot


def proc_rss_kib(pids):
    """Memory of the process trees rooted at pids, KiB: VmRSS for a single
    process; for a tree of several processes (sshd, socat fork per connection)
    the sum of Pss, since summing RSS would count shared pages once per fork."""
    procs = tree(pids)
    key, fname = ("VmRSS:", "status") if len(procs) <= 1 else ("Pss:", "smaps_rollup")
    tot = 0
    for p in procs:
        try:
            with open("/proc/%d/%s" % (p, fname)) as f:
                for line in f:
                    if line.startswith(key):
                        tot += int(line.split()[1])
                        break
        except OSError:
            pass
    return tot


# --------------------------------------------------------------- topology ---

class Topo:
    """Roles -> namespace and the addresses each role uses."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "lo":
            ns = "%s-lo" % TAG
            self.ns = {"client": ns, "edge": ns, "agent": ns, "service": ns}
            self.edge_pub = self.edge_ctl = self.agent_ip = self.svc_ip = "127.0.0.1"
        else:
            self.ns = {r: "%s-%s" % (TAG, r) for r in ("client", "edge", "agent", "service")}
            self.edge_pub, self.edge_ctl = "10.202.1.1", "10.202.2.1"
            self.agent_ip, self.svc_ip = "10.202.2.2", "10.202.3.2"
        self.services = []

    def setup(self):
        for ns in sorted(set(self.ns.values())):
            sh("ip netns add %s" % ns)
            STATE["netns"].append(ns)
            sh("ip -n %s link set lo up" % ns)
            for k, v in (("net.ipv4.ip_local_port_range", "20000 65535"),
                         ("net.ipv4.tcp_tw_reuse", "1"),
                         ("net.core.somaxconn", "8192"),
                         ("net.ipv4.tcp_max_syn_backlog", "8192"),
                         ("net.ipv6.conf.all.disable_ipv6", "1")):
                run(ns, ["sysctl", "-qw", "%s=%s" % (k, v)], 10, check=False)
        if self.kind == "ns":
            n = self.ns

            def veth(a, ia, aa, b, ib, ab):
                sh("ip -n %s link add %s type veth peer name %s netns %s" % (a, ia, ib, b))
                sh("ip -n %s addr add %s/24 dev %s" % (a, aa, ia))
                sh("ip -n %s addr add %s/24 dev %s" % (b, ab, ib))
                sh("ip -n %s link set %s up" % (a, ia))
                sh("ip -n %s link set %s up" % (b, ib))
            veth(n["client"], "c0", "10.202.1.2", n["edge"], "e0", "10.202.1.1")
            veth(n["edge"], "e1", "10.202.2.1", n["agent"], "a0", "10.202.2.2")
            veth(n["agent"], "a1", "10.202.3.1", n["service"], "s0", "10.202.3.2")
            # the direct row routes client -> edge -> agent -> service
            sh("ip -n %s route add default via 10.202.1.1" % n["client"])
            sh("ip -n %s route add 10.202.3.0/24 via 10.202.2.2" % n["edge"])
            sh("ip -n %s route add 10.202.1.0/24 via 10.202.2.1" % n["agent"])
            sh("ip -n %s route add default via 10.202.3.1" % n["service"])
            for r in ("edge", "agent"):
                run(n[r], ["sysctl", "-qw", "net.ipv4.ip_forward=1"], 10)
        ns = self.ns["service"]
        rr = os.path.join(BUILD, "rrbench")
        self.services.append(spawn(ns, ["iperf3", "-s", "-B", self.svc_ip, "-p",
                                        str(SVC_PORTS["iperf"])], "%s-svc.log" % self.kind))
        self.services.append(spawn(ns, [rr, "echo-server", self.svc_ip, str(SVC_PORTS["echo"])],
                                   "%s-svc.log" % self.kind))
        self.gen_out = os.path.join(STATE["work"], "%s-gen.out" % self.kind)
        self.services.append(spawn(ns, [rr, "gen-server", self.svc_ip, str(SVC_PORTS["gen"])],
                                   "%s-svc.log" % self.kind, stdout=open(self.gen_out, "ab")))
        for port in SVC_PORTS.values():
            wait_for(lambda: listening(ns, port), 10, "service port %d" % port)

    def teardown(self):
        for p in self.services:
            stop(p)
        for ns in sorted(set(self.ns.values())):
            kill_ns(ns)
            sh("ip netns del %s" % ns, check=False)
            if ns in STATE["netns"]:
                STATE["netns"].remove(ns)


def kill_ns(ns):
    r = sh("ip netns pids %s" % ns, check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


# ------------------------------------------------------------ data paths ---

class Path:
    """One data path between the client and the service in a topology."""

    def __init__(self, name, topo, index, work):
        self.name, self.t, self.work = name, topo, work
        # our listening ports: 10000-11999, below the ephemeral range that
        # Topo.setup() sets (20000-65535), so 10,000 idle connections never
        # take a port that a later path wants to listen on
        base = 10000 + 1000 * (1 if topo.kind == "ns" else 0) + 100 * index
        self.base = base
        self.procs = []
        self.edge_pids, self.agent_pids = [], []
        if name == "direct":
            self.host = topo.svc_ip
            self.ports = dict(SVC_PORTS)
        else:
            self.host = topo.edge_pub
            self.ports = {"iperf": base + 2, "echo": base + 1, "gen": base + 4}

    def logname(self, who):
        return "%s-%s-%s.log" % (self.t.kind, self.name, who)

    def start(self):
        t, n = self.t, self.name
        if n == "direct":
            return
        if n in ("sockmap", "splice", "sockmap-unbounded"):
            dp = "splice" if n == "splice" else "sockmap"
            ctl = self.base + 50
            svcs = sorted(SVC_PORTS)
            edge = [os.path.join(BUILD, "rsplice-edge"), "--control", "%s:%d" % (t.edge_ctl, ctl),
                    "--token-file", self.work + "/token", "--datapath", dp, "--pin-dir", PIN_DIR]
            if n == "sockmap-unbounded":
                edge += ["--max-queued", "0"]
            elif n == "sockmap" and CFG.get("max_queued"):
                edge += ["--max-queued", CFG["max_queued"]]
            for s in svcs:
                edge += ["--route", "%s:%d=%s" % (t.edge_pub, self.ports[s], s)]
            agent = [os.path.join(BUILD, "rsplice-agent"), "--edge", "%s:%d" % (t.edge_ctl, ctl),
                     "--token-file", self.work + "/token", "--datapath", dp, "--pin-dir", PIN_DIR,
                     "--name", "bench"]
            if n == "sockmap-unbounded":
                agent += ["--max-queued", "0"]
            elif n == "sockmap" and CFG.get("max_queued"):
                agent += ["--max-queued", CFG["max_queued"]]
            for s in svcs:
                agent += ["--service", "%s=%s:%d" % (s, t.svc_ip, SVC_PORTS[s])]
            pe = spawn(t.ns["edge"], edge, self.logname("edge"))
            self.procs.append(pe)
            wait_for(lambda: listening(t.ns["edge"], ctl), 10, "rsplice-edge control port")
            pa = spawn(t.ns["agent"], agent, self.logname("agent"))
            self.procs.append(pa)
            self.edge_pids, self.agent_pids = [pe.pid], [pa.pid]
        elif n == "ssh":
            sport = self.base + 22
            cfg = os.path.join(self.work, "sshd_config")
            with open(cfg, "w") as f:
                f.write("\n".join([
                    "Port %d" % sport, "ListenAddress %s" % t.edge_ctl,
                    "HostKey %s/ssh_host_ed25519_key" % self.work,
                    "AuthorizedKeysFile %s/authorized_keys" % self.work,
                    "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                    "GatewayPorts clientspecified", "AllowTcpForwarding yes",
                    "Ciphers aes128-gcm@openssh.com", "Compression no", "UseDNS no",
                    "PidFile none", "MaxStartups 100", "LogLevel ERROR", ""]))
            pe = spawn(t.ns["edge"], ["/usr/sbin/sshd", "-D", "-e", "-f", cfg], self.logname("sshd"))
            self.procs.append(pe)
            wait_for(lambda: listening(t.ns["edge"], sport), 10, "sshd")
            argv = ["ssh", "-N", "-F", "/dev/null", "-p", str(sport), "-i", self.work + "/id_ed25519",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "ExitOnForwardFailure=yes", "-o", "Compression=no",
                    "-o", "ServerAliveInterval=30", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                    "-c", "aes128-gcm@openssh.com"]
            for s in sorted(SVC_PORTS):
                argv += ["-R", "%s:%d:%s:%d" % (t.edge_pub, self.ports[s], t.svc_ip, SVC_PORTS[s])]
            argv.append("root@%s" % t.edge_ctl)
            pa = spawn(t.ns["agent"], argv, self.logname("ssh"))
            self.procs.append(pa)
            self.edge_pids, self.agent_pids = [pe.pid], [pa.pid]
        elif n == "socat":
            for i, s in enumerate(sorted(SVC_PORTS)):
                relay = self.base + 60 + i
                pa = spawn(t.ns["agent"], ["socat", "TCP4-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=4096"
                                           % (relay, t.agent_ip), "TCP4:%s:%d" % (t.svc_ip, SVC_PORTS[s])],
                           self.logname("socat-agent"))
                pe = spawn(t.ns["edge"], ["socat", "TCP4-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=4096"
                                          % (self.ports[s], t.edge_pub), "TCP4:%s:%d" % (t.agent_ip, relay)],
                           self.logname("socat-edge"))
                self.procs += [pa, pe]
                self.agent_pids.append(pa.pid)
                self.edge_pids.append(pe.pid)
        for s, port in self.ports.items():
            wait_for(lambda: listening(t.ns["edge"], port), 15, "%s public port %d" % (n, port))
        # the tunnel works end to end (the agent may still be connecting)
        wait_for(lambda: json.loads(run(t.ns["client"], [os.path.join(BUILD, "rrbench"), "conn",
                                                          self.host, str(self.ports["echo"]), "1"],
                                        8).stdout)["ok"] == 1, 20, "%s end-to-end echo" % n)

    def stop(self):
        for p in reversed(self.procs):
            stop(p)
        self.procs = []

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def daemon_pids(self):
        return self.edge_pids + self.agent_pids


# ------------------------------------------------------------ measurements ---

def m_iperf(path, secs, reverse=False, streams=1):
    t = path.t
    argv = ["iperf3", "-c", path.host, "-p", str(path.ports["iperf"]), "-t", str(secs), "-J",
            "-P", str(streams)]
    if reverse:
        argv.append("-R")
    for attempt in range(3):
        # the iperf3 server re-creates its listener after each test: a
        # connection that comes too early is refused, so retry
        time.sleep(0.5 + attempt)
        b0, d0, w0 = machine_busy(), proc_cpu(path.daemon_pids()), time.monotonic()
        e0, a0 = proc_cpu(path.edge_pids), proc_cpu(path.agent_pids)
        r = run(t.ns["client"], argv, secs + 30, check=False)
        b1, d1, w1 = machine_busy(), proc_cpu(path.daemon_pids()), time.monotonic()
        e1, a1 = proc_cpu(path.edge_pids), proc_cpu(path.agent_pids)
        try:
            j = json.loads(r.stdout)
        except ValueError:
            j = {"error": "no JSON (%s)" % r.stderr.strip()[-200:]}
        if "error" not in j:
            break
        log("    iperf3 attempt %d: %s" % (attempt + 1, j["error"]))
    if "error" in j:
        raise RuntimeError("iperf3: %s" % j["error"])
    rx = j["end"]["sum_received"]
    gib = rx["bytes"] / GIB
    res = {"gbit_s": rx["bits_per_second"] / 1e9, "bytes": rx["bytes"], "secs": rx["seconds"],
           "wall_s": w1 - w0, "machine_cpu_s": (b1 - b0) / HZ,
           "daemon_cpu_s": (d1 - d0) / HZ if path.daemon_pids() else None,
           "retransmits": j["end"].get("sum_sent", {}).get("retransmits"),
           "edge_cpu_s": (e1 - e0) / HZ, "agent_cpu_s": (a1 - a0) / HZ, "attempts": attempt + 1}
    res["machine_cpu_s_per_gib"] = res["machine_cpu_s"] / gib if gib else None
    res["daemon_cpu_s_per_gib"] = (res["daemon_cpu_s"] / gib
                                   if gib and res["daemon_cpu_s"] is not None else None)
    return res


def m_rr(path, n, rounds=5):
    """rounds fresh connections of n/rounds round trips each; the median of
    the rounds' percentiles (on 2 vCPUs one round trip costs ~6 us when both
    ends share a CPU and ~80 us when they don't, so single rounds are bimodal)."""
    runs = []
    for _ in range(rounds):
        r = run(path.t.ns["client"], [os.path.join(BUILD, "rrbench"), "rr", path.host,
                                      str(path.ports["echo"]), str(max(n // rounds, 100)), "64"], 120)
        runs.append(json.loads(r.stdout))
    res = {"kind": "rr", "rounds": runs}
    for k in ("p50_us", "p99_us", "mean_us"):
        v = sorted(x[k] for x in runs)
        res[k] = v[len(v) // 2]
    return res


def m_conn(path, n, secs):
    """plus the CPU each new connection costs, in the daemons and the whole
    machine (jiffies: coarse, but 2,000 connections span tens of them)"""
    b0, d0 = machine_busy(), proc_cpu(path.daemon_pids())
    r = run(path.t.ns["client"], [os.path.join(BUILD, "rrbench"), "conn", path.host,
                                  str(path.ports["echo"]), str(n), str(secs)], secs + 60)
    b1, d1 = machine_busy(), proc_cpu(path.daemon_pids())
    res = json.loads(r.stdout)
    if res.get("ok"):
        res["machine_cpu_us_per_conn"] = (b1 - b0) / HZ * 1e6 / res["ok"]
        res["daemon_cpu_us_per_conn"] = ((d1 - d0) / HZ * 1e6 / res["ok"]
                                         if path.daemon_pids() else None)
    return res


def m_idle(path, n, secs):
    t = path.t
    base_e, base_a = proc_rss_kib(path.edge_pids), proc_rss_kib(path.agent_pids)
    p = spawn(t.ns["client"], [os.path.join(BUILD, "rrbench"), "idle", path.host,
                               str(path.ports["echo"]), str(n), str(secs)],
              path.logname("idle"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("idle client died")
        res = json.loads(line)
        time.sleep(1.0)  # let the daemons settle
        res["alive"] = path.alive()
        e, a = proc_rss_kib(path.edge_pids), proc_rss_kib(path.agent_pids)
        res.update({"edge_rss_kib_before": base_e, "agent_rss_kib_before": base_a,
                    "edge_rss_kib": e, "agent_rss_kib": a,
                    "edge_procs": len(tree(path.edge_pids)), "agent_procs": len(tree(path.agent_pids))})
        k = res["held"] / 1000.0
        res["edge_kib_per_1k"] = (e - base_e) / k if k else None
        res["agent_kib_per_1k"] = (a - base_a) / k if k else None
        res["total_kib_per_1k"] = (e + a - base_e - base_a) / k if k else None
        # per 1k connections, whole RSS (not just the growth), as the spec reads
        res["rss_mib_per_1k"] = (e + a) / 1024.0 / k if k else None
        # what the idle connections cost the daemons while nothing moves
        # (timers, checks): CPU % of one core over 3 s
        d0, w0 = proc_cpu(path.daemon_pids()), time.monotonic()
        time.sleep(3.0)
        d1, w1 = proc_cpu(path.daemon_pids()), time.monotonic()
        res["idle_daemon_cpu_pct"] = (d1 - d0) / HZ / (w1 - w0) * 100
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        stop(p, wait=10)
    return res  # the last measurement of a path: no need to wait for the close


def m_stall(path, total, ms):
    t = path.t
    off = os.path.getsize(t.gen_out)
    r = run(t.ns["client"], [os.path.join(BUILD, "rrbench"), "stall", path.host,
                             str(path.ports["gen"]), str(total), str(ms)], ms / 1000 + 120, check=False)
    try:
        rd = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("stall reader: %s" % (r.stderr.strip()[-200:]))
    gen = None
    for _ in range(50):
        with open(t.gen_out) as f:
            f.seek(off)
            lines = [x for x in f.read().splitlines() if '"stall-gen"' in x]
        if lines:
            gen = json.loads(lines[-1])
            break
        time.sleep(0.1)
    res = {"reader": rd, "gen": gen, "stall_ms": ms, "total": total}
    if gen:
        res["queued_bytes"] = gen["acked_at_resume"] if gen["resumed"] else gen["max_acked"]
        res["capped"] = res["queued_bytes"] >= total
    res["verified"] = rd.get("verified")
    return res


STEPS = ["fwd1", "rev1", "fwd8", "rr", "conn", "stall", "idle"]


def measure_path(path, cfg):
    out = {}

    def step(key, fn, *a):
        if key not in cfg.only:
            return
        log("  %-8s %-7s %s" % (path.t.kind, path.name, key))
        if not path.alive():
            out[key] = {"error": "a daemon of this path exited (see logs)"}
            log("    error: %s" % out[key]["error"])
            return
        try:
            out[key] = fn(path, *a)
            log("    %s" % json.dumps(out[key])[:240])
        except Exception as e:  # one broken column must not sink the run
            out[key] = {"error": str(e)[:300]}
            log("    error: %s" % e)
    step("fwd1", m_iperf, cfg.secs, False, 1)
    step("rev1", m_iperf, cfg.secs, True, 1)
    step("fwd8", m_iperf, cfg.secs, False, 8)
    step("rr", m_rr, cfg.rr_n)
    step("conn", m_conn, cfg.conn_n, cfg.conn_secs)
    step("stall", m_stall, cfg.stall_total, cfg.stall_ms)
    if path.name != "direct":  # last: may exhaust the daemons' fds
        n = min(cfg.idle_n, cfg.socat_idle_n) if path.name == "socat" else cfg.idle_n
        step("idle", m_idle, n, cfg.idle_secs)
    return out


# ------------------------------------------------------------------ output ---

def g(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def f(v, fmt="%.1f"):
    return "n/a" if v is None else fmt % v


def cell(res, key, sub, fmt="%.1f"):
    r = res.get(key)
    if r is None:
        return "n/a"
    if "error" in r:
        return "err"
    return f(g(r, *sub) if isinstance(sub, tuple) else r.get(sub), fmt)


def tables(results, cfg):
    out = []
    for topo in cfg.topos:
        rows = results.get(topo, {})
        out.append("### %s: throughput and CPU\n" % TOPO_LABEL[topo])
        out.append("| path | 1 stream c->s Gbit/s | 1 stream s->c Gbit/s | 8 streams c->s Gbit/s "
                   "| machine CPU s/GiB | daemons CPU s/GiB | 8 streams machine CPU s/GiB |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for p in cfg.paths:
            r = rows.get(p)
            if r is None:
                continue
            if "error" in r:
                out.append("| %s | %s |" % (PATH_LABEL[p], " | ".join(["err"] * 6)))
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                PATH_LABEL[p], cell(r, "fwd1", "gbit_s"), cell(r, "rev1", "gbit_s"),
                cell(r, "fwd8", "gbit_s"), cell(r, "fwd1", "machine_cpu_s_per_gib", "%.2f"),
                cell(r, "fwd1", "daemon_cpu_s_per_gib", "%.3f"),
                cell(r, "fwd8", "machine_cpu_s_per_gib", "%.2f")))
        out.append("")
        out.append("### %s: latency, connections, memory, queueing\n" % TOPO_LABEL[topo])
        out.append("| path | RR p50 us | RR p99 us | conn/s | conn p50 us | conn p99 us "
                   "| conn CPU us (daemons/machine) "
                   "| idle conns held | RSS edge+agent MiB | KiB per 1k conns (growth) "
                   "| idle CPU % (daemons) "
                   "| stalled reader: queued MiB | bytes verified |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                   "| ---: | --- |")
        for p in cfg.paths:
            r = rows.get(p)
            if r is None or "error" in r:
                continue
            idle = r.get("idle")
            icpu = f(g(idle, "idle_daemon_cpu_pct"), "%.1f") if idle and "error" not in idle else "n/a"
            if idle is None:
                held = rss = per = "n/a"
            elif "error" in idle:
                held = rss = per = "err"
            else:
                held = "%d/%d" % (idle["held"], idle["n"])
                if idle.get("first_error") and idle["held"] < idle["n"]:
                    held += " (%s)" % idle["first_error"][:40]
                rss = f((idle["edge_rss_kib"] + idle["agent_rss_kib"]) / 1024.0)
                per = f(idle.get("total_kib_per_1k"), "%.0f")
            st = r.get("stall")
            if st is None or "error" in st:
                q = v = "err" if st else "n/a"
            else:
                q = f(g(st, "queued_bytes") / 2 ** 20 if g(st, "queued_bytes") is not None else None)
                if st.get("capped"):
                    q = ">= %s (all sent)" % q
                v = "yes" if st.get("verified") else "NO (%s of %s B)" % (
                    g(st, "reader", "received"), st["total"])
            ccpu = "%s / %s" % (cell(r, "conn", "daemon_cpu_us_per_conn", "%.0f"),
                                cell(r, "conn", "machine_cpu_us_per_conn", "%.0f"))
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                PATH_LABEL[p], cell(r, "rr", "p50_us"), cell(r, "rr", "p99_us"),
                cell(r, "conn", "per_s", "%.0f"), cell(r, "conn", "p50_us"),
                cell(r, "conn", "p99_us"), ccpu, held, rss, per, icpu, q, v))
        out.append("")
    return "\n".join(out)


def ratios(results, cfg):
    rat = {}
    lines = ["### Headline ratios (same run)\n",
             "| topology | metric | sockmap/splice | sockmap/direct | sockmap/ssh -R | sockmap/socat |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for topo in cfg.topos:
        rows = results.get(topo, {})
        rat[topo] = {}
        for key, sub, label in (("fwd1", "gbit_s", "1 stream c->s throughput"),
                                ("rev1", "gbit_s", "1 stream s->c throughput"),
                                ("fwd8", "gbit_s", "8 streams throughput"),
                                ("fwd1", "machine_cpu_s_per_gib", "machine CPU per GiB"),
                                ("conn", "p50_us", "connect-to-first-byte p50")):
            sm = g(rows, "sockmap", key, sub)
            cells = []
            for other in ("splice", "direct", "ssh", "socat"):
                o = g(rows, other, key, sub)
                v = sm / o if sm is not None and o else None
                rat[topo]["%s.%s sockmap/%s" % (key, sub, other)] = v
                cells.append(f(v, "%.2fx"))
            lines.append("| %s | %s | %s |" % (TOPO_LABEL[topo], label, " | ".join(cells)))
    return rat, "\n".join(lines) + "\n"


def plot(results, cfg, svg):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plot (make deps installs gnuplot-nox)")
        return False
    dat = svg[:-4] + ".dat"
    with open(dat, "w") as fp:
        fp.write("# path " + " ".join("%s_gbit %s_cpu" % (t, t) for t in cfg.topos) + "\n")
        for p in cfg.paths:
            vals = []
            for t in cfg.topos:
                vals.append(g(results, t, p, "fwd1", "gbit_s"))
                vals.append(g(results, t, p, "fwd1", "machine_cpu_s_per_gib"))
            fp.write('"%s" %s\n' % (PATH_LABEL[p], " ".join("NaN" if v is None else "%.4f" % v
                                                           for v in vals)))
    cols = []
    for i, t in enumerate(cfg.topos):
        if any(g(results, t, p, "fwd1", "gbit_s") is not None for p in cfg.paths):
            cols.append((2 + 2 * i, 3 + 2 * i, TOPO_LABEL[t]))
    if not cols:
        os.unlink(dat)
        log("no throughput numbers: no plot")
        return False
    tp = ", ".join("'%s' using %d:xtic(1) title '%s'" % (dat, c, lab) for c, _, lab in cols)
    cp = ", ".join("'%s' using %d:xtic(1) title '%s'" % (dat, c, lab) for _, c, lab in cols)
    script = """
set terminal svg size 1000,420 dynamic font 'sans,11'
set output '%s'
set multiplot layout 1,2 title 'rsplice bench %s (single stream, client -> service)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top right
set xtics rotate by -25
set yrange [0:*]
set title 'throughput (Gbit/s, higher is better)'
plot %s
set title 'machine-wide CPU seconds per GiB (lower is better)'
set key top left
plot %s
unset multiplot
""" % (svg, cfg.date, tp, cp)
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if r.returncode:
        log("gnuplot failed: %s" % r.stderr.strip()[-300:])
        for fn in (dat, svg):
            if os.path.exists(fn):
                os.unlink(fn)
        return False
    os.unlink(dat)
    return True


# ------------------------------------------------------------------- main ---

def cleanup():
    for p in STATE["procs"]:
        stop(p, signal.SIGKILL, 2)
    for ns in list(STATE["netns"]):
        kill_ns(ns)
        sh("ip netns del %s" % ns, check=False)
    STATE["netns"] = []
    if os.path.exists(PIN_DIR):
        subprocess.run([os.path.join(BUILD, "rsplice"), "--pin-dir", PIN_DIR, "detach"],
                       capture_output=True, timeout=30)
        shutil.rmtree(PIN_DIR, ignore_errors=True)
    if STATE["run_sshd_made"]:
        shutil.rmtree("/run/sshd", ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(prog="tools/bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (~2 min): 1 s iperf, fewer conns")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results"), help="output directory")
    ap.add_argument("--json", help="JSON file (default OUT/bench-DATE.json)")
    ap.add_argument("--topos", default="lo,ns", help="comma list of lo,ns")
    ap.add_argument("--paths", default=",".join(PATHS),
                    help="comma list of " + ",".join(PATHS + EXTRA_PATHS))
    ap.add_argument("--secs", type=int, help="iperf3 -t (default 5, quick 1)")
    ap.add_argument("--idle", type=int, dest="idle_n", help="idle connections (default 10000, quick 1000)")
    ap.add_argument("--max-queued", help="--max-queued of the sockmap row's daemons (default theirs)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work directory with the logs")
    ap.add_argument("--only", default=",".join(STEPS),
                    help="comma list of the measurements to run, of " + ",".join(STEPS)
                    + " (an A/B comparison of one column)")
    cfg = ap.parse_args()
    CFG["max_queued"] = cfg.max_queued
    q = cfg.quick
    cfg.secs = cfg.secs or (1 if q else 5)
    cfg.idle_n = cfg.idle_n or (1000 if q else 10000)
    cfg.socat_idle_n = 1000 if q else 2000  # socat forks 2 processes per connection
    cfg.idle_secs = 10 if q else 12
    cfg.rr_n = 2000 if q else 20000
    cfg.conn_n = 300 if q else 2000
    cfg.conn_secs = 3 if q else 5
    cfg.stall_ms = 2000 if q else 5000
    cfg.stall_total = (512 if q else 1024) << 20
    cfg.topos = [t for t in cfg.topos.split(",") if t]
    cfg.paths = [p for p in cfg.paths.split(",") if p]
    cfg.only = [x for x in cfg.only.split(",") if x]
    for x in cfg.only:
        if x not in STEPS:
            ap.error("unknown measurement %s" % x)
    for t in cfg.topos:
        if t not in TOPOS:
            ap.error("unknown topology %s" % t)
    for p in cfg.paths:
        if p not in PATHS + EXTRA_PATHS:
            ap.error("unknown path %s" % p)
    now = datetime.datetime.now()
    cfg.date = now.strftime("%Y-%m-%d %H:%M")
    stamp = now.strftime("%Y%m%d-%H%M%S")
    os.makedirs(cfg.out, exist_ok=True)
    json_path = cfg.json or os.path.join(cfg.out, "bench-%s.json" % stamp)
    svg_path = os.path.splitext(json_path)[0] + ".svg"

    def on_signal(sig, frm):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    load0 = open("/proc/loadavg").read().split()[:3]
    work = STATE["work"] = subprocess.check_output(
        ["mktemp", "-d", "/tmp/rsplice-bench.XXXXXX"], text=True).strip()
    ok = False
    results = {}
    try:
        with open(os.open(work + "/token", os.O_WRONLY | os.O_CREAT, 0o600), "w") as fp:
            fp.write(os.urandom(24).hex() + "\n")
        if "ssh" in cfg.paths:
            if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh"):
                log("openssh-server/-client missing (make deps): ssh row will be n/a")
                cfg.paths.remove("ssh")
            else:
                sh("ssh-keygen -q -t ed25519 -N '' -f %s/ssh_host_ed25519_key" % work)
                sh("ssh-keygen -q -t ed25519 -N '' -f %s/id_ed25519" % work)
                shutil.copy(work + "/id_ed25519.pub", work + "/authorized_keys")
                if not os.path.isdir("/run/sshd"):
                    os.makedirs("/run/sshd", mode=0o755)
                    STATE["run_sshd_made"] = True
        for tool in ("iperf3", "socat"):
            if not shutil.which(tool):
                raise RuntimeError("%s missing: run `make deps`" % tool)
        if "sockmap" in cfg.paths or "sockmap-unbounded" in cfg.paths:
            r = subprocess.run([os.path.join(BUILD, "rsplice"), "--pin-dir", PIN_DIR, "attach",
                                "--max-socks", "131072"], capture_output=True, text=True, timeout=60)
            if r.returncode:
                log("rsplice attach failed (%s): sockmap row will be err" % r.stderr.strip()[:200])
            STATE["pinned"] = True
        log("work dir %s, pin dir %s, mode %s" % (work, PIN_DIR, "quick" if q else "full"))
        for topo_kind in cfg.topos:
            topo = Topo(topo_kind)
            log("topology %s: setting up" % TOPO_LABEL[topo_kind])
            topo.setup()
            results[topo_kind] = {}
            try:
                for i, pname in enumerate(cfg.paths):
                    path = Path(pname, topo, i, work)
                    try:
                        log("path %s / %s: starting" % (topo_kind, pname))
                        path.start()
                        results[topo_kind][pname] = measure_path(path, cfg)
                        results[topo_kind][pname]["daemons_alive_at_end"] = path.alive()
                    except Exception as e:
                        log("path %s / %s failed: %s" % (topo_kind, pname, e))
                        results[topo_kind][pname] = {"error": str(e)[:300]}
                    finally:
                        path.stop()
            finally:
                topo.teardown()
        ok = True
    finally:
        elapsed = time.monotonic() - T0
        cleanup()
        if results:
            rat, rat_md = ratios(results, cfg)
            md = tables(results, cfg)
            machine = {"nproc": os.cpu_count(), "kernel": platform.release(),
                       "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                                    if ln.startswith("model name")), "?"),
                       "hostname": socket.gethostname()}
            doc = {"date": cfg.date, "machine": machine, "mode": "quick" if q else "full",
                   "complete": ok, "elapsed_s": round(elapsed, 1),
                   "loadavg_start": load0, "loadavg_end": open("/proc/loadavg").read().split()[:3],
                   "config": {k: getattr(cfg, k) for k in ("secs", "idle_n", "socat_idle_n", "rr_n",
                                                           "conn_n", "conn_secs", "stall_ms", "stall_total", "max_queued",
                                                           "topos", "paths")},
                   "results": results, "ratios": rat}
            with open(json_path, "w") as fp:
                json.dump(doc, fp, indent=1)
            plotted = plot(results, cfg, svg_path)
            print("## rsplice bench, %s, %s, nproc %d, kernel %s (%s, %.0f s)\n" % (
                cfg.date, machine["cpu"], machine["nproc"], machine["kernel"],
                doc["mode"], elapsed))
            if float(load0[0]) > 0.5 * machine["nproc"]:
                print("Warning: load average %s at the start: other work was running, "
                      "numbers are noisy.\n" % load0[0])
            print(rat_md)
            print(md)
            log("wrote %s%s" % (json_path, (" and " + svg_path) if plotted else ""))
        if cfg.keep_logs or not ok:
            log("logs kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        log("done in %.0f s" % elapsed)


if __name__ == "__main__":
    main()
