// The Elasticsearch index template (outputs.md, "setup"): every field the mapper emits has a
// mapping, with the ECS 8.11 type (read here from share/ecs/ecs-8.11.0-flat.yml) or the
// integration's microsoft.defender_endpoint type; the template body has the shape
// PUT /_index_template expects.
#include "mdecollect/output/es_template.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/ecs/mapper.h"
#include "support/json_compare.h"

namespace {

namespace dom = simdjson::dom;
using mdec::ecs::LineContext;
using mdec::ecs::MapOptions;
using mdec::ecs::Mapper;
using mdec::output::indexTemplateJson;
using mdec::output::IndexTemplateOptions;
using mdec::output::indexTemplateVersion;
using mdec::output::mappedFields;
using mdec::output::mappedType;
using mdec::testing::CollectingSink;
using mdec::testing::nonBlankLines;
using mdec::testing::readLines;

constexpr std::string_view kMd = "microsoft.defender_endpoint.";

// ---- The ECS field definitions, as the yml says -------------------------------------------

struct EcsField {
  std::string type;
  std::optional<std::int64_t> ignore_above;
  bool index_false = false;
  bool doc_values_false = false;
  std::map<std::string, std::string> multi_fields;  // name -> type
};

const std::map<std::string, EcsField>& ecsFields() {
  static const std::map<std::string, EcsField> fields = [] {
    std::map<std::string, EcsField> out;
    try {
      const YAML::Node root = YAML::LoadFile(MDEC_ECS_YML);
      for (const auto& entry : root) {
        const YAML::Node& def = entry.second;
        EcsField f;
        f.type = def["type"].as<std::string>();
        if (def["ignore_above"]) f.ignore_above = def["ignore_above"].as<std::int64_t>();
        f.index_false = def["index"] && !def["index"].as<bool>();
        f.doc_values_false = def["doc_values"] && !def["doc_values"].as<bool>();
        if (def["multi_fields"]) {
          for (const auto& m : def["multi_fields"]) {
            f.multi_fields[m["name"].as<std::string>()] = m["type"].as<std::string>();
          }
        }
        out[entry.first.as<std::string>()] = std::move(f);
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot read " << MDEC_ECS_YML << ": " << e.what();
    }
    return out;
  }();
  return fields;
}

// The type a field must have: ECS 8.11's, or the integration's for microsoft.defender_endpoint
// (outputs.md), or, for the two fields the mapper emits outside both, the one the list of
// emitted fields gives them. Empty: the field has no known type.
std::string expectedType(const std::string& field) {
  if (field.starts_with(kMd)) {
    const std::string_view rest = std::string_view(field).substr(kMd.size());
    if (rest == "lastUpdateTime" || rest == "resolvedTime") return "date";
    if (rest == "evidence.ipAddress") return "ip";
    return "keyword";
  }
  const auto& ecs = ecsFields();
  if (const auto it = ecs.find(field); it != ecs.end()) return it->second.type;
  if (field == "log.offset") return "long";        // Filebeat's field, not ECS
  if (field == "url.user_info") return "keyword";  // uri_parts' field, not ECS
  return {};
}

// ---- Documents ---------------------------------------------------------------------------

// Every leaf path of a JSON value: objects nest by '.', arrays flatten to their elements.
void collectLeaves(dom::element value, const std::string& path, std::set<std::string>& out) {
  switch (value.type()) {
    case dom::element_type::OBJECT:
      for (const auto field : dom::object(value)) {
        const std::string key(field.key);
        collectLeaves(field.value, path.empty() ? key : path + "." + key, out);
      }
      break;
    case dom::element_type::ARRAY:
      for (const dom::element item : dom::array(value)) collectLeaves(item, path, out);
      break;
    default:
      out.insert(path);
      break;
  }
}

// Leaf path -> where it was first seen.
using Leaves = std::map<std::string, std::string>;

void addDocumentLeaves(const std::string& json, const std::string& where, Leaves& leaves) {
  dom::parser parser;
  dom::element root;
  const auto error = parser.parse(json).get(root);
  ASSERT_EQ(error, simdjson::SUCCESS) << where << ": not JSON: " << json.substr(0, 200);
  ASSERT_EQ(root.type(), dom::element_type::OBJECT) << where;
  std::set<std::string> paths;
  collectLeaves(root, "", paths);
  for (const auto& p : paths) leaves.emplace(p, where);
}

void expectAllMapped(const Leaves& leaves) {
  for (const auto& [field, where] : leaves) {
    const std::string expected = expectedType(field);
    EXPECT_FALSE(expected.empty())
        << field << " (" << where << ") is neither ECS 8.11 nor microsoft.defender_endpoint";
    EXPECT_EQ(std::string(mappedType(field)), expected)
        << field << " (" << where << "): the template's type differs from "
        << (expected.empty() ? "(none)" : expected)
        << "; is it missing from share/ecs/emitted-fields.txt?";
  }
}

// The golden files of the endpoint template's documents. The incident fixture
// (incident.*.ndjson: m365_defender.incident documents, the graph_incidents source) goes to
// the other template; es_incident_template_test checks it against that one.
std::vector<std::filesystem::path> goldenFiles(std::string_view suffix) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(MDEC_GOLDEN_DIR)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(suffix) && !name.starts_with("incident.")) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- The template as JSON ----------------------------------------------------------------

struct ParsedTemplate {
  dom::parser parser;
  dom::element root;
};

// Field mappings of the template's mappings, flattened: "url.full" and "url.full.text" too.
void collectMappings(dom::object properties, const std::string& prefix,
                     std::map<std::string, dom::object>& out) {
  for (const auto field : properties) {
    const std::string name = prefix + std::string(field.key);
    dom::object def;
    ASSERT_EQ(field.value.get(def), simdjson::SUCCESS) << name;
    dom::object nested;
    if (def["properties"].get(nested) == simdjson::SUCCESS) {
      EXPECT_EQ(def.size(), 1u) << name << ": an object mapping with more than properties";
      collectMappings(nested, name + ".", out);
      continue;
    }
    out.emplace(name, def);
    dom::object subfields;
    if (def["fields"].get(subfields) == simdjson::SUCCESS) {
      for (const auto sub : subfields) {
        dom::object sub_def;
        ASSERT_EQ(sub.value.get(sub_def), simdjson::SUCCESS) << name;
        out.emplace(name + "." + std::string(sub.key), sub_def);
      }
    }
  }
}

std::string typeOf(dom::object def) {
  std::string_view type;
  if (def["type"].get(type) != simdjson::SUCCESS) return {};
  return std::string(type);
}

// ---- Tests -------------------------------------------------------------------------------

TEST(EsTemplateTest, EcsDefinitionsAreRead) {
  const auto& ecs = ecsFields();
  ASSERT_GT(ecs.size(), 1000u);
  EXPECT_EQ(ecs.at("@timestamp").type, "date");
  EXPECT_TRUE(ecs.at("event.original").index_false);
}

// Every field of every expected document of the conformance fixtures (the graph fixture's
// too: the documents the Graph translation must produce) has its ECS or integration type.
TEST(EsTemplateTest, EveryFieldOfTheGoldenDocumentsIsMapped) {
  const auto files = goldenFiles(".expected.ndjson");
  ASSERT_GE(files.size(), 4u) << MDEC_GOLDEN_DIR;
  Leaves leaves;
  std::size_t documents = 0;
  for (const auto& file : files) {
    const auto lines = readLines(file.string());
    ASSERT_TRUE(lines.has_value()) << file;
    const auto docs = nonBlankLines(*lines);
    for (std::size_t i = 0; i < docs.size(); ++i) {
      addDocumentLeaves(docs[i], file.filename().string() + ":" + std::to_string(i + 1), leaves);
      ++documents;
    }
  }
  EXPECT_GT(documents, 20u);
  // The golden documents include error documents and evidence of every kind.
  for (const char* field : {"error.message", "event.original", "process.pid", "url.port",
                            "related.ip", "microsoft.defender_endpoint.evidence.ipAddress",
                            "microsoft.defender_endpoint.lastUpdateTime"}) {
    EXPECT_TRUE(leaves.contains(field)) << field;
  }
  expectAllMapped(leaves);
}

// The same for what the mapper itself makes of the fixtures' inputs, with
// preserve_original_event on and off, as lines of a file (so log.file.path and log.offset
// appear). The graph input is left out: its alerts are Graph alerts_v2, which only reach the
// mapper through the Graph translation (graph.md); its expected documents are checked above.
TEST(EsTemplateTest, EveryFieldTheMapperEmitsForTheGoldenInputsIsMapped) {
  const auto files = goldenFiles(".input.ndjson");
  ASSERT_GE(files.size(), 3u) << MDEC_GOLDEN_DIR;
  Leaves leaves;
  std::size_t documents = 0;
  std::size_t errors = 0;
  for (const bool preserve : {true, false}) {
    for (const auto& file : files) {
      if (file.filename() == "graph.input.ndjson") continue;
      MapOptions options;
      options.preserve_original_event = preserve;
      Mapper mapper(options, [] { return std::string("2030-01-02T03:04:05.678Z"); });
      CollectingSink sink;
      const auto lines = readLines(file.string());
      ASSERT_TRUE(lines.has_value()) << file;
      const std::string path = file.string();
      std::int64_t offset = 0;
      for (const auto& line : *lines) {
        mapper.mapLine(line, LineContext{path, offset, false}, sink);
        offset += static_cast<std::int64_t>(line.size()) + 1;
      }
      for (std::size_t i = 0; i < sink.documents.size(); ++i) {
        const auto& doc = sink.documents[i];
        addDocumentLeaves(
            doc.json,
            file.filename().string() + (preserve ? " (preserve) #" : " #") + std::to_string(i),
            leaves);
        ++documents;
        if (doc.error) ++errors;
      }
    }
  }
  EXPECT_GT(documents, 20u);
  EXPECT_GT(errors, 0u) << "the rules fixture has bad input: error documents expected";
  for (const char* field : {"log.file.path", "log.offset", "event.original", "error.message",
                            "url.user_info", "tags"}) {
    EXPECT_TRUE(leaves.contains(field)) << field;
  }
  expectAllMapped(leaves);
}

TEST(EsTemplateTest, TemplateBodyHasTheIndexTemplateShape) {
  const std::string json = indexTemplateJson(IndexTemplateOptions{});
  ParsedTemplate t;
  ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS) << json.substr(0, 300);

  dom::array patterns;
  ASSERT_EQ(t.root["index_patterns"].get(patterns), simdjson::SUCCESS);
  ASSERT_EQ(patterns.size(), 1u);
  std::string_view pattern;
  ASSERT_EQ(patterns.at(0).get(pattern), simdjson::SUCCESS);
  EXPECT_EQ(pattern, "logs-microsoft_defender_endpoint.log-*");
  EXPECT_EQ(pattern, mdec::output::kIndexPattern);

  dom::object data_stream;
  ASSERT_EQ(t.root["data_stream"].get(data_stream), simdjson::SUCCESS);
  EXPECT_EQ(data_stream.size(), 0u);

  std::int64_t priority = 0;
  ASSERT_EQ(t.root["priority"].get(priority), simdjson::SUCCESS);
  EXPECT_EQ(priority, 250);
  EXPECT_GT(priority, 200) << "must win over the Elastic integration's template";

  dom::array composed_of;
  ASSERT_EQ(t.root["composed_of"].get(composed_of), simdjson::SUCCESS);
  EXPECT_EQ(composed_of.size(), 0u);

  std::string_view managed_by;
  ASSERT_EQ(t.root.at_pointer("/_meta/managed_by").get(managed_by), simdjson::SUCCESS);
  EXPECT_EQ(managed_by, "mdecollect");
  std::int64_t version = 0;
  ASSERT_EQ(t.root.at_pointer("/_meta/version").get(version), simdjson::SUCCESS);
  EXPECT_GT(version, 0);
  EXPECT_EQ(version, indexTemplateVersion());

  dom::object settings;
  ASSERT_EQ(t.root.at_pointer("/template/settings").get(settings), simdjson::SUCCESS);
  EXPECT_EQ(settings.size(), 1u);
  dom::object index_settings;
  ASSERT_EQ(settings["index"].get(index_settings), simdjson::SUCCESS);
  EXPECT_EQ(index_settings.size(), 1u) << "no ILM policy: only default_pipeline";
  std::string_view default_pipeline;
  ASSERT_EQ(index_settings["default_pipeline"].get(default_pipeline), simdjson::SUCCESS);
  EXPECT_EQ(default_pipeline, "_none") << "never the integration's ingest pipeline";

  dom::object mappings;
  ASSERT_EQ(t.root.at_pointer("/template/mappings").get(mappings), simdjson::SUCCESS);
  dom::element dynamic;
  EXPECT_NE(mappings["dynamic"].get(dynamic), simdjson::SUCCESS)
      << "dynamic stays at its default: unknown fields must not vanish";
  dom::object properties;
  ASSERT_EQ(mappings["properties"].get(properties), simdjson::SUCCESS);
  EXPECT_GT(properties.size(), 10u);

  dom::object top;
  ASSERT_EQ(t.root.get(top), simdjson::SUCCESS);
  std::set<std::string> keys;
  for (const auto field : top) keys.insert(std::string(field.key));
  EXPECT_EQ(keys, (std::set<std::string>{"index_patterns", "data_stream", "priority", "composed_of",
                                         "template", "_meta"}));
}

TEST(EsTemplateTest, IlmPolicyIsTheOnlySettingBesidesTheDefaultPipeline) {
  IndexTemplateOptions options;
  options.ilm_policy = "mde \"90 days\"";
  const std::string json = indexTemplateJson(options);
  ParsedTemplate t;
  ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS) << json.substr(0, 300);
  dom::object settings;
  ASSERT_EQ(t.root.at_pointer("/template/settings").get(settings), simdjson::SUCCESS);
  EXPECT_EQ(settings.size(), 1u);
  dom::object index;
  ASSERT_EQ(settings["index"].get(index), simdjson::SUCCESS);
  EXPECT_EQ(index.size(), 2u);
  std::string_view default_pipeline;
  ASSERT_EQ(index["default_pipeline"].get(default_pipeline), simdjson::SUCCESS);
  EXPECT_EQ(default_pipeline, "_none");
  std::string_view name;
  ASSERT_EQ(t.root.at_pointer("/template/settings/index/lifecycle/name").get(name),
            simdjson::SUCCESS);
  EXPECT_EQ(name, "mde \"90 days\"");
  dom::object lifecycle;
  ASSERT_EQ(index["lifecycle"].get(lifecycle), simdjson::SUCCESS);
  EXPECT_EQ(lifecycle.size(), 1u);

  // The version describes the template, not the options; the mappings are the same.
  std::int64_t version = 0;
  ASSERT_EQ(t.root.at_pointer("/_meta/version").get(version), simdjson::SUCCESS);
  EXPECT_EQ(version, indexTemplateVersion());
  const std::string plain = indexTemplateJson(IndexTemplateOptions{});
  const auto mappings_at = [](const std::string& body) { return body.find("\"mappings\":"); };
  EXPECT_EQ(json.substr(mappings_at(json)), plain.substr(mappings_at(plain)));
  EXPECT_EQ(indexTemplateJson(options), json) << "deterministic";
}

TEST(EsTemplateTest, FieldsWithParticularMappings) {
  const std::string json = indexTemplateJson(IndexTemplateOptions{});
  ParsedTemplate t;
  ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS);

  // event.original is kept in _source only, as ECS says.
  dom::object original;
  ASSERT_EQ(
      t.root.at_pointer("/template/mappings/properties/event/properties/original").get(original),
      simdjson::SUCCESS);
  EXPECT_EQ(typeOf(original), "keyword");
  bool index = true;
  bool doc_values = true;
  ASSERT_EQ(original["index"].get(index), simdjson::SUCCESS);
  ASSERT_EQ(original["doc_values"].get(doc_values), simdjson::SUCCESS);
  EXPECT_FALSE(index);
  EXPECT_FALSE(doc_values);

  // @timestamp is a top-level key, not an object "@timestamp" holding nothing.
  dom::object timestamp;
  ASSERT_EQ(t.root.at_pointer("/template/mappings/properties/@timestamp").get(timestamp),
            simdjson::SUCCESS);
  EXPECT_EQ(typeOf(timestamp), "date");

  const std::string md =
      "/template/mappings/properties/microsoft/properties/defender_endpoint/"
      "properties/";
  dom::object def;
  ASSERT_EQ(t.root.at_pointer(md + "evidence/properties/ipAddress").get(def), simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "ip");
  ASSERT_EQ(t.root.at_pointer(md + "lastUpdateTime").get(def), simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "date");
  ASSERT_EQ(t.root.at_pointer(md + "resolvedTime").get(def), simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "date");
  ASSERT_EQ(t.root.at_pointer(md + "status").get(def), simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "keyword");

  // Multi-fields and ignore_above come from ECS.
  ASSERT_EQ(t.root.at_pointer("/template/mappings/properties/url/properties/full").get(def),
            simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "wildcard");
  dom::object text;
  ASSERT_EQ(def.at_pointer("/fields/text").get(text), simdjson::SUCCESS);
  EXPECT_EQ(typeOf(text), "match_only_text");
  ASSERT_EQ(t.root.at_pointer("/template/mappings/properties/host/properties/name").get(def),
            simdjson::SUCCESS);
  std::int64_t ignore_above = 0;
  ASSERT_EQ(def["ignore_above"].get(ignore_above), simdjson::SUCCESS);
  EXPECT_EQ(ignore_above, 1024);
  ASSERT_EQ(
      t.root.at_pointer("/template/mappings/properties/data_stream/properties/dataset").get(def),
      simdjson::SUCCESS);
  EXPECT_EQ(typeOf(def), "constant_keyword");

  EXPECT_EQ(mappedType("event.original"), "keyword");
  EXPECT_EQ(mappedType("@timestamp"), "date");
  EXPECT_EQ(mappedType("microsoft.defender_endpoint.evidence.ipAddress"), "ip");
  EXPECT_EQ(mappedType("microsoft.defender_endpoint.lastUpdateTime"), "date");
  EXPECT_EQ(mappedType("microsoft.defender_endpoint.resolvedTime"), "date");
  EXPECT_EQ(mappedType("url.full.text"), "match_only_text");
  EXPECT_EQ(mappedType("event.duration"), "long");
  EXPECT_EQ(mappedType("related.ip"), "ip");
  EXPECT_EQ(mappedType("event"), "");
  EXPECT_EQ(mappedType("no.such.field"), "");
  EXPECT_EQ(mappedType(""), "");
}

// The field table and the mappings JSON say the same, and agree with the ECS definitions in
// every detail the template carries.
TEST(EsTemplateTest, FieldTableMatchesTheMappingsAndEcs) {
  const std::string json = indexTemplateJson(IndexTemplateOptions{});
  ParsedTemplate t;
  ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS);
  dom::object properties;
  ASSERT_EQ(t.root.at_pointer("/template/mappings/properties").get(properties), simdjson::SUCCESS);
  std::map<std::string, dom::object> mappings;
  collectMappings(properties, "", mappings);

  const auto fields = mappedFields();
  ASSERT_FALSE(fields.empty());
  EXPECT_TRUE(std::is_sorted(fields.begin(), fields.end()));
  EXPECT_EQ(std::adjacent_find(fields.begin(), fields.end()), fields.end()) << "duplicates";
  EXPECT_EQ(fields.size(), mappings.size());

  const auto& ecs = ecsFields();
  for (const auto field_view : fields) {
    const std::string field(field_view);
    const auto it = mappings.find(field);
    ASSERT_NE(it, mappings.end()) << field << " is in the table but not in the mappings";
    EXPECT_EQ(typeOf(it->second), std::string(mappedType(field))) << field;

    const auto ecs_it = ecs.find(field);
    if (ecs_it == ecs.end()) continue;
    const EcsField& def = ecs_it->second;
    const dom::object m = it->second;
    EXPECT_EQ(typeOf(m), def.type) << field;
    std::int64_t ignore_above = 0;
    if (def.ignore_above) {
      EXPECT_EQ(m["ignore_above"].get(ignore_above), simdjson::SUCCESS) << field;
      EXPECT_EQ(ignore_above, *def.ignore_above) << field;
    } else {
      EXPECT_NE(m["ignore_above"].get(ignore_above), simdjson::SUCCESS) << field;
    }
    bool flag = true;
    EXPECT_EQ(m["index"].get(flag) == simdjson::SUCCESS && !flag, def.index_false) << field;
    EXPECT_EQ(m["doc_values"].get(flag) == simdjson::SUCCESS && !flag, def.doc_values_false)
        << field;
    for (const auto& [name, type] : def.multi_fields) {
      EXPECT_EQ(std::string(mappedType(field + "." + name)), type) << field << "." << name;
    }
  }
  for (const auto& [field, def] : mappings) {
    EXPECT_FALSE(mappedType(field).empty()) << field << " is mapped but not in the table";
  }
}

TEST(EsTemplateTest, VersionIsStable) {
  EXPECT_EQ(indexTemplateVersion(), indexTemplateVersion());
  EXPECT_GT(indexTemplateVersion(), 0);
  EXPECT_EQ(indexTemplateJson(IndexTemplateOptions{}), indexTemplateJson(IndexTemplateOptions{}));
}

}  // namespace
