#!/usr/bin/env python3
"""End-to-end tests of `mdecollect run` against `mde-emulator`: real processes over
127.0.0.1, the file output checked against the emulator's ground truth
(/_emulator/versions): every version the API served is in the output with all its
evidence documents exactly once, every alert's latest visible version is there, and
nothing else is.

Usage: collector_test.py MDECOLLECT MDE_EMULATOR [unittest arguments, e.g. a test name]
Every wait is bounded; every process is killed at the end.
"""
import collections
import glob
import json
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

MDECOLLECT = EMULATOR = ""
TENANT = "00000000-0000-4000-8000-000000000001"
CLIENT = "00000000-0000-4000-8000-0000000000c1"
SECRET = "emulator-secret"


def http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        return json.load(r)


def stop_process(proc, log):
    """SIGTERM, then SIGKILL after 10 s; closes the process's log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log.close()


class Emulator:
    def __init__(self, workdir, *args, config=None):
        self.log = open(os.path.join(workdir, "emulator.log"), "w")
        argv = [EMULATOR, "--listen", "127.0.0.1:0", *args]
        if config is not None:
            path = os.path.join(workdir, "emulator.yaml")
            with open(path, "w") as f:
                f.write(config)
            argv += ["--config", path]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
            self.stop()
            raise RuntimeError("the emulator did not start: " + repr(self.url))

    def versions(self):
        return http_json(self.url + "/_emulator/versions")["versions"]

    def stats(self):
        return http_json(self.url + "/_emulator/stats")

    def freeze(self):
        return http_json(self.url + "/_emulator/clock", {"frozen": True})

    def faults(self, **faults):
        return http_json(self.url + "/_emulator/faults", faults)

    def stop(self):
        stop_process(self.proc, self.log)


def source_yaml(name, url, secret=SECRET, **extra):
    lines = [
        f"  - name: {name}",
        "    type: mde",
        f"    tenant_id: {TENANT}",
        f"    client_id: {CLIENT}",
        f"    client_secret: {secret}",
        f"    login_url: {url}",
        f"    api_url: {url}",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


class Collector:
    """Writes the config; runs `mdecollect run` in the background or `--once`."""

    def __init__(self, workdir, sources_yaml):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        self.config = os.path.join(workdir, "collector.yaml")
        with open(self.config, "w") as f:
            # Any free port for the monitoring endpoint: tests run side by side.
            f.write(f"state_dir: {self.state}\nhttp:\n  listen: 127.0.0.1:0\n"
                    f"sources:\n{sources_yaml}")
        self.proc = None
        self.log_path = os.path.join(workdir, "collector.log")

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MDECOLLECT, "run", "-c", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def terminate(self):
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.log.close()
        return rc, time.monotonic() - started

    def once(self, timeout=120):
        with open(self.log_path, "a") as log:
            return subprocess.run([MDECOLLECT, "run", "-c", self.config, "--once"],
                                  stdout=subprocess.DEVNULL, stderr=log, timeout=timeout).returncode

    def documents(self):
        out = collections.Counter()
        for path in sorted(glob.glob(os.path.join(self.state, "output", "*.ndjson"))):
            with open(path) as f:
                for line in f:
                    doc = json.loads(line)
                    out[(doc["event"]["id"],
                         doc["microsoft"]["defender_endpoint"]["lastUpdateTime"])] += 1
        return out

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()


class WorkDirTest(unittest.TestCase):
    """A temporary directory per test (kept with MDEC_KEEP_TEST_DIRS) and the processes
    to stop at the end (`closers`, stopped newest first)."""
    work_prefix = "mdec-test-"

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix=self.work_prefix)
        self.closers = []

    def tearDown(self):
        for c in reversed(self.closers):
            c.stop()
        if os.environ.get("MDEC_KEEP_TEST_DIRS"):
            print("kept", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


class CollectorTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mdec-collector-test-")
        self.emulators = []

    def tearDown(self):
        for e in self.emulators:
            e.stop()
        if os.environ.get("MDEC_KEEP_TEST_DIRS"):
            print("kept", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def emulator(self, *args, config=None):
        e = Emulator(self.work, *args, config=config)
        self.emulators.append(e)
        return e

    def assertExactlyOnce(self, emulator, collector, require_latest=True):
        versions = emulator.versions()
        docs = collector.documents()
        served = {(v["id"], v["lastUpdateTime"]): v for v in versions if v["served"]}
        self.assertGreater(len(served), 0)
        missing = [k for k in served if k not in docs]
        extra = [k for k in docs if k not in served]
        wrong = [(k, docs[k], served[k]["evidence"]) for k in served
                 if k in docs and docs[k] != max(1, served[k]["evidence"])]
        self.assertEqual(missing[:5], [], f"{len(missing)} served versions missing")
        self.assertEqual(extra[:5], [], f"{len(extra)} versions in the output never served")
        self.assertEqual(wrong[:5], [], f"{len(wrong)} versions with a wrong document count")
        if require_latest:
            latest = [(v["id"], v["lastUpdateTime"]) for v in versions if v["latest"]]
            not_there = [k for k in latest if k not in docs]
            self.assertEqual(not_there[:5], [], f"{len(not_there)} latest versions missing")
        return len(served), sum(docs.values())

    def busy_world(self, extra_yaml="", alerts=3000, speed=600, new_per_hour=600,
                   updates_per_hour=900):
        # A day of alerts, then a busy tenant at `speed` emulated seconds a real second:
        # arrivals, updates (ties in lastUpdateTime: alerts of a burst share one), and 30% of
        # versions visible up to 3 minutes late.
        return self.emulator(config=f"""
seed: 11
alerts: {alerts}
speed: {speed}
world:
  new_alerts_per_hour: {new_per_hour}
  updates_per_hour: {updates_per_hour}
  late_fraction: 0.3
  late_max: 3m
{extra_yaml}""")

    def run_for(self, collector, seconds):
        collector.start()
        time.sleep(seconds)
        rc, took = collector.terminate()
        self.assertEqual(rc, 0, collector.log_text()[-2000:])
        self.assertLess(took, 10.0, "SIGTERM must stop the collector within 10 seconds")

    def test_completeness_through_a_busy_world(self):
        # 24 emulated hours in 24 real seconds with default settings (page size 1000,
        # default pacing): more than 20,000 versions.
        emu = self.busy_world(speed=3600, new_per_hour=400, updates_per_hour=500)
        c = Collector(self.work, source_yaml("busy", emu.url, interval="1s",
                                             initial_interval="48h"))
        self.run_for(c, 24)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        served, docs = self.assertExactlyOnce(emu, c)
        stats = emu.stats()
        self.assertEqual(stats["throttled"], 0, "default pacing must stay inside the quota")
        self.assertGreater(len(emu.versions()), 20000)
        print(f"completeness: {served} versions, {docs} documents, requests {stats['requests']}")

    def order_test(self, mode):
        emu = self.busy_world(f"orderby: {mode}", alerts=600, new_per_hour=300,
                              updates_per_hour=300)
        c = Collector(self.work, source_yaml(mode, emu.url, page_size=100, interval="1s",
                                             initial_interval="48h"))
        self.run_for(c, 5)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertExactlyOnce(emu, c)
        return c

    def test_many_sources_run_on_a_few_threads(self):
        # 300 tenants, a source each, on 4 workers: every source collects every version
        # once, and the process runs them on a handful of threads (a thread per source
        # would be over 300).
        n = 300
        tenants = "".join(
            f"  - {{tenant: 00000000-0000-4000-8000-{i:012d}, "
            f"client_id: 00000000-0000-4000-9000-{i:012d}, client_secret: s{i}}}\n"
            for i in range(n))
        emu = self.emulator(config="seed: 5\nalerts: 20\nhistory: 20h\n"
                            "quota: {per_minute: 1000000, per_hour: 100000000}\n"
                            "world: {new_alerts_per_hour: 0, updates_per_hour: 0, late_fraction: 0}\n"
                            "tenants:\n" + tenants)
        sources = "".join(
            f"  - {{name: t{i}, type: mde, tenant_id: 00000000-0000-4000-8000-{i:012d}, "
            f"client_id: 00000000-0000-4000-9000-{i:012d}, client_secret: s{i}, "
            f"login_url: {emu.url}, api_url: {emu.url}, interval: 60s, initial_interval: 48h}}\n"
            for i in range(n))
        collector = Collector(self.work, sources)
        with open(collector.config, "a") as f:
            f.write("workers: 4\n")
        emu.freeze()  # no version becomes visible between two tenants' polls
        collector.start()
        expected_docs = None
        threads = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.assertIsNone(collector.proc.poll(), collector.log_text()[-2000:])
            with open(f"/proc/{collector.proc.pid}/status") as f:
                threads += [int(line.split()[1]) for line in f if line.startswith("Threads:")]
            if collector.log_text().count("] poll: ") >= n:
                break
            time.sleep(0.2)
        rc, _ = collector.terminate()
        self.assertEqual(rc, 0, collector.log_text()[-2000:])
        self.assertGreaterEqual(collector.log_text().count("] poll: "), n)
        versions = emu.versions()
        served = {(v["id"], v["lastUpdateTime"]): v for v in versions if v["served"]}
        docs = collector.documents()
        self.assertEqual(set(docs), set(served))
        wrong = [k for k in served if docs[k] != n * max(1, served[k]["evidence"])]
        self.assertEqual(wrong[:5], [], f"{len(wrong)} versions not once per source")
        self.assertLessEqual(max(threads), 16, f"threads seen: {max(threads)}")
        print(f"{n} sources: {len(served)} versions once per source, {sum(docs.values())} "
              f"documents, at most {max(threads)} threads")

    def test_orderby_honoured_with_small_pages(self):
        self.order_test("honour")

    def test_orderby_ignored(self):
        self.order_test("ignore")

    def test_orderby_rejected(self):
        c = self.order_test("reject")
        self.assertIn("refused $orderby", c.log_text())

    def crash_scenario(self, emu, sources):
        """20 SIGKILLs at random instants, then a final --once: exactly once, except for
        superseded versions a killed process had fetched but not committed. Returns
        (versions delivered, versions lost)."""
        c = Collector(self.work, sources)
        rng = random.Random(20261128)
        for _ in range(20):
            c.start()
            time.sleep(rng.uniform(0.05, 0.8))
            c.kill()
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        # A version the API sent to a process killed before it committed the page, and
        # updated before the restart read it again, is gone from the API: it cannot be
        # recovered. Only such superseded versions may be missing; every latest version
        # is there, and nothing is there twice.
        versions = emu.versions()
        docs = c.documents()
        served = {(v["id"], v["lastUpdateTime"]): v for v in versions if v["served"]}
        lost = [k for k in served if k not in docs]
        self.assertTrue(all(not served[k]["latest"] for k in lost))
        self.assertLess(len(lost), 50)
        for v in versions:
            if v["latest"]:
                self.assertEqual(docs[(v["id"], v["lastUpdateTime"])], max(1, v["evidence"]))
        for k, n in docs.items():
            self.assertIn(k, served)
            self.assertEqual(n, max(1, served[k]["evidence"]), k)
        return len(docs), len(lost)

    def test_crashes_at_random_instants(self):
        emu = self.busy_world(alerts=2000)
        delivered, lost = self.crash_scenario(
            emu, source_yaml("crashy", emu.url, page_size=500, interval="500ms",
                             initial_interval="48h"))
        print(f"crashes: 20 SIGKILLs, {delivered} versions exactly once, "
              f"{lost} superseded versions lost with a killed process")

    def fault_scenario(self, make_sources, stats_prefix=""):
        """5xx, truncated bodies, dropped connections, a 429 storm and 30-second tokens for
        8 s, then a final --once: exactly once, no request before Retry-After passed.
        `stats_prefix` picks the API's counters in the emulator's stats ("" or "graph_")."""
        emu = self.busy_world("""token_lifetime: 30s
faults:
  error_rate: 0.15
  truncate_rate: 0.1
  drop_rate: 0.1
  throttle_rate: 0.3
  throttle_retry_after_s: 1
""", alerts=1500)
        c = Collector(self.work, make_sources(emu.url))
        self.run_for(c, 8)
        # The fault rolls are seeded, so whether a 429 came up depends on how many requests
        # reached them in 8 s; run a little longer (bounded) until one did.
        for _ in range(4):
            if emu.stats()[stats_prefix + "throttled"] > 0:
                break
            self.run_for(c, 4)
        emu.faults(error_rate=0, truncate_rate=0, drop_rate=0, throttle_rate=0)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertExactlyOnce(emu, c)
        stats = emu.stats()
        self.assertGreater(stats[stats_prefix + "throttled"], 0, stats)
        self.assertEqual(stats[stats_prefix + "early_retries"], 0,
                         "a request came before Retry-After passed")
        self.assertGreater(stats["tokens_issued"], 2, "tokens expire every 30 emulated seconds")

    def test_faults_are_retried(self):
        self.fault_scenario(lambda url: source_yaml("faulty", url, page_size=300,
                                                    interval="500ms", initial_interval="48h"))

    def test_a_wrong_secret_does_not_hold_back_a_good_source(self):
        emu = self.emulator("--alerts", "500", "--seed", "3")
        c = Collector(self.work,
                      source_yaml("good", emu.url, page_size=100) +
                      source_yaml("bad", emu.url, secret="not-the-secret", page_size=100))
        self.assertEqual(c.once(), 1, "a failed source makes --once exit 1")
        log = c.log_text()
        self.assertIn("AADSTS7000215", log)
        self.assertNotIn("not-the-secret", log)
        self.assertNotIn(SECRET, log)
        emu.freeze()
        self.assertExactlyOnce(emu, c, require_latest=False)

    def test_restart_resumes_and_first_run_honours_initial_interval(self):
        emu = self.emulator("--alerts", "2000", "--seed", "4", "--speed", "60")
        c = Collector(self.work, source_yaml("resume", emu.url, page_size=500,
                                             initial_interval="6h"))
        self.assertEqual(c.once(), 0)
        first = c.documents()
        self.assertGreater(len(first), 100)
        # The first run asked for the last six hours only: nothing older was served.
        versions = emu.versions()
        newest = max(v["lastUpdateTime"] for v in versions)
        served = sorted(v["lastUpdateTime"] for v in versions if v["served"])
        span_h = (time.mktime(time.strptime(newest[:19], "%Y-%m-%dT%H:%M:%S")) -
                  time.mktime(time.strptime(served[0][:19], "%Y-%m-%dT%H:%M:%S"))) / 3600
        self.assertLessEqual(span_h, 6.1)
        self.assertGreater(len([v for v in versions if not v["served"]]), 1000,
                           "the world has a day of alerts, most older than six hours")
        # Later runs resume from the watermark: they add what is new, nothing twice.
        time.sleep(2)
        self.assertEqual(c.once(), 0)
        emu.freeze()
        self.assertEqual(c.once(), 0)
        self.assertExactlyOnce(emu, c, require_latest=False)
        self.assertGreater(sum(c.documents().values()), sum(first.values()))

    def test_sigterm_lets_an_answer_on_its_way_arrive(self):
        # The tenant's API answers 3 s after each request. SIGTERM lands while the first page
        # is on its way: it is awaited (up to 5 s), committed and delivered, so the versions
        # it shows are not lost should they be superseded before the next run. A slower
        # answer would be cancelled after those 5 s (fairness_test.py stops a 20 s one).
        emu = self.emulator("--alerts", "300", "--seed", "3", config=(
            f'faults:\n  slow_tenants: {{"{TENANT}": 3s}}\n'))
        emu.freeze()
        c = Collector(self.work, source_yaml("slow", emu.url, interval="1h"))
        c.start()
        deadline = time.monotonic() + 30
        # The token is not delayed: once it is issued, the page request follows at once.
        while time.monotonic() < deadline:
            log = http_json(emu.url + "/_emulator/requests")
            if any("/oauth2/" in r["path"] for r in log["requests"]):
                break
            self.assertIsNone(c.proc.poll(), c.log_text()[-2000:])
            time.sleep(0.05)
        time.sleep(1)
        rc, took = c.terminate()
        self.assertEqual(rc, 0, c.log_text()[-2000:])
        self.assertLess(took, 10.0, "SIGTERM must stop the collector within 10 seconds")
        docs = c.documents()
        self.assertGreater(len(docs), 0, "the page on its way at SIGTERM was not delivered:\n" +
                           c.log_text()[-2000:])
        pages = [r for r in http_json(emu.url + "/_emulator/requests")["requests"]
                 if r["path"] == "GET /api/alerts"]
        self.assertEqual([r["status"] for r in pages][:1], [200], pages)
        served = {(v["id"], v["lastUpdateTime"]) for v in emu.versions() if v["served"]}
        self.assertEqual(set(docs), served)
        print(f"SIGTERM during a 3 s answer: {len(docs)} versions delivered, stopped in "
              f"{took:.1f} s")

    def test_file_source_appends_restarts_and_rotation(self):
        golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden")
        with open(os.path.join(golden, "seed-sample.input.ndjson")) as f:
            page = f.read().strip()          # one page: one alert, three evidences
        with open(os.path.join(golden, "elastic-pipeline.input.ndjson")) as f:
            alerts = [l.strip() for l in f if l.strip()]  # five alerts, one document each
        inbox = os.path.join(self.work, "inbox")
        os.makedirs(inbox)
        log = os.path.join(inbox, "alerts.ndjson")
        sources = (f"  - name: files\n    type: file\n    paths: [{inbox}/*.ndjson]\n")
        c = Collector(self.work, sources)

        def output_lines():
            out = []
            for path in sorted(glob.glob(os.path.join(c.state, "output", "*.ndjson"))):
                with open(path) as f:
                    out += [json.loads(l) for l in f]
            return out

        with open(log, "w") as f:
            f.write(page + "\n" + alerts[0] + "\n" + alerts[1][:40])  # the last line is partial
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        docs = output_lines()
        self.assertEqual(len(docs), 4)  # 3 evidences + 1 alert; the partial line waits
        self.assertTrue(all(d["log"]["file"]["path"] == log for d in docs))
        with open(log, "a") as f:
            f.write(alerts[1][40:] + "\n")
        self.assertEqual(c.once(), 0)
        self.assertEqual(len(output_lines()), 5)
        # A restart with nothing new writes nothing.
        self.assertEqual(c.once(), 0)
        self.assertEqual(len(output_lines()), 5)
        # Rotation: the file is renamed away (out of the glob) and a new one takes its place.
        os.rename(log, log + ".1")
        with open(log, "w") as f:
            f.write(alerts[2] + "\n" + "not json\n")
        self.assertEqual(c.once(), 0)
        docs = output_lines()
        self.assertEqual(len(docs), 7)
        self.assertEqual(docs[-1]["event"]["kind"], "pipeline_error")
        self.assertEqual(docs[-1]["event"]["original"], "not json")
        self.assertEqual(docs[-2]["log"]["offset"], 0)
        # Every alert line became its documents exactly once.
        # (Two of the pipeline-test alerts share an id; their devices differ.)
        keys = collections.Counter((d["event"]["id"], d["cloud"]["instance"]["id"])
                                   for d in docs if d["event"]["kind"] == "alert")
        self.assertEqual(len(keys), 4)
        self.assertEqual(sorted(keys.values()), [1, 1, 1, 3])

    def test_tls_with_a_private_ca(self):
        cert = os.path.join(self.work, "cert.pem")
        key = os.path.join(self.work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True,
                       timeout=60)
        emu = Emulator(self.work, "--alerts", "300", "--seed", "8", "--tls-cert", cert,
                       "--tls-key", key)
        self.emulators.append(emu)
        self.assertTrue(emu.url.startswith("https://127.0.0.1:"), emu.url)
        # Without the CA the certificate is refused ...
        c = Collector(self.work, source_yaml("tls", emu.url))
        self.assertEqual(c.once(), 1)
        self.assertIn("certificate", c.log_text().lower())
        # ... with it, everything arrives.
        c = Collector(self.work, source_yaml(
            "tls", emu.url, ssl="{certificate_authorities: " + cert + "}"))
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        docs = c.documents()
        self.assertGreater(len(docs), 200)

    def test_example_config_is_valid_and_hides_its_secret(self):
        example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "packaging", "mdecollect.example.yaml")
        # systemd's credentials directory, as LoadCredential= makes it.
        with open(os.path.join(self.work, "client-secret"), "w") as f:
            f.write("Example-S3cret-Value\n")
        with open(example) as f:
            text = f.read()
        path = os.path.join(self.work, "example.yaml")
        with open(path, "w") as f:
            f.write(text)
        env = dict(os.environ, MDE_TENANT_ID="tenant-1", MDE_CLIENT_ID="client-1",
                   CREDENTIALS_DIRECTORY=self.work)
        r = subprocess.run([MDECOLLECT, "check-config", "-c", path], capture_output=True,
                           text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("tenant-1", r.stdout)
        self.assertNotIn("Example-S3cret-Value", r.stdout + r.stderr)
        # It leads with Microsoft Graph: no warning about the legacy Defender API.
        self.assertIn("type: graph", r.stdout)
        self.assertNotIn("warning:", r.stderr)
        # The Elasticsearch section, uncommented, is valid too and hides its key.
        es_text = text.replace("  #elasticsearch:", "  elasticsearch:").replace(
            "  #  ", "    ").replace("/etc/mdecollect/es-ca.pem", example)
        es_path = os.path.join(self.work, "example-es.yaml")
        with open(es_path, "w") as f:
            f.write(es_text)
        r = subprocess.run([MDECOLLECT, "check-config", "-c", es_path], capture_output=True,
                           text=True, env=dict(env, ES_API_KEY="Es-Key-Id:Es-Key-S3cret"),
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("es2.example.com", r.stdout)
        self.assertIn("bulk_max_docs: 1000", r.stdout)
        self.assertNotIn("Es-Key-S3cret", r.stdout + r.stderr)
        broken = text.replace("page_size: 1000", "page_size: 0")
        with open(path, "w") as f:
            f.write(broken)
        r = subprocess.run([MDECOLLECT, "check-config", "-c", path], capture_output=True,
                           text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("page_size", r.stderr)

    # ---- A hostile API (the emulator's future_timestamps, pretty_json, foreign_next_link and
    # throttle_retry_after faults): the same completeness and crash checks, and liveness.

    def assertAlertDocumentsOnly(self, state_dir, what):
        """Every output document is an alert's (event.id and lastUpdateTime): no error
        documents of alerts the collector could not read. `what` says what was served."""
        bad = []
        for path in sorted(glob.glob(os.path.join(state_dir, "output", "*.ndjson"))):
            with open(path) as f:
                for line in f:
                    doc = json.loads(line)
                    if (doc.get("event", {}).get("kind") == "pipeline_error"
                            or "id" not in doc.get("event", {})
                            or "lastUpdateTime" not in
                            doc.get("microsoft", {}).get("defender_endpoint", {})):
                        bad.append(line[:300])
        self.assertEqual(bad[:3], [], f"{len(bad)} output documents are not alerts' documents "
                                      f"(error documents?) after {what}")

    def assertLatestDespiteFutureTimestamps(self, versions, docs):
        """Every alert's latest version is delivered: those with real times (a lastUpdateTime
        of 2100 must not carry the watermark past them) and those stamped 2100 (an alert with
        a skewed clock must still be collected)."""
        real = [(v["id"], v["lastUpdateTime"]) for v in versions
                if v["latest"] and not v["future"] and (v["id"], v["lastUpdateTime"]) not in docs]
        self.assertEqual(real[:5], [],
                         f"{len(real)} alerts' latest versions (with real times) were never "
                         "delivered: a lastUpdateTime of 2100 must not move the watermark past "
                         "the alerts that come after it")
        future = [v for v in versions
                  if v["latest"] and v["future"] and (v["id"], v["lastUpdateTime"]) not in docs]
        self.assertEqual([(v["id"], v["lastUpdateTime"]) for v in future[:5]], [],
                         f"{len(future)} alerts whose latest version is stamped 2100 were never "
                         f"delivered ({sum(v['served'] for v in future)} of them were served): "
                         "an alert with a future lastUpdateTime must still be collected")

    def assertFutureTimestampsHandled(self, emulator, collector):
        """Versions stamped 2100-01-01 were served and delivered, and did not carry the
        watermark past the alerts that came after them."""
        stats = emulator.stats()
        self.assertGreater(stats["future_versions_served"], 0,
                           "no future-stamped version was served: the test proves nothing")
        versions = emulator.versions()
        docs = collector.documents()
        future = [(v["id"], v["lastUpdateTime"]) for v in versions
                  if v["future"] and v["served"]]
        missing = [k for k in future if k not in docs]
        self.assertEqual(missing[:5], [], f"{len(missing)} of {len(future)} served "
                                          "future-stamped versions were not delivered")
        self.assertLatestDespiteFutureTimestamps(versions, docs)
        return len(future)

    def run_reading_health(self, collector, seconds, source):
        """run_for, reading /health just before SIGTERM; returns the source's health."""
        collector.start()
        try:
            url = self.monitoring_url(collector)
            time.sleep(seconds)
            health = self.wait_source_health(collector, url, source, lambda s: True, "running")
        finally:
            rc, took = collector.terminate()
        self.assertEqual(rc, 0, collector.log_text()[-2000:])
        self.assertLess(took, 10.0, "SIGTERM must stop the collector within 10 seconds")
        return health["sources"][source]

    def assertWatermarkSane(self, source_health, what):
        """The source has a watermark (it read lastUpdateTime from what it was served) and it
        is not in the future."""
        watermark = source_health.get("watermark")
        self.assertTrue(watermark, f"no watermark after {what}: the collector did not read "
                                   "lastUpdateTime from the pages, so every poll reads its "
                                   f"whole initial_interval again (health: {source_health})")
        self.assertLess(str(watermark), "2099", "the watermark followed a lastUpdateTime in "
                                                f"2100 after {what} (health: {source_health})")

    def test_completeness_under_pretty_json(self):
        emu = self.busy_world("faults:\n  pretty_json: true\n", alerts=1500)
        c = Collector(self.work, source_yaml("pretty", emu.url, page_size=300, interval="1s",
                                             initial_interval="48h"))
        health = self.run_reading_health(c, 8, "pretty")
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertGreater(emu.stats()["pretty_bodies"], 0, "no pretty-printed body was served")
        self.assertAlertDocumentsOnly(c.state, "pretty-printed JSON pages")
        served, docs = self.assertExactlyOnce(emu, c)
        self.assertWatermarkSane(health, "8 s of pretty-printed pages")
        print(f"pretty JSON: {served} versions, {docs} documents")

    def test_completeness_with_future_timestamps(self):
        emu = self.busy_world("faults:\n  future_timestamps: 0.02\n", alerts=1500)
        c = Collector(self.work, source_yaml("future", emu.url, page_size=300, interval="1s",
                                             initial_interval="48h"))
        health = self.run_reading_health(c, 10, "future")
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        future = self.assertFutureTimestampsHandled(emu, c)
        served, docs = self.assertExactlyOnce(emu, c)
        self.assertWatermarkSane(health, "10 s with versions stamped 2100")
        print(f"future timestamps: {served} versions ({future} stamped 2100), {docs} documents")

    def hostile_crash_scenario(self, make_source):
        """crash_scenario over a world with future timestamps and pretty-printed JSON; on a
        failure, first says whether the collector fell for one of them."""
        emu = self.busy_world("faults:\n  future_timestamps: 0.02\n  pretty_json: true\n",
                              alerts=2000)
        try:
            delivered, lost = self.crash_scenario(emu, make_source(emu.url))
        except (AssertionError, KeyError):
            self.assertAlertDocumentsOnly(os.path.join(self.work, "state"),
                                          "pretty-printed pages and SIGKILLs")
            docs = Collector(self.work, make_source(emu.url)).documents()
            self.assertLatestDespiteFutureTimestamps(emu.versions(), docs)
            raise
        stats = emu.stats()
        self.assertGreater(stats["pretty_bodies"], 0, "no pretty-printed body was served")
        self.assertGreater(stats["future_versions_served"], 0,
                           "no future-stamped version was served: the test proves nothing")
        return delivered, lost, stats["future_versions_served"]

    def test_crashes_with_future_timestamps_and_pretty_json(self):
        delivered, lost, future = self.hostile_crash_scenario(
            lambda url: source_yaml("crashy", url, page_size=500, interval="500ms",
                                    initial_interval="48h"))
        print(f"hostile crashes: 20 SIGKILLs, {delivered} versions exactly once ({future} "
              f"stamped 2100), {lost} superseded versions lost with a killed process")

    def monitoring_url(self, collector, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"monitoring on (http://127\.0\.0\.1:\d+)", collector.log_text())
            if m:
                return m.group(1)
            self.assertIsNone(collector.proc.poll(), collector.log_text()[-2000:])
            time.sleep(0.1)
        self.fail("no monitoring line in the log:\n" + collector.log_text()[-2000:])

    def wait_source_health(self, collector, url, source, predicate, what, timeout=30):
        """Polls /health until `predicate(source's health)`; fails if the process exits or
        /health does not answer with JSON."""
        deadline = time.monotonic() + timeout
        health = None
        while time.monotonic() < deadline:
            rc = collector.proc.poll()
            self.assertIsNone(rc, f"the collector exited ({rc}) while {what}:\n"
                              + collector.log_text()[-2000:])
            unanswered = None
            try:
                with urllib.request.urlopen(url + "/health", timeout=10) as r:
                    health = json.load(r)
            except urllib.error.HTTPError as e:  # 503 is an answer too
                health = json.loads(e.read().decode())
            except OSError as e:
                unanswered = e
            if unanswered is not None:  # no answer: did it die?
                try:
                    rc = collector.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    rc = None
                self.assertIsNone(rc, f"the collector exited ({rc}) while {what}:\n"
                                  + collector.log_text()[-2000:])
                self.fail(f"/health did not answer while {what}: {unanswered}")
            if predicate(health["sources"][source]):
                return health
            time.sleep(0.2)
        self.fail(f"/health never showed the source {what}: {health}")

    def absurd_retry_after_scenario(self, make_source, stats_prefix=""):
        """For each absurd Retry-After: a collector that has collected, then a few 429s that
        carry it. The process must live on, /health must answer and say the source is
        throttled (not ok), and SIGTERM must still stop it promptly. No waiting for the cap
        a sane collector puts on such a value."""
        emu = self.emulator("--alerts", "300", "--seed", "5", "--speed", "60")
        for i, value in enumerate(["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"]):
            # A state directory each: a saved pacing deadline must not hold back the next run.
            work = os.path.join(self.work, f"run{i}")
            os.makedirs(work)
            c = Collector(work, make_source(emu.url))
            c.start()
            try:
                url = self.monitoring_url(c)
                self.wait_source_health(c, url, "a", lambda s: s.get("last_success"),
                                        "collecting its first poll")
                before = emu.stats()
                emu.faults(throttle_rate=1, throttle_retry_after=value)
                deadline = time.monotonic() + 30
                while emu.stats()["throttled_absurd"] == before["throttled_absurd"]:
                    self.assertLess(time.monotonic(), deadline, "no request met the 429")
                    time.sleep(0.1)
                emu.faults(throttle_rate=0)
                stats = emu.stats()
                self.assertGreater(stats[stats_prefix + "throttled"],
                                   before[stats_prefix + "throttled"])
                what = f"told Retry-After: {value}"
                health = self.wait_source_health(
                    c, url, "a", lambda s: s["state"] == "degraded"
                    and "throttl" in s.get("reason", ""), what)
                self.assertNotEqual(health["status"], "ok", health)
                time.sleep(2)
                self.wait_source_health(c, url, "a", lambda s: True, what + " (2 s later)")
            finally:
                rc, took = c.terminate()
            self.assertEqual(rc, 0, f"exit code {rc} after {value!r}:\n" + c.log_text()[-2000:])
            self.assertLess(took, 10.0, "SIGTERM must stop it within 10 s, even while throttled")
        self.assertGreaterEqual(emu.stats()["throttled_absurd"], 2)

    def test_absurd_retry_after_keeps_the_collector_alive(self):
        self.absurd_retry_after_scenario(
            lambda url: source_yaml("a", url, page_size=100, interval="1s"))

    def test_negative_or_junk_retry_after_still_completes(self):
        # A share of 429s whose Retry-After means nothing ("-5", then "soon"): the collector
        # backs off its own way and ends up complete.
        emu = self.busy_world("faults:\n  throttle_rate: 0.25\n  throttle_retry_after: \"-5\"\n",
                              alerts=1000)
        c = Collector(self.work, source_yaml("junk", emu.url, page_size=200, interval="500ms",
                                             initial_interval="48h"))
        self.run_for(c, 5)
        emu.faults(throttle_retry_after="soon")
        self.run_for(c, 5)
        emu.faults(throttle_rate=0)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        served, docs = self.assertExactlyOnce(emu, c)
        stats = emu.stats()
        self.assertGreater(stats["throttled_absurd"], 0, "no 429 with a junk Retry-After came")
        print(f"junk Retry-After: {stats['throttled_absurd']} such 429s, {served} versions, "
              f"{docs} documents")


if __name__ == "__main__":
    MDECOLLECT, EMULATOR = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
