#!/usr/bin/env python3
"""`mdecollect check -c FILE` against real processes on 127.0.0.1: mde-emulator (the
identity platform, the Defender API and Graph) and the fake Elasticsearch.

Checked: a good configuration passes every line and exits 0, with one token and one API
request per source; a wrong secret fails with AADSTS7000215 and its hint and the secret is
printed nowhere; a Graph app without permission gets the 403 hint; a wrong Elasticsearch
API key fails the credentials line; a missing index template fails with the `setup` hint
and passes after `mdecollect setup`; a closed port fails the reachable line with a hint.

Usage: check_test.py MDECOLLECT MDE_EMULATOR FAKE_ELASTICSEARCH [unittest arguments]
Every process call is bounded in time; every process is stopped at the end.
"""
import json
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
import elasticsearch_test as et  # noqa: E402

LINE = re.compile(r"^(?P<check>.+?)\s{2,}(?P<result>pass|FAIL)(?:\s{2,}(?P<detail>.*))?$")


def parse_table(stdout):
    """CHECK label -> {"result", "detail", "hint"}; labels seen twice keep the first."""
    out = {}
    last = None
    for line in stdout.splitlines():
        if line.startswith("  hint: ") and last is not None:
            out[last]["hint"] = line[len("  hint: "):]
            continue
        m = LINE.match(line)
        if m and m.group("check") != "CHECK":
            last = m.group("check")
            out.setdefault(last, {"result": m.group("result"), "detail": m.group("detail") or "",
                                  "hint": ""})
        else:
            last = None
    return out


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CheckTest(ct.WorkDirTest):
    work_prefix = "mdec-check-test-"

    def emulator(self, *args):
        e = ct.Emulator(self.work, "--tenant", ct.TENANT, "--client-id", ct.CLIENT,
                        "--client-secret", ct.SECRET, "--alerts", "50", *args)
        self.closers.append(e)
        return e

    def elasticsearch(self):
        es = et.FakeElasticsearch(self.work)
        self.closers.append(es)
        return es

    def config(self, sources_yaml, es_hosts=None, api_key=et.API_KEY):
        path = os.path.join(self.work, "check.yaml")
        text = f"state_dir: {os.path.join(self.work, 'state')}\nsources:\n{sources_yaml}"
        if es_hosts is not None:
            text += ("outputs:\n  file:\n    enabled: true\n  elasticsearch:\n"
                     f"    hosts: [{', '.join(es_hosts)}]\n    api_key: {api_key}\n"
                     "    timeout: 10s\n")
        with open(path, "w") as f:
            f.write(text)
        return path

    def mdecollect(self, *args):
        return subprocess.run([ct.MDECOLLECT, *args], capture_output=True, text=True, timeout=120)

    def check(self, config, *extra):
        r = self.mdecollect("check", "-c", config, *extra)
        self.assertNotIn("ERROR: AddressSanitizer", r.stderr)
        return r

    def assertNoSecret(self, result, *secrets):
        for secret in secrets:
            self.assertNotIn(secret, result.stdout)
            self.assertNotIn(secret, result.stderr)

    def test_good_config_passes(self):
        emu = self.emulator()
        es = self.elasticsearch()
        os.makedirs(os.path.join(self.work, "drop"))
        sources = (ct.source_yaml("tenant-a", emu.url) +
                   ct.source_yaml("tenant-g", emu.url).replace("type: mde", "type: graph") +
                   "  - name: drop\n    type: file\n"
                   f"    paths: [{os.path.join(self.work, 'drop', '*.ndjson')}]\n")
        cfg = self.config(sources, es_hosts=[es.url])
        setup = self.mdecollect("setup", "-c", cfg)
        self.assertEqual(setup.returncode, 0, setup.stderr)

        r = self.check(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        table = parse_table(r.stdout)
        self.assertTrue(table, r.stdout)
        self.assertEqual({k: v for k, v in table.items() if v["result"] != "pass"}, {}, r.stdout)
        for label in ("config / valid", "source tenant-a / token", "source tenant-a / alerts API",
                      "source tenant-g / token", "source tenant-g / alerts API",
                      "source drop / files", "state / state_dir", "output file / directory",
                      f"elasticsearch {es.url} / reachable",
                      f"elasticsearch {es.url} / credentials",
                      f"elasticsearch {es.url} / template"):
            self.assertIn(label, table, r.stdout)
        self.assertIn("no file matches yet", table["source drop / files"]["detail"])
        self.assertRegex(r.stdout, r"all \d+ checks passed")
        self.assertNoSecret(r, ct.SECRET, "test-key-secret")
        # The mde source, and it alone, is warned about once, on standard error: check and
        # check-config alike.
        cc = self.mdecollect("check-config", "-c", cfg)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        for result in (r, cc):
            warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: ")]
            self.assertEqual(len(warnings), 1, result.stderr)
            self.assertIn("warning: source tenant-a: type: mde is the legacy", warnings[0])
            self.assertIn("2027-02-01", warnings[0])
            self.assertIn("change `type: mde` to `type: graph` and keep `name: tenant-a`",
                          warnings[0])
            self.assertNotIn("warning:", result.stdout)
        # One token and one $top=1 request per source; the state was not touched.
        requests = emu.stats()["requests"]
        self.assertEqual(requests.get("GET /api/alerts"), {"200": 1}, requests)
        graph = {k: v for k, v in requests.items() if "alerts_v2" in k}
        self.assertEqual(list(graph.values()), [{"200": 1}], requests)
        self.assertEqual(requests.get("POST /{tenant}/oauth2/token"), {"200": 1}, requests)
        self.assertEqual(requests.get("POST /{tenant}/oauth2/v2.0/token"), {"200": 1}, requests)
        self.assertFalse(os.path.exists(os.path.join(self.work, "state", "state.db")))

        j = self.check(cfg, "--json")
        self.assertEqual(j.returncode, 0, j.stdout + j.stderr)
        body = json.loads(j.stdout)
        self.assertTrue(body["ok"])
        self.assertEqual(len(body["checks"]), len(table))

    def test_wrong_secret_fails_with_its_hint_and_is_never_printed(self):
        emu = self.emulator()
        wrong = "Wrong-Secret-Value-4f3c"
        cfg = self.config(ct.source_yaml("tenant-a", emu.url, secret=wrong))
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line = parse_table(r.stdout)["source tenant-a / token"]
        self.assertEqual(line["result"], "FAIL")
        self.assertIn("AADSTS7000215", line["detail"])
        self.assertIn("paste the secret's Value, not its Secret ID", line["hint"])
        self.assertNotIn("source tenant-a / alerts API", parse_table(r.stdout))
        self.assertNoSecret(r, wrong, ct.SECRET)
        self.assertNotIn("GET /api/alerts", emu.stats()["requests"])

    def test_graph_without_permission_gets_the_403_hint(self):
        emu = self.emulator("--no-graph-permission")
        cfg = self.config(ct.source_yaml("tenant-g", emu.url).replace("type: mde", "type: graph"))
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        table = parse_table(r.stdout)
        self.assertEqual(table["source tenant-g / token"]["result"], "pass", r.stdout)
        line = table["source tenant-g / alerts API"]
        self.assertEqual(line["result"], "FAIL", r.stdout)
        self.assertIn("HTTP 403", line["detail"])
        self.assertIn("SecurityAlert.Read.All", line["hint"])
        self.assertIn("admin consent", line["hint"])

    def test_incidents_without_permission_get_the_403_hint(self):
        # The app may read alerts (SecurityAlert.Read.All) but not incidents: the incident
        # source's check fails with the 403 and names SecurityIncident.Read.All; the alert
        # source of the same app passes.
        emu = self.emulator("--no-incident-permission")
        cfg = self.config(
            ct.source_yaml("tenant-i", emu.url).replace("type: mde", "type: graph_incidents")
            + ct.source_yaml("tenant-g", emu.url).replace("type: mde", "type: graph"))
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        table = parse_table(r.stdout)
        self.assertEqual(table["source tenant-i / token"]["result"], "pass", r.stdout)
        line = table["source tenant-i / incidents API"]
        self.assertEqual(line["result"], "FAIL", r.stdout)
        self.assertIn("HTTP 403", line["detail"])
        self.assertIn("SecurityIncident.Read.All", line["hint"])
        self.assertIn("admin consent", line["hint"])
        self.assertEqual(table["source tenant-g / alerts API"]["result"], "pass", r.stdout)

    def test_wrong_elasticsearch_api_key_fails_credentials(self):
        emu = self.emulator()
        es = self.elasticsearch()
        cfg = self.config(ct.source_yaml("tenant-a", emu.url), es_hosts=[es.url],
                          api_key="test-key-id:Wrong-ES-Key-9d1e")
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        table = parse_table(r.stdout)
        self.assertEqual(table[f"elasticsearch {es.url} / reachable"]["result"], "pass", r.stdout)
        line = table[f"elasticsearch {es.url} / credentials"]
        self.assertEqual(line["result"], "FAIL", r.stdout)
        self.assertIn("HTTP 401", line["detail"])
        self.assertIn("api_key", line["hint"])
        self.assertNotIn(f"elasticsearch {es.url} / template", table)
        self.assertNoSecret(r, "Wrong-ES-Key-9d1e", ct.SECRET)

    def test_missing_template_fails_until_setup(self):
        emu = self.emulator()
        es = self.elasticsearch()
        cfg = self.config(ct.source_yaml("tenant-a", emu.url), es_hosts=[es.url])
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line = parse_table(r.stdout)[f"elasticsearch {es.url} / template"]
        self.assertEqual(line["result"], "FAIL", r.stdout)
        self.assertIn("missing", line["detail"])
        self.assertEqual(line["hint"], f"run: mdecollect setup -c {cfg}")

        setup = self.mdecollect("setup", "-c", cfg)
        self.assertEqual(setup.returncode, 0, setup.stderr)
        r = self.check(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(parse_table(r.stdout)[f"elasticsearch {es.url} / template"]["result"],
                         "pass")

    def test_unreachable_elasticsearch_fails_with_a_hint(self):
        emu = self.emulator()
        es = self.elasticsearch()
        dead = f"http://127.0.0.1:{closed_port()}"
        cfg = self.config(ct.source_yaml("tenant-a", emu.url), es_hosts=[dead, es.url])
        self.assertEqual(self.mdecollect("setup", "-c", cfg).returncode, 0)
        r = self.check(cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        table = parse_table(r.stdout)
        line = table[f"elasticsearch {dead} / reachable"]
        self.assertEqual(line["result"], "FAIL", r.stdout)
        self.assertIn("nothing accepts connections", line["hint"])
        self.assertIn("outputs.elasticsearch.hosts", line["hint"])
        # The other host is checked on its own and passes.
        self.assertEqual(table[f"elasticsearch {es.url} / template"]["result"], "pass", r.stdout)

    def test_invalid_config_exits_2(self):
        cfg = os.path.join(self.work, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("sources:\n  - name: x\n    type: nonsense\n")
        r = self.check(cfg)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("the configuration has problems", r.stderr)
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR, et.FAKE = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]])
