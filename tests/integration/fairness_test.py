#!/usr/bin/env python3
"""Fairness between tenants (issue 15): 52 `mde` sources against one emulator of 52
generated tenants (tenant_count). Tenant 1 answers every API request 20 s late
(slow_tenants), tenant 2 is throttled for 60 s from its first request (throttled_tenants:
429 with Retry-After), tenants 3..52 are healthy. From the emulator's request log
(/_emulator/requests): every healthy tenant is polled on schedule the whole time, the slow
and the throttled tenants are asked again, and at the end every version the API served is
in the output exactly once.

The schedule's tolerance: a source polls every INTERVAL; a healthy poll takes milliseconds
(one page of about 20 alerts), so consecutive list requests of a healthy tenant are about
INTERVAL apart. A collector that let the slow or the throttled tenant hold up others would
show gaps of 20 s or 60 s. The bound is INTERVAL + one INTERVAL of slack, the issue's rule
("never delays another tenant's poll by more than its own interval"), which also leaves
room for a loaded machine's scheduling noise.

Usage: fairness_test.py MDECOLLECT MDE_EMULATOR [unittest arguments]
Every wait is bounded; every process is stopped at the end. Load-sensitive: run it alone
(RUN_SERIAL in CMake).
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
# (Only names that are not test cases with tests: unittest would run those too.)
from collector_test import Collector, Emulator, WorkDirTest, http_json  # noqa: E402

TENANTS = 52
SLOW, THROTTLED = 1, 2          # tenant numbers (k of the generated tenants)
SLOW_FOR = 20                   # seconds
THROTTLED_FOR = 60              # seconds
INTERVAL = 5                    # seconds between polls
TOLERANCE = INTERVAL            # see the docstring
RUN = 80                        # seconds the collector runs
ALERTS_EACH = 20
LIST = "GET /api/alerts"


def tenant(k):
    return f"00000000-0000-4000-a000-{k:012d}"


def client(k):
    return f"00000000-0000-4000-c000-{k:012d}"


def secret(k):
    return f"tenant-{k}-secret"


def source_yaml(k, url):
    return (f"  - name: tenant{k:02d}\n    type: mde\n    tenant_id: {tenant(k)}\n"
            f"    client_id: {client(k)}\n    client_secret: {secret(k)}\n"
            f"    login_url: {url}\n    api_url: {url}\n"
            f"    interval: {INTERVAL}s\n    initial_interval: 48h\n")


class RunningCollector:
    """A closer for a collector started in the background (stopped if still running)."""

    def __init__(self, collector):
        self.collector = collector

    def stop(self):
        proc = self.collector.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
            self.collector.log.close()


def terminate(collector, grace):
    """SIGTERM, then SIGKILL after `grace` seconds; returns (exit code, seconds it took).
    The grace covers a request in flight to the slow tenant: the collector awaits an answer
    on its way for 5 s after SIGTERM, then cancels it."""
    started = time.monotonic()
    collector.proc.send_signal(signal.SIGTERM)
    try:
        rc = collector.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        collector.proc.kill()
        rc = collector.proc.wait(timeout=10)
    collector.log.close()
    return rc, time.monotonic() - started


class FairnessTest(WorkDirTest):
    work_prefix = "mdec-fairness-test-"

    def requests(self, emu):
        return http_json(emu.url + "/_emulator/requests")

    def test_slow_and_throttled_tenants_do_not_hold_back_the_healthy_ones(self):
        emu = Emulator(self.work, config=f"""
seed: 15
alerts: {TENANTS * ALERTS_EACH}
tenant_count: {TENANTS}
threads: 128
history: 20h
world:
  new_alerts_per_hour: 1800
  updates_per_hour: 1800
  late_fraction: 0
faults:
  slow_tenants: {{"{tenant(SLOW)}": {SLOW_FOR}s}}
  throttled_tenants: {{"{tenant(THROTTLED)}": {THROTTLED_FOR}s}}
""")
        self.closers.append(emu)
        c = Collector(self.work, "".join(source_yaml(k, emu.url)
                                         for k in range(1, TENANTS + 1)))
        begin = self.requests(emu)["now"]  # the log's clock when the collector starts
        c.start()
        self.closers.append(RunningCollector(c))
        time.sleep(RUN)
        # The world stands still from here: a response the collector abandons when stopped
        # (the slow tenant's) stays the latest, for the final --once to collect.
        emu.freeze()
        log = self.requests(emu)
        end = log["now"]
        rc, took = terminate(c, SLOW_FOR + 20)
        self.assertEqual(rc, 0, c.log_text()[-2000:])
        # The slow tenant's answer (SLOW_FOR s) is awaited 5 s at most.
        self.assertLess(took, SLOW_FOR - 5, "SIGTERM waited for the slow tenant's answer")
        self.assertEqual(log["dropped"], 0)

        by_tenant = {}
        for r in log["requests"]:
            by_tenant.setdefault(r["tenant"], []).append(r)

        # Every healthy tenant: polled from the start to the end, never a gap above
        # INTERVAL + TOLERANCE, every answer 200.
        worst = (0.0, None)
        for k in range(1, TENANTS + 1):
            if k in (SLOW, THROTTLED):
                continue
            lists = [r for r in by_tenant.get(tenant(k), []) if r["path"] == LIST]
            times = sorted(r["at"] for r in lists)
            self.assertGreaterEqual(len(times), RUN // (INTERVAL + TOLERANCE), f"tenant {k}")
            self.assertEqual([r["status"] for r in lists if r["status"] != 200], [],
                             f"tenant {k}")
            edges = [times[0] - begin] + [b - a for a, b in zip(times, times[1:])] + \
                    [end - times[-1]]
            gap = max(edges)
            if gap > worst[0]:
                worst = (gap, k)
            self.assertLessEqual(gap, INTERVAL + TOLERANCE,
                                 f"tenant {k}: list requests at {[round(t - begin, 1) for t in times]}"
                                 f" (seconds after the start; the run ended at "
                                 f"{round(end - begin, 1)})")

        # The slow tenant: answered after SLOW_FOR seconds, and asked again.
        slow = [r for r in by_tenant.get(tenant(SLOW), []) if r["path"] == LIST]
        self.assertGreaterEqual(len(slow), 2, slow)
        answered = [r for r in slow if r["status"] == 200]
        self.assertGreater(len(answered), 0, slow)
        self.assertTrue(all(r["done"] - r["at"] >= SLOW_FOR - 0.5 for r in answered), answered)

        # The throttled tenant: 429s within its window, asked again, answered after it.
        throttled = sorted((r for r in by_tenant.get(tenant(THROTTLED), [])
                            if r["path"] == LIST), key=lambda r: r["at"])
        self.assertGreater(len(throttled), 0)
        opened = throttled[0]["at"]
        self.assertEqual(throttled[0]["status"], 429)
        self.assertTrue(all(r["status"] == 429 for r in throttled
                            if r["at"] < opened + THROTTLED_FOR - 0.5), throttled)
        after = [r for r in throttled if r["at"] >= opened + THROTTLED_FOR - 0.5]
        self.assertGreater(len(after), 0, "the throttled tenant was not asked again")
        self.assertTrue(any(r["status"] == 200 for r in after), after)
        stats = emu.stats()
        self.assertGreater(stats["throttled"], 0)
        self.assertEqual(stats["early_retries"], 0, "a request came before Retry-After passed")

        # Exactly once, after a final --once over the still world.
        self.assertEqual(c.once(timeout=180), 0, c.log_text()[-2000:])
        served, docs = ct.CollectorTest.assertExactlyOnce(self, emu, c)
        served_tenants = {v["tenant"] for v in emu.versions() if v["served"]}
        self.assertEqual(len(served_tenants), TENANTS, "every tenant's alerts were served")
        print(f"fairness: {len(log['requests'])} requests in {round(end - begin, 1)} s; "
              f"worst healthy gap {worst[0]:.2f} s (tenant {worst[1]}, bound "
              f"{INTERVAL + TOLERANCE} s); slow tenant asked {len(slow)} times, throttled "
              f"{len(throttled)} times; {served} versions, {docs} documents exactly once; "
              f"stop took {took:.1f} s")


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v", *(sys.argv[3:] or ["FairnessTest"])])
