#!/usr/bin/env python3
"""The product contains no emulator: mdecollect neither links mdec_emulator nor holds any of
its code.

Usage: no_emulator_test.py MDECOLLECT LINK_CLOSURE EMULATOR_ARCHIVE

- LINK_CLOSURE: the targets mdecollect links, directly or through other targets, one per
  line, written by CMake at configure time (tests/packaging/CMakeLists.txt). mdec_emulator
  must not be among them.
- `nm -C MDECOLLECT`: no symbol of namespace mdec::emulator (the binary must have symbols:
  one of the mapper's is looked for, so a stripped binary fails instead of passing).
- `nm` of EMULATOR_ARCHIVE (libmdec_emulator.a): none of the strong global symbols its
  objects define is defined in MDECOLLECT, so no emulator object is in the link whatever its
  symbols are called.
"""
import subprocess
import sys
import unittest

MDECOLLECT = LINK_CLOSURE = EMULATOR_ARCHIVE = ""


def nm(*argv):
    p = subprocess.run(["nm", *argv], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"nm {' '.join(argv)} exited {p.returncode}: {p.stderr}")
    return p.stdout.splitlines()


def defined(lines, kinds):
    """Names from nm output lines whose symbol type is in kinds."""
    names = set()
    for line in lines:
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[1] in kinds:
            names.add(parts[2])
    return names


class NoEmulatorTest(unittest.TestCase):
    def test_the_target_graph_has_no_emulator(self):
        with open(LINK_CLOSURE, encoding="utf-8") as f:
            targets = [line.strip() for line in f if line.strip()]
        self.assertIn("mdec_collector", targets)
        self.assertNotIn("mdec_emulator", targets)

    def test_no_emulator_symbol(self):
        lines = nm("-C", MDECOLLECT)
        self.assertTrue(any("mdec::ecs::Mapper" in line for line in lines),
                        "mdecollect has no symbols to check (stripped?)")
        emulator = [line for line in lines if "mdec::emulator::" in line]
        self.assertEqual(emulator, [], "emulator symbols in mdecollect:\n" +
                         "\n".join(emulator[:20]))

    def test_no_emulator_object(self):
        # Strong definitions only: weak ones (inline functions, templates) may be shared.
        strong = set("TDBR")
        emulator = defined(nm("--defined-only", "--extern-only", EMULATOR_ARCHIVE), strong)
        self.assertGreater(len(emulator), 10, "libmdec_emulator.a defines almost nothing?")
        product = defined(nm("--defined-only", MDECOLLECT), strong | set("tdbr"))
        both = sorted(emulator & product)
        self.assertEqual(both, [], "emulator objects linked into mdecollect; they define:\n" +
                         "\n".join(both[:20]))


if __name__ == "__main__":
    MDECOLLECT, LINK_CLOSURE, EMULATOR_ARCHIVE = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0], *sys.argv[4:]], verbosity=2)
