// Golden tests: the shared conformance fixtures (tests/golden/*.input.ndjson ->
// *.expected.ndjson), mapped in process and compared structurally under the ecsdiff rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "mdecollect/ecs/graph_translate.h"
#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/ecs/mapper.h"
#include "support/json_compare.h"

namespace {

using mdec::ecs::GraphTranslator;
using mdec::ecs::LineContext;
using mdec::ecs::MapOptions;
using mdec::ecs::Mapper;
using mdec::testing::CollectingSink;
using mdec::testing::diffEcsDocuments;
using mdec::testing::joinLines;
using mdec::testing::JsonDoc;
using mdec::testing::nonBlankLines;
using mdec::testing::readLines;

std::string goldenPath(const std::string& file) {
  return std::string(MDEC_GOLDEN_DIR) + "/" + file;
}

// `graph`: the input is Microsoft Graph alerts_v2 alerts or pages (graph.md), translated
// first, as `mdecollect map --graph` does.
void runCase(const std::string& name, MapOptions options, bool graph = false) {
  const auto input = readLines(goldenPath(name + ".input.ndjson"));
  ASSERT_TRUE(input.has_value()) << "cannot read " << goldenPath(name + ".input.ndjson");
  const auto expected_file = readLines(goldenPath(name + ".expected.ndjson"));
  ASSERT_TRUE(expected_file.has_value()) << "cannot read " << goldenPath(name + ".expected.ndjson");
  const std::vector<std::string> expected = nonBlankLines(*expected_file);
  ASSERT_FALSE(expected.empty());

  Mapper mapper(std::move(options));
  GraphTranslator translator;
  CollectingSink sink;
  for (const auto& line : *input) {
    if (graph) {
      mdec::ecs::mapGraphLine(mapper, translator, line, LineContext{}, sink);
    } else {
      mapper.mapLine(line, LineContext{}, sink);
    }
  }
  const auto& actual = sink.documents;

  EXPECT_EQ(actual.size(), expected.size()) << "document count differs for " << name;
  const std::size_t common = std::min(actual.size(), expected.size());
  for (std::size_t i = 0; i < common; ++i) {
    const auto differences = diffEcsDocuments(expected[i], actual[i].json);
    EXPECT_TRUE(differences.empty()) << name << " document " << i << ":\n"
                                     << joinLines(differences) << "actual: " << actual[i].json;
    // The view's error flag agrees with the document it came with.
    const JsonDoc doc(actual[i].json);
    EXPECT_EQ(actual[i].error, doc.getString("event.kind") == "pipeline_error")
        << name << " document " << i;
    if (!actual[i].error) {
      EXPECT_EQ(actual[i].id,
                mdec::ecs::documentId(
                    doc.getString("event.id").value_or(""),
                    doc.getString("microsoft.defender_endpoint.lastUpdateTime").value_or(""),
                    actual[i].evidence_index))
          << name << " document " << i;
    }
  }
  for (std::size_t i = common; i < actual.size(); ++i) {
    ADD_FAILURE() << name << ": unexpected extra document " << i << ": " << actual[i].json;
  }
}

TEST(GoldenTest, SeedSample) { runCase("seed-sample", MapOptions{}); }

TEST(GoldenTest, Rules) { runCase("rules", MapOptions{}); }

TEST(GoldenTest, ElasticPipeline) {
  MapOptions options;
  options.preserve_original_event = true;
  runCase("elastic-pipeline", std::move(options));
}

TEST(GoldenTest, Graph) { runCase("graph", MapOptions{}, /*graph=*/true); }

// `incident`: Graph security incidents (incidents.md), with the options the fixtures' README
// gives: preserve_original_event and preserve_duplicate_custom_fields on, default tags and
// namespace.
TEST(GoldenTest, Incident) {
  const std::string name = "incident";
  const auto input = readLines(goldenPath(name + ".input.ndjson"));
  ASSERT_TRUE(input.has_value()) << "cannot read " << goldenPath(name + ".input.ndjson");
  const auto expected_file = readLines(goldenPath(name + ".expected.ndjson"));
  ASSERT_TRUE(expected_file.has_value()) << "cannot read " << goldenPath(name + ".expected.ndjson");
  const std::vector<std::string> expected = nonBlankLines(*expected_file);
  ASSERT_EQ(expected.size(), 11U);

  mdec::ecs::IncidentMapOptions options;
  options.preserve_original_event = true;
  options.preserve_duplicate_custom_fields = true;
  mdec::ecs::IncidentMapper mapper(std::move(options));
  CollectingSink sink;
  for (const auto& line : *input) mapper.mapLine(line, LineContext{}, sink);
  const auto& actual = sink.documents;

  EXPECT_EQ(actual.size(), expected.size()) << "document count differs for " << name;
  const std::size_t common = std::min(actual.size(), expected.size());
  for (std::size_t i = 0; i < common; ++i) {
    const auto differences = diffEcsDocuments(expected[i], actual[i].json);
    EXPECT_TRUE(differences.empty()) << name << " document " << i << ":\n"
                                     << joinLines(differences) << "actual: " << actual[i].json;
    EXPECT_FALSE(actual[i].error) << name << " document " << i;
    EXPECT_EQ(actual[i].id.size(), 28U) << name << " document " << i;
  }
  for (std::size_t i = common; i < actual.size(); ++i) {
    ADD_FAILURE() << name << ": unexpected extra document " << i << ": " << actual[i].json;
  }
  // Elastic's own _id of two of them (incidents.md §5.1).
  ASSERT_GE(actual.size(), 3U);
  EXPECT_EQ(actual[0].id, "3AD3zEf4F1YpVMasYuPT/BybzAo=");
  EXPECT_EQ(actual[2].id, "g4LqZt3xrYWcf+3Q/2mJq39JJ2I=");
}

}  // namespace
