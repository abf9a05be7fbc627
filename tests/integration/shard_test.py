#!/usr/bin/env python3
"""Sources partitioned across replicas (`shard: {index, count}`), end to end: 100 sources,
one emulator tenant each, collected by 1, 2 and 3 replicas (each with its own state_dir,
its index taken from a StatefulSet-like host name); then a re-shard from 2 to 3 replicas
while alerts keep arriving, following the README's procedure (shard-plan, stop, state
export, state import, state forget, start with the new count).

Checked against the emulator's ground truth: each source is collected by exactly one
replica (the one `shard-plan` names), and every served alert version is delivered exactly
once for each source, over all replicas together. The emulator's world has no updates and
no late arrivals, so every source can and must see every version the API served.

And the outbox stays behind: documents a replica collected but could not deliver yet (its
Elasticsearch refused them) are delivered by that replica after their source moved away.

Usage: shard_test.py MDECOLLECT MDE_EMULATOR FAKE_ELASTICSEARCH [unittest arguments]
Every wait is bounded; every process is stopped at the end.
"""
import collections
import glob
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector_test as ct  # noqa: E402
import elasticsearch_test as et  # noqa: E402
from collector_test import Emulator, WorkDirTest  # noqa: E402

SOURCES = 100
CLIENT = "00000000-0000-4000-8000-0000000000c1"
SECRET = "emulator-secret"


def name(i):
    return f"src-{i:03d}"


def tenant(i):
    return f"tenant-{i:03d}.onmicrosoft.com"


def emulator_yaml(speed, new_per_hour):
    tenants = "".join(f"  - tenant: {tenant(i)}\n    client_id: {CLIENT}\n"
                      f"    client_secret: {SECRET}\n" for i in range(SOURCES))
    return (f"seed: 15\nalerts: 40\nhistory: 12h\nspeed: {speed}\n"
            f"world:\n  new_alerts_per_hour: {new_per_hour}\n  updates_per_hour: 0\n"
            f"  late_fraction: 0\ntenants:\n{tenants}")


def sources_yaml(url, n=SOURCES):
    out = []
    for i in range(n):
        out.append(f"""  - name: {name(i)}
    type: mde
    tenant_id: {tenant(i)}
    client_id: {CLIENT}
    client_secret: {SECRET}
    login_url: {url}
    api_url: {url}
    interval: 2s
    initial_interval: 48h
    tags: [{name(i)}]
    namespace: src{i:03d}
""")
    return "".join(out)


class Replica:
    """One replica: its own state_dir and config, its shard index from its host name
    (HOSTNAME=mdecollect-K, as in a StatefulSet)."""

    def __init__(self, work, ordinal, count, sources, tag, outputs=""):
        self.ordinal = ordinal
        self.outputs = outputs
        self.dir = os.path.join(work, f"{tag}-{ordinal}")
        os.makedirs(self.dir, exist_ok=True)
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "collector.yaml")
        self.log_path = os.path.join(self.dir, "collector.log")
        self.sources = sources
        self.proc = None
        self.set_count(count)

    def set_count(self, count):
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.state}\nhttp:\n  listen: 127.0.0.1:0\n"
                    f"shard:\n  index: auto\n  count: {count}\nsources:\n{self.sources}"
                    f"{self.outputs}")

    def env(self):
        env = dict(os.environ, HOSTNAME=f"mdecollect-{self.ordinal}")
        env.pop("MDEC_SHARD_INDEX", None)
        return env

    def cli(self, *args, timeout=60):
        return subprocess.run([ct.MDECOLLECT, *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)

    def once(self):
        with open(self.log_path, "a") as log:
            return subprocess.run([ct.MDECOLLECT, "run", "-c", self.config, "--once"],
                                  env=self.env(), stdout=subprocess.DEVNULL, stderr=log,
                                  timeout=120).returncode

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([ct.MDECOLLECT, "run", "-c", self.config], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def terminate(self):
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=10)
        elif self.proc is not None:
            rc = self.proc.returncode
        if self.proc is not None:
            self.log.close()
            self.proc = None
        return rc

    def stop(self):  # WorkDirTest's closers
        self.terminate()

    def documents(self):
        """{source: Counter((alert id, lastUpdateTime))} from this replica's file output."""
        out = collections.defaultdict(collections.Counter)
        for path in sorted(glob.glob(os.path.join(self.state, "output", "*.ndjson"))):
            with open(path) as f:
                for line in f:
                    doc = json.loads(line)
                    key = (doc["event"]["id"],
                           doc["microsoft"]["defender_endpoint"]["lastUpdateTime"])
                    out[doc["tags"][0]][key] += 1
        return out

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()


class ShardTest(WorkDirTest):
    work_prefix = "mdec-shard-test-"

    def emulator(self, speed, new_per_hour):
        e = Emulator(self.work, config=emulator_yaml(speed, new_per_hour))
        self.closers.append(e)
        return e

    def replicas(self, count, sources, tag, outputs=""):
        rs = [Replica(self.work, k, count, sources, tag, outputs) for k in range(count)]
        self.closers.extend(rs)
        return rs

    def plan(self, replica, *args, sources=SOURCES):
        """{source: (shard, old shard or None)} and the moves {(from, to): [names]}."""
        r = replica.cli("shard-plan", "-c", replica.config, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        owners, moves = {}, {}
        for line in r.stdout.splitlines():
            if line.startswith("# from shard "):
                head, names = line[len("# from shard "):].split(":", 1)
                old, new = head.split(" to shard ")
                moves[(int(old), int(new))] = names.split()
            elif not line.startswith("#"):
                cols = line.split("\t")
                owners[cols[0]] = (int(cols[1]), int(cols[2]) if len(cols) > 2 else None)
        self.assertEqual(len(owners), sources, r.stdout)
        return owners, moves

    def move(self, old_replicas, new_replicas, moves):
        """The README's steps 4 to 6: export from the old replica, import into the new
        owner, forget on the old replica. Returns the names moved."""
        moved = []
        for (old, to), names in sorted(moves.items()):
            path = os.path.join(self.work, f"moved-{old}-to-{to}.json")
            source_args = [a for n in names for a in ("--source", n)]
            r = old_replicas[old].cli("state", "export", "--state-dir", old_replicas[old].state,
                                      "-o", path, *source_args)
            self.assertEqual(r.returncode, 0, r.stderr)
            target = new_replicas[to]
            r = target.cli("state", "import", "--state-dir", target.state, path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count("imported source"), len(names), r.stdout)
            r = old_replicas[old].cli("state", "forget", "--state-dir", old_replicas[old].state,
                                      *source_args)
            self.assertEqual(r.returncode, 0, r.stderr)
            moved += names
        return moved

    def assertEachSourceOnceOverAll(self, emu, replicas, owners=None):
        """Every served version exactly once per source over all replicas; with `owners`,
        each source's documents only in its owner's output. Returns the documents."""
        served = {(v["id"], v["lastUpdateTime"]): v for v in emu.versions() if v["served"]}
        self.assertGreater(len(served), 0)
        expected = collections.Counter({k: max(1, v["evidence"]) for k, v in served.items()})
        per_replica = [r.documents() for r in replicas]
        total = 0
        for i in range(SOURCES):
            src = name(i)
            holders = [r.ordinal for r, docs in zip(replicas, per_replica) if docs.get(src)]
            if owners is not None:
                self.assertEqual(holders, [owners[src][0]], f"{src} collected by {holders}")
            together = collections.Counter()
            for docs in per_replica:
                together.update(docs.get(src, {}))
            missing = [k for k in expected if together[k] == 0]
            wrong = [(k, n, expected.get(k)) for k, n in together.items() if n != expected.get(k)]
            self.assertEqual(missing[:3], [], f"{src}: {len(missing)} served versions missing")
            self.assertEqual(wrong[:3], [], f"{src}: {len(wrong)} versions not exactly once")
            total += sum(together.values())
        return len(served), total

    def test_one_two_and_three_shards_each_source_once(self):
        emu = self.emulator(speed=60, new_per_hour=0)
        emu.freeze()
        sources = sources_yaml(emu.url)
        counts = {}
        for count in (1, 2, 3):
            replicas = self.replicas(count, sources, f"n{count}")
            owners, _ = self.plan(replicas[0])
            for r in replicas:
                self.assertEqual(r.once(), 0, r.log_text()[-2000:])
                mine = sum(1 for s in owners.values() if s[0] == r.ordinal)
                self.assertIn(f"shard {r.ordinal} of {count}: {mine} of {SOURCES} sources",
                              r.log_text())
            versions, docs = self.assertEachSourceOnceOverAll(emu, replicas, owners)
            if count == 3:
                # A backfill runs on the source's own replica; elsewhere it names that one.
                other = next(s for s, (k, _) in owners.items() if k == 2)
                r = replicas[0].cli("backfill", "-c", replicas[0].config, "--source", other,
                                    "--since", "2d")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"source '{other}' belongs to shard 2 of 3; this replica is "
                              "shard 0", r.stderr)
            counts[count] = [sum(1 for s in owners.values() if s[0] == k) for k in range(count)]
            print(f"{count} shard(s): sources per shard {counts[count]}, {versions} versions, "
                  f"{docs} documents, each source's exactly once")
        self.assertTrue(all(n > 0 for n in counts[3]))

    def test_reshard_from_two_to_three_while_alerts_arrive(self):
        # One emulated minute a real second, two new alerts an emulated minute.
        emu = self.emulator(speed=60, new_per_hour=120)
        sources = sources_yaml(emu.url)
        replicas = self.replicas(2, sources, "grow")
        for r in replicas:
            r.start()
        time.sleep(8)

        # The README's procedure. 1. The plan: which sources move where.
        owners, moves = self.plan(replicas[0], "--count", "3", "--from", "2")
        self.assertTrue(moves)
        self.assertTrue(all(new == 2 for (_, new) in moves), moves)  # only to the new one
        # 2. Stop every replica (clean stop: each commits what it collected).
        for r in replicas:
            self.assertEqual(r.terminate(), 0, r.log_text()[-2000:])
        new = Replica(self.work, 2, 3, sources, "grow")
        self.closers.append(new)
        # 3. to 5. Export the moved sources' state from their old replica, import it into
        # the new owner's state, forget it on the old replica.
        moved = self.move(replicas, {2: new}, moves)
        # A name the old state does not know (a typo) is an error, not an empty export.
        r = replicas[0].cli("state", "export", "--state-dir", replicas[0].state,
                            "--source", "src-1000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("keeps nothing about: src-1000", r.stderr)
        self.assertEqual(r.stdout, "")
        # Importing again is refused: the new owner has that state now.
        r = new.cli("state", "import", "--state-dir", new.state,
                    os.path.join(self.work, "moved-%d-to-2.json" % min(o for o, _ in moves)))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--force", r.stderr)
        # 6. Start every replica with the new count.
        replicas.append(new)
        for r in replicas:
            r.set_count(3)
            r.start()
        time.sleep(8)
        # While a replica runs, its state cannot be exported.
        r = new.cli("state", "export", "--state-dir", new.state, "--source", moved[0])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("stop it first", r.stderr)

        # The end: the world stands still, a last poll everywhere, then the check.
        emu.freeze()
        for r in replicas:
            self.assertEqual(r.terminate(), 0, r.log_text()[-2000:])
        for r in replicas:
            self.assertEqual(r.once(), 0, r.log_text()[-2000:])
        versions, docs = self.assertEachSourceOnceOverAll(emu, replicas)
        # A source that stayed was collected by its replica alone; one that moved by its
        # old replica before the move and by replica 2 after it (each version once).
        per_replica = [r.documents() for r in replicas]
        for i in range(SOURCES):
            src = name(i)
            holders = [k for k in range(3) if per_replica[k].get(src)]
            new_owner, old_owner = owners[src]
            if src in moved:
                self.assertIn(new_owner, holders)
                self.assertTrue(set(holders) <= {old_owner, new_owner}, (src, holders))
            else:
                self.assertEqual(holders, [old_owner], src)
        after_move = sum(sum(per_replica[2][s].values()) for s in moved)
        self.assertGreater(after_move, 0, "the new replica collected nothing after the move")
        print(f"2 -> 3 shards: {len(moved)} sources moved, {versions} versions, {docs} "
              f"documents exactly once per source; {after_move} documents of moved sources "
              f"from the new replica")

    def test_the_old_replica_delivers_its_outbox_after_its_sources_moved(self):
        # 10 sources, each into its own data stream (namespace src000 ...), 2 replicas whose
        # Elasticsearch refuses their API key: everything they collect waits in their outbox.
        n = 10
        emu = self.emulator(speed=60, new_per_hour=0)
        emu.freeze()
        es = et.FakeElasticsearch(self.work)
        self.closers.append(es)
        outputs = (f"outputs:\n  elasticsearch:\n    hosts: [{es.url}]\n"
                   "    api_key: test-key-id:Wrong-Secret-Value\n    timeout: 10s\n")
        sources = sources_yaml(emu.url, n)
        replicas = self.replicas(2, sources, "outbox", outputs)
        for r in replicas:
            self.assertEqual(r.once(), 1, "the output fails: --once exits 1")
        self.assertEqual(es.stored(), {})

        owners, moves = self.plan(replicas[0], "--count", "3", "--from", "2", sources=n)
        self.assertTrue(moves)
        new = Replica(self.work, 2, 3, sources, "outbox", outputs)
        self.closers.append(new)
        moved = self.move(replicas, {2: new}, moves)
        replicas.append(new)
        for r in replicas:
            r.outputs = r.outputs.replace("Wrong-Secret-Value", "test-key-secret")
            r.set_count(3)
        expected = set(et.expected_ids(emu.versions()))

        def stored_of(namespace):
            ids = collections.Counter()
            for index, docs in ct.http_json(es.url + "/_fake/stored")["stored"].items():
                if index.endswith("-" + namespace):
                    ids.update(docs)
            return ids

        # The new owner first: its state says every version of the moved sources was
        # collected already, so it sends none of theirs.
        self.assertEqual(new.once(), 0, new.log_text()[-2000:])
        for src in moved:
            self.assertEqual(stored_of(src.replace("-", "")), collections.Counter(), src)
        # The old replicas: their outboxes hold the moved sources' documents too, and they
        # deliver them although they no longer own those sources.
        for r in replicas[:2]:
            self.assertEqual(r.once(), 0, r.log_text()[-2000:])
        for i in range(n):
            ids = stored_of(f"src{i:03d}")
            self.assertEqual(set(ids), expected, name(i))
            self.assertEqual(set(ids.values()), {1}, name(i))
        print(f"outbox: {len(moved)} of {n} sources moved; their {len(expected)} documents "
              "each delivered once by the replica that collected them")

    def test_a_shard_without_sources_stays_up_and_answers_its_probes(self):
        # Four file sources over three shards: shard 1 owns none of them (shard-plan says
        # so). It must not exit (a StatefulSet would restart it for ever) and /health and
        # /metrics must answer.
        sources = "".join(f"  - name: {n}\n    type: file\n    paths: [{self.work}/in/*.ndjson]\n"
                          for n in "abcd")
        replica = Replica(self.work, 1, 3, sources, "empty")
        self.closers.append(replica)
        owners, _ = self.plan(replica, sources=4)
        self.assertNotIn(1, [k for k, _ in owners.values()])
        replica.start()
        port = None
        for _ in range(100):  # bounded: 10 s
            ports = re.findall(r"monitoring on http://127.0.0.1:(\d+)", replica.log_text())
            if ports:  # the collector's: it keeps running with no source
                port = ports[0]
                break
            time.sleep(0.1)
        self.assertIsNotNone(port, replica.log_text())
        self.assertIsNone(replica.proc.poll())
        self.assertIn("shard 1 of 3: 0 of 4 sources", replica.log_text())
        health = ct.http_json(f"http://127.0.0.1:{port}/health")
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["sources"], {})
        self.assertEqual(replica.terminate(), 0)


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR, et.FAKE = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]])
