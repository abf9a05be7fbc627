#!/usr/bin/env python3
"""Running it for real, end to end over 127.0.0.1: the monitoring endpoint (/metrics,
/health), JSON logs, the request tracer and every other place a secret could leak, and
`mdecollect backfill` (with and without a running collector), checked against the
emulator's ground truth.

Usage: ops_test.py MDECOLLECT MDE_EMULATOR FAKE_ELASTICSEARCH [unittest arguments]
Every wait is bounded; every process is stopped at the end.
"""
import calendar
import glob
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
import elasticsearch_test as et  # noqa: E402
from collector_test import Collector, CollectorTest  # noqa: E402

WRONG_SECRET = "Wrong-S3cret-Value-0042"


def get(url):
    """(status, body text) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def unix(iso):
    """'2026-11-28T06:26:41.4766667Z' -> Unix seconds (whole)."""
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))


def samples(text):
    """Prometheus text -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        out[series] = float(value)
    return out


class OpsTest(CollectorTest):
    def monitor_url(self, collector, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"monitoring on (http://127\.0\.0\.1:\d+)", collector.log_text())
            if m:
                return m.group(1)
            time.sleep(0.1)
        self.fail("no monitoring line in the log:\n" + collector.log_text()[-2000:])

    def wait_health(self, url, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        health = None
        while time.monotonic() < deadline:
            status, body = get(url + "/health")
            health = (status, json.loads(body))
            if predicate(health[1]):
                return health
            time.sleep(0.2)
        self.fail(f"health never got there: {health}")

    def output_lines(self, collector):
        n = 0
        for path in glob.glob(os.path.join(collector.state, "output", "*.ndjson")):
            with open(path) as f:
                n += sum(1 for _ in f)
        return n

    def test_metrics_and_health_report_each_source(self):
        emu = self.emulator("--alerts", "400")
        c = Collector(self.work,
                      ct.source_yaml("good", emu.url, interval="1h") +
                      ct.source_yaml("bad", emu.url, secret=WRONG_SECRET, interval="1h"))
        c.start()
        try:
            url = self.monitor_url(c)
            status, health = self.wait_health(
                url, lambda h: h["sources"]["good"].get("last_success")
                and h["sources"]["bad"]["state"] == "failing")
            self.assertEqual(status, 503, health)  # a failing source
            self.assertEqual(health["status"], "failing")
            self.assertEqual(health["sources"]["good"]["state"], "collecting")
            self.assertEqual(health["sources"]["good"]["type"], "mde")
            self.assertIn("invalid_client", health["sources"]["bad"]["reason"])
            self.assertEqual(health["outputs"]["file"]["state"], "ok")
            self.assertEqual(health["outbox"]["documents"], 0)
            self.assertIn("watermark", health["sources"]["good"])

            status, text = get(url + "/metrics")
            self.assertEqual(status, 200)
            m = samples(text)
            lines = self.output_lines(c)
            self.assertGreater(lines, 0)
            self.assertEqual(
                m['mdecollect_documents_delivered_total{source="good",output="file"}'], lines)
            self.assertEqual(m['mdecollect_source_documents_produced_total{source="good"}'], lines)
            self.assertGreaterEqual(m['mdecollect_source_requests_total{source="good",status="200"}'], 1)
            self.assertGreater(m['mdecollect_source_alerts_fetched_total{source="good"}'], 0)
            self.assertEqual(m['mdecollect_source_token_refreshes_total{source="good"}'], 1)
            self.assertGreaterEqual(m['mdecollect_source_poll_failures_total{source="bad"}'], 1)
            self.assertEqual(m['mdecollect_source_state{source="bad",type="mde",state="failing"}'], 1)
            self.assertEqual(m['mdecollect_source_state{source="good",type="mde",state="collecting"}'], 1)
            self.assertGreaterEqual(m['mdecollect_log_messages_total{level="error"}'], 1)
            self.assertEqual(m["mdecollect_outbox_documents"], 0)
            self.assertIn('mdecollect_source_watermark_lag_seconds{source="good"}', m)
            self.assertNotIn('mdecollect_source_watermark_lag_seconds{source="bad"}', m)

            # One collector per state directory.
            second = subprocess.run([ct.MDECOLLECT, "run", "-c", c.config, "--once"],
                                    capture_output=True, text=True, timeout=30)
            self.assertEqual(second.returncode, 2)
            self.assertIn("another mdecollect run", second.stderr)
        finally:
            rc, took = c.terminate()
        self.assertEqual(rc, 0)

    def test_a_taken_monitoring_port_is_a_clear_error(self):
        emu = self.emulator("--alerts", "10")
        os.makedirs(os.path.join(self.work, "a"))
        first = Collector(os.path.join(self.work, "a"), ct.source_yaml("a", emu.url))
        first.start()
        try:
            port = self.monitor_url(first).rsplit(":", 1)[1]
            os.makedirs(os.path.join(self.work, "b"))
            second = Collector(os.path.join(self.work, "b"), ct.source_yaml("b", emu.url))
            with open(second.config) as f:
                text = f.read().replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}")
            with open(second.config, "w") as f:
                f.write(text)
            r = subprocess.run([ct.MDECOLLECT, "run", "-c", second.config, "--once"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"http.listen: cannot listen on 127.0.0.1:{port}", r.stderr)
        finally:
            first.terminate()

    def test_no_secret_reaches_logs_traces_metrics_or_check_output(self):
        emu = self.emulator("--alerts", "200")
        es = et.FakeElasticsearch(self.work)
        try:
            api_key_file = os.path.join(self.work, "es-api-key")
            with open(api_key_file, "w") as f:
                f.write(et.API_KEY + "\n")
            c = Collector(self.work,
                          ct.source_yaml("good", emu.url, interval="1h") +
                          ct.source_yaml("bad", emu.url, secret=WRONG_SECRET, interval="1h"))
            with open(c.config, "a") as f:
                f.write("logging:\n  format: json\n"
                        "tracing:\n  enabled: true\n  max_body_bytes: 64KiB\n"
                        f"outputs:\n  file: {{}}\n  elasticsearch:\n    hosts: [{es.url}]\n"
                        f"    api_key_file: {api_key_file}\n")
            setup = subprocess.run([ct.MDECOLLECT, "setup", "-c", c.config],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(setup.returncode, 0, setup.stderr)
            c.start()
            try:
                url = self.monitor_url(c)
                # Collected, and delivered to Elasticsearch (the outbox empty again).
                self.wait_health(url, lambda h: h["sources"]["good"].get("last_success")
                                 and h["sources"]["bad"]["state"] == "failing"
                                 and h["outputs"]["elasticsearch"]["state"] == "ok"
                                 and h["outbox"]["documents"] == 0)
                _, metrics = get(url + "/metrics")
                self.assertGreater(samples(metrics).get(
                    'mdecollect_documents_delivered_total{source="good",output="elasticsearch"}',
                    0), 0)
                _, health = get(url + "/health")
            finally:
                c.terminate()
            check_config = subprocess.run([ct.MDECOLLECT, "check-config", "-c", c.config],
                                          capture_output=True, text=True, timeout=30)
            self.assertEqual(check_config.returncode, 0, check_config.stderr)
            check = subprocess.run([ct.MDECOLLECT, "check", "-c", c.config],
                                   capture_output=True, text=True, timeout=120)
            self.assertEqual(check.returncode, 1, check.stdout)  # the bad source fails
            traces = ""
            for path in glob.glob(os.path.join(c.state, "trace", "*")):
                with open(path) as f:
                    traces += f.read()
            log = c.log_text()
        finally:
            es.stop()

        # The trace holds the token and API exchanges and the bulk requests, redacted.
        lines = [json.loads(line) for line in traces.splitlines()]
        self.assertTrue(any("/oauth2/" in t["request"]["url"] and t.get("response", {}).get(
            "status") == 200 for t in lines), "no token exchange traced")
        self.assertTrue(any("/api/alerts" in t["request"]["url"] for t in lines))
        self.assertTrue(any("/_bulk" in t["request"]["url"] for t in lines))
        for t in lines:
            for k, v in t["request"]["headers"].items():
                if k.lower() == "authorization":
                    self.assertIn(v, ("Bearer ***", "ApiKey ***"), t["request"]["url"])
        tokens = re.findall(r'\\?"access_token\\?":\s*\\?"([^"\\]*)', traces)
        self.assertGreater(len(tokens), 0, "no token response in the trace")
        self.assertEqual(set(tokens), {"***"})
        # Every log line is JSON.
        for line in log.splitlines():
            json.loads(line)
        self.assertIn("invalid_client", log)

        key_id, key = et.API_KEY.split(":")
        import base64
        encoded = base64.b64encode(et.API_KEY.encode()).decode()
        for name, text in [("log", log), ("trace", traces), ("metrics", metrics),
                           ("health", health), ("check-config", check_config.stdout +
                                                check_config.stderr),
                           ("check", check.stdout + check.stderr)]:
            for secret in (ct.SECRET, WRONG_SECRET, key, encoded):
                self.assertNotIn(secret, text, f"a secret in the {name} output")

    def backfill_world(self, per_minute=100):
        # Twenty days of alerts that stand still (no updates, no arrivals).
        return self.emulator(config=f"""
seed: 5
alerts: 600
history: 20d
quota:
  per_minute: {per_minute}
  per_hour: {per_minute * 15}
world:
  new_alerts_per_hour: 0
  updates_per_hour: 0
  late_fraction: 0
""")

    def watermark(self, collector):
        with sqlite3.connect(os.path.join(collector.state, "state.db")) as db:
            return db.execute("SELECT watermark FROM source_state WHERE source = 'a'").fetchone()[0]

    def test_backfill_without_a_running_collector(self):
        emu = self.backfill_world()
        c = Collector(self.work, ct.source_yaml("a", emu.url, initial_interval="2d"))
        first_run = time.time()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        first = sum(c.documents().values())
        wm = self.watermark(c)
        # From 14 days back; the backfill stops where the first run's range began (2 days
        # before it), so nothing is read twice.
        r = subprocess.run([ct.MDECOLLECT, "backfill", "-c", c.config, "--source", "a",
                            "--since", "14d"],
                           capture_output=True, text=True, timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("no collector is running", r.stdout)
        self.assertIn("has been collected live from", r.stdout)
        self.assertRegex(r.stdout, r"backfill 1 \[done\]: .* 48 slices")
        until = first_run  # every version up to the first run is there now
        self.assertEqual(self.watermark(c), wm)  # the live watermark did not move
        docs = c.documents()
        self.assertGreater(sum(docs.values()), first, r.stdout)
        # Every version from 14 days ago to the end of the range, against the emulator.
        versions = emu.versions()
        since = time.time() - 14 * 86400 + 60
        older = [(v["id"], v["lastUpdateTime"]) for v in versions
                 if v["latest"] and since < unix(v["lastUpdateTime"]) < until - 60]
        self.assertGreater(len(older), 100)
        missing = [k for k in older if k not in docs]
        self.assertEqual(missing[:5], [], f"{len(missing)} of {len(older)} versions missing")
        # Nothing twice, nothing never served.
        self.assertExactlyOnce(emu, c, require_latest=False)
        # Again: the range is covered by now.
        r = subprocess.run([ct.MDECOLLECT, "backfill", "-c", c.config, "--source", "a",
                            "--since", "1d"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nothing to backfill", r.stdout)
        # Usage errors.
        for args in (["--source", "nope", "--since", "1d"], ["--source", "a", "--since", "x"],
                     ["--source", "a", "--since", "1d", "--until", "2d"]):
            r = subprocess.run([ct.MDECOLLECT, "backfill", "-c", c.config, *args],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)

    def test_backfill_is_taken_up_by_the_running_collector(self):
        emu = self.backfill_world()
        c = Collector(self.work, ct.source_yaml("a", emu.url, initial_interval="2d",
                                                interval="2s"))
        started = time.time()
        c.start()
        try:
            url = self.monitor_url(c)
            self.wait_health(url, lambda h: h["sources"]["a"].get("last_success"))
            wm = self.watermark(c)
            r = subprocess.run([ct.MDECOLLECT, "backfill", "-c", c.config, "--source", "a",
                                "--since", "10d", "--until", "2d"],
                               capture_output=True, text=True, timeout=240)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("a collector (pid", r.stdout)
            self.assertRegex(r.stdout, r"backfill 1 \[done\]: .* 32 slices")
            self.assertEqual(self.watermark(c), wm)
            status, health = get(url + "/health")
            self.assertEqual(status, 200, health)
        finally:
            rc, _ = c.terminate()
        self.assertEqual(rc, 0)
        self.assertIn("backfill 1 done", c.log_text())
        self.assertExactlyOnce(emu, c, require_latest=False)
        docs = c.documents()
        versions = emu.versions()
        cutoff = time.time() - 10 * 86400 + 60
        latest = [(v["id"], v["lastUpdateTime"]) for v in versions
                  if v["latest"] and cutoff < unix(v["lastUpdateTime"]) < started - 60]
        self.assertGreater(len(latest), 100)
        missing = [k for k in latest if k not in docs]
        self.assertEqual(missing[:5], [], f"{len(missing)} of {len(latest)} versions missing")


    def test_backfill_killed_midway_goes_on_and_delivers_each_version_once(self):
        emu = self.backfill_world(per_minute=1000)
        # Small pages and a quota the emulator allows: many quick requests to kill amid.
        c = Collector(self.work, ct.source_yaml("a", emu.url, initial_interval="1d",
                                                page_size=50, requests_per_minute=1000,
                                                requests_per_hour=20000))
        first_run = time.time()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        argv = [ct.MDECOLLECT, "backfill", "-c", c.config, "--source", "a", "--since", "19d"]
        kills = 0
        for delay in (0.4, 0.8, 1.2):
            with open(os.path.join(self.work, "backfill.log"), "a") as log:
                p = subprocess.Popen(argv, stdout=log, stderr=log)
                time.sleep(delay)
                if p.poll() is None:
                    p.kill()
                    kills += 1
                p.wait(timeout=30)
        self.assertGreater(kills, 0, "the backfill ended before any kill: make it longer")
        # Once more to the end: the killed job goes on first, then this one.
        r = subprocess.run(argv, capture_output=True, text=True, timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with sqlite3.connect(os.path.join(c.state, "state.db")) as db:
            states = [row[0] for row in db.execute("SELECT state FROM backfills ORDER BY id")]
        self.assertEqual(set(states), {"done"}, states)
        docs = c.documents()
        versions = emu.versions()
        wanted = [(v["id"], v["lastUpdateTime"]) for v in versions
                  if v["latest"] and time.time() - 19 * 86400 + 60 < unix(v["lastUpdateTime"])
                  < first_run - 60]
        self.assertGreater(len(wanted), 300)
        missing = [k for k in wanted if k not in docs]
        self.assertEqual(missing[:5], [], f"{len(missing)} of {len(wanted)} versions missing")
        self.assertExactlyOnce(emu, c, require_latest=False)  # nothing twice

    def test_an_output_removed_from_the_config_no_longer_holds_the_outbox(self):
        emu = self.emulator("--alerts", "200")
        es = et.FakeElasticsearch(self.work, "--api-key", "bm90OnRoaXM=")  # refuses our key
        try:
            c = Collector(self.work, ct.source_yaml("a", emu.url))
            with open(c.config) as f:
                plain = f.read()
            with open(c.config, "a") as f:
                f.write(f"outputs:\n  file: {{}}\n  elasticsearch:\n    hosts: [{es.url}]\n"
                        f"    api_key: {et.API_KEY}\n")
            self.assertEqual(c.once(), 1)  # Elasticsearch refused: documents wait for it
            with sqlite3.connect(os.path.join(c.state, "state.db")) as db:
                waiting = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self.assertGreater(waiting, 0)
        finally:
            es.stop()
        with open(c.config, "w") as f:
            f.write(plain)  # the file output only
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertIn("output elasticsearch is no longer configured", c.log_text())
        with sqlite3.connect(os.path.join(c.state, "state.db")) as db:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT documents, bytes FROM outbox_stats").fetchone(),
                             (0, 0))
            self.assertEqual([r[0] for r in db.execute("SELECT name FROM outputs")], ["file"])
        # (The default world's oldest alerts lie at the edge of initial_interval: only what
        # was served is compared.)
        self.assertExactlyOnce(emu, c, require_latest=False)

    def test_health_says_degraded_while_throttled(self):
        # An API that allows 3 requests a minute, a collector that paces for far more, and
        # small pages: 429s come, and the source waits them out.
        emu = self.emulator(config="alerts: 300\nquota:\n  per_minute: 3\n  per_hour: 1000\n")
        c = Collector(self.work, ct.source_yaml("a", emu.url, page_size=20,
                                                requests_per_minute=1000,
                                                requests_per_hour=10000))
        c.start()
        try:
            url = self.monitor_url(c)
            status, health = self.wait_health(
                url, lambda h: "throttled" in h["sources"]["a"].get("reason", ""))
            self.assertEqual(status, 200, health)
            self.assertEqual(health["status"], "degraded")
            self.assertEqual(health["sources"]["a"]["state"], "degraded")
            m = samples(get(url + "/metrics")[1])
            self.assertGreaterEqual(m['mdecollect_source_throttled_total{source="a"}'], 1)
            self.assertGreaterEqual(m['mdecollect_source_requests_total{source="a",status="429"}'], 1)
        finally:
            rc, took = c.terminate()
        self.assertEqual(rc, 0)
        self.assertLess(took, 10.0, "SIGTERM must stop it within 10 s, even while throttled")

    def test_health_says_degraded_under_backpressure_even_within_a_poll(self):
        # Elasticsearch refuses our key, so documents stay in a tiny outbox; the first poll
        # (pages of 20) pauses after its first page until there is room.
        emu = self.emulator("--alerts", "300")
        es = et.FakeElasticsearch(self.work, "--api-key", "bm90OnRoaXM=")
        try:
            c = Collector(self.work, ct.source_yaml("a", emu.url, page_size=20))
            with open(c.config, "a") as f:
                f.write(f"max_spool_bytes: 4KiB\noutputs:\n  elasticsearch:\n"
                        f"    hosts: [{es.url}]\n    api_key: {et.API_KEY}\n")
            c.start()
            try:
                url = self.monitor_url(c)
                status, health = self.wait_health(
                    url, lambda h: "backpressure" in h["sources"]["a"].get("reason", "")
                    and h["outputs"]["elasticsearch"]["state"] == "failing")
                self.assertEqual(status, 503, health)  # the refused output
                self.assertEqual(health["sources"]["a"]["state"], "degraded")
                waiting = health["outbox"]["documents"]
                self.assertGreaterEqual(health["outbox"]["bytes"], 4096)
                time.sleep(3)  # paused: nothing more comes in
                _, later = get(url + "/health")
                self.assertEqual(json.loads(later)["outbox"]["documents"], waiting)
                # At most the pages in flight when it filled (a page is committed while the
                # next is fetched), far from the ~800 documents of the 300 alerts.
                self.assertLess(waiting, 300)
            finally:
                rc, _ = c.terminate()
            self.assertEqual(rc, 0)
        finally:
            es.stop()

if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR, et.FAKE = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]])
