#!/usr/bin/env python3
"""End to end into Elasticsearch: mde-emulator -> mdecollect -> an Elasticsearch, real
processes over 127.0.0.1. By default the Elasticsearch is the project's fake
(tests/support/fake_elasticsearch.*, exact to the bulk protocol); with MDEC_TEST_ES_URL set
the same tests run against a real cluster (see the README).

Checked: the set of stored _ids equals the emulator's served versions x their evidences
(ids computed here independently: sha256(id 0x1F lastUpdateTime 0x1F index)[:32]), no _id
stored twice, every document Elasticsearch refused (400) is in the dead-letter file.

Usage: elasticsearch_test.py MDECOLLECT MDE_EMULATOR FAKE_ELASTICSEARCH [unittest args]
Environment for a real cluster: MDEC_TEST_ES_URL, and MDEC_TEST_ES_API_KEY or
MDEC_TEST_ES_USERNAME/MDEC_TEST_ES_PASSWORD, MDEC_TEST_ES_CA (a CA file, optional).
"""
import base64
import glob
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402

FAKE = ""
API_KEY = "test-key-id:test-key-secret"  # as Elasticsearch hands it out: id and key
REAL_URL = os.environ.get("MDEC_TEST_ES_URL", "")


def document_id(alert_id, last_update_time, index):
    data = f"{alert_id}\x1f{last_update_time}\x1f{index}".encode()
    return hashlib.sha256(data).hexdigest()[:32]


def expected_ids(versions, only_latest=False):
    """_id -> (alert id, lastUpdateTime) for every served (or latest) version's documents."""
    out = {}
    for v in versions:
        if not v["served"] or (only_latest and not v["latest"]):
            continue
        for i in range(max(1, v["evidence"])):
            out[document_id(v["id"], v["lastUpdateTime"], i)] = (v["id"], v["lastUpdateTime"])
    return out


class FakeElasticsearch:
    def __init__(self, workdir, *args):
        self.log = open(os.path.join(workdir, "fake-es.log"), "w")
        self.proc = subprocess.Popen(
            [FAKE, "--listen", "127.0.0.1:0",
             "--api-key", base64.b64encode(API_KEY.encode()).decode(), *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("the fake Elasticsearch did not start: " + repr(self.url))

    def stored(self):
        """_id -> how many times it was created (over every index)."""
        body = ct.http_json(self.url + "/_fake/stored")
        out = {}
        for ids in body["stored"].values():
            for i, n in ids.items():
                out[i] = out.get(i, 0) + n
        return out

    def dead(self):
        body = ct.http_json(self.url + "/_fake/dead")
        return {i for ids in body["dead"].values() for i in ids}

    def stop(self):
        ct.stop_process(self.proc, self.log)


class RealElasticsearch:
    """A real cluster named by the environment; what it stores is read back with _search."""

    def __init__(self):
        self.url = REAL_URL.rstrip("/")
        self.namespace = "mdectest" + str(int(time.time()))
        key = os.environ.get("MDEC_TEST_ES_API_KEY", "")
        if key:
            self.auth = "ApiKey " + (base64.b64encode(key.encode()).decode() if ":" in key else key)
        else:
            user = os.environ.get("MDEC_TEST_ES_USERNAME", "elastic")
            pw = os.environ.get("MDEC_TEST_ES_PASSWORD", "")
            self.auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": self.auth,
                                              "Content-Type": "application/json"})
        ctx = None
        if os.environ.get("MDEC_TEST_ES_CA"):
            import ssl
            ctx = ssl.create_default_context(cafile=os.environ["MDEC_TEST_ES_CA"])
        with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
            return json.load(r)

    def stored(self):
        ds = f"logs-microsoft_defender_endpoint.log-{self.namespace}"
        self.request("POST", f"/{ds}/_refresh")
        out = {}
        body = self.request("POST", f"/{ds}/_search?scroll=1m",
                            {"size": 5000, "_source": False, "query": {"match_all": {}}})
        for _ in range(10000):
            hits = body["hits"]["hits"]
            if not hits:
                break
            for h in hits:
                out[h["_id"]] = out.get(h["_id"], 0) + 1
            body = self.request("POST", "/_search/scroll",
                                {"scroll": "1m", "scroll_id": body["_scroll_id"]})
        return out

    def dead(self):
        return set()

    def stop(self):
        pass


class ElasticsearchTest(ct.WorkDirTest):
    work_prefix = "mdec-es-test-"

    def elasticsearch(self, *args):
        es = RealElasticsearch() if REAL_URL else FakeElasticsearch(self.work, *args)
        self.closers.append(es)
        return es

    def emulator(self, config):
        e = ct.Emulator(self.work, config=config)
        self.closers.append(e)
        return e

    def collector(self, es, sources_yaml, api_key=API_KEY):
        c = ct.Collector(self.work, sources_yaml)
        namespace = getattr(es, "namespace", "")
        if namespace:
            sources_yaml = sources_yaml.rstrip("\n") + f"\n    namespace: {namespace}\n"
            c = ct.Collector(self.work, sources_yaml)
        auth = f"    api_key: {api_key}\n"
        if REAL_URL and not os.environ.get("MDEC_TEST_ES_API_KEY"):
            auth = (f"    username: {os.environ.get('MDEC_TEST_ES_USERNAME', 'elastic')}\n"
                    f"    password: {os.environ.get('MDEC_TEST_ES_PASSWORD', '')}\n")
        ca = os.environ.get("MDEC_TEST_ES_CA", "") if REAL_URL else ""
        with open(c.config, "a") as f:
            f.write("outputs:\n  elasticsearch:\n"
                    f"    hosts: [{es.url}]\n{auth}"
                    "    bulk_max_docs: 300\n"
                    "    timeout: 10s\n"
                    + (f"    ssl:\n      certificate_authorities: {ca}\n" if ca else ""))
        return c

    def dead_letters(self, c):
        path = os.path.join(c.state, "dead-letter-elasticsearch.ndjson")
        if not os.path.exists(path):
            return {}
        out = {}
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                self.assertIn("error", d)
                self.assertIn("document", d)
                out[d["_id"]] = d
        return out

    def world(self, alerts=1500):
        return self.emulator(f"""
seed: 7
alerts: {alerts}
speed: 600
world:
  new_alerts_per_hour: 600
  updates_per_hour: 900
  late_fraction: 0.3
  late_max: 3m
""")

    def test_setup_then_run_delivers_every_version_once(self):
        es = self.elasticsearch("--fail-items-every", "97", "--retry-items-every", "13")
        emu = self.world()
        c = self.collector(es, ct.source_yaml("es", emu.url, page_size=500, initial_interval="48h"))
        first = subprocess.run([ct.MDECOLLECT, "setup", "-c", c.config], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(first.returncode, 0, first.stderr)
        # Both templates, whatever sources the config has.
        for name in ("mdecollect-microsoft_defender_endpoint.log",
                     "mdecollect-m365_defender.incident"):
            self.assertRegex(first.stdout, f"index template {name} (created|updated|left unchanged)")
        again = subprocess.run([ct.MDECOLLECT, "setup", "-c", c.config], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.count("left unchanged"), 2, again.stdout)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-3000:])
        expected = expected_ids(emu.versions())
        stored = es.stored()
        dead = self.dead_letters(c)
        self.assertEqual(sorted(k for k, n in stored.items() if n != 1)[:5], [])
        self.assertEqual(sorted(set(stored) - set(expected))[:5], [])
        self.assertEqual(sorted(set(expected) - set(stored) - set(dead))[:5], [])
        self.assertEqual(sorted(es.dead() - set(dead))[:5], [])
        if not REAL_URL:
            self.assertGreater(len(dead), 0)
        self.assertNotIn("test-key-secret", c.log_text())
        print(f"setup + run: {len(stored)} documents stored once, {len(dead)} dead-lettered")

    def test_crashes_during_delivery_store_each_document_once(self):
        es = self.elasticsearch("--fail-items-every", "211", "--retry-items-every", "17")
        emu = self.world(alerts=2000)
        c = self.collector(es, ct.source_yaml("crashy", emu.url, page_size=500,
                                              interval="500ms", initial_interval="48h"))
        rng = random.Random(5)
        for _ in range(20):
            c.start()
            time.sleep(rng.uniform(0.1, 1.0))
            c.kill()
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-3000:])
        versions = emu.versions()
        expected = expected_ids(versions)
        latest = expected_ids(versions, only_latest=True)
        stored = es.stored()
        dead = self.dead_letters(c)
        twice = sorted(k for k, n in stored.items() if n != 1)
        self.assertEqual(twice[:5], [], f"{len(twice)} _ids stored more than once")
        self.assertEqual(sorted(set(stored) - set(expected))[:5], [])
        missing_latest = sorted(set(latest) - set(stored) - set(dead))
        self.assertEqual(missing_latest[:5], [], f"{len(missing_latest)} latest documents missing")
        # As in the collector's crash test: only superseded versions that a killed process
        # had fetched but not committed may be gone from the API.
        lost = set(expected) - set(stored) - set(dead)
        self.assertLess(len(lost), 200)
        self.assertEqual(sorted(es.dead() - set(dead) - set(stored))[:5], [])
        print(f"crashes: 20 SIGKILLs, {len(stored)} documents stored exactly once, "
              f"{len(dead)} dead-lettered, {len(lost)} superseded documents lost")

    def test_beside_the_file_output_each_output_gets_every_document(self):
        es = self.elasticsearch("--retry-items-every", "7")
        emu = self.world(alerts=800)
        c = self.collector(es, ct.source_yaml("both", emu.url, page_size=200,
                                              initial_interval="48h", interval="500ms"))
        with open(c.config, "a") as f:
            f.write("  file:\n    enabled: true\n")
        # A few polls while the world moves, a SIGKILL in the middle, then a final one.
        c.start()
        time.sleep(2.0)
        c.kill()
        c.start()
        time.sleep(1.5)
        rc, _ = c.terminate()
        self.assertEqual(rc, 0, c.log_text()[-3000:])
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-3000:])
        stored = es.stored()
        self.assertEqual(sorted(k for k, n in stored.items() if n != 1)[:5], [])
        # The file has one line per document, and the same number of documents as the
        # cluster; nothing waits in the outbox.
        lines = sum(1 for p in glob.glob(os.path.join(c.state, "output", "*.ndjson"))
                    for _ in open(p))
        self.assertEqual(lines, len(stored))
        self.assertGreater(len(stored), 0)
        self.assertEqual(sorted(set(stored) - set(expected_ids(emu.versions())))[:5], [])
        db = sqlite3.connect(os.path.join(c.state, "state.db"))
        self.assertEqual(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0], 0)
        db.close()
        print(f"file and elasticsearch: {lines} documents each")

    @unittest.skipIf(REAL_URL, "needs the fake's scripted credentials")
    def test_a_wrong_api_key_keeps_documents_waiting_until_it_is_fixed(self):
        es = self.elasticsearch()
        emu = self.world(alerts=300)
        emu.freeze()
        c = self.collector(es, ct.source_yaml("es", emu.url, initial_interval="48h"),
                           api_key="test-key-id:Wrong-Secret-Value")
        self.assertEqual(c.once(), 1)
        log = c.log_text()
        self.assertIn("security_exception", log)
        self.assertNotIn("Wrong-Secret-Value", log)
        self.assertEqual(es.stored(), {})
        # Fixed: the documents that waited in the outbox are delivered.
        with open(c.config) as f:
            text = f.read()
        with open(c.config, "w") as f:
            f.write(text.replace("Wrong-Secret-Value", "test-key-secret"))
        self.assertEqual(c.once(), 0, c.log_text()[-3000:])
        self.assertEqual(set(es.stored()), set(expected_ids(emu.versions())))


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR, FAKE = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]])
