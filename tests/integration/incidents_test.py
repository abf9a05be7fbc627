#!/usr/bin/env python3
"""The `graph_incidents` source end to end: mde-emulator serving its world as Microsoft
Graph security incidents (alerts grouped by incidentId), `mdecollect run` collecting them.
Checked against the emulator's ground truth (/_emulator/versions?kind=incidents): every
served incident version is in the output exactly once, with one document per alert it had
(one when it had none), every incident's latest version is there, and nothing else is.
Through a busy day, through 20 SIGKILLs, with the 500-on-$expand fault, beside an alerts
source of the same app (no 429), and into the Elasticsearch stand-in (the _ids computed
here from each document's event.original, as Elastic's fingerprint processor does).

Usage: incidents_test.py MDECOLLECT MDE_EMULATOR FAKE_ELASTICSEARCH [unittest arguments]
Every wait is bounded; every process is stopped at the end.
"""
import base64
import collections
import glob
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
from collector_test import Collector, CollectorTest  # noqa: E402
import elasticsearch_test as et  # noqa: E402

ALERTS_GIVE_UP = "alerts could not be fetched"


def incidents_yaml(name, url, **extra):
    extra.setdefault("preserve_original_event", "true")
    return ct.source_yaml(name, url, **extra).replace("    type: mde\n",
                                                      "    type: graph_incidents\n")


def fingerprint(original):
    """Elastic's _id for an incident document (incidents.md §5.1), from its event.original:
    SHA-1 over 0x00 + each present value, Base64."""
    incident = json.loads(original)
    alert = incident.get("alerts")
    values = []
    if isinstance(alert, dict):
        values += [alert.get("id"), alert.get("lastUpdateDateTime")]
    values += [incident.get(k) for k in ("createdDateTime", "id", "incidentWebUrl",
                                         "lastUpdateDateTime")]
    h = hashlib.sha1()
    for v in values:
        if v is not None:
            h.update(b"\x00" + str(v).encode())
    return base64.b64encode(h.digest()).decode()


def incident_documents(state_dir):
    """(incident id, lastUpdateDateTime as served) -> its documents, in file order."""
    out = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(state_dir, "output", "*.ndjson"))):
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if d.get("data_stream", {}).get("dataset") != "m365_defender.incident":
                    continue
                original = json.loads(d["event"]["original"])
                out[(original["id"], original["lastUpdateDateTime"])].append(d)
    return out


class IncidentsTest(CollectorTest):
    def incident_versions(self, emu):
        return ct.http_json(emu.url + "/_emulator/versions?kind=incidents")["versions"]

    def assertIncidentsExactlyOnce(self, emu, state_dir, require_latest=True, lost_ok=None):
        """Each served version once with max(1, alerts) documents; a version delivered
        without its alerts (the fallback's give-up) is one document that says so. Returns
        (versions, documents, versions delivered without their alerts)."""
        versions = self.incident_versions(emu)
        docs = incident_documents(state_dir)
        served = {(v["id"], v["lastUpdateDateTime"]): v for v in versions if v["served"]}
        self.assertGreater(len(served), 0)
        extra = [k for k in docs if k not in served]
        self.assertEqual(extra[:5], [], f"{len(extra)} versions in the output never served")
        missing = [k for k in served if k not in docs]
        if lost_ok is None:
            self.assertEqual(missing[:5], [], f"{len(missing)} served versions missing")
        else:
            self.assertTrue(all(lost_ok(served[k]) for k in missing), missing[:5])
            # Incidents change with every alert: more versions are superseded than alerts.
            self.assertLess(len(missing), max(50, len(served) // 20))
        alone = 0
        for k, ds in docs.items():
            if any(ALERTS_GIVE_UP in m for d in ds for m in d.get("error", {}).get("message", [])):
                self.assertEqual(len(ds), 1, k)
                self.assertNotIn("alert", ds[0]["m365_defender"]["incident"])
                alone += 1
                continue
            self.assertEqual(len(ds), max(1, served[k]["alerts"]), k)
            alert_ids = [d["m365_defender"]["incident"].get("alert", {}).get("id") for d in ds]
            self.assertEqual(len(set(alert_ids)), len(alert_ids), f"an alert twice in {k}")
            for d in ds:
                self.assertEqual(d["event"]["kind"], "alert")
                self.assertEqual(d["data_stream"]["dataset"], "m365_defender.incident")
                self.assertEqual(d["tags"][-2:], ["forwarded", "m365_defender-incident"])
        if require_latest:
            latest = [(v["id"], v["lastUpdateDateTime"]) for v in versions if v["latest"]]
            not_there = [k for k in latest if k not in docs]
            self.assertEqual(not_there[:5], [], f"{len(not_there)} latest versions missing")
        return len(served), sum(len(d) for d in docs.values()), alone

    # The incident listing pages hold at most 50 versions and Graph allows 150 requests a
    # minute: 7,500 versions a minute at most. The worlds here stay below that (600
    # emulated seconds a real second); at 3600x a busy world outruns any client.
    def test_incidents_completeness_through_a_busy_world(self):
        emu = self.busy_world(alerts=1500, speed=600, new_per_hour=600, updates_per_hour=900)
        c = Collector(self.work, incidents_yaml("incidents", emu.url, interval="1s",
                                                initial_interval="48h"))
        self.run_for(c, 24)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        served, docs, alone = self.assertIncidentsExactlyOnce(emu, c.state)
        self.assertEqual(alone, 0)
        stats = emu.stats()
        self.assertEqual(stats["graph_throttled"], 0, "default pacing must stay inside the quota")
        self.assertGreater(served, 500)
        print(f"incidents completeness: {served} incident versions, {docs} documents, "
              f"{stats['graph_requests']} Graph requests")

    def test_incidents_crashes_at_random_instants(self):
        emu = self.busy_world(alerts=1500)
        c = Collector(self.work, incidents_yaml("crashy", emu.url, interval="500ms",
                                                initial_interval="48h"))
        rng = random.Random(20261207)
        for _ in range(20):
            c.start()
            time.sleep(rng.uniform(0.05, 0.8))
            c.kill()
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        # A version served to a process killed before it committed, and superseded before
        # the restart read it again, is gone from the API; only such versions may be missing.
        served, docs, alone = self.assertIncidentsExactlyOnce(
            emu, c.state, lost_ok=lambda v: not v["latest"])
        self.assertEqual(alone, 0)
        print(f"incident crashes: 20 SIGKILLs, {served} versions served, {docs} documents")

    def test_incidents_with_expand_failing_fall_back_and_lose_nothing(self):
        # $expand=alerts answers 500 on every page holding an incident of more than 2
        # alerts (the large-tenant failure of elastic/integrations #18144): the source
        # reads those pages without $expand, and each new incident with its alerts alone.
        # The fallback costs one request per new incident version: the quota is raised on
        # both sides so that the test's backlog takes seconds, not minutes.
        # The world changes slowly here (20x): one GET per version cannot follow a world
        # that makes versions faster than it reads them.
        emu = self.busy_world(alerts=500, speed=20, new_per_hour=300, updates_per_hour=300,
                              extra_yaml="""
quota:
  graph_per_minute: 3000
faults:
  incidents_expand_fail_above: 2
""")
        c = Collector(self.work, incidents_yaml("fallback", emu.url, interval="1s",
                                                initial_interval="48h",
                                                requests_per_minute=3000,
                                                requests_per_hour=100000))
        # Polls that run to their end while the world changes (a stop between a listing and
        # the incidents' own GETs would leave listed versions unread: the later version
        # comes, the listed one is gone from the API).
        for _ in range(4):
            self.assertEqual(c.once(), 0, c.log_text()[-2000:])
            time.sleep(1)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        served, docs, alone = self.assertIncidentsExactlyOnce(emu, c.state)
        self.assertIn("without it, and each new incident's alerts alone", c.log_text())
        # A version that changed between its listing and its own GET goes alone; few do.
        self.assertLess(alone, max(5, served // 20))
        print(f"incidents with the $expand fault: {served} versions, {docs} documents, "
              f"{alone} delivered without their alerts (changed before they were read)")

    def test_alerts_and_incidents_of_one_app_share_the_quota(self):
        # An alerts_v2 source and an incidents source with the same app in the same tenant,
        # default pacing, a busy world: Graph never answers 429, and both are complete.
        emu = self.busy_world(alerts=1500, speed=600, new_per_hour=600, updates_per_hour=900)
        alerts = ct.source_yaml("alerts", emu.url, interval="1s", initial_interval="48h",
                                page_size=100).replace("    type: mde\n", "    type: graph\n")
        c = Collector(self.work, alerts + incidents_yaml("incidents", emu.url, interval="1s",
                                                         initial_interval="48h", page_size=20))
        self.run_for(c, 24)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        stats = emu.stats()
        self.assertEqual(stats["graph_throttled"], 0, "the shared quota must never be passed")
        self.assertIn("share its quota", c.log_text())
        served, docs, _ = self.assertIncidentsExactlyOnce(emu, c.state)
        # The alerts source: every alert's latest version once, nothing twice, nothing never
        # served (an older version may have been served only inside an incident's alerts).
        alert_docs = collections.Counter()
        for path in glob.glob(os.path.join(c.state, "output", "*.ndjson")):
            with open(path) as f:
                for line in f:
                    d = json.loads(line)
                    if d["data_stream"]["dataset"] == "microsoft_defender_endpoint.log":
                        alert_docs[(d["event"]["id"],
                                    d["microsoft"]["defender_endpoint"]["lastUpdateTime"])] += 1
        alert_versions = emu.versions()
        alert_served = {(v["id"], v["lastUpdateTime"]): v for v in alert_versions if v["served"]}
        latest = [(v["id"], v["lastUpdateTime"]) for v in alert_versions if v["latest"]]
        self.assertEqual([k for k in latest if k not in alert_docs][:5], [])
        self.assertEqual([k for k in alert_docs if k not in alert_served][:5], [])
        self.assertEqual([k for k, n in alert_docs.items()
                          if n != max(1, alert_served[k]["evidence"])][:5], [])
        print(f"alerts + incidents: {len(alert_served)} alert versions, {served} incident "
              f"versions, {stats['graph_requests']} Graph requests, 0 throttled")


class IncidentsElasticsearchTest(et.ElasticsearchTest):
    def test_incidents_into_elasticsearch_with_elastic_fingerprints(self):
        # Into the stand-in beside the file output: every document once in
        # logs-m365_defender.incident-default, its _id Elastic's fingerprint of the version
        # and alert (computed here from the file output's event.original).
        es = self.elasticsearch()
        emu = self.world(alerts=1000)
        c = self.collector(es, incidents_yaml("es-incidents", emu.url, initial_interval="48h"))
        with open(c.config, "a") as f:
            f.write("  file:\n    enabled: true\n")
        setup = subprocess.run([ct.MDECOLLECT, "setup", "-c", c.config], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(setup.returncode, 0, setup.stdout + setup.stderr)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-3000:])
        docs = incident_documents(c.state)
        expected = collections.Counter(fingerprint(d["event"]["original"])
                                       for ds in docs.values() for d in ds)
        self.assertGreater(len(expected), 100)
        self.assertEqual([i for i, n in expected.items() if n != 1][:5], [],
                         "two documents of the file output with one fingerprint")
        body = ct.http_json(es.url + "/_fake/stored")["stored"]
        self.assertEqual(sorted(body), ["logs-m365_defender.incident-default"])
        stored = body["logs-m365_defender.incident-default"]
        self.assertEqual([i for i, n in stored.items() if n != 1][:5], [])
        self.assertEqual(set(stored), set(expected))
        print(f"incidents into Elasticsearch: {len(stored)} documents, each _id Elastic's "
              f"fingerprint, stored once")


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR = sys.argv[1], sys.argv[2]
    et.FAKE = sys.argv[3]
    # By name (the base classes' own tests are run by their files).
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]])
