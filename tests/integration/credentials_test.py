#!/usr/bin/env python3
"""Signing in with a certificate or a federated token, end to end: `mdecollect` against
mde-emulator, which registers a certificate client and a federated client and verifies
client assertions as Microsoft Entra ID does.

Keys and certificates are made here with the openssl command line; the assertions this test
signs itself (a replayed one, one for another audience, the platform's federated tokens) are
signed with `openssl dgst`: nothing is shared with the collector's signing code.

Checked:
- a certificate client collects the same world exactly once through the Defender API (PS256,
  v1 token flow) and through Graph (RS256, v2 flow, an encrypted key with a password file);
- a key the app does not have, an expired certificate (refused on this machine, no request
  sent), a replayed assertion and an assertion for another audience each fail `check` with
  their AADSTS code and hint;
- a federated token file replaced while the collector runs is read at the next token, and
  the old token is never presented again;
- `cloud: usgov_high` asks for GCC High's resources (an emulator playing GCC High issues
  tokens for them only), through Graph and the Defender API;
- no private key, password or assertion in the log, the trace, /metrics, /health, `check` or
  `check-config`.

Usage: credentials_test.py MDECOLLECT MDE_EMULATOR [unittest arguments]
Every process call is bounded in time; every process is stopped at the end.
"""
import base64
import glob
import hashlib
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_test  # noqa: E402
import collector_test as ct  # noqa: E402
import ops_test  # noqa: E402
from collector_test import Collector  # noqa: E402

FED_CLIENT = "00000000-0000-4000-8000-0000000000f1"
ISSUER = "https://oidc.example.test/cluster-1"
SUBJECT = "system:serviceaccount:security:mdecollect"
KEY_PASSWORD = "Pem-Pass-Phrase-42"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, timeout=60, **kwargs)


class Pki:
    """RSA keys and certificates in `directory`, made with the openssl command line."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)

    def certificate(self, name, password=None, expired=False):
        """(certificate file, key file) for a new 2048-bit RSA key."""
        cert = os.path.join(self.dir, name + "-cert.pem")
        key = os.path.join(self.dir, name + "-key.pem")
        if not expired:
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-days", "30",
                 "-noenc", "-subj", "/CN=" + name, "-keyout", key, "-out", cert])
        else:
            # Valid in 2020 only: `openssl ca` takes explicit dates.
            ca = os.path.join(self.dir, name + "-ca")
            os.makedirs(ca)
            with open(os.path.join(ca, "index.txt"), "w"):
                pass
            with open(os.path.join(ca, "serial"), "w") as f:
                f.write("01\n")
            cnf = os.path.join(ca, "ca.cnf")
            with open(cnf, "w") as f:
                f.write(f"[ca]\ndefault_ca = d\n[d]\ndatabase = {ca}/index.txt\n"
                        f"new_certs_dir = {ca}\nserial = {ca}/serial\ndefault_md = sha256\n"
                        "policy = p\n[p]\ncommonName = supplied\n")
            csr = os.path.join(ca, "req.csr")
            run(["openssl", "req", "-newkey", "rsa:2048", "-noenc", "-subj", "/CN=" + name,
                 "-keyout", key, "-out", csr])
            run(["openssl", "ca", "-batch", "-config", cnf, "-selfsign", "-keyfile", key,
                 "-in", csr, "-out", cert, "-startdate", "20200101000000Z",
                 "-enddate", "20210101000000Z", "-notext"])
        if password is not None:
            encrypted = key + ".enc"
            run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key, "-out",
                 encrypted, "-passout", "pass:" + password])
            os.replace(encrypted, key)
        return cert, key

    def thumbprint(self, cert):
        der = run(["openssl", "x509", "-in", cert, "-outform", "DER"]).stdout
        return b64url(hashlib.sha256(der).digest())

    def jwt(self, key, header, claims, pss=False):
        """A JWS compact token signed by `key` (RS256, or PS256 with pss)."""
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        args = ["openssl", "dgst", "-sha256", "-sign", key]
        if pss:
            args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
                     "-sigopt", "rsa_mgf1_md:sha256"]
        signature = run(args, input=signing_input.encode()).stdout
        return signing_input + "." + b64url(signature)

    def private_material(self, key_file):
        """Lines of a key file's body: none may appear anywhere the collector writes."""
        with open(key_file) as f:
            return [line.strip() for line in f if line.strip() and "-----" not in line]


def assertion_prefixes():
    """How every assertion the collector signs begins: the base64url of its header's first
    39 bytes (13 whole groups of 3), for PS256 and RS256."""
    out = []
    for alg in ("PS256", "RS256"):
        head = ('{"alg":"%s","typ":"JWT","x5t#S256":"' % alg).encode()
        assert len(head) == 39
        out.append(b64url(head))
    return out


class CredentialsTest(ct.CollectorTest):
    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.work, "pki"))
        self.cert, self.key = self.pki.certificate("collector")
        self.issuer_cert, self.issuer_key = self.pki.certificate("oidc-issuer")

    def cert_emulator(self, *args, extra=""):
        config = extra + (
            "tenants:\n"
            f"  - tenant: {ct.TENANT}\n    client_id: {ct.CLIENT}\n"
            f"    client_certificate: {self.cert}\n"
            f"  - tenant: {ct.TENANT}\n    client_id: {FED_CLIENT}\n"
            f"    federated:\n      issuer: {ISSUER}\n      subject: {SUBJECT}\n"
            f"      issuer_certificate: {self.issuer_cert}\n")
        return self.emulator(*args, config=config)

    def source(self, name, url, type_="mde", client=ct.CLIENT, **keys):
        lines = [f"  - name: {name}", f"    type: {type_}", f"    tenant_id: {ct.TENANT}",
                 f"    client_id: {client}", f"    login_url: {url}", f"    api_url: {url}"]
        lines += [f"    {k}: {v}" for k, v in keys.items()]
        return "\n".join(lines) + "\n"

    def check(self, config_path):
        r = subprocess.run([ct.MDECOLLECT, "check", "-c", config_path], capture_output=True,
                           text=True, timeout=120)
        self.assertNotIn("ERROR: AddressSanitizer", r.stderr)
        return r, check_test.parse_table(r.stdout)

    def write_config(self, name, sources_yaml):
        path = os.path.join(self.work, name + ".yaml")
        with open(path, "w") as f:
            f.write(f"state_dir: {os.path.join(self.work, name + '-state')}\n"
                    f"sources:\n{sources_yaml}")
        return path

    def token_requests(self, emu):
        stats = emu.stats()
        return sum(sum(by_status.values()) for path, by_status in stats["requests"].items()
                   if "/oauth2/" in path)

    def test_a_certificate_client_collects_exactly_once_through_both_apis(self):
        emu = self.cert_emulator("--alerts", "600", "--seed", "9")
        emu.freeze()
        password_file = os.path.join(self.work, "key-password")
        with open(password_file, "w") as f:
            f.write(KEY_PASSWORD + "\n")
        encrypted_cert, encrypted_key = self.pki.certificate("collector-2", KEY_PASSWORD)
        # The emulator knows one certificate per client: a second emulator for the RS256 run.
        emu2 = self.emulator("--alerts", "600", "--seed", "9", config=(
            f"tenants:\n  - tenant: {ct.TENANT}\n    client_id: {ct.CLIENT}\n"
            f"    client_certificate: {encrypted_cert}\n"))
        emu2.freeze()

        os.makedirs(os.path.join(self.work, "mde-run"))
        mde = Collector(os.path.join(self.work, "mde-run"), self.source(
            "x", emu.url, client_certificate_file=self.cert, client_key_file=self.key,
            initial_interval="48h", interval="1h"))
        with open(mde.config, "a") as f:
            f.write("logging:\n  format: json\ntracing:\n  enabled: true\n"
                    "  max_body_bytes: 64KiB\n")
        mde.start()
        try:
            url = ops_test.OpsTest.monitor_url(self, mde)
            _, health = ops_test.OpsTest.wait_health(
                self, url, lambda h: h["sources"]["x"].get("last_success"))
            _, metrics = ops_test.get(url + "/metrics")
            _, health_text = ops_test.get(url + "/health")
        finally:
            rc, _ = mde.terminate()
        self.assertEqual(rc, 0, mde.log_text()[-2000:])
        self.assertEqual(mde.once(), 0, mde.log_text()[-2000:])
        served, docs = self.assertExactlyOnce(emu, mde)
        self.assertGreater(served, 100)

        os.makedirs(os.path.join(self.work, "graph-run"))
        graph = Collector(os.path.join(self.work, "graph-run"), self.source(
            "x", emu2.url, "graph", client_certificate_file=encrypted_cert,
            client_key_file=encrypted_key, client_key_password_file=password_file,
            client_assertion_algorithm="RS256", initial_interval="48h"))
        self.assertEqual(graph.once(), 0, graph.log_text()[-2000:])
        self.assertExactlyOnce(emu2, graph)
        self.assertGreater(emu2.stats()["graph_requests"], 0)
        print(f"certificate clients: {served} versions exactly once through /api/alerts "
              "(PS256) and through Graph (RS256)")

        check_config = subprocess.run([ct.MDECOLLECT, "check-config", "-c", graph.config],
                                      capture_output=True, text=True, timeout=30)
        self.assertEqual(check_config.returncode, 0, check_config.stderr)
        self.assertIn("client_key_password_file: " + password_file, check_config.stdout)
        check, table = self.check(graph.config)
        self.assertEqual(check.returncode, 0, check.stdout)
        self.assertEqual(table["source x / token"]["result"], "pass")

        traces = ""
        for path in glob.glob(os.path.join(mde.state, "trace", "*")):
            with open(path) as f:
                traces += f.read()
        exchanges = [json.loads(line) for line in traces.splitlines()]
        token_bodies = [t["request"].get("body", "") for t in exchanges
                        if "/oauth2/" in t["request"]["url"]]
        self.assertTrue(token_bodies, "no token request traced")
        for body in token_bodies:
            self.assertIn("client_assertion=***", body)
        for line in mde.log_text().splitlines():
            json.loads(line)
        secrets = (self.pki.private_material(self.key) +
                   self.pki.private_material(encrypted_key) + [KEY_PASSWORD] +
                   assertion_prefixes())
        for name, text in [("log", mde.log_text() + graph.log_text()), ("trace", traces),
                           ("metrics", metrics), ("health", health_text),
                           ("check-config", check_config.stdout + check_config.stderr),
                           ("check", check.stdout + check.stderr)]:
            for secret in secrets:
                self.assertNotIn(secret, text, f"key material or an assertion in the {name}")

    def test_certificate_failures_name_their_code_and_hint(self):
        emu = self.cert_emulator("--alerts", "50")
        other_cert, other_key = self.pki.certificate("not-uploaded")
        expired_cert, expired_key = self.pki.certificate("expired", expired=True)
        now = int(time.time())
        token_url = f"{emu.url}/{ct.TENANT}/oauth2/token"

        def assertion_file(name, aud, jti):
            claims = {"aud": aud, "iss": ct.CLIENT, "sub": ct.CLIENT, "jti": jti,
                      "iat": now, "nbf": now, "exp": now + 600}
            header = {"alg": "PS256", "typ": "JWT", "x5t#S256": self.pki.thumbprint(self.cert)}
            path = os.path.join(self.work, name + ".jwt")
            with open(path, "w") as f:
                f.write(self.pki.jwt(self.key, header, claims, pss=True) + "\n")
            return path

        replayed = assertion_file("replayed", token_url, str(uuid.uuid4()))
        other_aud = assertion_file("other-aud", f"{emu.url}/another-tenant/oauth2/token",
                                   str(uuid.uuid4()))
        cases = [
            ("wrong-key", dict(client_certificate_file=other_cert, client_key_file=other_key),
             "AADSTS700027", "not one uploaded to this app"),
            ("expired", dict(client_certificate_file=expired_cert, client_key_file=expired_key),
             "expired on 2021-01-01", "has expired"),
            ("audience", dict(client_assertion_file=other_aud),
             "AADSTS700023", "another tenant or cloud"),
        ]
        for name, keys, code, hint in cases:
            before = self.token_requests(emu)
            r, table = self.check(self.write_config(name, self.source(name, emu.url, **keys)))
            self.assertEqual(r.returncode, 1, r.stdout)
            line = table[f"source {name} / token"]
            self.assertEqual(line["result"], "FAIL", r.stdout)
            self.assertIn(code, line["detail"], name)
            self.assertIn(hint, line["hint"], name)
            if name == "expired":  # refused here: nothing was sent
                self.assertEqual(self.token_requests(emu), before)
            else:
                self.assertEqual(self.token_requests(emu), before + 1)
        # The same assertion twice: accepted once, then refused as a replay.
        config = self.write_config("replayed", self.source(
            "replayed", emu.url, client_assertion_file=replayed))
        first, table = self.check(config)
        self.assertEqual(table["source replayed / token"]["result"], "pass", first.stdout)
        second, table = self.check(config)
        self.assertEqual(second.returncode, 1, second.stdout)
        self.assertIn("AADSTS50013", table["source replayed / token"]["detail"])
        self.assertIn("replayed jti", table["source replayed / token"]["hint"])

    def test_a_replaced_federated_token_file_is_used_at_the_next_token(self):
        # Emulated time runs 60 times faster than real time and tokens live 60 emulated
        # seconds: the collector's token is refused (401) about a second after it is issued,
        # and it asks for a new one, reading the file again each time.
        emu = self.cert_emulator("--alerts", "300", "--speed", "60",
                                 extra="token_lifetime: 60s\n")
        now = int(time.time())
        token_file = os.path.join(self.work, "azure-identity-token")

        def platform_token(jti, lifetime):
            claims = {"aud": ["api://AzureADTokenExchange"], "iss": ISSUER, "sub": SUBJECT,
                      "jti": jti, "iat": now, "nbf": now - 60, "exp": now + lifetime}
            token = self.pki.jwt(self.issuer_key, {"alg": "RS256", "typ": "JWT", "kid": "k1"},
                                 claims)
            tmp = token_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(token)
            os.replace(tmp, token_file)  # as the kubelet swaps it: atomically

        platform_token("first", 3600)
        c = Collector(self.work, self.source("fed", emu.url, "graph", client=FED_CLIENT,
                                             client_assertion_file=token_file,
                                             interval="1s", initial_interval="1h"))
        c.start()
        try:
            url = ops_test.OpsTest.monitor_url(self, c)
            ops_test.OpsTest.wait_health(self, url,
                                         lambda h: h["sources"]["fed"].get("last_success"))
            seen = self.federated_jtis(emu)
            self.assertIn("first", seen)
            _, before = ops_test.get(url + "/health")
            swapped_after = json.loads(before)["sources"]["fed"]["last_success"]
            platform_token("second", 3600)
            deadline = time.monotonic() + 60
            while "second" not in self.federated_jtis(emu) and time.monotonic() < deadline:
                self.assertIsNone(c.proc.poll(), c.log_text()[-2000:])
                time.sleep(0.5)
            self.assertIn("second", self.federated_jtis(emu), c.log_text()[-3000:])
            # The first token is never presented again once the file holds the second.
            at_swap = len(self.federated_jtis(emu))
            time.sleep(3)
            later = self.federated_jtis(emu)[at_swap:]
            self.assertTrue(later, "no token request after the swap")
            self.assertEqual(set(later), {"second"})
            # Polls go on succeeding with the new token.
            ops_test.OpsTest.wait_health(
                self, url, lambda h: h["sources"]["fed"].get("last_success", "") > swapped_after
                and h["sources"]["fed"]["state"] != "failing")
        finally:
            rc, _ = c.terminate()
        self.assertEqual(rc, 0, c.log_text()[-2000:])
        self.assertNotIn("AADSTS", c.log_text())

    def test_a_national_cloud_asks_for_its_own_resources(self):
        # The emulator plays GCC High: it issues tokens for graph.microsoft.us and
        # api-gov.securitycenter.microsoft.us only. login_url and api_url point at it (keys set
        # in the file win over the cloud's hosts); the resources come from `cloud`.
        emu = self.emulator("--alerts", "200", "--cloud", "usgov_high")
        emu.freeze()
        for type_ in ("graph", "mde"):
            run_dir = os.path.join(self.work, type_)
            os.makedirs(run_dir)
            c = Collector(run_dir, self.source("gov", emu.url, type_, client_secret=ct.SECRET,
                                               cloud="usgov_high", initial_interval="48h"))
            self.assertEqual(c.once(), 0, c.log_text()[-2000:])
            self.assertExactlyOnce(emu, c)
            # The same source in the global cloud asks for the global resource: refused.
            wrong = self.write_config("global-" + type_, self.source(
                "global", emu.url, type_, client_secret=ct.SECRET))
            r, table = self.check(wrong)
            self.assertEqual(r.returncode, 1, r.stdout)
            code = "AADSTS70011" if type_ == "graph" else "AADSTS500011"
            self.assertIn(code, table["source global / token"]["detail"], r.stdout)
        print("usgov_high: graph and mde sources collected with the cloud's resources")

    def federated_jtis(self, emu):
        """The jti of each federated assertion the emulator accepted, in order."""
        log = ct.http_json(emu.url + "/_emulator/requests")
        return [r["assertion_jti"] for r in log["requests"]
                if "/oauth2/" in r["path"] and r.get("assertion_jti")]


if __name__ == "__main__":
    ct.MDECOLLECT, ct.EMULATOR = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
