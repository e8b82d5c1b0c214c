#!/usr/bin/env python3
"""Small helpers for the shell benchmarks in scripts/bench/.

They live here rather than in the shell scripts because they poll: a loop that
forks `find | wc -l` or `ps` ten times a second would steal a noticeable share of
a 2-core machine from the servers being measured.

Subcommands (each bounded in time, each prints one line for the caller):

  free-port                      a free TCP port on 127.0.0.1
  wait-port PORT TIMEOUT         wait until 127.0.0.1:PORT accepts a connection
  wait-serve-json FILE TIMEOUT SERVER_PID [SERVICE]
                                 wait for Pochta's run/serve.json; print "PID PORT"
                                 (PORT is the first listener of SERVICE, "smtp" by
                                 default); give up early if SERVER_PID exits
  wait-maildir DIR COUNT TIMEOUT wait until DIR/new holds COUNT files; print the
                                 wall-clock time (seconds since the epoch) it did
  count-maildir DIR              number of files in DIR/new
  status-messages ADDRESS        read `pochta status --json` on stdin; print the
                                 "messages" of ADDRESS (sum over all if ADDRESS is "*")
  mem-sample ROOT_PID OUT [INTERVAL]
                                 sample RSS and PSS of ROOT_PID and all its
                                 descendants until SIGTERM/SIGINT; then write
                                 "peak_rss_kb=N peak_pss_kb=N peak_procs=N samples=N
                                 hwm_kb=N" to OUT (hwm_kb: VmHWM, when ROOT_PID
                                 had no children; else 0)
  wait-quiet ROOT_PID TIMEOUT    wait until ROOT_PID and its descendants use under
                                 2% of a CPU over a 1 s window (background work
                                 such as indexing is done); print the seconds waited
  summary RESULTS                print the final table from the results file
  relay-summary RESULTS          the same for scripts/bench/smtp-relay (messages
                                 at the sink rather than in a mailbox)
  imap-summary RESULTS           the same for scripts/bench/imap
"""

import os
import signal
import socket
import statistics
import sys
import time
import json


def die(msg, code=1):
    print(f"benchkit: {msg}", file=sys.stderr)
    sys.exit(code)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def wait_port(port, timeout):
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    die(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def alive(pid):
    """True while PID runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_serve_json(path, timeout, server_pid, service="smtp"):
    deadline = time.monotonic() + float(timeout)
    last_err = "file not there"
    while time.monotonic() < deadline:
        if not alive(int(server_pid)):
            die(f"the server (pid {server_pid}) exited before writing {path}")
        try:
            with open(path) as f:
                doc = json.load(f)
            pid = int(doc["pid"])
            addr = doc[service][0]
            port = int(addr.rsplit(":", 1)[1])
            print(pid, port)
            return
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            # Written but not complete yet, or not written at all.
            last_err = str(e)
            time.sleep(0.05)
    die(f"{path} not usable after {timeout}s ({last_err})")


def count_files(maildir):
    try:
        return sum(1 for e in os.scandir(os.path.join(maildir, "new")) if e.is_file())
    except FileNotFoundError:
        return 0


def wait_maildir(maildir, count, timeout):
    count = int(count)
    deadline = time.monotonic() + float(timeout)
    n = 0
    while time.monotonic() < deadline:
        n = count_files(maildir)
        if n >= count:
            print(f"{time.time():.6f}")
            return
        time.sleep(0.01)
    die(f"{maildir}/new holds {n} of {count} messages after {timeout}s")


def status_messages(address):
    try:
        doc = json.load(sys.stdin)
        accounts = doc["accounts"]
        if address == "*":
            total = sum(int(a["messages"]) for a in accounts)
        else:
            total = sum(int(a["messages"]) for a in accounts if a["address"] == address)
    except (ValueError, KeyError, TypeError) as e:
        die(f"unexpected `pochta status --json` output: {e}")
    print(total)


def descendants(root):
    """ROOT and every process below it, by /proc/PID/task/TID/children."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return seen


def status_kb(pid, keys):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def mem_sample(root, out, interval="0.1"):
    root, interval = int(root), float(interval)
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    peak_rss = peak_pss = peak_procs = samples = 0
    hwm = 0
    # A bound of its own, so a sampler whose caller died does not linger.
    deadline = time.monotonic() + 3600
    while not stop and time.monotonic() < deadline:
        pids = descendants(root)
        rss = pss = 0
        for pid in pids:
            rss += status_kb(pid, ("VmRSS",)).get("VmRSS", 0)
            pss += pss_kb(pid)
        if len(pids) == 1:
            hwm = max(hwm, status_kb(root, ("VmHWM",)).get("VmHWM", 0))
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        peak_procs = max(peak_procs, len(pids))
        samples += 1
        if not alive(root):
            break
        time.sleep(interval)
    with open(out, "w") as f:
        f.write(
            f"peak_rss_kb={peak_rss} peak_pss_kb={peak_pss} "
            f"peak_procs={peak_procs} samples={samples} hwm_kb={hwm}\n"
        )


def cpu_ticks(root):
    """User + system CPU ticks of ROOT and its descendants."""
    total = 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_quiet(root, timeout, window=1.0, share=0.02):
    root, hz = int(root), os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    deadline = start + float(timeout)
    prev = cpu_ticks(root)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_ticks(root)
        if (now - prev) / hz <= window * share:
            print(f"{time.monotonic() - start:.1f}")
            return
        prev = now
    die(f"pid {root} still busy after {timeout}s")


def summary(path, where="in mailbox", what="throughput into the mailbox"):
    """Results file: one line per measured run, whitespace-separated:
    side rep n ack_s delivered_s peak_rss_kb peak_pss_kb hwm_kb procs
    """
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            side, _rep, n, ack, dlv, rss, pss, hwm, procs = line.split()
            runs.setdefault(side, []).append(
                dict(n=int(n), ack=float(ack), dlv=float(dlv), rss=int(rss),
                     pss=int(pss), hwm=int(hwm), procs=int(procs)))

    def med(side, key):
        return statistics.median(r[key] for r in runs[side])

    def rate(side, key):
        return statistics.median(r["n"] / r[key] for r in runs[side])

    def mib(kb):
        return f"{kb / 1024:.1f}"

    reps = max(len(v) for v in runs.values()) if runs else 0
    head = "median of %d run%s" % (reps, "" if reps == 1 else "s")
    print()
    print(f"{'':10} {'acked':>10} {where:>11} {'peak RSS':>10} {'peak PSS':>10} {'VmHWM':>8} {'procs':>6}")
    print(f"{'':10} {'msgs/s':>10} {'msgs/s':>11} {'MiB':>10} {'MiB':>10} {'MiB':>8} {'':>6}")
    for side in ("pochta", "postfix"):
        if side not in runs:
            continue
        hwm = med(side, "hwm")
        print(f"{side:10} {rate(side, 'ack'):10.0f} {rate(side, 'dlv'):11.0f} "
              f"{mib(med(side, 'rss')):>10} {mib(med(side, 'pss')):>10} "
              f"{(mib(hwm) if hwm else '-'):>8} {int(med(side, 'procs')):>6}")
    if "pochta" in runs and "postfix" in runs:
        r = rate("pochta", "dlv") / rate("postfix", "dlv")
        m = med("pochta", "rss") / med("postfix", "rss")
        p = med("pochta", "pss") / med("postfix", "pss")
        print()
        print(f"pochta/postfix: {what} {r:.2f}x, "
              f"peak RSS {m:.2f}x, peak PSS {p:.2f}x ({head})")
    else:
        print(f"({head})")


def imap_summary(path):
    """Results file of scripts/bench/imap, one record a line:
    load SIDE REP ok_per_s ops_per_s no bad errors sessions peak_rss_kb peak_pss_kb
         procs before_rss_kb before_pss_kb gen_cpu_s
    populate SIDE MAILBOX COUNT SECS RETRIED
    search SIDE MESSAGES SELECT_S FIRST_S MEDIAN_S HITS EXPECTED
    fetch SIDE MESSAGES FIRST_S MEDIAN_S LITERAL_BYTES
    headers SIDE MESSAGES FIRST_S MEDIAN_S LITERAL_BYTES
    """
    loads, searches = {}, {}
    fetches = {"fetch": {}, "headers": {}}
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "load":
                loads.setdefault(w[1], []).append(dict(
                    ok=float(w[3]), ops=float(w[4]), no=int(w[5]), bad=int(w[6]),
                    err=int(w[7]), rss=int(w[9]), pss=int(w[10]), procs=int(w[11]),
                    brss=int(w[12]), bpss=int(w[13])))
            elif w[0] == "search":
                searches[w[1]] = dict(n=int(w[2]), select=float(w[3]), first=float(w[4]),
                                      median=float(w[5]), hits=int(w[6]), expected=int(w[7]))
            elif w[0] in fetches:
                fetches[w[0]][w[1]] = dict(n=int(w[2]), first=float(w[3]), median=float(w[4]))

    def med(side, key):
        return statistics.median(r[key] for r in loads[side])

    def mib(kb):
        return f"{kb / 1024:.1f}"

    sides = [s for s in ("pochta", "dovecot") if s in loads]
    if sides:
        reps = max(len(loads[s]) for s in sides)
        print()
        print(f"{'':9} {'ops/s':>9} {'ops/s':>9} {'NO':>6} {'BAD':>5} {'errors':>6} "
              f"{'peak RSS':>9} {'peak PSS':>9} {'procs':>6} {'RSS':>7} {'PSS':>7}")
        print(f"{'':9} {'(OK)':>9} {'(all)':>9} {'':>6} {'':>5} {'':>6} "
              f"{'MiB':>9} {'MiB':>9} {'':>6} {'before':>7} {'before':>7}")
        for s in sides:
            print(f"{s:9} {med(s, 'ok'):9.1f} {med(s, 'ops'):9.1f} {int(med(s, 'no')):6d} "
                  f"{int(med(s, 'bad')):5d} {int(med(s, 'err')):6d} {mib(med(s, 'rss')):>9} "
                  f"{mib(med(s, 'pss')):>9} {int(med(s, 'procs')):6d} "
                  f"{mib(med(s, 'brss')):>7} {mib(med(s, 'bpss')):>7}")
        head = "median of %d run%s" % (reps, "" if reps == 1 else "s")
        if len(sides) == 2:
            print()
            print(f"pochta/dovecot: ops/s (OK) {med('pochta', 'ok') / med('dovecot', 'ok'):.2f}x, "
                  f"peak RSS {med('pochta', 'rss') / med('dovecot', 'rss'):.2f}x, "
                  f"peak PSS {med('pochta', 'pss') / med('dovecot', 'pss'):.2f}x ({head})")
        else:
            print(f"({head})")
    ss = [s for s in ("pochta", "dovecot") if s in searches]
    if ss:
        print()
        for s in ss:
            r = searches[s]
            flag = "" if r["hits"] == r["expected"] else f"  (WRONG: {r['expected']} expected)"
            print(f"{s:9} SEARCH TEXT over {r['n']} msgs: first {r['first']:.3f} s, "
                  f"median {r['median']:.3f} s, {r['hits']} hits{flag} "
                  f"(first SELECT {r['select']:.2f} s)")
        if len(ss) == 2:
            p, d = searches["pochta"], searches["dovecot"]
            print(f"pochta/dovecot: SEARCH TEXT time {p['median'] / d['median']:.2f}x (median), "
                  f"{p['first'] / d['first']:.2f}x (first)")
    for kind, what in (("fetch", "(UID FLAGS ENVELOPE BODYSTRUCTURE)"),
                       ("headers", "(... BODY.PEEK[HEADER.FIELDS (...)])")):
        by_side = fetches[kind]
        fs = [s for s in ("pochta", "dovecot") if s in by_side]
        if not fs:
            continue
        print()
        for s in fs:
            r = by_side[s]
            print(f"{s:9} UID FETCH 1:* {what} over {r['n']} msgs: "
                  f"median {r['median']:.3f} s ({r['median'] / max(r['n'], 1) * 1e5:.1f} ms "
                  f"per 100), first {r['first']:.3f} s")
        if len(fs) == 2:
            p, d = by_side["pochta"], by_side["dovecot"]
            print(f"pochta/dovecot: UID FETCH {kind} time {p['median'] / d['median']:.2f}x (median), "
                  f"{p['first'] / d['first']:.2f}x (first)")


def main():
    cmds = {
        "free-port": (free_port, 0),
        "wait-port": (wait_port, 2),
        "wait-serve-json": (wait_serve_json, (3, 4)),
        "wait-maildir": (wait_maildir, 3),
        "count-maildir": (lambda d: print(count_files(d)), 1),
        "status-messages": (status_messages, 1),
        "mem-sample": (mem_sample, (2, 3)),
        "wait-quiet": (wait_quiet, 2),
        "summary": (summary, 1),
        "relay-summary": (lambda p: summary(p, "at sink", "relay throughput to the sink"), 1),
        "imap-summary": (imap_summary, 1),
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        die("usage: benchkit.py {" + ",".join(cmds) + "} ARGS...", 2)
    fn, arity = cmds[sys.argv[1]]
    args = sys.argv[2:]
    lo, hi = arity if isinstance(arity, tuple) else (arity, arity)
    if not lo <= len(args) <= hi:
        die(f"{sys.argv[1]}: wrong number of arguments", 2)
    fn(*args)


if __name__ == "__main__":
    main()
