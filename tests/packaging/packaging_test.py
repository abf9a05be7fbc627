#!/usr/bin/env python3
"""Packaging tests: the .deb cpack makes from the test build, the systemd unit, and
`cmake --install`.

Usage: packaging_test.py MDECOLLECT BUILD_DIR SOURCE_DIR VERSION [unittest arguments]

- DebTest: cpack packs BUILD_DIR into a temporary directory; the package's control fields,
  conffiles and maintainer scripts are checked (the scripts are run against stub systemd
  helpers, and with none at all, as in a chroot); `dpkg -x` unpacks it into a scratch root
  whose mdecollect runs --version and check-config on the packaged configuration.
- SystemdUnitTest: packaging/mdecollect.service has the hardening the issue asks for, and
  `systemd-analyze verify` and `security --offline` accept it (ExecStart= pointed at
  MDECOLLECT, since verify wants an existing binary).
- InstallTest: `cmake --install` with a prefix of its own, and with DESTDIR and /usr.
Every command has a timeout; everything is written in temporary directories.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

MDECOLLECT = BUILD_DIR = SOURCE_DIR = VERSION = ""
UNIT = "mdecollect.service"


def run(argv, timeout=120, env=None, cwd=None, check=True):
    """Runs argv; returns the CompletedProcess (text). check: the exit code must be 0."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}\nstdout:\n{p.stdout}\n"
                             f"stderr:\n{p.stderr}")
    return p


def unit_directives(text):
    """{(section, key): [values]} of a systemd unit file."""
    out = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {raw!r}"
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def check_version_output(test, binary):
    p = run([binary, "--version"], timeout=30)
    lines = p.stdout.splitlines()
    test.assertEqual(lines[0], f"mdecollect {VERSION}", p.stdout)
    keys = [line.split(":", 1)[0] for line in lines[1:]]
    for key in ("build", "compiler", "libcurl", "sqlite", "simdjson", "yaml-cpp", "spdlog",
                "fmt"):
        test.assertIn(key, keys, p.stdout)
    test.assertEqual(p.stderr, "")


class DebTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mdec-deb-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def make_deb(self):
        out = os.path.join(self.tmp, "out")
        # The test build is already built: cpack only installs it into its staging
        # directory (CMAKE_SKIP_INSTALL_ALL_DEPENDENCY) and runs dpkg-shlibdeps.
        run(["cpack", "-G", "DEB", "-B", out, "--config",
             os.path.join(BUILD_DIR, "CPackConfig.cmake")], timeout=300, cwd=BUILD_DIR)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        deb = os.path.join(out, f"mdecollect_{VERSION}_{arch}.deb")
        self.assertTrue(os.path.isfile(deb), os.listdir(out))
        return deb, arch

    def control_scripts(self, deb):
        control = os.path.join(self.tmp, "control")
        run(["dpkg-deb", "-e", deb, control])
        return control

    def run_script(self, script, args, path_dir):
        """Runs a maintainer script with PATH=path_dir (stubs) and a log of their calls."""
        log = os.path.join(self.tmp, "calls.log")
        if os.path.exists(log):
            os.remove(log)
        env = {"PATH": path_dir, "STUB_LOG": log, "LC_ALL": "C"}
        p = run(["/bin/sh", "-e", script, *args], timeout=30, env=env, check=False)
        calls = open(log).read().splitlines() if os.path.exists(log) else []
        return p, calls

    def stub_dir(self, names):
        d = tempfile.mkdtemp(prefix="stubs-", dir=self.tmp)
        for tool in ("cat",):
            os.symlink(shutil.which(tool), os.path.join(d, tool))
        for name in names:
            path = os.path.join(d, name)
            with open(path, "w") as f:
                # was-enabled answers "yes" (a first installation).
                f.write(f'#!/bin/sh\necho "{name} $*" >> "$STUB_LOG"\nexit 0\n')
            os.chmod(path, 0o755)
        return d

    def test_deb(self):
        deb, arch = self.make_deb()

        # Control fields.
        fields = {}
        for field in ("Package", "Version", "Architecture", "Depends", "Maintainer",
                      "Section", "Description"):
            fields[field] = run(["dpkg-deb", "-f", deb, field]).stdout.strip()
        self.assertEqual(fields["Package"], "mdecollect")
        self.assertEqual(fields["Version"], VERSION)
        self.assertEqual(fields["Architecture"], arch)
        self.assertIn(fields["Section"], ("admin", "net"))
        self.assertTrue(fields["Maintainer"], fields)
        self.assertTrue(fields["Description"].startswith("Microsoft Defender"), fields)
        depends = [d.strip().split(" ")[0] for d in fields["Depends"].split(",")]
        self.assertTrue(any(d.startswith("libcurl") for d in depends), fields["Depends"])
        self.assertTrue(any(d.startswith("libsqlite3") for d in depends), fields["Depends"])

        # Conffiles and maintainer scripts.
        control = self.control_scripts(deb)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/mdecollect/mdecollect.yaml"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, script)
            run(["sh", "-n", path])

        # The scripts with the systemd helpers (stubs) and without any (a bare chroot). No
        # /run/systemd/system here: nothing may be started, stopped or reloaded.
        has_running_systemd = os.path.isdir("/run/systemd/system")
        helpers = self.stub_dir(["deb-systemd-helper", "deb-systemd-invoke", "systemctl"])
        p, calls = self.run_script(os.path.join(control, "postinst"), ["configure", ""],
                                   helpers)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"deb-systemd-helper enable {UNIT}", calls)
        if not has_running_systemd:
            self.assertFalse([c for c in calls if not c.startswith("deb-systemd-helper")],
                             calls)
        if not os.path.exists("/etc/mdecollect/client-secret"):
            self.assertIn("/etc/mdecollect/client-secret", p.stdout)  # what to do next
        p, calls = self.run_script(os.path.join(control, "prerm"), ["remove"], helpers)
        self.assertEqual(p.returncode, 0, p.stderr)
        p, calls = self.run_script(os.path.join(control, "postrm"), ["purge"], helpers)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"deb-systemd-helper purge {UNIT}", calls)
        bare = self.stub_dir([])
        for script, args in (("postinst", ["configure", ""]), ("prerm", ["remove"]),
                             ("postrm", ["remove"]), ("postrm", ["purge"])):
            p, calls = self.run_script(os.path.join(control, script), args, bare)
            self.assertEqual(p.returncode, 0, f"{script} {args}: {p.stderr}")
            self.assertEqual(p.stderr, "", f"{script} {args}")

        # The files, unpacked into a scratch root.
        root = os.path.join(self.tmp, "root")
        run(["dpkg", "-x", deb, root])
        binary = os.path.join(root, "usr/bin/mdecollect")
        config = os.path.join(root, "etc/mdecollect/mdecollect.yaml")
        unit = os.path.join(root, "lib/systemd/system", UNIT)
        for path in (binary, config, unit,
                     os.path.join(root, "usr/share/doc/mdecollect/README.md"),
                     os.path.join(root,
                                  "usr/share/doc/mdecollect/examples/mdecollect.example.yaml"),
                     os.path.join(root, "usr/share/doc/mdecollect/examples/certificate.conf")):
            self.assertTrue(os.path.isfile(path), path)
        self.assertFalse(os.path.exists(os.path.join(root, "usr/bin/mde-emulator")))
        self.assertTrue(os.access(binary, os.X_OK))
        # The package's unit and configuration are the sources, unchanged.
        for packaged, source in ((unit, UNIT), (config, "mdecollect.yaml")):
            with open(packaged) as a, open(os.path.join(SOURCE_DIR, "packaging", source)) as b:
                self.assertEqual(a.read(), b.read(), packaged)

        check_version_output(self, binary)

        # The packaged configuration, with the secret where systemd puts it.
        credentials = os.path.join(self.tmp, "credentials")
        os.mkdir(credentials, 0o700)
        secret = "pkg-test-secret-3c9f0e"
        with open(os.path.join(credentials, "client-secret"), "w") as f:
            f.write(secret + "\n")
        env = dict(os.environ, CREDENTIALS_DIRECTORY=credentials)
        p = run([binary, "check-config", "-c", config], timeout=30, env=env, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn(secret, p.stdout + p.stderr)
        self.assertIn("state_dir: /var/lib/mdecollect", p.stdout)
        # It starts on Microsoft Graph: no warning about the legacy Defender API.
        self.assertIn("type: graph", p.stdout)
        self.assertNotIn("type: mde", p.stdout + p.stderr)
        self.assertIn(os.path.join(credentials, "client-secret"), p.stdout)
        # Without the credential it is a configuration error (exit 2), not a crash.
        env.pop("CREDENTIALS_DIRECTORY")
        p = run([binary, "check-config", "-c", config], timeout=30, env=env, check=False)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("CREDENTIALS_DIRECTORY", p.stderr)


class SystemdUnitTest(unittest.TestCase):
    REQUIRED = {
        ("Unit", "ConditionPathExists"): "/etc/mdecollect/client-secret",
        ("Service", "ExecStart"): "/usr/bin/mdecollect run -c /etc/mdecollect/mdecollect.yaml",
        ("Service", "LoadCredential"): "client-secret:/etc/mdecollect/client-secret",
        ("Service", "DynamicUser"): "yes",
        ("Service", "StateDirectory"): "mdecollect",
        ("Service", "ProtectSystem"): "strict",
        ("Service", "ProtectHome"): "yes",
        ("Service", "NoNewPrivileges"): "yes",
        ("Service", "PrivateTmp"): "yes",
        ("Service", "PrivateDevices"): "yes",
        ("Service", "ProtectKernelTunables"): "yes",
        ("Service", "ProtectKernelModules"): "yes",
        ("Service", "ProtectKernelLogs"): "yes",
        ("Service", "ProtectControlGroups"): "yes",
        ("Service", "ProtectClock"): "yes",
        ("Service", "ProtectHostname"): "yes",
        ("Service", "RestrictAddressFamilies"): "AF_INET AF_INET6 AF_UNIX",
        ("Service", "RestrictNamespaces"): "yes",
        ("Service", "LockPersonality"): "yes",
        ("Service", "MemoryDenyWriteExecute"): "yes",
        ("Service", "RestrictRealtime"): "yes",
        ("Service", "SystemCallArchitectures"): "native",
        ("Service", "SystemCallFilter"): "@system-service",
        ("Service", "CapabilityBoundingSet"): "",
        ("Service", "AmbientCapabilities"): "",
        ("Service", "UMask"): "0077",
        ("Service", "Restart"): "on-failure",
        ("Install", "WantedBy"): "multi-user.target",
    }

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mdec-unit-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with open(os.path.join(SOURCE_DIR, "packaging", UNIT)) as f:
            self.text = f.read()

    def test_systemd_unit(self):
        directives = unit_directives(self.text)
        for key, value in self.REQUIRED.items():
            values = directives.get(key, [])
            self.assertTrue(values, f"{key[0]}: {key[1]}= is missing")
            if key[1] == "SystemCallFilter":  # a list: each line adds to it
                self.assertIn(value, values, key)
            elif key[1] == "AmbientCapabilities" or key[1] == "CapabilityBoundingSet":
                self.assertEqual(set(values), {value}, key)  # also lists: empty throughout
            else:  # the last assignment counts
                self.assertEqual(values[-1], value, key)
        for key in ("RestartSec", "TimeoutStopSec", "Type"):
            self.assertIn(("Service", key), directives)
        self.assertIn(directives[("Service", "Type")][-1], ("exec", "simple"))

        # verify wants ExecStart='s binary to exist: the same unit, pointed at the build's.
        copy = os.path.join(self.tmp, UNIT)
        with open(copy, "w") as f:
            f.write(self.text.replace("/usr/bin/mdecollect", os.path.abspath(MDECOLLECT)))
        p = run(["systemd-analyze", "verify", copy], timeout=60, check=False)
        # verify warns about unknown keys and bad values on stderr but still exits 0.
        self.assertEqual((p.returncode, p.stderr), (0, ""), p.stdout)

        # The certificate drop-in (packaging/certificate.conf) beside it: verify reads drop-ins
        # from the unit's directory, and the drop-in's resets leave the key alone as credential.
        dropins = os.path.join(self.tmp, UNIT + ".d")
        os.mkdir(dropins)
        with open(os.path.join(SOURCE_DIR, "packaging", "certificate.conf")) as f:
            dropin = f.read()
        with open(os.path.join(dropins, "certificate.conf"), "w") as f:
            f.write(dropin)
        p = run(["systemd-analyze", "verify", copy], timeout=60, check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""), p.stdout)
        merged = {}
        for text in (self.text, dropin):
            for key, values in unit_directives(text).items():
                for value in values:  # an empty assignment resets the list
                    merged[key] = [] if value == "" else merged.get(key, []) + [value]
        self.assertEqual(merged[("Service", "LoadCredential")],
                         ["client-key:/etc/mdecollect/client-key.pem"])
        self.assertEqual(merged[("Unit", "ConditionPathExists")],
                         ["/etc/mdecollect/client-key.pem"])
        shutil.rmtree(dropins)
        # The exposure score (0 safest, 10 unsafe) stays at or below 2.0.
        p = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                 "--no-pager", copy], timeout=60, check=False)
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        self.assertIsNotNone(score, p.stdout + p.stderr)
        print(f"systemd-analyze security: exposure {score.group(1)}")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mdec-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_install(self):
        # Into a prefix of its own: everything under it, the unit pointing into it.
        prefix = os.path.join(self.tmp, "prefix")
        run(["cmake", "--install", BUILD_DIR, "--prefix", prefix], timeout=120)
        files = sorted(os.path.relpath(os.path.join(d, f), prefix)
                       for d, _, fs in os.walk(prefix) for f in fs)
        self.assertEqual(files, [
            "bin/mdecollect",
            "etc/mdecollect/mdecollect.yaml",
            "lib/systemd/system/mdecollect.service",
            "share/doc/mdecollect/README.md",
            "share/doc/mdecollect/examples/certificate.conf",
            "share/doc/mdecollect/examples/mdecollect.example.yaml",
        ])
        self.assertTrue(os.access(os.path.join(prefix, "bin/mdecollect"), os.X_OK))
        with open(os.path.join(prefix, "lib/systemd/system", UNIT)) as f:
            unit = f.read()
        directives = unit_directives(unit)
        self.assertEqual(directives[("Service", "ExecStart")],
                         [f"{prefix}/bin/mdecollect run -c {prefix}/etc/mdecollect/mdecollect.yaml"])
        self.assertEqual(directives[("Service", "LoadCredential")],
                         [f"client-secret:{prefix}/etc/mdecollect/client-secret"])
        self.assertNotIn("/usr/bin/", unit)
        # That unit names a binary that exists: verify takes it as it is.
        p = run(["systemd-analyze", "verify", os.path.join(prefix, "lib/systemd/system", UNIT)],
                timeout=60, check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""), p.stdout)
        check_version_output(self, os.path.join(prefix, "bin/mdecollect"))

        # The prefix /usr with DESTDIR, as a distribution builds: /etc and /lib beside /usr.
        stage = os.path.join(self.tmp, "stage")
        run(["cmake", "--install", BUILD_DIR, "--prefix", "/usr"], timeout=120,
            env=dict(os.environ, DESTDIR=stage))
        for path in ("usr/bin/mdecollect", "etc/mdecollect/mdecollect.yaml",
                     "lib/systemd/system/mdecollect.service",
                     "usr/share/doc/mdecollect/README.md"):
            self.assertTrue(os.path.isfile(os.path.join(stage, path)), path)
        with open(os.path.join(stage, "lib/systemd/system", UNIT)) as a, \
                open(os.path.join(SOURCE_DIR, "packaging", UNIT)) as b:
            self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    MDECOLLECT, BUILD_DIR, SOURCE_DIR, VERSION = sys.argv[1:5]
    unittest.main(argv=[sys.argv[0], *sys.argv[5:]], verbosity=2)
