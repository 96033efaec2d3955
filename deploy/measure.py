#!/usr/bin/env python3
"""Load, failover, drain and write-propagation figures of the HAProxy + PostgreSQL deployment.

Run by deploy/run.sh once three `portcullis serve` instances and HAProxy are up; standard
library only. Steps:

1. Load: CONNECTIONS keep-alive connections send `POST /v1/authorize` for a stored user through
   the balancer for DURATION seconds. A request is ok when it answers 200 with the expected
   decision; anything else (another status, another decision, a connection error or timeout)
   is a failure.
2. Crash: KILL_AT seconds in, instance 2 gets SIGKILL; RESTART_AFTER seconds later it is started
   again with the same command. Measured from that start: until its readiness endpoint
   answers 200, until HAProxy reports it UP, and until HAProxy has sent it a request again.
   A request *in flight at the kill* is one that started before the SIGKILL was sent and
   ended after it. Failures of such requests are reported apart ("failed-at-kill"); every
   other failure counts against the run.
3. Drain (with --term-at, for a binary with drain_delay_ms): TERM_AT seconds in, instance 3 gets
   SIGTERM; it answers /readyz 503 while it drains, HAProxy takes it out, it exits, and it is
   started again at once. No request may fail for this: failures around the SIGTERM are not
   excused.
4. Propagation: CHANGES role changes of one user through the management API of instance 1,
   each followed by polling instance 3's `POST /v1/authorize` directly until its decision
   changes; then CLI_CHANGES deactivations/reactivations of another user with
   `portcullis users` (no instance involved), polled the same way. Time is from the write's
   acknowledgement (the 200, or the CLI's exit) to the first answer with the new decision.

Exit status: 0 when there is no failure outside the requests in flight at the SIGKILL, the
restarted instances are back in rotation, and every change reached instance 3 within 10 s;
else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

PROPAGATION_LIMIT = 10.0  # seconds a change may take to reach instance 3
BACK_LIMIT = 20.0  # seconds a restarted instance may take to be back in rotation
EXIT_LIMIT = 30.0  # seconds an instance may take to exit after SIGTERM


def now() -> float:
    return time.monotonic()


class Conn:
    """One HTTP/1.1 keep-alive connection (just enough HTTP for JSON requests)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise ValueError("chunked responses are not expected")
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data


NET_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError)


def addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def stats(sock_path: str) -> list[dict]:
    """HAProxy's `show stat` as dicts."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(sock_path)
        s.sendall(b"show stat\n")
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    lines = b"".join(chunks).decode().strip().splitlines()
    names = lines[0].lstrip("# ").split(",")
    return [dict(zip(names, line.split(","))) for line in lines[1:] if line]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, not yet reaped by its parent, has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def ms(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 1000:.1f} ms"


def since(t: float | None, t0: float | None) -> float | None:
    return None if t is None or t0 is None else t - t0


class Run:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.balancer = addr(a.balancer)
        self.instances = [addr(x) for x in a.instances.split(",")]
        self.servers = a.servers.split(",")
        self.body = json.dumps(
            {"principal": a.principal, "action": a.action, "resource": a.resource}
        ).encode()
        self.want = f'"decision":"{a.expect}"'.encode()
        # (start, end, outcome): "ok", an HTTP status, "wrong decision", or an error's name.
        self.records: list[tuple[float, float, str]] = []
        self.t: dict[str, float | None] = {}

    # ---- instances --------------------------------------------------------------------------

    def pid_file(self, i: int) -> str:
        return os.path.join(self.a.run_dir, f"instance{i + 1}.pid")

    def pid(self, i: int) -> int:
        with open(self.pid_file(i)) as f:
            return int(f.read().strip())

    def command(self, i: int) -> list[str]:
        """Instance i's command: the one given, with its own listen address."""
        cmd = list(self.a.command)
        k = cmd.index("--listen")
        cmd[k + 1] = "%s:%d" % self.instances[i]
        return cmd

    def start(self, i: int) -> None:
        log = open(os.path.join(self.a.run_dir, f"instance{i + 1}.log"), "ab")  # noqa: SIM115
        child = subprocess.Popen(self.command(i), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        with open(self.pid_file(i), "w") as f:
            f.write(f"{child.pid}\n")

    def server_stat(self, server: str) -> dict:
        for row in stats(self.a.stats_socket):
            if row["pxname"] == self.a.backend and row["svname"] == server:
                return row
        raise KeyError(f"{self.a.backend}/{server} not in `show stat`")

    async def back_in_rotation(self, i: int, key: str) -> None:
        """Records when instance i answers ready, is UP in HAProxy and gets a request again."""
        started = self.t[f"{key}_start"]
        base = int(self.server_stat(self.servers[i])["stot"])

        async def ready() -> None:
            host, port = self.instances[i]
            while now() - started < BACK_LIMIT:
                c = Conn(host, port)
                try:
                    status, _ = await asyncio.wait_for(c.request("GET", self.a.ready_path), timeout=2)
                    if status == 200:
                        self.t[f"{key}_ready"] = now()
                        return
                except NET_ERRORS:
                    pass
                finally:
                    c.close()
                await asyncio.sleep(0.005)

        async def haproxy() -> None:
            # "UP" and "UP 1/2" (one failed check) are in rotation; "DOWN", "DOWN 1/2" are not.
            # An instance HAProxy never took out (back before two checks failed) has no "up".
            was_out = False
            while now() - started < BACK_LIMIT:
                row = self.server_stat(self.servers[i])
                in_rotation = row["status"].startswith("UP")
                was_out = was_out or not in_rotation
                if was_out and in_rotation and f"{key}_up" not in self.t:
                    self.t[f"{key}_up"] = now()
                if int(row["stot"]) > base:
                    self.t[f"{key}_served"] = now()
                    if not was_out:
                        self.t[f"{key}_never_out"] = 1.0
                    return
                await asyncio.sleep(0.01)

        await asyncio.gather(ready(), haproxy())

    # ---- load -------------------------------------------------------------------------------

    async def worker(self, end: float) -> None:
        conn = Conn(*self.balancer)
        while now() < end:
            t0 = now()
            try:
                status, data = await asyncio.wait_for(
                    conn.request("POST", "/v1/authorize", self.body), timeout=15
                )
                if status != 200:
                    outcome = str(status)
                elif self.want not in data:
                    outcome = "wrong decision"
                else:
                    outcome = "ok"
            except NET_ERRORS as e:
                outcome = type(e).__name__
                conn.close()
            self.records.append((t0, now(), outcome))
        conn.close()

    # ---- crash and drain --------------------------------------------------------------------

    async def crash(self, start: float) -> None:
        """SIGKILL of instance 2, restart RESTART_AFTER seconds later."""
        a = self.a
        await asyncio.sleep(max(0.0, start + a.kill_at - now()))
        pid = self.pid(1)
        self.t["kill0"] = now()
        os.kill(pid, signal.SIGKILL)
        self.t["kill1"] = now()
        await asyncio.sleep(a.restart_after)
        self.t["crash_start"] = now()
        self.start(1)
        await self.back_in_rotation(1, "crash")

    async def drain(self, start: float) -> None:
        """SIGTERM of instance 3: out of rotation while it drains, exits, is started again."""
        a = self.a
        await asyncio.sleep(max(0.0, start + a.term_at - now()))
        pid = self.pid(2)
        self.t["term"] = now()
        os.kill(pid, signal.SIGTERM)
        server = self.servers[2]
        while now() - self.t["term"] < EXIT_LIMIT:
            if "term_down" not in self.t and not self.server_stat(server)["status"].startswith("UP"):
                self.t["term_down"] = now()
            if not alive(pid):
                self.t["term_exit"] = now()
                break
            await asyncio.sleep(0.005)
        else:
            raise RuntimeError(f"instance 3 still runs {EXIT_LIMIT:g} s after SIGTERM")
        self.t["drain_start"] = now()
        self.start(2)
        await self.back_in_rotation(2, "drain")

    # ---- propagation ------------------------------------------------------------------------

    async def decide(self, conn: Conn, user: str) -> str:
        body = json.dumps({"principal": user, "action": self.a.action, "resource": self.a.resource})
        status, data = await conn.request("POST", "/v1/authorize", body.encode())
        if status != 200:
            raise RuntimeError(f"decision for {user}: {status} {data[:200]!r}")
        return json.loads(data)["decision"]

    async def until_changed(self, conn: Conn, user: str, want: str, acked: float) -> float | None:
        while True:
            if await self.decide(conn, user) == want:
                return now() - acked
            if now() - acked > PROPAGATION_LIMIT:
                return None
            await asyncio.sleep(0.001)

    async def propagation(self) -> dict:
        a = self.a
        writer, reader = Conn(*self.instances[0]), Conn(*self.instances[2])
        auth = {"Authorization": f"Bearer {a.owner_key}"}
        api, cli, missed = [], [], 0
        # Role changes through instance 1's management API: admin <-> regular.
        for k in range(a.changes):
            role, want = ("regular", "deny") if k % 2 == 0 else ("admin", "allow")
            before = "allow" if want == "deny" else "deny"
            for c in (writer, reader):  # both have the user cached with the old answer
                got = await self.decide(c, a.api_user)
                if got != before:
                    raise RuntimeError(f"{a.api_user} is {got} before change {k}, expected {before}")
            body = json.dumps({"role": role}).encode()
            status, data = await writer.request("PUT", f"/v1/users/{a.api_user}/role", body, auth)
            acked = now()
            if status != 200:
                raise RuntimeError(f"PUT role: {status} {data[:300]!r}")
            if await self.decide(writer, a.api_user) != want:
                raise RuntimeError("the writing instance does not answer the change at once")
            took = await self.until_changed(reader, a.api_user, want, acked)
            if took is None:
                missed += 1
            else:
                api.append(took)
        # Deactivation and reactivation with the command line, straight into the database.
        for k in range(a.cli_changes):
            verb, want = ("deactivate", "deny") if k % 2 == 0 else ("reactivate", "allow")
            before = "allow" if want == "deny" else "deny"
            if await self.decide(reader, a.cli_user) != before:
                raise RuntimeError(f"{a.cli_user} is not {before} before CLI change {k}")
            p = await asyncio.create_subprocess_exec(
                a.command[0], "users", "--database-url", a.database_url, verb, "--user", a.cli_user,
                stdout=asyncio.subprocess.DEVNULL,
            )
            if await p.wait() != 0:
                raise RuntimeError(f"portcullis users {verb} failed")
            acked = now()
            took = await self.until_changed(reader, a.cli_user, want, acked)
            if took is None:
                missed += 1
            else:
                cli.append(took)
        writer.close()
        reader.close()
        return {"api": api, "cli": cli, "missed": missed}

    # ---- the run ----------------------------------------------------------------------------

    async def wait_all_up(self) -> None:
        deadline = now() + 15
        while now() < deadline:
            rows = [self.server_stat(s) for s in self.servers]
            if all(r["status"] == "UP" for r in rows):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("HAProxy does not report every instance UP within 15 s")

    async def main(self) -> int:
        a = self.a
        await self.wait_all_up()
        drain = f"; SIGTERM of instance 3 at {a.term_at:g} s" if a.term_at else ""
        print(f"load: {a.connections} connections, {a.duration:g} s through {a.balancer}; "
              f"SIGKILL of instance 2 at {a.kill_at:g} s, restart {a.restart_after:g} s later{drain}",
              flush=True)
        start = now()
        end = start + a.duration
        events = [asyncio.create_task(self.crash(start))]
        if a.term_at:
            events.append(asyncio.create_task(self.drain(start)))
        await asyncio.gather(*(self.worker(end) for _ in range(a.connections)))
        await asyncio.gather(*events)
        load = self.load_summary(start)
        backend = self.server_stat("BACKEND")
        await self.wait_all_up()
        print(f"propagation: {a.changes} API changes via instance 1, {a.cli_changes} CLI changes, "
              "polled on instance 3", flush=True)
        prop = await self.propagation()
        return self.report(load, backend, prop)

    def load_summary(self, start: float) -> dict:
        k0, k1 = self.t["kill0"], self.t["kill1"]

        def at_kill(r):
            return r[0] < k1 and r[1] > k0

        ok = [r for r in self.records if r[2] == "ok"]
        failed = [r for r in self.records if r[2] != "ok"]
        other = [r for r in failed if not at_kill(r)]
        kinds: dict[str, int] = {}
        for r in failed:
            kinds[r[2]] = kinds.get(r[2], 0) + 1
        lat = [r[1] - r[0] for r in ok]
        after_kill = [r[1] - r[0] for r in self.records if r[1] > k0 and r[0] < k0 + 1.0]
        out = {
            "requests": len(self.records),
            "ok": len(ok),
            "failed": len(failed),
            "failed_kinds": kinds,
            "in_flight_at_kill": sum(1 for r in self.records if at_kill(r)),
            "failed_at_kill": len(failed) - len(other),
            "failed_otherwise": len(other),
            "first_failures": [(round(r[0] - start, 4), round(r[1] - start, 4), r[2]) for r in other[:5]],
            "rate": len(self.records) / max(1e-9, max(r[1] for r in self.records) - start),
            "latency_p50": pct(lat, 50),
            "latency_p99": pct(lat, 99),
            "latency_max": max(lat) if lat else float("nan"),
            "latency_max_second_after_kill": max(after_kill) if after_kill else float("nan"),
        }
        if "term" in self.t:
            t0, t1 = self.t["term"], self.t.get("term_exit", self.t["term"]) + 1.0
            window = [r for r in self.records if r[1] > t0 and r[0] < t1]
            out["around_term"] = len(window)
            out["failed_around_term"] = sum(1 for r in window if r[2] != "ok")
            out["latency_max_around_term"] = max((r[1] - r[0] for r in window), default=float("nan"))
        return out

    def report(self, load: dict, backend: dict, prop: dict) -> int:
        a, t = self.a, self.t
        crash = {k: since(t.get(f"crash_{k}"), t["crash_start"]) for k in ("ready", "up", "served")}
        drain = None
        if "term" in t:
            drain = {
                "down": since(t.get("term_down"), t["term"]),
                "exit": since(t.get("term_exit"), t["term"]),
                **{k: since(t.get(f"drain_{k}"), t.get("drain_start")) for k in ("ready", "up", "served")},
            }
        api, cli = prop["api"], prop["cli"]

        def spread(v: list[float]) -> str:
            if not v:
                return "-"
            return f"min {ms(min(v))}, median {ms(statistics.median(v))}, max {ms(max(v))}"

        print()
        print("summary")
        print(f"  requests            {load['requests']} ({load['rate']:.0f}/s)")
        print(f"  ok                  {load['ok']}")
        print(f"  failed              {load['failed']} {load['failed_kinds'] or ''}".rstrip())
        print(f"  in flight at kill   {load['in_flight_at_kill']} (started before the SIGKILL, ended after it)")
        print(f"  failed-at-kill      {load['failed_at_kill']}")
        print(f"  failed otherwise    {load['failed_otherwise']} {load['first_failures'] or ''}".rstrip())
        print(f"  latency (ok)        p50 {ms(load['latency_p50'])}, p99 {ms(load['latency_p99'])}, "
              f"max {ms(load['latency_max'])}; max in the second after the kill "
              f"{ms(load['latency_max_second_after_kill'])}")
        print(f"  HAProxy retries     {backend.get('wretr', '?')}, redispatches {backend.get('wredis', '?')}")
        def up(key: str, d: dict) -> str:
            if f"{key}_never_out" in t:
                return "never taken out of rotation"
            return f"UP in HAProxy after {ms(d['up'])}"

        print(f"  instance 2 restart  {a.ready_path} 200 after {ms(crash['ready'])}; {up('crash', crash)}; "
              f"first request routed to it after {ms(crash['served'])}")
        if drain is not None:
            down = "never DOWN in HAProxy" if drain["down"] is None else f"DOWN in HAProxy after {ms(drain['down'])}"
            print(f"  instance 3 SIGTERM  {down}, exited after {ms(drain['exit'])}; "
                  f"{load['failed_around_term']} of {load['around_term']} requests failed from the "
                  f"SIGTERM to 1 s after the exit (max latency {ms(load['latency_max_around_term'])})")
            print(f"  instance 3 restart  {a.ready_path} 200 after {ms(drain['ready'])}; {up('drain', drain)}; "
                  f"first request routed to it after {ms(drain['served'])}")
        print(f"  propagation (API)   {len(api)} changes: {spread(api)}")
        print(f"  propagation (CLI)   {len(cli)} changes: {spread(cli)}")
        print(f"  not propagated      {prop['missed']} within {PROPAGATION_LIMIT:g} s")
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump({
                    "load": load,
                    "haproxy_retries": backend.get("wretr"),
                    "haproxy_redispatches": backend.get("wredis"),
                    "ready_path": a.ready_path,
                    "crash_restart": crash,
                    "drain": drain,
                    "propagation": prop,
                }, f, indent=2)
        problems = []
        if load["failed_otherwise"]:
            problems.append(f"{load['failed_otherwise']} failures outside the requests in flight at the SIGKILL")
        if crash["served"] is None:
            problems.append(f"instance 2 not back in rotation within {BACK_LIMIT:g} s of its restart")
        if drain is not None and drain["served"] is None:
            problems.append(f"instance 3 not back in rotation within {BACK_LIMIT:g} s of its restart")
        if prop["missed"]:
            problems.append(f"{prop['missed']} changes did not reach instance 3 within {PROPAGATION_LIMIT:g} s")
        for p in problems:
            print(f"FAIL: {p}")
        if not problems:
            print("PASS")
        return 1 if problems else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--balancer", default="127.0.0.1:8180")
    p.add_argument("--instances", default="127.0.0.1:8181,127.0.0.1:8182,127.0.0.1:8183")
    p.add_argument("--servers", default="p1,p2,p3", help="HAProxy's names of the instances")
    p.add_argument("--backend", default="portcullis")
    p.add_argument("--stats-socket", required=True)
    p.add_argument("--run-dir", required=True,
                   help="holds instanceN.pid (rewritten at each restart) and instanceN.log")
    p.add_argument("--ready-path", default="/readyz")
    p.add_argument("--principal", default="olga")
    p.add_argument("--action", default="shipping_rule.edit")
    p.add_argument("--resource", default='Portal::Company::"acme"')
    p.add_argument("--expect", default="allow")
    p.add_argument("--owner-key", required=True)
    p.add_argument("--api-user", default="m1")
    p.add_argument("--cli-user", default="m2")
    p.add_argument("--database-url", required=True)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--kill-at", type=float, default=5)
    p.add_argument("--restart-after", type=float, default=2)
    p.add_argument("--term-at", type=float, default=0, help="0: no SIGTERM step")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--changes", type=int, default=10)
    p.add_argument("--cli-changes", type=int, default=4)
    p.add_argument("--json-out")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="-- BIN serve ... --listen ADDR ...: an instance's command")
    a = p.parse_args()
    if a.command and a.command[0] == "--":
        a.command = a.command[1:]
    if "--listen" not in a.command[:-1]:
        p.error("an instance's command, with --listen ADDR, is required after --")
    return asyncio.run(Run(a).main())


if __name__ == "__main__":
    sys.exit(main())
