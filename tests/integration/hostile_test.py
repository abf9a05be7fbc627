#!/usr/bin/env python3
"""`mdecollect run` against a hostile stand-in for Microsoft's APIs (hostile_api.py, written
apart from the project's emulator, from the public documentation only): ignored $orderby
with small pages, alerts stamped in the year 2100, pretty-printed JSON, absurd Retry-After
values, an @odata.nextLink naming another host, a bulk update larger than a page, a token
revoked in the middle of paging, and an API clock minutes behind or ahead of ours. And a
`graph_incidents` source against the stand-in's own Graph incidents: no nextLinks, pages
that are one instant, $expand=alerts answering 500 (the fallback), 2100, pretty JSON, a
foreign nextLink, an absurd Retry-After, a revoked token, a clock ahead; each incident
version (id, lastUpdateDateTime, read back from event.original) served with its alerts is
delivered once with max(1, alerts) documents, and every incident's latest version arrives.
Two of them found collector defects (a one-instant page hiding older versions listed after
it; the fallback's GET retried for 50 s inside the poll), fixed since; their comments say so.

Each test checks the file output against what the stand-in served and holds: every alert
version (id, lastUpdateTime) with each of its evidence documents delivered exactly once,
nothing delivered that was not served, the process alive and /health telling the truth,
and no token or client secret in any log, output, or request to another host.

Usage: hostile_test.py MDECOLLECT [unittest arguments, e.g. HostileTest.test_name]
Every wait is bounded; every process is stopped at the end, also when a test fails. Only
127.0.0.0/8 is used.
"""
import calendar
import collections
import contextlib
import glob
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

MDECOLLECT = ""
HERE = os.path.dirname(os.path.abspath(__file__))
HOSTILE = os.path.join(HERE, "hostile_api.py")
TENANT = "11111111-2222-4333-8444-555555555555"
CLIENT = "00000000-0000-4000-8000-0000000000c1"
SECRET = "Hostile-S3cret~Value.0123456789"  # the stand-in's default
TICKS = 10_000_000
YEAR_2100 = calendar.timegm((2100, 1, 1, 0, 0, 0)) * TICKS
ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z$")


def ticks(iso):
    """'2026-11-28T06:26:41.4766667Z' -> 100 ns ticks since the epoch (exact)."""
    m = ISO_RE.match(iso)
    if not m:
        raise ValueError(f"not an ISO 8601 UTC time: {iso!r}")
    whole = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)))
    return whole * TICKS + int(((m.group(7) or "") + "0000000")[:7])


def iso(t):
    if not isinstance(t, int):
        return repr(t)
    secs, frac = divmod(t, TICKS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:07d}Z"


def http(url, body=None, timeout=10):
    """(status, text) of a GET (or a POST of JSON); HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def prometheus(text):
    """Prometheus text -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def sample(items, n=5):
    items = list(items)
    return items[:n] + (["..."] if len(items) > n else [])


class HostileApi:
    """The stand-in, as its own process."""

    def __init__(self, workdir, *modes, **options):
        self.log_path = os.path.join(workdir, "hostile-api.log")
        self.log = open(self.log_path, "w")
        argv = [sys.executable, HOSTILE, "--listen", "127.0.0.1:0", "--mode", ",".join(modes)]
        for key, value in options.items():
            for v in (value if isinstance(value, list) else [value]):
                argv += ["--" + key.replace("_", "-"), str(v)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        self.url = self.proc.stdout.readline().strip() if ready else ""
        if not re.fullmatch(r"http://127\.0\.0\.1:\d+", self.url):
            self.stop()
            with open(self.log_path) as f:
                raise RuntimeError(f"the stand-in did not start: {self.url!r}\n{f.read()}")

    def get(self, what):
        status, text = http(f"{self.url}/_hostile/{what}")
        if status != 200:
            raise RuntimeError(f"/_hostile/{what}: HTTP {status}: {text[:500]}")
        return json.loads(text)

    def info(self):
        return self.get("info")

    def alerts(self):
        return self.get("alerts")["alerts"]

    def served(self):
        return self.get("served")["served"]

    def requests(self):
        return self.get("requests")["requests"]

    def foreign(self):
        return self.get("foreign")

    def tokens(self):
        return [t["token"] for t in self.get("tokens")["tokens"]]

    def add(self, new=0, update=0, **more):
        return self.add_all(new, update, **more)["added"]

    def add_all(self, new=0, update=0, touch=0, same_time=False):
        """The alerts made and the incidents moved."""
        status, text = http(f"{self.url}/_hostile/add", {"new": new, "update": update,
                                                         "touch": touch,
                                                         "same_time": same_time})
        if status != 200:
            raise RuntimeError(f"/_hostile/add: HTTP {status}: {text[:500]}")
        return json.loads(text)

    def incidents(self):
        return self.get("incidents")["incidents"]

    def incidents_served(self):
        return self.get("incidents_served")["served"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.log.close()


def source_yaml(name, api, kind="mde", tenant=TENANT, **extra):
    """One source of `kind` (mde or graph) pointed at the stand-in, paced far above what the
    tests need (the stand-in has no quota of its own)."""
    settings = {"requests_per_minute": 6000, "requests_per_hour": 100000,
                "initial_interval": "6h", "tags": f"[hostile, src-{name}]"}
    settings.update(extra)
    lines = [f"  - name: {name}", f"    type: {kind}", f"    tenant_id: {tenant}",
             f"    client_id: {CLIENT}", f"    client_secret: {SECRET}",
             f"    login_url: {api.url}", f"    api_url: {api.url}"]
    lines += [f"    {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


class Collector:
    """Writes the configuration; runs `mdecollect run` (in the background or --once)."""

    def __init__(self, workdir, sources):
        self.state = os.path.join(workdir, "state")
        self.config = os.path.join(workdir, "mdecollect.yaml")
        self.log_path = os.path.join(workdir, "mdecollect.log")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.state}\nhttp:\n  listen: 127.0.0.1:0\n"
                    f"sources:\n{sources}")
        self.proc = None
        self.log = None
        self._monitor = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MDECOLLECT, "run", "-c", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self):
        """SIGTERM; (exit code, seconds it took). SIGKILL after 15 s."""
        started = time.monotonic()
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.log.close()
        return rc, time.monotonic() - started

    def stop(self):
        if self.alive():
            self.terminate()
        elif self.log and not self.log.closed:
            self.log.close()

    def once(self, timeout=60):
        with open(self.log_path, "a") as log:
            return subprocess.run([MDECOLLECT, "run", "-c", self.config, "--once"],
                                  stdout=subprocess.DEVNULL, stderr=log,
                                  timeout=timeout).returncode

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def output_text(self):
        text = ""
        for path in sorted(glob.glob(os.path.join(self.state, "output", "*.ndjson"))):
            with open(path, errors="replace") as f:
                text += f.read()
        return text

    def documents(self):
        """Every complete line of the file output, parsed (a line being written is left)."""
        docs = []
        for line in self.output_text().split("\n")[:-1]:
            if line.strip():
                docs.append(json.loads(line))
        return docs

    def monitor(self, timeout=30):
        if self._monitor is None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._monitor is None:
                m = re.search(r"monitoring on (http://127\.0\.0\.1:\d+)", self.log_text())
                if m:
                    self._monitor = m.group(1)
                elif not self.alive():
                    break
                else:
                    time.sleep(0.1)
        if self._monitor is None:
            raise AssertionError("no 'monitoring on' line in the log (alive: %s):\n%s"
                                 % (self.alive(), self.log_text()[-3000:]))
        return self._monitor

    def health(self):
        status, text = http(self.monitor() + "/health")
        return status, json.loads(text)

    def metrics(self):
        status, text = http(self.monitor() + "/metrics")
        return prometheus(text)


def doc_key(doc):
    """(alert id, lastUpdateTime in ticks, evidence marker) of an ECS document. The marker
    is what the stand-in made unique in each evidence element (see hostile_api.markers)."""
    event = doc.get("event", {})
    md = doc.get("microsoft", {}).get("defender_endpoint", {})
    ev = md.get("evidence") or {}
    proc, file_, url = doc.get("process", {}), doc.get("file", {}), doc.get("url", {})
    if "pid" in proc:
        marker = f"Process:{proc['pid']}"
    elif file_.get("hash", {}).get("sha256"):
        marker = f"File:{file_['hash']['sha256']}"
    elif url.get("full"):
        marker = f"Url:{url['full']}"
    elif ev.get("ipAddress"):
        marker = f"Ip:{ev['ipAddress']}"
    elif ev.get("accountName"):
        marker = f"User:{ev['accountName']}"
    else:
        marker = None
    try:
        lut = ticks(md["lastUpdateTime"])
    except (KeyError, TypeError, ValueError):  # an error document, or a time rewritten
        lut = md.get("lastUpdateTime")
    return (event.get("id"), lut, marker)


class HostileTest(unittest.TestCase):
    longMessage = False  # the messages say it all

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mdec-hostile-test-")
        self.addCleanup(self.cleanup_dir)
        self.closers = []
        self.watched = None  # the collector that must stay alive while waiting
        self.addCleanup(self.stop_all)

    def stop_all(self):
        for c in reversed(self.closers):
            try:
                c.stop()
            except Exception as e:  # keep stopping the others
                print("stopping", c, "failed:", e, file=sys.stderr)

    def cleanup_dir(self):
        if os.environ.get("MDEC_KEEP_TEST_DIRS"):
            print("kept", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def api(self, *modes, **options):
        a = HostileApi(self.work, *modes, **options)
        self.closers.append(a)
        return a

    def collector(self, sources):
        c = Collector(self.work, sources)
        self.closers.append(c)
        return c

    def wait_for(self, what, predicate, timeout, detail=lambda: ""):
        deadline = time.monotonic() + timeout
        while True:
            if self.watched is not None and not self.watched.alive():
                self.fail(f"the collector exited (exit code {self.watched.proc.poll()}) while "
                          f"waiting for {what}:\n{self.watched.log_text()[-3000:]}")
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"waited {timeout} s for {what}, in vain. {detail()}")
            time.sleep(0.2)

    def documents(self, collector, tag=None):
        docs = collector.documents()
        if tag is not None:
            docs = [d for d in docs if f"src-{tag}" in d.get("tags", [])]
        return docs

    def versions(self, api, graph=False):
        """The current version of every alert the source is expected to deliver (not those
        stamped 2100: whether a collector reads those is its choice; if it does, they are
        served and checked like any other). A graph source by default asks for Defender for
        Endpoint alerts only."""
        out = {}
        for a in api.alerts():
            if a["future"] or (graph and a["serviceSource"] != "microsoftDefenderForEndpoint"):
                continue
            out[(a["id"], ticks(a["lastUpdateTime"]))] = a["markers"]
        return out

    def delivered(self, collector, keys, tag=None):
        """Predicate for wait_for: every version in `keys` has at least one document."""
        def check():
            got = {k[:2] for k in map(doc_key, self.documents(collector, tag))}
            return all(k in got for k in keys)
        return check

    def assertDelivery(self, api, collector, required=(), tenant=None, tag=None, label=""):
        """Every version served (to `tenant`) and every version in `required` is in the
        output with each of its evidence documents exactly once; nothing else is there.
        Returns (versions served, documents)."""
        label = label or "the source"
        docs = self.documents(collector, tag)
        errors = [d for d in docs if d.get("event", {}).get("kind") != "alert"]
        if errors:
            self.fail(f"{label}: {len(errors)} error documents for alerts that are valid: "
                      f"{sample([d.get('error', {}).get('message') for d in errors], 3)}")
        got = collections.Counter(map(doc_key, docs))
        served = {}
        for s in api.served():
            if tenant is not None and s["tenant"] != tenant:
                continue
            key = (s["id"], ticks(s["lastUpdateTime"]))
            if s["expanded"] or key not in served:
                served[key] = s["markers"]
        expected = dict(served)
        for key, marks in dict(required).items():
            expected.setdefault(key, marks)

        def want(key):
            return [(key[0], key[1], m) for m in (expected[key] or [None])]

        lost = [k for k in expected if any(d not in got for d in want(k))]
        never_read = [k for k in lost if k not in served]
        twice = {k: n for k, n in got.items() if n > 1}
        unknown = [k for k in got if k[:2] not in expected or k not in want(k[:2])]
        problems = []
        if lost:
            problems.append(
                f"LOST: {len(lost)} of {len(expected)} alert versions were not delivered "
                f"({len(never_read)} of them never even read from the API, "
                f"{len(lost) - len(never_read)} served but not written): "
                f"{sample((k[0], iso(k[1])) for k in lost)}")
        if twice:
            problems.append(
                f"DUPLICATED: {len(twice)} documents delivered more than once "
                f"({sum(twice.values()) - len(twice)} extra copies): "
                f"{sample((k[0], iso(k[1]), k[2], n) for k, n in twice.items())}")
        if unknown:
            problems.append(f"UNKNOWN: {len(unknown)} documents for versions or evidence never "
                            f"served: {sample((k[0], iso(k[1]), k[2]) for k in unknown)}")
        if problems:
            self.fail(f"{label}:\n" + "\n".join(problems))
        return len(served), len(docs)

    def assertNoSecretLeaked(self, api, collector, extra_texts=()):
        """Neither the client secret nor any token the stand-in issued is in the log, the
        output or the given texts; no request ever carried a token to another host; every
        request reached 127.0.0.1 under its own name."""
        tokens = api.tokens()
        self.assertGreater(len(tokens), 0, "no token was ever issued: nothing was tested")
        texts = {"the log": collector.log_text(), "the file output": collector.output_text()}
        for i, t in enumerate(extra_texts):
            texts[f"text {i}"] = t
        secrets = [("the client secret", SECRET),
                   ("the URL-encoded client secret", urllib.parse.quote(SECRET, safe=""))]
        secrets += [(f"access token #{i + 1}", t.split(".")[-1]) for i, t in enumerate(tokens)]
        for where, text in texts.items():
            for what, value in secrets:
                if value in text:  # (the message must not repeat it)
                    line = text[:text.index(value)].count("\n") + 1
                    self.fail(f"LEAKED: {what} is in {where}, line {line}")
        foreign = api.get("foreign") if api.info()["foreign_url"] else {"requests": []}
        with_token = [r for r in foreign["requests"] if r.get("authorization")
                      or any(t in r["query"] for t in tokens)]
        if with_token:
            self.fail(f"LEAKED: {len(with_token)} of {len(foreign['requests'])} requests to "
                      f"{foreign.get('url')} (another host, named by an @odata.nextLink) "
                      f"carried the bearer token, e.g. GET {with_token[0]['path']}?"
                      f"{with_token[0]['query']} with Authorization: "
                      f"{(with_token[0]['authorization'] or '')[:10]}...")
        hosts = {r["host"] for r in api.requests()}
        self.assertEqual(hosts, {api.url[len("http://"):]}, "requests under another host name")

    def once(self, collector, expect=0):
        rc = collector.once()
        self.assertEqual(rc, expect, f"mdecollect run --once exited {rc}, not {expect}:\n"
                         + collector.log_text()[-3000:])

    def stop_collector(self, collector):
        self.assertTrue(collector.alive(), "the collector died (exit code %s):\n%s"
                        % (collector.proc.poll(), collector.log_text()[-3000:]))
        rc, took = collector.terminate()
        self.assertEqual(rc, 0, "SIGTERM: exit code %d\n%s" % (rc, collector.log_text()[-2000:]))
        self.assertLess(took, 10.0, "SIGTERM must stop the collector within 10 s")

    @contextlib.contextmanager
    def running(self, collector):
        """`mdecollect run` for the block; then SIGTERM, which must stop it cleanly (not
        checked when the block failed: its failure is the one to report)."""
        collector.start()
        self.watched = collector
        try:
            yield collector
        except BaseException:
            collector.stop()
            raise
        finally:
            self.watched = None
        self.stop_collector(collector)

    def assertAlive(self, collector, after=""):
        self.assertTrue(collector.alive(), "the collector exited (exit code %s)%s:\n%s"
                        % (collector.proc.poll(), after, collector.log_text()[-3000:]))

    # -- ignored $orderby, small pages, ties ------------------------------------------------

    def paging_test(self, kind, *modes, alerts=40, tie_group=7, page_size=4, **options):
        api = self.api(*modes, alerts=alerts, tie_group=tie_group, seed=5, **options)
        c = self.collector(source_yaml("s", api, kind, page_size=page_size))
        self.once(c)
        required = self.versions(api, graph=kind == "graph")
        self.assertGreaterEqual(len(required), alerts * 0.9)
        ties = collections.Counter(k[1] for k in required)
        self.assertGreaterEqual(max(ties.values()), min(tie_group, alerts),
                                "the alert set has no tie group larger than a page")
        what = "/".join(modes) or "$orderby honoured"
        self.assertDelivery(api, c, required, label=f"{kind}, {what}, page_size {page_size}")
        self.assertNoSecretLeaked(api, c)
        return api, c

    def test_ignored_orderby_pages_out_of_order_lose_nothing(self):
        # The API ignores $orderby and answers in id order (ids unrelated to times), pages
        # of 4 and a tie group of 7.
        api, c = self.paging_test("mde", "ignore_orderby")
        counters = api.info()["counters"]
        self.assertGreater(counters["orderby_ignored"], 0, "$orderby was never ignored")
        self.assertGreater(counters["unsorted_pages"], 0,
                           "no page out of time order was served: nothing was tested")

    def test_ignored_orderby_pages_that_look_sorted_lose_nothing(self):
        # The same, but ids run in time order 4 at a time (the runs shuffled): each page of 4
        # looks sorted, the next one goes back in time. A collector that concludes from a
        # sorted-looking page that $orderby is honoured, and goes on from its last alert,
        # skips most alerts.
        api, c = self.paging_test("mde", "ignore_orderby", sorted_runs=4)
        self.assertGreater(api.info()["counters"]["orderby_ignored"], 0,
                           "$orderby was never ignored: nothing was tested")

    def test_graph_ignored_orderby_pages_that_look_sorted_lose_nothing(self):
        api, c = self.paging_test("graph", "ignore_orderby", sorted_runs=4)
        self.assertGreater(api.info()["counters"]["unordered_results"], 0,
                           "every answer was in time order: nothing was tested")

    def test_bulk_update_ties_larger_than_a_page(self):
        # 24 of 30 alerts share one lastUpdateTime (a bulk update): a window that cannot be
        # split is still full and has to be paged.
        self.paging_test("mde", alerts=30, tie_group=24)

    def test_graph_bulk_update_ties_larger_than_a_page(self):
        self.paging_test("graph", alerts=30, tie_group=24)

    # -- an alert from the year 2100 ----------------------------------------------------------

    def test_alert_from_2100_does_not_freeze_collection(self):
        # Two alerts stamped 2100-01-01T00:00:00Z (bad data, a skewed clock). Alerts that
        # change or appear afterwards must still arrive.
        api = self.api("future", alerts=40, seed=6)
        self.assertEqual(sum(a["future"] for a in api.alerts()), 2)
        c = self.collector(source_yaml("s", api, interval="1s", page_size=100))
        with self.running(c):
            first = self.versions(api)
            self.wait_for("the first poll to deliver the alerts that exist",
                          self.delivered(c, first), 30, lambda: c.log_text()[-1500:])
            added = api.add(new=5, update=3)
            added_at = time.time()
            later = {(a["id"], ticks(a["lastUpdateTime"])): a["markers"] for a in added}

            def detail():
                polls = [r for r in api.requests() if r["kind"] == "mde" and r["t"] > added_at]
                return (f"LOST: {len(polls)} API requests since they were made, all asking "
                        f"{sample({r['params'].get('$filter') for r in polls}, 3)}; "
                        f"/health: {c.health()[1].get('sources')}")
            self.wait_for(f"the {len(later)} alert versions made after the 2100 alerts were "
                          f"read", self.delivered(c, later), 20, detail)
        self.assertDelivery(api, c, self.versions(api), label="with alerts stamped 2100")
        self.assertNoSecretLeaked(api, c)

    # -- pretty-printed JSON ------------------------------------------------------------------

    def pretty_test(self, kind):
        # Valid JSON with "key": "value" spacing and indentation. The watermark must move:
        # later polls ask from watermark - late_arrival_window, and nothing is delivered twice.
        field = "lastUpdateDateTime" if kind == "graph" else "lastUpdateTime"
        api = self.api("pretty", alerts=40, seed=7)
        c = self.collector(source_yaml("s", api, kind, interval="1s", page_size=100,
                                       late_arrival_window="1m"))
        with self.running(c):
            required = self.versions(api, graph=kind == "graph")
            self.wait_for("the first poll's documents", self.delivered(c, required), 30,
                          lambda: c.log_text()[-1500:])
            newest = max(k[1] for k in required)
            settled = time.time() + 1.5  # the first poll is surely over by then

            def later():
                return [r for r in api.requests() if r["kind"] == kind and r["t"] > settled
                        and r.get("status") == 200]
            self.wait_for("three more polls", lambda: len(later()) >= 3, 20,
                          lambda: c.log_text()[-1500:])
            floor = newest - 62 * TICKS  # watermark - late_arrival_window, 2 s of slack
            stale = []
            for r in later():
                m = re.search(field + r" ge (\S+)", r["params"].get("$filter", ""))
                self.assertIsNotNone(m, f"a request without '{field} ge': {r['params']}")
                if ticks(m.group(1)) < floor:
                    stale.append(m.group(1))
            reread = sum(r.get("served", 0) for r in later())
            self.assertFalse(
                stale,
                f"WATERMARK STUCK: {len(stale)} of {len(later())} later requests still ask from "
                f"before {iso(floor)} (the newest alert {iso(newest)} minus "
                f"late_arrival_window 1m): every poll re-reads everything "
                f"({reread} alert versions served again to those requests; they ask from "
                f"{sample(stale, 2)})")
            status, health = c.health()
            source = health["sources"]["s"]
            self.assertIn("watermark", source, f"no watermark in /health: {health}")
            self.assertLess(abs(ticks(source["watermark"][:19] + "Z") - newest), 2 * TICKS,
                            f"/health's watermark is not the newest lastUpdateTime delivered "
                            f"({iso(newest)}): {source}")
            lag = c.metrics().get('mdecollect_source_watermark_lag_seconds{source="s"}')
            self.assertIsNotNone(lag, "no mdecollect_source_watermark_lag_seconds on /metrics")
            age = time.time() - newest / TICKS
            self.assertLess(abs(lag - age), 60,
                            f"watermark lag {lag} s, but the newest alert is {age:.0f} s old")
            texts = [http(c.monitor() + "/metrics")[1], http(c.monitor() + "/health")[1]]
        self.assertDelivery(api, c, required, label=f"{kind}, pretty JSON")
        self.assertNoSecretLeaked(api, c, texts)

    def test_pretty_json_moves_the_watermark(self):
        self.pretty_test("mde")

    def test_graph_pretty_json_moves_the_watermark(self):
        self.pretty_test("graph")

    # -- Retry-After --------------------------------------------------------------------------

    def absurd_wait_test(self, kind):
        # The first API request is answered 429 with a Retry-After beyond reason. The source
        # waits (the collector bounds the wait, at most an hour): the process stays up,
        # /health answers and says the source is degraded, throttled; it does not hammer
        # the API; SIGTERM still stops it at once. A second source ("steady", told
        # 'Retry-After: 1' once) collects beside it.
        tenant = f"{kind}.onmicrosoft.com"
        steady = "steady.onmicrosoft.com"
        api = self.api("absurd_retry_after", alerts=30, seed=8,
                       retry_after_for=[f"{tenant}={kind}", f"{steady}=1"])
        c = self.collector(source_yaml("s", api, tenant=tenant, interval="1s", page_size=100)
                           + source_yaml("steady", api, tenant=steady, interval="1s",
                                         page_size=100))
        with self.running(c):
            url = c.monitor()
            value = self.wait_for(f"the 429 ({kind})", lambda: next(
                (r["retry_after"] for r in api.requests()
                 if r.get("status") == 429 and r["tenant"] == tenant), None), 20,
                lambda: c.log_text()[-1500:])
            after = f" after 'Retry-After: {value}'"

            def throttled():
                self.assertAlive(c, after)
                s = c.health()[1]["sources"]["s"]
                return s.get("state") == "degraded" and "throttl" in s.get("reason", "")
            def detail():
                status, health = c.health()
                lines = [line for line in c.log_text().splitlines()
                         if "source s " in line or "[source.s]" in line]
                return (f"/health (HTTP {status}, status {health.get('status')!r}) says source "
                        f"s is {health['sources']['s']}; the log about it: {lines[-5:]}")
            self.wait_for(f"/health to say the source is throttled{after}", throttled, 10, detail)
            required = self.versions(api)

            def steady_done():
                self.assertAlive(c, after)
                return self.delivered(c, required, tag="steady")()
            self.wait_for("the steady source to deliver everything beside it", steady_done, 25,
                          lambda: f"/health: {c.health()}")
            time.sleep(2)
            self.assertAlive(c, after)
            status, health = c.health()
            self.assertEqual(status, 200, f"throttling is not a failure: {health}")
            self.assertEqual(health["status"], "degraded", health)
            s = health["sources"]["s"]
            self.assertEqual(s["state"], "degraded", f"{after}, 3 s later: {s}")
            self.assertIn("throttl", s.get("reason", ""), f"{after}, 3 s later: {s}")
            n = sum(1 for r in api.requests() if r["kind"] == "mde" and r["tenant"] == tenant)
            self.assertLessEqual(n, 3, f"{n} API requests{after}: it does not wait")
            m = c.metrics()
            self.assertGreaterEqual(m.get('mdecollect_source_throttled_total{source="s"}', 0), 1,
                                    "mdecollect_source_throttled_total")
            texts = [http(url + "/metrics")[1], http(url + "/health")[1]]
        self.assertDelivery(api, c, (), tenant=tenant, tag="s", label=f"source{after}")
        self.assertDelivery(api, c, required, tenant=steady, tag="steady",
                            label="the steady source")
        self.assertNoSecretLeaked(api, c, texts)

    def test_retry_after_of_twenty_digits_keeps_the_source_alive_and_reported(self):
        self.absurd_wait_test("huge")        # Retry-After: 99999999999999999999

    def test_retry_after_in_the_year_9999_keeps_the_source_alive_and_reported(self):
        self.absurd_wait_test("date9999")    # Retry-After: Fri, 31 Dec 9999 23:59:59 GMT

    def test_retry_after_negative_or_junk_is_survived_and_nothing_is_lost(self):
        # Retry-After: -30 and "soon, maybe; try later" say nothing usable: the source backs
        # off as without one and goes on; everything arrives.
        kinds = {"negative": "negative", "junk": "junk"}
        tenants = {name: f"{name}.onmicrosoft.com" for name in kinds}
        api = self.api("absurd_retry_after", alerts=30, seed=8,
                       retry_after_for=[f"{tenants[n]}={k}" for n, k in kinds.items()])
        c = self.collector("".join(source_yaml(n, api, tenant=tenants[n], interval="1s",
                                               page_size=100) for n in kinds))
        with self.running(c):
            c.monitor()

            def answered():
                return {r["tenant"]: r["retry_after"] for r in api.requests()
                        if r.get("status") == 429}
            self.wait_for("a 429 to each source", lambda: len(answered()) == 2, 20,
                          lambda: f"429s so far: {answered()}; " + c.log_text()[-1500:])
            required = self.versions(api)
            for name in kinds:
                after = f" after 'Retry-After: {answered()[tenants[name]]}'"

                def done():
                    self.assertAlive(c, after)
                    return self.delivered(c, required, tag=name)()
                self.wait_for(f"source {name} to deliver everything{after}", done, 25,
                              lambda: f"/health: {c.health()}")
            m = c.metrics()
            for name in kinds:
                self.assertGreaterEqual(
                    m.get(f'mdecollect_source_throttled_total{{source="{name}"}}', 0), 1,
                    f"source {name}: mdecollect_source_throttled_total")
        for name in kinds:
            self.assertDelivery(api, c, required, tenant=tenants[name], tag=name,
                                label=f"source {name}")
        self.assertNoSecretLeaked(api, c)

    def test_short_retry_after_is_honoured_and_nothing_is_lost(self):
        # The 2nd, 4th, then every 5th API request: 429 with Retry-After 1, or an HTTP-date
        # 2 s ahead.
        api = self.api("short_retry_after", alerts=40, seed=9, throttle_every=5)
        c = self.collector(source_yaml("s", api, page_size=10))
        self.once(c)
        values = [r["retry_after"] for r in api.requests() if r.get("status") == 429]
        self.assertIn("1", values, "no 'Retry-After: 1' was served: nothing was tested")
        self.assertTrue(any(v.endswith("GMT") for v in values),
                        "no HTTP-date Retry-After was served: nothing was tested")
        early = [(r["api_seq"], r.get("since_last_429")) for r in api.requests() if r.get("early")]
        self.assertFalse(early, f"{len(early)} requests came before Retry-After passed "
                                f"(request, seconds after the 429): {sample(early)}")
        self.assertDelivery(api, c, self.versions(api), label="throttled with short Retry-After")
        self.assertNoSecretLeaked(api, c)

    # -- @odata.nextLink to another host --------------------------------------------------------

    def test_graph_foreign_next_link_gets_no_token(self):
        # Graph's nextLink names http://127.0.0.2:PORT/... (it asks for a token when it gets
        # none, and serves pages to one). The token must never go there: the collector
        # refuses the link, says so in its log, and /health shows the source is not ok.
        api = self.api("foreign_next_link", alerts=40, seed=10)
        foreign = api.info()["foreign_url"]
        self.assertTrue(foreign.startswith("http://127.0.0.2:"), foreign)
        c = self.collector(source_yaml("s", api, "graph", interval="1s", page_size=4))
        with self.running(c):
            c.monitor()
            self.wait_for("a foreign nextLink to be served",
                          lambda: api.info()["counters"]["foreign_links"] > 0, 20,
                          lambda: c.log_text()[-1500:])
            # Time for a few polls: for the token to leak, or for /health to tell.
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                if c.health()[1]["sources"]["s"]["state"] in ("degraded", "failing"):
                    break
                time.sleep(0.2)
            self.assertNoSecretLeaked(api, c)
            status, health = c.health()
            self.assertIn(health["sources"]["s"]["state"], ("degraded", "failing"),
                          f"/health says the source is fine while its nextLink points to "
                          f"{foreign} ({len(api.foreign()['requests'])} requests went there): "
                          f"{health}")
            self.assertNotEqual(health["status"], "ok", health)
            self.assertAlive(c)
        complaints = [line for line in c.log_text().splitlines()
                      if "127.0.0.2" in line and re.search(r"\b(warn|error)", line, re.I)]
        self.assertTrue(complaints, "no warning or error in the log names the foreign host "
                                    "127.0.0.2:\n" + c.log_text()[-2000:])
        self.assertDelivery(api, c, (), label="graph with a foreign nextLink")

    def test_mde_foreign_next_link_gets_no_token(self):
        # The Defender API's full pages carry a nextLink to 127.0.0.2. The collector need not
        # follow it (windows and $skip page without it), but must never send it the token.
        api = self.api("foreign_next_link", alerts=40, seed=11)
        c = self.collector(source_yaml("s", api, page_size=4))
        rc = c.once()
        self.assertGreater(api.info()["counters"]["foreign_links"], 0,
                           "no foreign nextLink was served: nothing was tested")
        self.assertNoSecretLeaked(api, c)
        if rc == 0:
            self.assertDelivery(api, c, self.versions(api), label="mde with a foreign nextLink")
        else:
            self.assertTrue(any("127.0.0.2" in line for line in c.log_text().splitlines()),
                            f"--once exited {rc} without naming the foreign host:\n"
                            + c.log_text()[-2000:])
            self.assertDelivery(api, c, (), label="mde with a foreign nextLink")

    # -- a token revoked in the middle of paging -------------------------------------------------

    def revoke_test(self, kind):
        api = self.api("revoke_401", alerts=40, seed=12, revoke_after=3)
        c = self.collector(source_yaml("s", api, kind, page_size=4))
        self.once(c)
        reqs = api.requests()
        refused = [r for r in reqs if r.get("status") == 401]
        granted = [r for r in reqs if r["kind"] == "token" and r["status"] == 200]
        self.assertEqual(api.info()["revocations"], 1, "the token was never revoked")
        self.assertGreaterEqual(len(refused), 1, "no request met the revoked token")
        self.assertGreaterEqual(len(granted), 2, "no new token was fetched after the 401")
        self.assertLessEqual(len(refused), 3, f"{len(refused)} requests with a revoked token")
        self.assertDelivery(api, c, self.versions(api, graph=kind == "graph"),
                            label=f"{kind}, token revoked mid-paging")
        self.assertNoSecretLeaked(api, c)

    def test_token_revoked_mid_paging(self):
        self.revoke_test("mde")

    def test_graph_token_revoked_mid_paging(self):
        self.revoke_test("graph")

    # -- the API's clock -------------------------------------------------------------------------

    def clock_test(self, mode):
        # The API's clock (Date header, alert times) 7 minutes off ours. Alerts made "now" on
        # its clock must arrive promptly, and the lag is measured on its clock.
        api = self.api(mode, alerts=40, seed=13, clock_skew=420)
        skew = api.info()["skew_seconds"]
        self.assertEqual(abs(skew), 420)
        c = self.collector(source_yaml("s", api, interval="1s", page_size=100))
        with self.running(c):
            first = self.versions(api)
            self.wait_for("the first poll's documents", self.delivered(c, first), 30,
                          lambda: c.log_text()[-1500:])
            added = {(a["id"], ticks(a["lastUpdateTime"])): a["markers"]
                     for a in api.add(new=4, update=2)}
            self.wait_for(f"{len(added)} alert versions stamped now on an API clock "
                          f"{skew:+.0f} s off ours", self.delivered(c, added), 20,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1000:])
            newest = max(k[1] for k in added) / TICKS
            if skew > 0:
                self.assertGreater(newest, time.time() + 300,
                                   "the alerts made now should be stamped in our future")
            else:
                self.assertLess(newest, time.time() - 300,
                                "the alerts made now should be stamped minutes in our past")
            lag = c.metrics().get('mdecollect_source_watermark_lag_seconds{source="s"}')
            api_age = time.time() + skew - newest
            self.assertIsNotNone(lag, "no watermark lag on /metrics")
            self.assertLess(abs(lag - api_age), 60,
                            f"watermark lag {lag:.0f} s, but on the API's clock the newest "
                            f"alert is {api_age:.0f} s old: the lag is not measured on the "
                            f"API's clock (its Date header)")
        self.assertDelivery(api, c, self.versions(api), label=f"API clock {skew:+.0f} s")
        self.assertNoSecretLeaked(api, c)

    def test_api_clock_behind(self):
        self.clock_test("clock_behind")

    def test_api_clock_ahead(self):
        self.clock_test("clock_ahead")

    # -- Graph security incidents (type: graph_incidents) ---------------------------------------
    #
    # The stand-in groups its alerts into incidents of its own. Each test holds the output
    # to what it served: every incident version (id, lastUpdateDateTime) served with its
    # alerts is delivered exactly once with max(1, alerts) documents, one per alert it had;
    # a version delivered without its alerts (the $expand fallback's give-up) is one
    # document saying so, and was served; the latest version of every incident is there;
    # nothing never served is there. The versions are read back from event.original (the
    # raw strings served), so the source runs with preserve_original_event.

    def incidents_source(self, name, api, tenant=TENANT, **extra):
        settings = {"interval": "1s", "preserve_original_event": "true"}
        settings.update(extra)
        return source_yaml(name, api, "graph_incidents", tenant, **settings)

    def incident_docs(self, collector, tag=None):
        """(incident id, lastUpdateDateTime as served) -> its documents, in file order."""
        out = collections.defaultdict(list)
        for d in self.documents(collector, tag):
            if d.get("data_stream", {}).get("dataset") != "m365_defender.incident":
                continue
            original = json.loads(d["event"]["original"])
            out[(original.get("id"), original.get("lastUpdateDateTime"))].append(d)
        return out

    def latest_incidents(self, api):
        """The current version of every incident a source must deliver (not those stamped
        2100: whether it reads them is its choice; if it does, they are checked)."""
        return {(i["id"], i["lastUpdateDateTime"]): i for i in api.incidents() if not i["future"]}

    def incidents_delivered(self, collector, keys, tag=None):
        def check():
            got = self.incident_docs(collector, tag)
            return all(k in got for k in keys)
        return check

    def assertIncidents(self, api, collector, tenant=None, tag=None, require_latest=True,
                        label="incidents"):
        """The checks above. Returns (versions served with their alerts, documents,
        versions delivered without their alerts)."""
        docs = self.incident_docs(collector, tag)
        with_alerts, any_served, ground = {}, set(), []
        for s in api.incidents_served():
            if tenant is not None and s["tenant"] != tenant:
                continue
            key = (s["id"], s["lastUpdateDateTime"])
            any_served.add(key)
            if s["alerts_included"]:
                if key in with_alerts and sorted(with_alerts[key]["alert_ids"]) != \
                        sorted(s["alert_ids"]):
                    ground.append(key)
                with_alerts.setdefault(key, s)
        self.assertFalse(ground, f"the stand-in served one version with two sets of alerts: "
                                 f"{sample(ground)}")

        def messages(d):
            m = d.get("error", {}).get("message", [])
            return [m] if isinstance(m, str) else m

        def given_up(d):
            return any("alerts could not be fetched" in m for m in messages(d))

        lost, twice, wrong, unknown, alone, bad = [], [], [], [], [], []
        for key, s in with_alerts.items():
            ds = docs.get(key, [])
            want = max(1, s["alerts"])
            if not ds:
                lost.append(key)
                continue
            if any(given_up(d) for d in ds):
                wrong.append((key, "delivered alone although served with its alerts"))
                continue
            ids = [(json.loads(d["event"]["original"]).get("alerts") or {}).get("id")
                   for d in ds]
            if len(ds) > want:
                twice.append((key, len(ds), want))
            elif len(ds) < want:
                wrong.append((key, f"{len(ds)} documents for {want} alerts"))
            elif sorted(i for i in ids if i) != sorted(s["alert_ids"]):
                wrong.append((key, f"alerts {sample(ids, 3)} != served {sample(s['alert_ids'], 3)}"))
        for key, ds in docs.items():
            if key not in any_served:
                unknown.append(key)
            elif key not in with_alerts:
                if len(ds) == 1 and given_up(ds[0]):
                    alone.append(key)
                else:
                    wrong.append((key, f"{len(ds)} documents for a version served only "
                                       f"without its alerts"))
            for d in ds:
                if d.get("event", {}).get("kind") != "alert" or \
                        (messages(d) and not given_up(d)):
                    bad.append((key, d.get("event", {}).get("kind"), messages(d)[:2]))
        missing_latest = []
        if require_latest:
            missing_latest = [k for k in self.latest_incidents(api) if k not in docs]
        problems = []
        if lost:
            problems.append(f"LOST: {len(lost)} of {len(with_alerts)} incident versions served "
                            f"with their alerts are not in the output: {sample(lost)}")
        if missing_latest:
            problems.append(f"LOST: the latest version of {len(missing_latest)} incidents is "
                            f"not in the output: {sample(missing_latest)}")
        if twice:
            problems.append(f"DUPLICATED: {len(twice)} versions have more documents than "
                            f"alerts (version, documents, alerts): {sample(twice)}")
        if wrong:
            problems.append(f"WRONG: {len(wrong)} versions: {sample(wrong, 3)}")
        if unknown:
            problems.append(f"UNKNOWN: {len(unknown)} versions in the output were never "
                            f"served: {sample(unknown)}")
        if bad:
            problems.append(f"ERRORS: {len(bad)} documents are not clean alerts: {sample(bad, 3)}")
        if problems:
            self.fail(f"{label}:\n" + "\n".join(problems))
        return len(with_alerts), sum(len(ds) for ds in docs.values()), len(alone)

    def report(self, label, figures):
        print(f"\n  {label}: {figures[0]} incident versions served with alerts, "
              f"{figures[1]} documents, {figures[2]} delivered alone", file=sys.stderr)

    def one_instant_test(self, *modes, burst_time):
        # Never a nextLink (a full page must be continued by time or $skip), and 60
        # incidents at one instant (lowest ids, earliest creation): the first pages of 10
        # are each one instant. Then a bulk change moves 30 incidents and those of 10
        # changed alerts to one new instant, and a second run reads them.
        api = self.api("no_next_link", "one_instant", *modes, alerts=120, seed=21,
                       incident_burst=60, burst_time=burst_time)
        truth = self.latest_incidents(api)
        ties = collections.Counter(k[1] for k in truth)
        self.assertGreater(max(ties.values()), 50, "no instant holds more than a page")
        c = self.collector(self.incidents_source("s", api, page_size=10))
        self.once(c)
        moved = api.add_all(new=4, update=6, touch=30, same_time=True)["incidents"]
        self.assertGreater(len(moved), 30)
        self.once(c)
        counters = api.info()["counters"]
        for name in ("one_instant_pages", "full_pages_without_next_link"):
            self.assertGreater(counters[name], 0, f"counter {name} is 0: nothing was tested")
        what = "/".join(modes + ("no nextLink", f"one instant ({burst_time})"))
        figures = self.assertIncidents(api, c, label=what)
        self.assertEqual(figures[2], 0, "versions delivered without their alerts")
        self.report(what, figures)
        self.assertNoSecretLeaked(api, c)
        return api

    def test_incidents_ignored_orderby_no_next_link_and_one_instant_larger_than_a_page(self):
        # $orderby ignored too (id order, unrelated to time); every other incident was
        # last updated after the burst's instant.
        api = self.one_instant_test("ignore_orderby", burst_time="oldest")
        counters = api.info()["counters"]
        self.assertGreater(counters["orderby_ignored"], 0, "$orderby was never ignored")
        self.assertGreater(counters["unsorted_pages"], 0, "no page out of time order")

    # A full page without a nextLink whose versions all share one lastUpdateDateTime T: T is
    # paged with `eq` and $skip, and the versions below T that the listing's order put after
    # that page are read too (the range [from, T) is listed before the window goes past T).
    # This test found the source once skipping them, losing them for good.
    def test_incidents_one_instant_page_does_not_hide_older_versions_listed_after_it(self):
        self.one_instant_test(burst_time="within")

    def test_incidents_pretty_json_and_an_incident_from_2100_do_not_freeze_the_watermark(self):
        # Pretty-printed JSON, and two incidents stamped 2100-01-01T00:00:00Z. Incidents that
        # change afterwards must still arrive, and later polls must ask from near the
        # newest real time, not from 2100 and not from the start.
        api = self.api("pretty", "future", alerts=40, seed=22)
        self.assertEqual(sum(i["future"] for i in api.incidents()), 2)
        c = self.collector(self.incidents_source("s", api, page_size=20,
                                                 late_arrival_window="1m"))
        with self.running(c):
            first = self.latest_incidents(api)
            self.wait_for("the first poll's incidents", self.incidents_delivered(c, first), 30,
                          lambda: c.log_text()[-1500:])
            moved = api.add_all(new=3, update=4, touch=3)["incidents"]
            later = {(i["id"], i["lastUpdateDateTime"]) for i in moved}
            added_at = time.time()

            def detail():
                polls = [r for r in api.requests() if r["kind"] == "incidents"
                         and r["t"] > added_at]
                return (f"LOST: {len(polls)} requests since, asking "
                        f"{sample({r['params'].get('$filter') for r in polls}, 3)}; "
                        f"/health: {c.health()[1].get('sources')}")
            self.wait_for(f"the {len(later)} incident versions changed after the 2100 ones",
                          self.incidents_delivered(c, later), 20, detail)
            newest = max(ticks(k[1]) for k in self.latest_incidents(api))
            settled = time.time() + 1.5

            def polls():
                return [r for r in api.requests() if r["kind"] == "incidents"
                        and r["t"] > settled and r.get("status") == 200
                        and "$filter" in r["params"]]
            self.wait_for("three more polls", lambda: len(polls()) >= 3, 20,
                          lambda: c.log_text()[-1500:])
            floor = newest - 62 * TICKS
            stale = []
            for r in polls():
                m = re.search(r"lastUpdateDateTime (?:ge|eq|gt) (\S+)", r["params"]["$filter"])
                self.assertIsNotNone(m, f"a listing without a lower bound: {r['params']}")
                t = ticks(re.sub(r"\.(\d+)Z$", lambda x: "." + x.group(1)[:7] + "Z",
                                 m.group(1)))
                if t < floor or t >= YEAR_2100 - 3600 * TICKS:
                    stale.append(m.group(1))
            self.assertFalse(stale, f"WATERMARK STUCK: {len(stale)} of {len(polls())} later "
                                    f"listings ask from {sample(stale, 2)}, not from near "
                                    f"{iso(newest)} - 1m")
            texts = [http(c.monitor() + "/metrics")[1], http(c.monitor() + "/health")[1]]
        figures = self.assertIncidents(api, c, label="pretty JSON, incidents stamped 2100")
        self.report("pretty + 2100", figures)
        self.assertNoSecretLeaked(api, c, texts)

    def test_incidents_expand_500_falls_back_and_loses_nothing(self):
        # A listing with $expand=alerts answers 500 when its page holds an incident of more
        # than 5 alerts (one has 8); GET /incidents/{id}?$expand=alerts works. The source
        # falls back: nothing is lost. A version that changed between its listing and its
        # own GET may go alone, saying "alerts could not be fetched"; those are counted (the
        # stand-in changes the incidents of the first 2 GETs just before answering).
        api = self.api("expand_500", alerts=40, seed=23, big_incident=8, expand_fail_above=5,
                       change_before_get=2)
        self.assertTrue(any(i["alerts"] > 5 for i in api.incidents()))
        c = self.collector(self.incidents_source("s", api, page_size=10))
        with self.running(c):
            first = self.latest_incidents(api)
            self.wait_for("the first poll's incidents", self.incidents_delivered(c, first), 30,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1500:])
            for _ in range(2):
                moved = api.add_all(new=3, update=5, touch=2)["incidents"]
                keys = {(i["id"], i["lastUpdateDateTime"]) for i in moved}
                self.wait_for(f"{len(keys)} incident versions changed meanwhile",
                              self.incidents_delivered(c, keys), 25,
                              lambda: f"/health: {c.health()[1].get('sources')}; "
                                      + c.log_text()[-1500:])
            self.wait_for("every incident's latest version",
                          lambda: self.incidents_delivered(c, self.latest_incidents(api))(), 20)
        counters = api.info()["counters"]
        self.assertGreater(counters["expand_500"], 0, "no 500 was served: nothing was tested")
        self.assertGreater(counters["incident_gets"], 0, "the source never fell back")
        figures = self.assertIncidents(api, c, label="$expand=alerts answering 500")
        self.assertLessEqual(figures[2], counters["changed_before_get"],
                             "more versions delivered without their alerts than changed "
                             "between their listing and their own GET")
        self.report("expand_500", figures)
        self.assertNoSecretLeaked(api, c)

    def test_incidents_foreign_next_link_gets_no_token(self):
        # The incidents' nextLinks name http://127.0.0.2:PORT/...: the token never goes
        # there, the poll fails, the log names the host, /health says the source is not ok.
        # What the pages before were served is delivered once (the rest cannot be read: the
        # latest versions are not required).
        api = self.api("foreign_next_link", alerts=40, seed=24)
        foreign = api.info()["foreign_url"]
        c = self.collector(self.incidents_source("s", api, page_size=5))
        with self.running(c):
            c.monitor()
            self.wait_for("a foreign nextLink to be served",
                          lambda: api.info()["counters"]["foreign_links"] > 0, 20,
                          lambda: c.log_text()[-1500:])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                if c.health()[1]["sources"]["s"]["state"] in ("degraded", "failing"):
                    break
                time.sleep(0.2)
            self.assertNoSecretLeaked(api, c)
            status, health = c.health()
            self.assertIn(health["sources"]["s"]["state"], ("degraded", "failing"),
                          f"/health says the source is fine while its nextLink points to "
                          f"{foreign} ({len(api.foreign()['requests'])} requests went there): "
                          f"{health}")
            self.assertNotEqual(health["status"], "ok", health)
            self.assertAlive(c)
        self.assertEqual([r for r in api.foreign()["requests"] if r.get("authorization")], [],
                         "a request to 127.0.0.2 carried a token")
        complaints = [line for line in c.log_text().splitlines()
                      if re.search(r"\b(warn|error)", line, re.I)
                      and ("127.0.0.2" in line or "another origin" in line)]
        self.assertTrue(complaints, "no warning or error in the log about the foreign "
                                    "nextLink:\n" + c.log_text()[-2000:])
        figures = self.assertIncidents(api, c, require_latest=False,
                                       label="incidents with a foreign nextLink")
        self.assertGreater(figures[1], 0, "not even the first page was delivered")
        self.report("foreign nextLink", figures)

    def test_incidents_absurd_retry_after_keeps_the_source_alive_and_reported(self):
        # The first request of tenant s is answered 429 'Retry-After: 99999999999999999999'.
        # The source waits (bounded by the collector), stays alive, /health says degraded,
        # throttled; it does not hammer the API. A steady source beside it (told
        # 'Retry-After: 1' once) delivers every incident.
        tenant, steady = "huge.onmicrosoft.com", "steady.onmicrosoft.com"
        api = self.api("absurd_retry_after", alerts=30, seed=25,
                       retry_after_for=[f"{tenant}=huge", f"{steady}=1"])
        c = self.collector(self.incidents_source("s", api, tenant=tenant)
                           + self.incidents_source("steady", api, tenant=steady))
        with self.running(c):
            url = c.monitor()
            self.wait_for("the 429", lambda: any(r.get("status") == 429 and r["tenant"] == tenant
                                                 for r in api.requests()), 20,
                          lambda: c.log_text()[-1500:])

            def throttled():
                self.assertAlive(c)
                s = c.health()[1]["sources"]["s"]
                return s.get("state") == "degraded" and "throttl" in s.get("reason", "")
            self.wait_for("/health to say source s is throttled", throttled, 10,
                          lambda: f"/health: {c.health()}")
            required = self.latest_incidents(api)
            self.wait_for("the steady source to deliver every incident",
                          self.incidents_delivered(c, required, tag="steady"), 25,
                          lambda: f"/health: {c.health()}")
            time.sleep(2)
            self.assertAlive(c)
            status, health = c.health()
            self.assertEqual(status, 200, f"throttling is not a failure: {health}")
            s = health["sources"]["s"]
            self.assertEqual(s["state"], "degraded", s)
            self.assertIn("throttl", s.get("reason", ""), s)
            n = sum(1 for r in api.requests()
                    if r["kind"] == "incidents" and r["tenant"] == tenant)
            self.assertLessEqual(n, 3, f"{n} API requests after an absurd Retry-After")
            texts = [http(url + "/metrics")[1], http(url + "/health")[1]]
        self.assertIncidents(api, c, tenant=tenant, tag="s", require_latest=False,
                             label="the throttled source")
        figures = self.assertIncidents(api, c, tenant=steady, tag="steady",
                                       label="the steady source")
        self.report("absurd Retry-After (steady source)", figures)
        self.assertNoSecretLeaked(api, c, texts)

    def test_incidents_paged_by_time_through_changes_lose_nothing(self):
        # No nextLink, $orderby ignored, pages of 5, while incidents change between polls
        # (some rounds move them all to one instant): every version served is delivered
        # once, and every incident's latest version arrives.
        api = self.api("no_next_link", "ignore_orderby", alerts=60, seed=26)
        c = self.collector(self.incidents_source("s", api, page_size=5,
                                                 late_arrival_window="1m"))
        with self.running(c):
            self.wait_for("the first poll's incidents",
                          self.incidents_delivered(c, self.latest_incidents(api)), 30,
                          lambda: c.log_text()[-1500:])
            for r in range(4):
                api.add_all(new=3, update=6, touch=4, same_time=r % 2 == 1)
                time.sleep(1.2)
            self.wait_for("every incident's latest version",
                          lambda: self.incidents_delivered(c, self.latest_incidents(api))(), 25,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1500:])
        counters = api.info()["counters"]
        self.assertGreater(counters["full_pages_without_next_link"], 0, "nothing was tested")
        figures = self.assertIncidents(api, c, label="paged by time through changes")
        self.report("paged by time through changes", figures)
        self.assertNoSecretLeaked(api, c)

    def test_incidents_token_revoked_mid_paging(self):
        # Every token dies after the 3rd API request: a 401 mid-paging, a new token, and
        # nothing lost or doubled.
        api = self.api("revoke_401", alerts=40, seed=27, revoke_after=3)
        c = self.collector(self.incidents_source("s", api, page_size=5))
        self.once(c)
        reqs = api.requests()
        refused = [r for r in reqs if r.get("status") == 401]
        granted = [r for r in reqs if r["kind"] == "token" and r["status"] == 200]
        self.assertEqual(api.info()["revocations"], 1, "the token was never revoked")
        self.assertGreaterEqual(len(refused), 1, "no request met the revoked token")
        self.assertGreaterEqual(len(granted), 2, "no new token was fetched after the 401")
        self.assertLessEqual(len(refused), 3, f"{len(refused)} requests with a revoked token")
        self.report("token revoked", self.assertIncidents(api, c, label="token revoked"))
        self.assertNoSecretLeaked(api, c)

    def test_incidents_api_clock_ahead(self):
        # The API's clock (Date header, incident times) 7 minutes ahead of ours: incidents
        # changed "now" on its clock arrive promptly; the lag is measured on its clock.
        api = self.api("clock_ahead", alerts=40, seed=28, clock_skew=420)
        c = self.collector(self.incidents_source("s", api, page_size=20))
        with self.running(c):
            self.wait_for("the first poll's incidents",
                          self.incidents_delivered(c, self.latest_incidents(api)), 30,
                          lambda: c.log_text()[-1500:])
            moved = api.add_all(new=3, update=3, touch=2)["incidents"]
            keys = {(i["id"], i["lastUpdateDateTime"]) for i in moved}
            self.wait_for(f"{len(keys)} incident versions stamped now on an API clock 420 s "
                          f"ahead", self.incidents_delivered(c, keys), 20,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1000:])
            newest = max(ticks(k[1]) for k in keys) / TICKS
            self.assertGreater(newest, time.time() + 300, "not stamped in our future")
            lag = c.metrics().get('mdecollect_source_watermark_lag_seconds{source="s"}')
            self.assertIsNotNone(lag, "no watermark lag on /metrics")
            api_age = time.time() + 420 - newest
            self.assertLess(abs(lag - api_age), 60,
                            f"watermark lag {lag:.0f} s, but on the API's clock the newest "
                            f"incident is {api_age:.0f} s old")
        self.report("clock ahead", self.assertIncidents(api, c, label="API clock +420 s"))
        self.assertNoSecretLeaked(api, c)

    # The fallback's GET of one incident is tried three times (not the client's eight, about
    # 50 s, which once held the page and every later one inside the poll), so the version
    # goes alone after alerts_give_up_after, here within the test's 30 s.
    def test_incidents_whose_alerts_cannot_be_read_wait_then_go_alone(self):
        # $expand=alerts answers 500 for the page of the incident with 8 alerts, and so does
        # its own GET: the version waits (the poll fails, /health says so) for
        # alerts_give_up_after (3 s), then goes alone, as one document saying "alerts could
        # not be fetched: HTTP 500". Every other incident arrives with its alerts.
        api = self.api("expand_500", "get_500", alerts=40, seed=29, big_incident=8,
                       expand_fail_above=5)
        big = [(i["id"], i["lastUpdateDateTime"]) for i in api.incidents() if i["alerts"] > 5]
        self.assertEqual(len(big), 1)
        c = self.collector(self.incidents_source("s", api, page_size=10,
                                                 alerts_give_up_after="3s"))
        with self.running(c):
            self.wait_for("every incident, the one without its alerts too",
                          self.incidents_delivered(c, self.latest_incidents(api)), 30,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1500:])
            moved = api.add_all(new=2, update=3)["incidents"]
            keys = {(i["id"], i["lastUpdateDateTime"]) for i in moved}
            self.wait_for("the versions made afterwards", self.incidents_delivered(c, keys), 20,
                          lambda: f"/health: {c.health()[1].get('sources')}; "
                                  + c.log_text()[-1500:])
        counters = api.info()["counters"]
        self.assertGreater(counters["get_500"], 0, "no GET answered 500: nothing was tested")
        docs = self.incident_docs(c)
        self.assertEqual(len(docs[big[0]]), 1, f"the version whose alerts could not be read: "
                                               f"{len(docs[big[0]])} documents")
        self.assertIn("alerts could not be fetched: HTTP 500",
                      " ".join(docs[big[0]][0].get("error", {}).get("message", [])))
        figures = self.assertIncidents(api, c, label="alerts that cannot be read")
        self.assertGreaterEqual(figures[2], 1)
        self.report("alerts that cannot be read", figures)
        self.assertNoSecretLeaked(api, c)


if __name__ == "__main__":
    MDECOLLECT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]])
