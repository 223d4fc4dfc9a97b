#!/usr/bin/env python3
"""Fixed-rate soak client for bench/service/soak.sh: `clients` threads, each one user on one
keep-alive connection, together `rate` recommendation + feedback pairs a second (paced on
an absolute schedule, so a slow answer does not lower the offered rate). Every `window`
seconds it prints one row: requests, non-2xx, latency p50/p99/max over the window, and the
server's RSS and open file descriptors (from /proc/<pid>). At the end it compares the last
third of the run with the first third (after a warm-up window) and exits 1 if RSS grew by
more than 10 % + 16 MiB, file descriptors by more than 8, or p99 by more than 2x.

    soak.py <base-url> <server-pid> <seconds> [--rate 50] [--clients 4] [--window 60]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time


def proc_stats(pid):
    rss_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return rss_kib / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))


class Client(threading.Thread):
    def __init__(self, host, port, period, start_at, stop_at, sink):
        super().__init__(daemon=True)
        self.host, self.port, self.period = host, port, period
        self.start_at, self.stop_at, self.sink = start_at, stop_at, sink
        self.conn = http.client.HTTPConnection(host, port, timeout=10)

    def call(self, method, path, body, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        t0 = time.perf_counter()
        try:
            self.conn.request(method, path, json.dumps(body), headers)
            r = self.conn.getresponse()
            data = r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            data, status = b"", 0
        self.sink(time.perf_counter() - t0, status)
        return status, data

    def run(self):
        status, data = self.call("POST", "/v1/users", {"sex": "female", "age": 35, "height_cm": 168, "weight_kg": 64})
        if status != 201:
            print(f"soak: cannot create a user: {status} {data[:200]!r}", file=sys.stderr)
            return
        user = json.loads(data)
        n = 0
        while True:
            due = self.start_at + n * self.period
            if due >= self.stop_at:
                return
            time.sleep(max(0.0, due - time.time()))
            n += 1
            status, data = self.call("POST", "/v1/recommendations", {"user_id": user["id"], "n": 3}, user["token"])
            if status != 200:
                continue
            rec = json.loads(data)
            self.call("POST", "/v1/feedback", {"event_id": rec["event_id"], "meal_id": rec["meals"][0]["meal_id"],
                                                "outcome": "accepted" if n % 3 else "rejected",
                                                "idempotency_key": f"soak-{user['id'][:8]}-{n}"}, user["token"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("pid", type=int)
    ap.add_argument("seconds", type=int)
    ap.add_argument("--rate", type=float, default=50.0, help="recommendation + feedback pairs per second")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--window", type=int, default=60)
    a = ap.parse_args()
    host, port = a.url.replace("http://", "").split(":")
    lock = threading.Lock()
    window = {"lat": [], "non2xx": 0}

    def sink(seconds, status):
        with lock:
            window["lat"].append(seconds * 1000.0)
            if not 200 <= status < 300:
                window["non2xx"] += 1

    start = time.time() + 1.0
    stop = start + a.seconds
    period = a.clients / a.rate
    clients = [Client(host, int(port), period, start + i * period / a.clients, stop, sink) for i in range(a.clients)]
    for c in clients:
        c.start()
    rows = []
    print(f"{'t_s':>6} {'requests':>9} {'non2xx':>6} {'p50_ms':>7} {'p99_ms':>7} {'max_ms':>7} {'rss_mib':>8} {'fds':>5}", flush=True)
    next_at = start + a.window
    while next_at <= stop + 0.01:
        time.sleep(max(0.0, next_at - time.time()))
        with lock:
            lat, non2xx = window["lat"], window["non2xx"]
            window["lat"], window["non2xx"] = [], 0
        rss, fds = proc_stats(a.pid)
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
        row = (round(next_at - start), len(lat), non2xx, p(0.5), p(0.99), lat[-1] if lat else float("nan"), rss, fds)
        rows.append(row)
        print(f"{row[0]:>6} {row[1]:>9} {row[2]:>6} {row[3]:>7.2f} {row[4]:>7.2f} {row[5]:>7.1f} {row[6]:>8.1f} {row[7]:>5}", flush=True)
        next_at += a.window
    for c in clients:
        c.join(timeout=15)
    body = rows[1:]  # the first window warms up (caches, connections, the first checkpoint)
    third = max(1, len(body) // 3)
    first, last = body[:third], body[-third:]
    mean = lambda xs: statistics.fmean(xs)
    rss0, rss1 = mean([r[6] for r in first]), mean([r[6] for r in last])
    fd0, fd1 = max(r[7] for r in first), max(r[7] for r in last)
    p990, p991 = statistics.median([r[4] for r in first]), statistics.median([r[4] for r in last])
    total, bad = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"soak: {total} requests, {bad} non-2xx; RSS {rss0:.1f} -> {rss1:.1f} MiB, fds {fd0} -> {fd1}, "
          f"p99 {p990:.2f} -> {p991:.2f} ms (first vs last third)")
    ok = rss1 <= rss0 * 1.10 + 16 and fd1 <= fd0 + 8 and p991 <= 2 * p990 and bad == 0
    print("soak: " + ("flat" if ok else "NOT flat"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
