// The m365_defender.incident index template (incidents.md §4, outputs.md "setup"): every field
// of every expected incident document is mapped, with a type that fits its values and that
// Elastic's own field definitions (read here from share/elastic/m365_defender_incident/fields)
// or ECS 8.11 give it; both templates keep documents away from any default ingest pipeline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/es_template.h"
#include "support/json_compare.h"

namespace {

namespace dom = simdjson::dom;
using mdec::output::IndexTemplateId;
using mdec::output::indexTemplateJson;
using mdec::output::IndexTemplateOptions;
using mdec::output::indexTemplates;
using mdec::output::IndexTemplateSpec;
using mdec::output::indexTemplateVersion;
using mdec::output::kEndpointTemplate;
using mdec::output::kIncidentTemplate;
using mdec::output::mappedFields;
using mdec::output::mappedType;
using mdec::testing::nonBlankLines;
using mdec::testing::readLines;

constexpr std::string_view kOwn = "m365_defender.incident.";

// ---- The definitions the types must come from ---------------------------------------------

// Flattened name -> type: ECS 8.11.
const std::map<std::string, std::string>& ecsTypes() {
  static const std::map<std::string, std::string> types = [] {
    std::map<std::string, std::string> out;
    try {
      for (const auto& entry : YAML::LoadFile(MDEC_ECS_YML)) {
        out[entry.first.as<std::string>()] = entry.second["type"].as<std::string>();
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << MDEC_ECS_YML << ": " << e.what();
    }
    return out;
  }();
  return types;
}

struct ElasticField {
  std::string type;
  std::string value;  // constant_keyword's value
};

void walkElastic(const YAML::Node& items, const std::string& prefix,
                 std::map<std::string, ElasticField>& out) {
  for (const auto& item : items) {
    const std::string name = prefix + item["name"].as<std::string>();
    if (item["external"]) {
      out[name] = {ecsTypes().at(name), ""};
    } else if (item["type"].as<std::string>() == "group") {
      walkElastic(item["fields"], name + ".", out);
    } else {
      out[name] = {item["type"].as<std::string>(),
                   item["value"] ? item["value"].as<std::string>() : std::string()};
    }
  }
}

// Flattened name -> definition: Elastic's m365_defender incident fields (fields.yml,
// base-fields.yml, ecs.yml), as the package declares them.
const std::map<std::string, ElasticField>& elasticFields() {
  static const std::map<std::string, ElasticField> fields = [] {
    std::map<std::string, ElasticField> out;
    for (const char* file : {"fields.yml", "base-fields.yml", "ecs.yml"}) {
      const std::string path = std::string(MDEC_INCIDENT_FIELDS_DIR) + "/" + file;
      try {
        walkElastic(YAML::LoadFile(path), "", out);
      } catch (const std::exception& e) {
        ADD_FAILURE() << path << ": " << e.what();
      }
    }
    return out;
  }();
  return fields;
}

// The type a field of an incident document must have: Elastic's (a key below a flattened
// field is the flattened field's), else ECS 8.11's; the one field outside both is listed in
// share/ecs/incident-emitted-fields.txt. Empty: no known type.
std::string expectedType(const std::string& field) {
  const auto& elastic = elasticFields();
  if (const auto it = elastic.find(field); it != elastic.end()) return it->second.type;
  for (auto dot = field.rfind('.'); dot != std::string::npos && dot > 0;
       dot = field.rfind('.', dot - 1)) {
    const auto it = elastic.find(field.substr(0, dot));
    if (it != elastic.end() && it->second.type == "flattened") return "flattened";
  }
  if (field == "m365_defender.incident.alert.evidence.detailed_roles") return "keyword";
  if (field.starts_with(kOwn)) return {};
  const auto& ecs = ecsTypes();
  if (const auto it = ecs.find(field); it != ecs.end()) return it->second;
  return {};
}

// ---- The fixture ---------------------------------------------------------------------------

// Leaf path -> the JSON kinds of its values (arrays flatten to their elements) and one sample.
struct Leaf {
  std::set<dom::element_type> kinds;
  std::vector<std::string> strings;  // every string value
  std::string where;
};

void collectLeaves(dom::element value, const std::string& path, const std::string& where,
                   std::map<std::string, Leaf>& out) {
  switch (value.type()) {
    case dom::element_type::OBJECT:
      for (const auto field : dom::object(value)) {
        const std::string key(field.key);
        collectLeaves(field.value, path.empty() ? key : path + "." + key, where, out);
      }
      break;
    case dom::element_type::ARRAY:
      for (const dom::element item : dom::array(value)) collectLeaves(item, path, where, out);
      break;
    default: {
      Leaf& leaf = out[path];
      if (leaf.where.empty()) leaf.where = where;
      leaf.kinds.insert(value.type());
      if (value.is_string()) leaf.strings.emplace_back(value.get_string().value_unsafe());
      break;
    }
  }
}

struct Fixture {
  std::size_t documents = 0;
  std::map<std::string, Leaf> leaves;
};

const Fixture& incidentFixture() {
  static const Fixture fixture = [] {
    Fixture f;
    const std::string path = std::string(MDEC_OUTPUT_TEST_DATA) + "/incident.expected.ndjson";
    const auto lines = readLines(path);
    if (!lines) {
      ADD_FAILURE() << "cannot read " << path;
      return f;
    }
    dom::parser parser;
    const auto docs = nonBlankLines(*lines);
    for (std::size_t i = 0; i < docs.size(); ++i) {
      dom::element root;
      if (parser.parse(docs[i]).get(root) != simdjson::SUCCESS || !root.is_object()) {
        ADD_FAILURE() << path << ":" << i + 1 << ": not a JSON object";
        continue;
      }
      collectLeaves(root, "", "incident.expected.ndjson:" + std::to_string(i + 1), f.leaves);
      ++f.documents;
    }
    return f;
  }();
  return fixture;
}

// Whether every value of `leaf` fits an Elasticsearch field of `type`.
std::string misfit(const std::string& type, const Leaf& leaf) {
  static const std::regex date(
      R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))");
  static const std::set<std::string> numbers = {"long",   "integer", "short",       "byte",
                                                "double", "float",   "scaled_float"};
  static const std::set<std::string> strings = {
      "keyword", "constant_keyword", "wildcard", "match_only_text", "text", "date", "ip"};
  for (const auto kind : leaf.kinds) {
    const bool number = kind == dom::element_type::INT64 || kind == dom::element_type::UINT64 ||
                        kind == dom::element_type::DOUBLE;
    if (type == "flattened") continue;  // any scalar
    if (number && !numbers.contains(type)) return "a number in a " + type + " field";
    if (kind == dom::element_type::STRING && !strings.contains(type)) {
      return "a string in a " + type + " field";
    }
    if (kind == dom::element_type::BOOL && type != "boolean") return "a boolean in " + type;
  }
  for (const auto& s : leaf.strings) {
    if (type == "date" && !std::regex_match(s, date)) return "'" + s + "' is not a date";
    if (type == "ip") {
      unsigned char buf[16];
      if (inet_pton(AF_INET, s.c_str(), buf) != 1 && inet_pton(AF_INET6, s.c_str(), buf) != 1) {
        return "'" + s + "' is not an IP";
      }
    }
  }
  return {};
}

// ---- The templates as JSON -----------------------------------------------------------------

struct ParsedTemplate {
  dom::parser parser;
  dom::element root;
};

// ---- Tests ---------------------------------------------------------------------------------

TEST(EsIncidentTemplateTest, DefinitionsAndFixtureAreRead) {
  EXPECT_EQ(elasticFields().at("m365_defender.incident.comments").type, "flattened");
  EXPECT_EQ(elasticFields().at("event.module").value, "m365_defender");
  EXPECT_GT(elasticFields().size(), 150u);
  const auto& fixture = incidentFixture();
  EXPECT_EQ(fixture.documents, 11u);
  // What makes the walk worth it: flattened comments, evidence of many kinds, numbers, IPs.
  for (const char* field :
       {"m365_defender.incident.comments.comment",
        "m365_defender.incident.alert.evidence.ip_address",
        "m365_defender.incident.alert.evidence.process.id", "event.severity", "process.pid",
        "related.ip", "m365_defender.incident.alert.recommended_actions", "@timestamp"}) {
    EXPECT_TRUE(fixture.leaves.contains(field)) << field;
  }
}

// Every field of every expected incident document is mapped by the incident template, with
// Elastic's or ECS's type, and every value fits that type (dates are dates, numbers are in
// numeric fields, IPs are IPs).
TEST(EsIncidentTemplateTest, EveryFieldOfTheIncidentFixtureIsMapped) {
  const auto& fixture = incidentFixture();
  ASSERT_GT(fixture.leaves.size(), 150u);
  for (const auto& [field, leaf] : fixture.leaves) {
    const std::string mapped(mappedType(kIncidentTemplate, field));
    EXPECT_FALSE(mapped.empty()) << field << " (" << leaf.where
                                 << ") is not mapped by the incident template: add it to "
                                    "share/ecs/incident-emitted-fields.txt";
    EXPECT_EQ(mapped, expectedType(field))
        << field << " (" << leaf.where << "): not the type Elastic or ECS gives it";
    if (!mapped.empty()) {
      EXPECT_EQ(misfit(mapped, leaf), "") << field << " (" << leaf.where << ")";
    }
  }
}

// Every field Elastic's package declares is mapped with Elastic's type, keyword fields with
// Fleet's ignore_above, and the constants carry their values (event.module is not in the
// documents: the mapping supplies it).
TEST(EsIncidentTemplateTest, ElasticsFieldsKeepElasticsTypes) {
  for (const auto& [field, def] : elasticFields()) {
    EXPECT_EQ(std::string(mappedType(kIncidentTemplate, field)), def.type) << field;
  }
  ParsedTemplate t;
  const std::string json = indexTemplateJson(kIncidentTemplate, IndexTemplateOptions{});
  ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS);
  const std::string event = "/template/mappings/properties/event/properties/";
  std::string_view text;
  ASSERT_EQ(t.root.at_pointer(event + "module/type").get(text), simdjson::SUCCESS);
  EXPECT_EQ(text, "constant_keyword");
  ASSERT_EQ(t.root.at_pointer(event + "module/value").get(text), simdjson::SUCCESS);
  EXPECT_EQ(text, "m365_defender");
  ASSERT_EQ(t.root.at_pointer(event + "dataset/value").get(text), simdjson::SUCCESS);
  EXPECT_EQ(text, "m365_defender.incident");
  const std::string own =
      "/template/mappings/properties/m365_defender/properties/incident/"
      "properties/";
  ASSERT_EQ(t.root.at_pointer(own + "comments/type").get(text), simdjson::SUCCESS);
  EXPECT_EQ(text, "flattened");
  ASSERT_EQ(
      t.root.at_pointer(own + "alert/properties/evidence/properties/ip_address/type").get(text),
      simdjson::SUCCESS);
  EXPECT_EQ(text, "ip");
  dom::element evidence_type;
  EXPECT_NE(t.root.at_pointer(own + "alert/properties/evidence/type").get(evidence_type),
            simdjson::SUCCESS)
      << "evidence is an object (a group in Elastic's fields), not nested";
  std::int64_t ignore_above = 0;
  ASSERT_EQ(t.root.at_pointer(own + "status/ignore_above").get(ignore_above), simdjson::SUCCESS);
  EXPECT_EQ(ignore_above, 1024);

  EXPECT_EQ(mappedType(kIncidentTemplate, "m365_defender.incident.comments.createdBy"),
            "flattened");
  EXPECT_EQ(mappedType(kIncidentTemplate, "m365_defender.incident.status.x"), "");
  EXPECT_EQ(mappedType(kIncidentTemplate, "m365_defender.incident.no_such_field"), "");
  EXPECT_EQ(mappedType(kIncidentTemplate, "microsoft.defender_endpoint.status"), "");
  EXPECT_EQ(mappedType(kEndpointTemplate, "m365_defender.incident.status"), "");
}

// Error documents (§4.5) carry error.message, event.original and tags besides the envelope.
TEST(EsIncidentTemplateTest, ErrorDocumentFieldsAreMapped) {
  for (const char* field : {"error.message", "event.original", "tags", "event.kind",
                            "event.dataset", "ecs.version", "data_stream.namespace"}) {
    EXPECT_EQ(std::string(mappedType(kIncidentTemplate, field)), expectedType(field)) << field;
  }
  EXPECT_EQ(mappedType(kIncidentTemplate, "error.message"), "match_only_text");
}

// Both templates: their pattern, priority 250 (above Fleet's 200), a data stream, no default
// ingest pipeline (with or without an ILM policy), their own version.
TEST(EsIncidentTemplateTest, BothTemplatesSkipTheIngestPipelineAtPriority250) {
  const auto templates = indexTemplates();
  ASSERT_EQ(templates.size(), 2u);
  EXPECT_EQ(templates[0].name, "mdecollect-microsoft_defender_endpoint.log");
  EXPECT_EQ(templates[1].name, "mdecollect-m365_defender.incident");
  EXPECT_EQ(templates[1].pattern, "logs-m365_defender.incident-*");
  EXPECT_NE(indexTemplateVersion(templates[0]), indexTemplateVersion(templates[1]));
  EXPECT_EQ(indexTemplateVersion(templates[0]), indexTemplateVersion());
  for (const IndexTemplateSpec& spec : templates) {
    for (const std::string policy : {"", "mdecollect-90d"}) {
      IndexTemplateOptions options;
      options.ilm_policy = policy;
      const std::string json = indexTemplateJson(spec, options);
      ParsedTemplate t;
      ASSERT_EQ(t.parser.parse(json).get(t.root), simdjson::SUCCESS) << spec.name;
      std::string_view text;
      ASSERT_EQ(t.root.at_pointer("/template/settings/index/default_pipeline").get(text),
                simdjson::SUCCESS)
          << spec.name;
      EXPECT_EQ(text, "_none") << spec.name;
      std::int64_t number = 0;
      ASSERT_EQ(t.root["priority"].get(number), simdjson::SUCCESS);
      EXPECT_EQ(number, 250) << spec.name;
      ASSERT_EQ(t.root.at_pointer("/index_patterns/0").get(text), simdjson::SUCCESS);
      EXPECT_EQ(text, spec.pattern);
      dom::object data_stream;
      EXPECT_EQ(t.root["data_stream"].get(data_stream), simdjson::SUCCESS) << spec.name;
      ASSERT_EQ(t.root.at_pointer("/_meta/version").get(number), simdjson::SUCCESS);
      EXPECT_EQ(number, indexTemplateVersion(spec));
      dom::object index;
      ASSERT_EQ(t.root.at_pointer("/template/settings/index").get(index), simdjson::SUCCESS);
      EXPECT_EQ(index.size(), policy.empty() ? 1u : 2u) << spec.name;
      if (!policy.empty()) {
        ASSERT_EQ(t.root.at_pointer("/template/settings/index/lifecycle/name").get(text),
                  simdjson::SUCCESS);
        EXPECT_EQ(text, policy);
      }
    }
    const auto fields = mappedFields(spec);
    EXPECT_TRUE(std::is_sorted(fields.begin(), fields.end())) << spec.name;
    EXPECT_GT(fields.size(), 50u) << spec.name;
  }
}

// The output checks the templates of what the configured sources write.
TEST(EsIncidentTemplateTest, TemplatesWrittenFollowTheSources) {
  mdec::config::Config config;
  EXPECT_EQ(mdec::output::templatesWritten(config),
            std::vector<IndexTemplateId>{IndexTemplateId::kEndpoint});
  config.sources.resize(2);
  config.sources[0].type = mdec::config::SourceType::kMde;
  config.sources[1].type = mdec::config::SourceType::kGraph;
  EXPECT_EQ(mdec::output::templatesWritten(config),
            std::vector<IndexTemplateId>{IndexTemplateId::kEndpoint})
      << "no graph_incidents source: the incident template is not checked";
  config.sources[1].type = mdec::config::SourceType::kGraphIncidents;
  EXPECT_EQ(mdec::output::templatesWritten(config),
            (std::vector<IndexTemplateId>{IndexTemplateId::kEndpoint, IndexTemplateId::kIncident}));
  config.sources.resize(1);
  config.sources[0].type = mdec::config::SourceType::kFile;
  config.sources[0].format = "graph_incidents";
  EXPECT_EQ(mdec::output::templatesWritten(config),
            std::vector<IndexTemplateId>{IndexTemplateId::kIncident})
      << "a file of incidents writes incident documents only";
}

}  // namespace
