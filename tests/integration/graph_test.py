#!/usr/bin/env python3
"""The `graph` source end to end: mde-emulator serving its world as Microsoft Graph
alerts_v2, `mdecollect run` collecting it into the file output. The collector's
completeness, crash and fault tests, run with a graph source; switching a source from
`type: mde` to `type: graph` under the same name; and the cross-check that the same world
collected through both APIs gives documents that agree on every field both carry.

Usage: graph_test.py MDECOLLECT MDE_EMULATOR [unittest arguments]
"""
import collections
import glob
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
from collector_test import Collector, CollectorTest  # noqa: E402

# Fields that differ by design between a document collected through /api/alerts and the
# same version collected through Graph (graph.md): what only Graph carries (kept under
# microsoft.defender_endpoint as leftovers, or as extra evidence keys), and the names the
# translation gives evidence fields that the Defender API spells otherwise.
GRAPH_ONLY_PREFIXES = (
    "microsoft.defender_endpoint.providerAlertId",
    "microsoft.defender_endpoint.serviceSource",
    "microsoft.defender_endpoint.productName",
    "microsoft.defender_endpoint.alertWebUrl",
    "microsoft.defender_endpoint.incidentWebUrl",
    "microsoft.defender_endpoint.actorDisplayName",
    "microsoft.defender_endpoint.recommendedActions",
    "microsoft.defender_endpoint.categories",
    "microsoft.defender_endpoint.systemTags",
    "microsoft.defender_endpoint.alertPolicyId",
    "microsoft.defender_endpoint.additionalData",
    "microsoft.defender_endpoint.customDetails",
    "microsoft.defender_endpoint.evidence.verdict",
    "microsoft.defender_endpoint.evidence.remediationStatus",
    "microsoft.defender_endpoint.evidence.remediationStatusDetails",
    "microsoft.defender_endpoint.evidence.roles",
    "microsoft.defender_endpoint.evidence.detailedRoles",
    "microsoft.defender_endpoint.evidence.tags",
    "microsoft.defender_endpoint.evidence.mdeDeviceId",
    "microsoft.defender_endpoint.evidence.fileDetails",
    "microsoft.defender_endpoint.evidence.userDisplayName",
    "microsoft.defender_endpoint.evidence.countryLetterCode",
    "microsoft.defender_endpoint.evidence.imageFile",
    "microsoft.defender_endpoint.evidence.parentProcessImageFile",
    "microsoft.defender_endpoint.evidence.userAccount",
    # The alert's own OData type, a leftover key like the others.
    "microsoft.defender_endpoint.@odata.type",
    # Graph's registryValueEvidence names the value; the emulator's Defender API omits it.
    "microsoft.defender_endpoint.evidence.registryValueName",
)
# Carried by the Defender API only: Graph has no automated-investigation id.
MDE_ONLY_PREFIXES = ("microsoft.defender_endpoint.investigationId",)
# Compared nowhere: when the document was made, and the collector's own fields.
NOT_COMPARED = ("@timestamp", "event.ingested", "agent.", "input.", "event.original")


def graph_yaml(name, url, **extra):
    return ct.source_yaml(name, url, **extra).replace("    type: mde\n", "    type: graph\n")


def flatten(doc, prefix=""):
    out = {}
    for k, v in doc.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def documents_by_version(collector):
    """(alert id, lastUpdateTime) -> the version's documents, flattened, in file order."""
    out = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(collector.state, "output", "*.ndjson"))):
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                out[(d["event"]["id"], d["microsoft"]["defender_endpoint"]["lastUpdateTime"])
                    ].append(flatten(d))
    return out


class GraphTest(CollectorTest):
    def test_graph_completeness_through_a_busy_world(self):
        emu = self.busy_world(speed=3600, new_per_hour=400, updates_per_hour=500)
        c = Collector(self.work, graph_yaml("busy", emu.url, interval="1s",
                                            initial_interval="48h"))
        self.run_for(c, 24)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        served, docs = self.assertExactlyOnce(emu, c)
        stats = emu.stats()
        self.assertEqual(stats["graph_throttled"], 0, "default pacing must stay inside the quota")
        self.assertGreater(stats["graph_requests"], 0)
        self.assertGreater(len(emu.versions()), 20000)
        print(f"graph completeness: {served} versions, {docs} documents, "
              f"{stats['graph_requests']} Graph requests")

    def test_graph_small_pages(self):
        emu = self.busy_world(alerts=600, new_per_hour=300, updates_per_hour=300)
        c = Collector(self.work, graph_yaml("small", emu.url, page_size=100, interval="1s",
                                            initial_interval="48h"))
        self.run_for(c, 5)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertExactlyOnce(emu, c)

    def test_graph_crashes_at_random_instants(self):
        emu = self.busy_world(alerts=2000)
        delivered, lost = self.crash_scenario(
            emu, graph_yaml("crashy", emu.url, page_size=500, interval="500ms",
                            initial_interval="48h"))
        print(f"graph crashes: 20 SIGKILLs, {delivered} versions exactly once, {lost} lost")

    def test_graph_faults_are_retried(self):
        self.fault_scenario(lambda url: graph_yaml("faulty", url, page_size=300,
                                                   interval="500ms", initial_interval="48h"),
                            stats_prefix="graph_")

    def test_switching_a_source_from_mde_to_graph_keeps_its_state(self):
        emu = self.emulator("--alerts", "1500", "--seed", "4", "--speed", "60")
        c = Collector(self.work, ct.source_yaml("tenant", emu.url, page_size=500,
                                                initial_interval="6h"))
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        first = c.documents()
        self.assertGreater(len(first), 50)
        time.sleep(2)
        # Same name, type graph: the watermark and the seen-set carry over, so the overlap
        # it reads again is not delivered twice and nothing older than six hours appears.
        with open(c.config) as f:
            text = f.read()
        with open(c.config, "w") as f:
            f.write(text.replace("    type: mde\n", "    type: graph\n"))
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertExactlyOnce(emu, c, require_latest=False)
        self.assertGreater(emu.stats()["graph_requests"], 0)
        self.assertGreaterEqual(sum(c.documents().values()), sum(first.values()))

    def test_mde_and_graph_documents_agree(self):
        emu = self.emulator("--alerts", "600", "--seed", "9")
        emu.freeze()
        os.makedirs(os.path.join(self.work, "mde-run"), exist_ok=True)
        mde = Collector(os.path.join(self.work, "mde-run"),
                        ct.source_yaml("x", emu.url, initial_interval="48h"))
        self.assertEqual(mde.once(), 0, mde.log_text()[-2000:])
        os.makedirs(os.path.join(self.work, "graph-run"), exist_ok=True)
        graph = Collector(os.path.join(self.work, "graph-run"),
                          graph_yaml("x", emu.url, initial_interval="48h"))
        self.assertEqual(graph.once(), 0, graph.log_text()[-2000:])
        a = documents_by_version(mde)
        b = documents_by_version(graph)
        self.assertEqual(set(a), set(b))
        self.assertGreater(len(a), 100)
        differing = collections.Counter()
        compared = 0
        for key in a:
            self.assertEqual(len(a[key]), len(b[key]), key)
            for da, db in zip(a[key], b[key]):
                for field in set(da) | set(db):
                    if field.startswith(NOT_COMPARED):
                        continue
                    if field not in da and field.startswith(GRAPH_ONLY_PREFIXES):
                        continue  # carried by Graph only
                    if field not in db and field.startswith(MDE_ONLY_PREFIXES):
                        continue  # carried by the Defender API only
                    compared += 1
                    if da.get(field) != db.get(field):
                        differing[field] += 1
                        if differing[field] == 1:
                            print("differs:", field, repr(da.get(field))[:80], "vs",
                                  repr(db.get(field))[:80])
        self.assertEqual(dict(differing), {},
                         "fields that differ between the two APIs' documents")
        print(f"cross-check: {len(a)} versions, {compared} field values compared, all equal")

    # ---- A hostile Graph: pretty JSON, future timestamps, foreign nextLinks, absurd
    # Retry-After (the helpers are collector_test.py's).

    def test_graph_completeness_under_pretty_json_and_future_timestamps(self):
        emu = self.busy_world("faults:\n  pretty_json: true\n  future_timestamps: 0.02\n",
                              alerts=1500)
        c = Collector(self.work, graph_yaml("hostile", emu.url, page_size=300, interval="1s",
                                            initial_interval="48h"))
        health = self.run_reading_health(c, 10, "hostile")
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        self.assertGreater(emu.stats()["pretty_bodies"], 0, "no pretty-printed body was served")
        self.assertAlertDocumentsOnly(c.state, "pretty-printed Graph pages")
        future = self.assertFutureTimestampsHandled(emu, c)
        served, docs = self.assertExactlyOnce(emu, c)
        self.assertWatermarkSane(health, "10 s of pretty-printed pages with versions in 2100")
        print(f"graph, hostile: {served} versions ({future} stamped 2100), {docs} documents")

    def test_graph_crashes_with_future_timestamps_and_pretty_json(self):
        delivered, lost, future = self.hostile_crash_scenario(
            lambda url: graph_yaml("crashy", url, page_size=500, interval="500ms",
                                   initial_interval="48h"))
        print(f"graph hostile crashes: 20 SIGKILLs, {delivered} versions exactly once "
              f"({future} stamped 2100), {lost} lost")

    def test_graph_foreign_next_links_never_get_the_token(self):
        # A fifth of the nextLinks name http://127.0.0.2:PORT. The collector must not send
        # its token there; refusing such a link fails that poll, and the next one retries.
        # Alerts arrive but are never updated, so a page refused and read again later is the
        # same page: strict exactly-once holds.
        emu = self.busy_world("faults:\n  foreign_next_link: 0.2\n", alerts=600,
                              new_per_hour=300, updates_per_hour=0)
        c = Collector(self.work, graph_yaml("foreign", emu.url, page_size=100, interval="1s",
                                            initial_interval="48h"))
        self.run_for(c, 10)
        during = emu.stats()
        emu.faults(foreign_next_link=0)
        emu.freeze()
        self.assertEqual(c.once(), 0, c.log_text()[-2000:])
        stats = emu.stats()
        self.assertGreater(during["foreign_links_served"], 0,
                           "no foreign nextLink was served: the test proves nothing")
        self.assertEqual(stats["foreign_requests_with_token"], 0,
                         f"the collector sent its bearer token to {stats['foreign_base']}, a "
                         "host named only by an @odata.nextLink "
                         f"({stats['foreign_requests_with_token']} requests)")
        served, docs = self.assertExactlyOnce(emu, c)
        print(f"foreign nextLinks: {during['foreign_links_served']} served, "
              f"{stats['foreign_requests']} requests to the foreign host (none with the "
              f"token), {served} versions, {docs} documents")

    def test_graph_absurd_retry_after_keeps_the_collector_alive(self):
        self.absurd_retry_after_scenario(
            lambda url: graph_yaml("a", url, page_size=100, interval="1s"),
            stats_prefix="graph_")


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR = sys.argv[1], sys.argv[2]
    # Only this file's tests (the base class's are run by collector_test.py).
    loader = unittest.TestLoader()
    names = [n for n in loader.getTestCaseNames(GraphTest) if n.startswith("test_graph") or
             n in ("test_switching_a_source_from_mde_to_graph_keeps_its_state",
                   "test_mde_and_graph_documents_agree")]
    unittest.main(argv=[sys.argv[0], "-v", *(sys.argv[3:] or [f"GraphTest.{n}" for n in names])])
