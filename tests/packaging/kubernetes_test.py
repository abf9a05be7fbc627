#!/usr/bin/env python3
"""packaging/kubernetes: every manifest is valid YAML of the kind it says, and the pieces
agree with each other and with the configuration in the ConfigMap: the probes and the
PodMonitor use the port http.listen names, /health and /metrics; replicas equals
shard.count with index auto; the state volume is mounted at state_dir; every *_file the
configuration names is in the mounted Secret; the maintenance pod and volume match the
StatefulSet's. And `mdecollect check-config` accepts the ConfigMap's configuration.

Usage: kubernetes_test.py MDECOLLECT SOURCE_DIR [unittest arguments]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

MDECOLLECT = SOURCE_DIR = ""


def load_all(name):
    with open(os.path.join(SOURCE_DIR, "packaging", "kubernetes", name)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def one(name, kind):
    docs = load_all(name)
    assert len(docs) == 1, f"{name}: {len(docs)} documents"
    assert docs[0]["kind"] == kind, f"{name}: kind {docs[0]['kind']}, not {kind}"
    return docs[0]


class KubernetesTest(unittest.TestCase):
    def setUp(self):
        self.sts = one("statefulset.yaml", "StatefulSet")
        self.svc = one("service.yaml", "Service")
        self.pm = one("podmonitor.yaml", "PodMonitor")
        self.cm = one("configmap.yaml", "ConfigMap")
        self.config = yaml.safe_load(self.cm["data"]["mdecollect.yaml"])
        self.pod = self.sts["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]

    def test_every_manifest_parses_and_the_kustomization_lists_them(self):
        dir = os.path.join(SOURCE_DIR, "packaging", "kubernetes")
        manifests = sorted(n for n in os.listdir(dir) if n.endswith(".yaml"))
        for name in manifests:
            for doc in load_all(name):
                self.assertIn("apiVersion", doc, name)
                self.assertIn("kind", doc, name)
        kustomization = one("kustomization.yaml", "Kustomization")
        for name in kustomization["resources"]:
            self.assertIn(name, manifests)
        self.assertEqual(self.sts["apiVersion"], "apps/v1")
        self.assertEqual(self.pm["apiVersion"], "monitoring.coreos.com/v1")

    def test_probes_and_scrape_use_the_monitoring_port_of_http_listen(self):
        listen = self.config["http"]["listen"]
        host, port = listen.rsplit(":", 1)
        self.assertEqual(host, "0.0.0.0", "the kubelet and Prometheus reach the pod's address")
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports["monitoring"], int(port))
        ready = self.container["readinessProbe"]["httpGet"]
        self.assertEqual((ready["path"], ready["port"]), ("/health", "monitoring"))
        alive = self.container["livenessProbe"]["httpGet"]
        self.assertEqual((alive["path"], alive["port"]), ("/metrics", "monitoring"))
        endpoint = self.pm["spec"]["podMetricsEndpoints"][0]
        self.assertEqual((endpoint["port"], endpoint["path"]), ("monitoring", "/metrics"))
        self.assertEqual(self.svc["spec"]["ports"][0]["targetPort"], "monitoring")
        self.assertEqual(self.svc["spec"]["ports"][0]["port"], int(port))
        self.assertIn("resources", self.container)
        self.assertIn("memory", self.container["resources"]["limits"])

    def test_labels_names_and_shards_agree(self):
        labels = self.sts["spec"]["template"]["metadata"]["labels"]
        for selector in (self.sts["spec"]["selector"]["matchLabels"],
                         self.pm["spec"]["selector"]["matchLabels"], self.svc["spec"]["selector"]):
            self.assertTrue(selector.items() <= labels.items(), selector)
        self.assertEqual(self.svc["spec"]["clusterIP"], "None")  # headless
        self.assertEqual(self.sts["spec"]["serviceName"], self.svc["metadata"]["name"])
        self.assertEqual(self.config["shard"]["index"], "auto")
        self.assertEqual(self.config["shard"]["count"], self.sts["spec"]["replicas"])

    def test_config_secrets_and_state_are_mounted_where_the_config_says(self):
        mounts = {m["name"]: m for m in self.container["volumeMounts"]}
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        # The configuration file the container reads is the ConfigMap's.
        args = self.container["args"]
        config_path = args[args.index("-c") + 1]
        config_mount = next(m for m in mounts.values() if m["mountPath"] == config_path)
        self.assertEqual(volumes[config_mount["name"]]["configMap"]["name"],
                         self.cm["metadata"]["name"])
        self.assertIn(config_mount["subPath"], self.cm["data"])
        # Each replica's state_dir is its own volume, from the claim template.
        templates = {t["metadata"]["name"]: t for t in self.sts["spec"]["volumeClaimTemplates"]}
        state_mount = next(m for m in mounts.values()
                           if m["mountPath"] == self.config["state_dir"])
        self.assertIn(state_mount["name"], templates)
        self.assertNotIn(state_mount["name"], volumes)
        # Every secret the configuration reads is a file of the mounted Secret.
        secret_mount = mounts["credentials"]
        self.assertTrue(secret_mount["readOnly"])
        self.assertIn("secretName", volumes["credentials"]["secret"])
        files = re.findall(r"_file:\s*(\S+)", self.cm["data"]["mdecollect.yaml"])
        self.assertGreater(len(files), 0)
        for path in files:
            self.assertEqual(os.path.dirname(path), secret_mount["mountPath"], path)
        # The maintenance pod mounts a state volume where state_dir is, and the new-volume
        # manifest has the claim template's spec.
        shell = one("state-shell.yaml", "Pod")
        self.assertEqual(shell["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
                         self.config["state_dir"])
        self.assertEqual(shell["spec"]["securityContext"]["runAsUser"],
                         self.pod["securityContext"]["runAsUser"])
        volume = one("state-volume.yaml", "PersistentVolumeClaim")
        self.assertEqual(volume["spec"], templates[state_mount["name"]]["spec"])

    def test_check_config_accepts_the_configmaps_configuration(self):
        work = tempfile.mkdtemp(prefix="mdec-k8s-test-")
        try:
            text = self.cm["data"]["mdecollect.yaml"]
            secrets = self.container["volumeMounts"]
            secret_dir = next(m["mountPath"] for m in secrets if m["name"] == "credentials")
            for path in re.findall(r"_file:\s*(\S+)", text):
                with open(os.path.join(work, os.path.basename(path)), "w") as f:
                    f.write("not-a-real-secret\n")
            text = text.replace(secret_dir + "/", work + "/")
            text = text.replace(self.config["state_dir"], os.path.join(work, "state"))
            config = os.path.join(work, "mdecollect.yaml")
            with open(config, "w") as f:
                f.write(text)
            r = subprocess.run([MDECOLLECT, "check-config", "-c", config], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("not-a-real-secret", r.stdout + r.stderr)
            self.assertIn("index: auto", r.stdout)
            # Each replica's host name gives its shard; one more than count is refused.
            replicas = self.sts["spec"]["replicas"]
            plan = subprocess.run([MDECOLLECT, "shard-plan", "-c", config], capture_output=True,
                                  text=True, timeout=60)
            self.assertEqual(plan.returncode, 0, plan.stderr)
            self.assertIn(f"{len(self.config['sources'])} sources, {replicas} shards",
                          plan.stdout)
            env = dict(os.environ, HOSTNAME=f"{self.sts['metadata']['name']}-{replicas}")
            env.pop("MDEC_SHARD_INDEX", None)
            r = subprocess.run([MDECOLLECT, "run", "-c", config, "--once"], env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("shard.index: auto", r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    MDECOLLECT, SOURCE_DIR = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
