#include "mdecollect/telemetry/metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>

namespace mdec::telemetry {
namespace {

using std::chrono::milliseconds;

std::chrono::system_clock::time_point at(std::int64_t unix_ms) {
  return std::chrono::system_clock::time_point(milliseconds(unix_ms));
}

// The sample line for `series` (name and labels as written), or "" when absent.
std::string sample(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  }
  return "";
}

TEST(MetricsTest, PrometheusHasEveryFamilyWithHelpAndType) {
  Metrics m;
  m.source("tenant-a", "mde");
  m.output("file");
  const std::string text = m.prometheus(at(1'800'000'000'000));
  for (const char* family : {"mdecollect_source_requests_total",
                             "mdecollect_source_alerts_fetched_total",
                             "mdecollect_source_documents_produced_total",
                             "mdecollect_source_retries_total",
                             "mdecollect_source_throttled_total",
                             "mdecollect_source_token_refreshes_total",
                             "mdecollect_source_watermark_lag_seconds",
                             "mdecollect_source_last_success_timestamp_seconds",
                             "mdecollect_source_state",
                             "mdecollect_documents_delivered_total",
                             "mdecollect_documents_duplicates_total",
                             "mdecollect_documents_dead_lettered_total",
                             "mdecollect_documents_failed_total",
                             "mdecollect_output_state",
                             "mdecollect_outbox_max_bytes",
                             "mdecollect_log_messages_total",
                             "mdecollect_workers",
                             "mdecollect_polls_in_flight",
                             "mdecollect_polls_started_total",
                             "mdecollect_poll_start_delay_seconds"}) {
    EXPECT_NE(text.find(std::string("# HELP ") + family + " "), std::string::npos) << family;
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  // Every non-comment line is "name{labels} value" or "name value".
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string value = line.substr(space + 1);
    EXPECT_NO_THROW((void)std::stod(value)) << line;
  }
}

TEST(MetricsTest, SourceCountersRequestsAndLag) {
  Metrics m;
  SourceMetrics& s = m.source("tenant-a", "graph");
  EXPECT_EQ(&s, &m.source("tenant-a", "graph"));  // registered once
  s.request(200);
  s.request(200);
  s.request(429);
  s.request(0);
  s.alerts_fetched += 1500;
  s.documents_produced += 4000;
  s.throttled += 1;
  s.token_refreshes = 2;
  s.watermark_unix_ms = 1'800'000'000'000 - 90'500;
  s.server_offset_ms = 500;  // the API's clock is half a second ahead
  s.last_success_unix_ms = 1'800'000'000'250;
  const std::string text = m.prometheus(at(1'800'000'000'000));
  EXPECT_EQ(sample(text, R"(mdecollect_source_requests_total{source="tenant-a",status="200"})"),
            "2");
  EXPECT_EQ(sample(text, R"(mdecollect_source_requests_total{source="tenant-a",status="429"})"),
            "1");
  EXPECT_EQ(sample(text, R"(mdecollect_source_requests_total{source="tenant-a",status="error"})"),
            "1");
  EXPECT_EQ(sample(text, R"(mdecollect_source_alerts_fetched_total{source="tenant-a"})"), "1500");
  EXPECT_EQ(sample(text, R"(mdecollect_source_documents_produced_total{source="tenant-a"})"),
            "4000");
  EXPECT_EQ(sample(text, R"(mdecollect_source_throttled_total{source="tenant-a"})"), "1");
  EXPECT_EQ(sample(text, R"(mdecollect_source_token_refreshes_total{source="tenant-a"})"), "2");
  EXPECT_EQ(sample(text, R"(mdecollect_source_watermark_lag_seconds{source="tenant-a"})"), "91");
  EXPECT_EQ(sample(text, R"(mdecollect_source_last_success_timestamp_seconds{source="tenant-a"})"),
            "1800000000.25");
  EXPECT_EQ(
      sample(text, R"(mdecollect_source_state{source="tenant-a",type="graph",state="starting"})"),
      "1");
}

TEST(MetricsTest, NoWatermarkNoLagSample) {
  Metrics m;
  m.source("fresh", "mde");
  const std::string text = m.prometheus(at(1'800'000'000'000));
  EXPECT_EQ(sample(text, R"(mdecollect_source_watermark_lag_seconds{source="fresh"})"), "");
}

TEST(MetricsTest, DocumentsPerSourceAndOutput) {
  Metrics m;
  m.documents("a", "file", Outcome::kDelivered, 10);
  m.documents("a", "file", Outcome::kDelivered, 5);
  m.documents("b", "elasticsearch", Outcome::kDuplicate, 2);
  m.documents("b", "elasticsearch", Outcome::kDeadLettered, 1);
  m.documents("b", "elasticsearch", Outcome::kFailed, 0);  // nothing: no series
  EXPECT_EQ(m.documentsOf("a", "file", Outcome::kDelivered), 15u);
  const std::string text = m.prometheus(at(0));
  EXPECT_EQ(sample(text, R"(mdecollect_documents_delivered_total{source="a",output="file"})"),
            "15");
  EXPECT_EQ(
      sample(text, R"(mdecollect_documents_duplicates_total{source="b",output="elasticsearch"})"),
      "2");
  EXPECT_EQ(
      sample(text,
             R"(mdecollect_documents_dead_lettered_total{source="b",output="elasticsearch"})"),
      "1");
  EXPECT_EQ(sample(text, R"(mdecollect_documents_failed_total{source="b",output="elasticsearch"})"),
            "");
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics m;
  m.source("we\"ird\\name\n", "mde");
  const std::string text = m.prometheus(at(0));
  EXPECT_NE(text.find(R"(source="we\"ird\\name\n")"), std::string::npos) << text;
}

TEST(MetricsTest, OutboxProbeIsReadAtEachScrape) {
  Metrics m;
  std::uint64_t docs = 3;
  m.setOutboxProbe([&docs] { return Metrics::OutboxSize{docs, docs * 100}; }, 1000);
  EXPECT_EQ(sample(m.prometheus(at(0)), "mdecollect_outbox_documents"), "3");
  docs = 7;
  const std::string text = m.prometheus(at(0));
  EXPECT_EQ(sample(text, "mdecollect_outbox_documents"), "7");
  EXPECT_EQ(sample(text, "mdecollect_outbox_bytes"), "700");
  EXPECT_EQ(sample(text, "mdecollect_outbox_max_bytes"), "1000");
  EXPECT_NE(m.health(at(0)).json.find(R"("outbox":{"documents":7,"bytes":700,"max_bytes":1000})"),
            std::string::npos);
}

TEST(MetricsTest, HealthStatusFollowsTheWorstState) {
  Metrics m;
  SourceMetrics& a = m.source("a", "mde");
  SourceMetrics& b = m.source("b", "graph");
  OutputMetrics& out = m.output("elasticsearch");
  auto h = m.health(at(0));
  EXPECT_EQ(h.http_status, 200);
  EXPECT_NE(h.json.find(R"("status":"starting")"), std::string::npos) << h.json;

  a.setState(State::kCollecting);
  b.setState(State::kCollecting);
  out.setState(State::kOk);
  h = m.health(at(0));
  EXPECT_EQ(h.http_status, 200);
  EXPECT_NE(h.json.find(R"("status":"ok")"), std::string::npos) << h.json;

  b.setState(State::kDegraded, "throttled: waiting 30 s");
  h = m.health(at(0));
  EXPECT_EQ(h.http_status, 200);
  EXPECT_NE(h.json.find(R"("status":"degraded")"), std::string::npos) << h.json;
  EXPECT_NE(
      h.json.find(R"("b":{"type":"graph","state":"degraded","reason":"throttled: waiting 30 s")"),
      std::string::npos)
      << h.json;

  a.setState(State::kFailing, "last poll failed: invalid_client: AADSTS7000215");
  h = m.health(at(0));
  EXPECT_EQ(h.http_status, 503);
  EXPECT_NE(h.json.find(R"("status":"failing")"), std::string::npos) << h.json;

  a.setState(State::kCollecting);
  out.setState(State::kFailing, "HTTP 401");
  EXPECT_EQ(m.health(at(0)).http_status, 503);
}

TEST(MetricsTest, SetStateIfOnlyLeavesTheNamedStates) {
  SourceMetrics s("a", "mde");
  s.setState(State::kFailing, "refused");
  s.setStateIf(State::kCollecting, {State::kAuthenticating, State::kDegraded});
  EXPECT_EQ(s.state().first, State::kFailing);
  EXPECT_EQ(s.state().second, "refused");
  s.setState(State::kDegraded, "throttled");
  s.setStateIf(State::kCollecting, {State::kAuthenticating, State::kDegraded});
  EXPECT_EQ(s.state().first, State::kCollecting);
  EXPECT_EQ(s.state().second, "");
}

TEST(MetricsTest, HealthReportsWatermarkAndLastSuccess) {
  Metrics m;
  SourceMetrics& s = m.source("a", "mde");
  s.watermark_unix_ms = unixMillisOf("2026-11-28T06:00:00.5Z");
  s.last_success_unix_ms = unixMillisOf("2026-11-28T06:01:00Z");
  const auto h = m.health(at(unixMillisOf("2026-11-28T06:02:00.5Z")));
  EXPECT_NE(h.json.find(R"("watermark":"2026-11-28T06:00:00.500Z","lag_seconds":120)"),
            std::string::npos)
      << h.json;
  EXPECT_NE(h.json.find(R"("last_success":"2026-11-28T06:01:00.000Z")"), std::string::npos)
      << h.json;
  EXPECT_EQ(unixMillisOf("not a time"), 0);
}

TEST(MetricsTest, LogMessagesByLevel) {
  Metrics m;
  m.logMessage("warning");
  m.logMessage("warning");
  m.logMessage("error");
  const std::string text = m.prometheus(at(0));
  EXPECT_EQ(sample(text, R"(mdecollect_log_messages_total{level="warning"})"), "2");
  EXPECT_EQ(sample(text, R"(mdecollect_log_messages_total{level="error"})"), "1");
}

TEST(MetricsTest, DocumentTallyAddsUpABatchPerSourceAndOutcome) {
  Metrics m;
  DocumentTally tally;
  const std::string a = "a", b = "b";
  for (int i = 0; i < 3; ++i) tally.add(a, Outcome::kDelivered);
  tally.add(b, Outcome::kDelivered, 5);
  tally.add(a, Outcome::kDuplicate);
  tally.flush(&m, "elasticsearch");
  EXPECT_EQ(m.documentsOf("a", "elasticsearch", Outcome::kDelivered), 3u);
  EXPECT_EQ(m.documentsOf("b", "elasticsearch", Outcome::kDelivered), 5u);
  EXPECT_EQ(m.documentsOf("a", "elasticsearch", Outcome::kDuplicate), 1u);
  tally.flush(&m, "elasticsearch");  // emptied by the first flush: nothing counted twice
  EXPECT_EQ(m.documentsOf("a", "elasticsearch", Outcome::kDelivered), 3u);
  tally.add(a, Outcome::kFailed);
  tally.flush(nullptr, "elasticsearch");  // no metrics: dropped, and still emptied
  tally.flush(&m, "elasticsearch");
  EXPECT_EQ(m.documentsOf("a", "elasticsearch", Outcome::kFailed), 0u);
}

}  // namespace
}  // namespace mdec::telemetry
