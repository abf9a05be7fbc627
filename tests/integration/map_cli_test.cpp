// `mdecollect map` as a user runs it: the real binary, files, pipes and exit codes.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/process.h"

namespace {

using mdec::testing::runProcess;

const std::string kBin = MDEC_BINARY;
const std::string kGolden = MDEC_GOLDEN_DIR;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

using mdec::testing::readFile;

std::string field(const std::string& doc, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(simdjson::padded_string(doc)).get(root) != simdjson::SUCCESS)
    return "<bad json>";
  simdjson::dom::element v;
  if (root.at_pointer(pointer).get(v) != simdjson::SUCCESS) return "<absent>";
  return simdjson::minify(v);
}

TEST(MapCli, MapsAFileAndSummarisesOnStderr) {
  auto r = runProcess({kBin, "map", kGolden + "/rules.input.ndjson"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines(r.out).size(), 10u);
  EXPECT_NE(r.err.find("10 lines read, 8 alerts, 10 documents written, 3 error documents"),
            std::string::npos)
      << r.err;
}

TEST(MapCli, ReadsStandardInputWhenNoFileIsGiven) {
  const std::string input = readFile(kGolden + "/seed-sample.input.ndjson");
  auto r = runProcess({kBin, "map"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto docs = lines(r.out);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(field(docs[0], "/event/id"), "\"da637472900382838869_1364969609\"");
  // "-" names standard input too, and files are read in order.
  auto both = runProcess({kBin, "map", kGolden + "/rules.input.ndjson", "-"}, input);
  ASSERT_EQ(both.exit_code, 0) << both.err;
  EXPECT_EQ(lines(both.out).size(), 13u);
}

TEST(MapCli, AMissingInputFailsWithItsNameAndWritesNothing) {
  auto r = runProcess({kBin, "map", kGolden + "/rules.input.ndjson", "/nonexistent/alerts.ndjson"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/alerts.ndjson"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(MapCli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(runProcess({kBin, "map", "--no-such-flag"}).exit_code, 2);
  EXPECT_EQ(runProcess({kBin}).exit_code, 2);
  EXPECT_EQ(runProcess({kBin, "frobnicate"}).exit_code, 2);
  auto bad_ns = runProcess({kBin, "map", "--namespace", "Prod-EU"}, "{}\n");
  EXPECT_EQ(bad_ns.exit_code, 2);
  EXPECT_NE(bad_ns.err.find("--namespace"), std::string::npos) << bad_ns.err;
}

TEST(MapCli, HelpAndVersion) {
  auto help = runProcess({kBin, "map", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--preserve-original-event"), std::string::npos);
  EXPECT_NE(help.out.find("Exit"), std::string::npos);
  auto version = runProcess({kBin, "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("mdecollect ", 0), 0u) << version.out;
}

TEST(MapCli, TagsNamespaceAndPreserveOriginal) {
  const std::string input = readFile(kGolden + "/seed-sample.input.ndjson");
  auto r = runProcess(
      {kBin, "map", "--tags", "soc,eu", "--namespace", "prod_eu", "--preserve-original-event"},
      input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto docs = lines(r.out);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(field(docs[0], "/tags"), R"(["soc","eu","preserve_original_event"])");
  EXPECT_EQ(field(docs[0], "/data_stream/namespace"), "\"prod_eu\"");
  EXPECT_NE(field(docs[1], "/event/original"), "<absent>");
}

TEST(MapCli, IncidentsOneDocumentPerAlertWithTheirFlags) {
  // One incident with two alerts, one without alerts, then an empty page.
  const std::string input =
      R"({"id":"7","lastUpdateDateTime":"2024-01-02T03:04:05.1234567Z","severity":"High",)"
      R"("assignedTo":"ann@contoso.com","alerts":[{"id":"a1","category":"Execution"},)"
      R"({"id":"a2","category":"Discovery"}]})"
      "\n"
      R"({"value":[{"id":"8","customTags":["x"]}]})"
      "\n"
      R"({"value":[]})"
      "\n";
  auto r = runProcess({kBin, "map", "--incidents", "--preserve-duplicate-custom-fields",
                       "--namespace", "prod", "--id-field", "_id"},
                      input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto docs = lines(r.out);
  ASSERT_EQ(docs.size(), 3u) << r.out;
  EXPECT_NE(r.err.find("3 lines read, 2 incidents, 3 documents written, 0 error documents"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(field(docs[0], "/m365_defender/incident/alert/id"), "\"a1\"");
  EXPECT_EQ(field(docs[1], "/m365_defender/incident/alert/id"), "\"a2\"");
  EXPECT_EQ(field(docs[0], "/event/severity"), "73");
  EXPECT_EQ(field(docs[0], "/@timestamp"), "\"2024-01-02T03:04:05.123Z\"");
  EXPECT_EQ(field(docs[0], "/m365_defender/incident/id"), "\"7\"");  // kept: option on
  EXPECT_EQ(field(docs[0], "/tags"),
            R"(["preserve_duplicate_custom_fields","forwarded","m365_defender-incident"])");
  EXPECT_EQ(field(docs[0], "/data_stream/dataset"), "\"m365_defender.incident\"");
  EXPECT_EQ(field(docs[0], "/data_stream/namespace"), "\"prod\"");
  EXPECT_EQ(field(docs[2], "/m365_defender/incident/tags"), R"(["x"])");
  EXPECT_EQ(field(docs[0], "/_id").size(), 30u);  // 28 Base64 characters, quoted
  EXPECT_NE(field(docs[0], "/_id"), field(docs[1], "/_id"));
  // Without --incidents the option is a usage error.
  EXPECT_EQ(runProcess({kBin, "map", "--preserve-duplicate-custom-fields"}, "").exit_code, 2);
  EXPECT_EQ(runProcess({kBin, "map", "--incidents", "--graph"}, "").exit_code, 2);
  auto help = runProcess({kBin, "map", "--help"});
  EXPECT_NE(help.out.find("--incidents"), std::string::npos);
  EXPECT_NE(help.out.find("--preserve-duplicate-custom-fields"), std::string::npos);
}

TEST(MapCli, IdsAreStableAcrossProcessesAndPinned) {
  const std::string file = kGolden + "/seed-sample.input.ndjson";
  auto first = runProcess({kBin, "map", "--id-field", "doc_id", file});
  auto second = runProcess({kBin, "map", "--id-field", "doc_id", file});
  ASSERT_EQ(first.exit_code, 0);
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(first.out, second.out);
  const auto docs = lines(first.out);
  ASSERT_EQ(docs.size(), 3u);
  // sha256("da637472900382838869_1364969609\x1f" "2021-01-26T20:33:59.2Z\x1f" "<index>")[:32]
  // computed independently; a change here re-stores every alert after an upgrade.
  EXPECT_EQ(field(docs[0], "/doc_id"), "\"619dcbf9770f260a65d2bce907c0ddd3\"");
  EXPECT_EQ(field(docs[1], "/doc_id"), "\"b5f07f7e6f28242ad8adccd3103c276b\"");
  EXPECT_EQ(field(docs[2], "/doc_id"), "\"f76953d2ee1081d8495acf5af35ffab8\"");
}

TEST(MapCli, APageOfTenThousandAlertsOnOneLine) {
  // Built from the seed sample's alert (three evidences each), ids made unique.
  const std::string page = readFile(kGolden + "/seed-sample.input.ndjson");
  const auto start = page.find("\"value\":[") + 9;
  const auto end = page.rfind(']');
  const std::string alert = page.substr(start, end - start);
  std::string line =
      R"({"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Alerts","value":[)";
  for (int i = 0; i < 10000; ++i) {
    if (i != 0) line.push_back(',');
    std::string a = alert;
    a.replace(a.find("da637472900382838869_1364969609"), 31,
              "da6374729003828388_" + std::to_string(i));
    line += a;
  }
  line += "]}\n";
  ASSERT_GT(line.size(), 10u * 1000 * 1000);
  auto r = runProcess({kBin, "map"}, line);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto docs = lines(r.out);
  ASSERT_EQ(docs.size(), 30000u);
  EXPECT_EQ(field(docs[29999], "/event/id"), "\"da6374729003828388_9999\"");
  EXPECT_NE(r.err.find("1 lines read, 10000 alerts, 30000 documents written, 0 error documents"),
            std::string::npos)
      << r.err;
}

TEST(MapCli, GarbageLinesBecomeErrorDocumentsAndTheRunGoesOn) {
  auto r = runProcess({kBin, "map"}, "not json\n\n{\"value\":[]}\n[1]\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto docs = lines(r.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(field(docs[0], "/event/kind"), "\"pipeline_error\"");
  EXPECT_EQ(field(docs[0], "/event/original"), "\"not json\"");
  EXPECT_EQ(field(docs[1], "/event/original"), "\"[1]\"");
  EXPECT_NE(r.err.find("4 lines read, 1 alerts, 2 documents written, 2 error documents"),
            std::string::npos)
      << r.err;
}

}  // namespace
