#!/usr/bin/env python3
"""Generates an Elasticsearch index template's mappings from field definitions.

Reads the flat ECS field definitions (share/ecs/ecs-8.11.0-flat.yml), a list of the fields the
documents carry (share/ecs/emitted-fields.txt, share/ecs/incident-emitted-fields.txt) and,
optionally, an Elastic integration's own field definitions (--package-fields, e.g.
share/elastic/m365_defender_incident/fields/*.yml), and writes a C++ source file that
defines, in namespace mdec::output::generated::<--namespace>, the template's
`template.mappings` as compact JSON and the field -> type table (src/lib/output/
es_template_data.h declares them).

Without --package-fields (the microsoft_defender_endpoint.log template), each listed field
must be an ECS field, or be under microsoft.defender_endpoint. (the integration's own fields:
date for lastUpdateTime and resolvedTime, ip for evidence.ipAddress, keyword for the rest),
or carry an explicit type in the list.

With --package-fields (the m365_defender.incident template), every field the package
declares is mapped with the package's definition (`external: ecs` ones from ECS; keyword
fields get ignore_above 1024, as Fleet gives them; constant_keyword keeps its `value`), and
each listed field must be one of those, an ECS field, or carry an explicit type.

Anything else fails the build, naming the field, so a new mapper field cannot be forgotten.

The output is deterministic: keys sorted, no timestamps, the same bytes for the same inputs.
"""

import argparse
import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("gen_es_template.py: the Python module 'yaml' is missing "
             "(Debian: apt-get install python3-yaml)")

MDE_PREFIX = "microsoft.defender_endpoint."
# The integration's own types (outputs.md); every other microsoft.defender_endpoint.* field is
# a keyword. ignore_above 1024 is what Fleet gives an integration's keyword fields, and keeps a
# long value (a description of 1020 UTF-16 units or more stays here) from failing the document
# with an immense-term error; the value stays in _source.
MDE_TYPES = {
    "microsoft.defender_endpoint.lastUpdateTime": {"type": "date"},
    "microsoft.defender_endpoint.resolvedTime": {"type": "date"},
    "microsoft.defender_endpoint.evidence.ipAddress": {"type": "ip"},
}
MDE_DEFAULT = {"type": "keyword", "ignore_above": 1024}

# Types a field outside ECS and microsoft.defender_endpoint may be given in the list.
EXPLICIT_TYPES = {"keyword", "long", "integer", "short", "byte", "double", "float", "boolean",
                  "date", "ip", "match_only_text", "text", "wildcard", "constant_keyword"}
# Types a package's fields.yml may give a leaf (anything else, e.g. nested or object, fails
# the build: it would need more than a type to map like Fleet maps it).
PACKAGE_TYPES = EXPLICIT_TYPES | {"flattened"}
# What Fleet gives a package's keyword field that sets no ignore_above.
FLEET_IGNORE_ABOVE = 1024
FIELD_NAME = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_@.]*$")


class GenError(Exception):
    pass


def read_fields(path):
    """[(name, explicit definition or None, line number)] from emitted-fields.txt."""
    fields = []
    seen = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            name = parts[0]
            where = f"{path}:{number}"
            if not FIELD_NAME.match(name) or ".." in name or name.endswith("."):
                raise GenError(f"{where}: '{name}' is not a flattened field name")
            if name in seen:
                raise GenError(f"{where}: '{name}' is listed twice (first on line {seen[name]})")
            seen[name] = number
            explicit = None
            if len(parts) > 1:
                if parts[1] not in EXPLICIT_TYPES:
                    raise GenError(f"{where}: '{name}': unknown type '{parts[1]}'")
                explicit = {"type": parts[1]}
                for option in parts[2:]:
                    key, _, value = option.partition("=")
                    if key != "ignore_above" or not value.isdigit():
                        raise GenError(f"{where}: '{name}': unknown option '{option}' "
                                       "(only ignore_above=N)")
                    explicit["ignore_above"] = int(value)
            fields.append((name, explicit, where))
    if not fields:
        raise GenError(f"{path}: no fields")
    return fields


def ecs_mapping(name, definition, where):
    """The Elasticsearch mapping of one ECS field, from its flat definition."""
    field_type = definition.get("type")
    if field_type in ("object", "nested", "group") or not field_type:
        raise GenError(f"{where}: '{name}' is of type '{field_type}' in ECS: list its leaf fields instead")
    mapping = {"type": field_type}
    if "ignore_above" in definition:
        mapping["ignore_above"] = int(definition["ignore_above"])
    if definition.get("index") is False:
        mapping["index"] = False
    if definition.get("doc_values") is False:
        mapping["doc_values"] = False
    if "scaling_factor" in definition:
        mapping["scaling_factor"] = definition["scaling_factor"]
    multi = definition.get("multi_fields") or []
    if multi:
        sub = {}
        for m in multi:
            entry = {"type": m["type"]}
            for key in ("ignore_above", "norms", "analyzer"):
                if key in m:
                    entry[key] = m[key]
            sub[m["name"]] = entry
        mapping["fields"] = sub
    return mapping


def read_package(paths, ecs):
    """{flattened name: (mapping, where)} for every field the package's fields/*.yml declare."""
    out = {}

    def add(name, mapping, where):
        if name in out and out[name][0] != mapping:
            raise GenError(f"{where}: '{name}' is declared twice, differently "
                           f"(first at {out[name][1]})")
        out.setdefault(name, (mapping, where))

    def walk(items, prefix, path):
        if not isinstance(items, list):
            raise GenError(f"{path}: '{prefix or '(top)'}': expected a list of fields")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise GenError(f"{path}: '{prefix or '(top)'}': a field without a name")
            name = prefix + item["name"]
            where = f"{path} ({name})"
            if item.get("external") == "ecs":
                if name not in ecs:
                    raise GenError(f"{where}: 'external: ecs' but not an ECS 8.11 field")
                add(name, ecs_mapping(name, ecs[name], where), where)
                continue
            field_type = item.get("type")
            if field_type == "group":
                walk(item.get("fields") or [], name + ".", path)
                continue
            if field_type not in PACKAGE_TYPES:
                raise GenError(f"{where}: type '{field_type}' is not supported")
            mapping = {"type": field_type}
            if field_type == "keyword":
                mapping["ignore_above"] = int(item.get("ignore_above", FLEET_IGNORE_ABOVE))
            if field_type == "constant_keyword" and "value" in item:
                mapping["value"] = str(item["value"])
            for key in ("index", "doc_values"):
                if item.get(key) is False:
                    mapping[key] = False
            add(name, mapping, where)

    for path in paths:
        with open(path, encoding="utf-8") as f:
            walk(yaml.safe_load(f), "", os.path.basename(path))
    if not out:
        raise GenError("the package field definitions declare no field")
    return out


def package_field_mapping(name, explicit, where, ecs, package, prefix):
    """The mapping of a listed field when the template is built from a package's fields."""
    if name in package:
        if explicit is not None:
            raise GenError(f"{where}: '{name}' is declared by the package "
                           f"({package[name][1]}); remove the explicit type")
        return dict(package[name][0])
    for parent, (mapping, parent_where) in package.items():
        if mapping["type"] == "flattened" and name.startswith(parent + "."):
            raise GenError(f"{where}: '{name}' is inside the flattened field '{parent}' "
                           f"({parent_where}); do not list it")
    if name in ecs and not name.startswith(prefix):
        if explicit is not None:
            raise GenError(f"{where}: '{name}' is an ECS field; remove the explicit type")
        return ecs_mapping(name, ecs[name], where)
    if explicit is not None:
        return explicit
    raise GenError(f"{where}: '{name}' is neither declared by the package nor an ECS 8.11 "
                   "field and has no explicit type: add its type to the list (with the "
                   "reason) or fix the mapper")


def field_mapping(name, explicit, where, ecs):
    if name.startswith(MDE_PREFIX):
        if explicit is not None:
            raise GenError(f"{where}: '{name}': microsoft.defender_endpoint fields take the "
                           "integration's types; remove the explicit type")
        return dict(MDE_TYPES.get(name, MDE_DEFAULT))
    if name in ecs:
        if explicit is not None:
            raise GenError(f"{where}: '{name}' is an ECS field; remove the explicit type")
        return ecs_mapping(name, ecs[name], where)
    if explicit is not None:
        return explicit
    raise GenError(f"{where}: '{name}' is neither an ECS 8.11 field nor under "
                   f"{MDE_PREFIX} and has no explicit type: add its type to the list "
                   "(with the reason it is not ECS) or fix the mapper")


def resolve(fields, ecs, package=None, prefix=""):
    """[(name, mapping, where)]: the listed fields' mappings, and every package field."""
    if package is None:
        return [(name, field_mapping(name, explicit, where, ecs), where)
                for name, explicit, where in fields]
    out = [(name, package_field_mapping(name, explicit, where, ecs, package, prefix), where)
           for name, explicit, where in fields]
    listed = {name for name, _, _ in fields}
    for name in sorted(package):
        if name not in listed:
            out.append((name, dict(package[name][0]), package[name][1]))
    return out


def build(resolved):
    """(mappings dict, [(flattened field, type)]) for the resolved fields."""
    root = {}
    table = []
    owner = {}  # flattened path of each object/leaf node -> the entry that made it
    for name, mapping, where in resolved:
        table.append((name, mapping["type"]))
        for sub_name, sub in sorted(mapping.get("fields", {}).items()):
            table.append((f"{name}.{sub_name}", sub["type"]))
        # "@timestamp" has no dot; every other name nests by its dots.
        parts = name.split(".")
        node = root
        for depth, part in enumerate(parts[:-1]):
            path = ".".join(parts[:depth + 1])
            entry = node.setdefault(part, {"properties": {}})
            if "properties" not in entry:
                raise GenError(f"{where}: '{name}' needs '{path}' to be an object, but "
                               f"{owner[path]} maps it as a field")
            owner.setdefault(path, where)
            node = entry["properties"]
        leaf = parts[-1]
        if leaf in node:
            raise GenError(f"{where}: '{name}' is an object of other listed fields "
                           f"(first at {owner[name]}); it cannot also be a field")
        node[leaf] = mapping
        owner[name] = where
    table.sort()
    return {"properties": root}, table


def cxx_string(text, indent="    ", width=96):
    """A C++ string literal for `text`, split into adjacent literals of about `width` bytes."""
    pieces = []
    current = []
    length = 0
    for ch in text.encode("utf-8"):
        if ch == 0x22:
            piece = '\\"'
        elif ch == 0x5C:
            piece = "\\\\"
        elif 0x20 <= ch < 0x7F and ch != 0x3F:  # '?' escaped: no trigraphs in any mode
            piece = chr(ch)
        else:
            piece = f"\\{ch:03o}"
        current.append(piece)
        length += len(piece)
        if length >= width:
            pieces.append("".join(current))
            current, length = [], 0
    if current or not pieces:
        pieces.append("".join(current))
    return "\n".join(f'{indent}"{p}"' for p in pieces)


def render(mappings_json, table, inputs, namespace):
    out = []
    out.append("// Generated by tools/gen_es_template.py from " + " and ".join(inputs) + ".")
    out.append("// Do not edit: change the inputs and rebuild.")
    out.append('#include "output/es_template_data.h"')
    out.append("")
    out.append(f"namespace mdec::output::generated::{namespace} {{")
    out.append("")
    out.append("// The index template's template.mappings, compact JSON, keys sorted.")
    out.append("const std::string_view kMappingsJson =")
    out.append(cxx_string(mappings_json) + ";")
    out.append("")
    out.append("namespace {")
    out.append(f"constexpr std::array<MappedField, {len(table)}> kTable = {{{{")
    for name, field_type in table:
        out.append(f"    {{{json.dumps(name)}, {json.dumps(field_type)}}},")
    out.append("}};")
    out.append("}  // namespace")
    out.append("")
    out.append("// Every field of the template (multi-fields included), sorted by name.")
    out.append("const std::span<const MappedField> kMappedFields = kTable;")
    out.append("")
    out.append(f"}}  // namespace mdec::output::generated::{namespace}")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ecs", required=True, help="ECS flat field definitions (YAML)")
    parser.add_argument("--fields", required=True, help="the list of emitted fields")
    parser.add_argument("--output", required=True, help="the C++ file to write")
    parser.add_argument("--namespace", required=True,
                        help="the C++ namespace under mdec::output::generated")
    parser.add_argument("--package-fields", nargs="*", default=[],
                        help="an Elastic package's fields/*.yml (mapped in full)")
    parser.add_argument("--package-prefix", default="",
                        help="the package's own field prefix (e.g. m365_defender.incident.)")
    args = parser.parse_args()
    if not re.match(r"^[a-z_][a-z0-9_]*$", args.namespace):
        parser.error(f"--namespace: '{args.namespace}' is not a C++ namespace name")
    try:
        with open(args.ecs, encoding="utf-8") as f:
            ecs = yaml.safe_load(f)
        if not isinstance(ecs, dict):
            raise GenError(f"{args.ecs}: not a mapping of field names to definitions")
        fields = read_fields(args.fields)
        package = read_package(args.package_fields, ecs) if args.package_fields else None
        mappings, table = build(resolve(fields, ecs, package, args.package_prefix))
    except (GenError, OSError, yaml.YAMLError) as e:
        print(f"gen_es_template.py: error: {e}", file=sys.stderr)
        return 1
    mappings_json = json.dumps(mappings, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)
    inputs = [os.path.basename(args.ecs), os.path.basename(args.fields)]
    inputs += [os.path.basename(p) for p in args.package_fields]
    text = render(mappings_json, table, inputs, args.namespace)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
