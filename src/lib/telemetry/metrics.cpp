#include "mdecollect/telemetry/metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::telemetry {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::int64_t unixMillis(std::chrono::system_clock::time_point t) {
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string isoOfMillis(std::int64_t ms) {
  core::Instant t;
  t.seconds = ms / 1000;
  t.nanos = static_cast<std::int32_t>((ms % 1000) * 1'000'000);
  return core::formatRfc3339(t, 3);
}

const char* outcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDelivered:
      return "delivered";
    case Outcome::kDuplicate:
      return "duplicates";
    case Outcome::kDeadLettered:
      return "dead_lettered";
    case Outcome::kFailed:
      return "failed";
  }
  return "unknown";
}

// Writes "# HELP" and "# TYPE" once per family.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  template <typename T>
  void sample(std::string_view name, std::string_view labels, T value) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

const char* stateName(State state) {
  switch (state) {
    case State::kStarting:
      return "starting";
    case State::kAuthenticating:
      return "authenticating";
    case State::kCollecting:
      return "collecting";
    case State::kOk:
      return "ok";
    case State::kDegraded:
      return "degraded";
    case State::kFailing:
      return "failing";
  }
  return "unknown";
}

void SourceMetrics::request(int status) {
  std::lock_guard lock(mu_);
  ++requests_[status];
}

std::map<int, std::uint64_t> SourceMetrics::requestsByStatus() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void SourceMetrics::setState(State state, std::string reason) {
  std::lock_guard lock(mu_);
  state_ = state;
  reason_ = std::move(reason);
}

void SourceMetrics::setStateIf(State state, std::initializer_list<State> from, std::string reason) {
  std::lock_guard lock(mu_);
  if (std::find(from.begin(), from.end(), state_) == from.end()) return;
  state_ = state;
  reason_ = std::move(reason);
}

std::pair<State, std::string> SourceMetrics::state() const {
  std::lock_guard lock(mu_);
  return {state_, reason_};
}

void OutputMetrics::setState(State state, std::string reason) {
  std::lock_guard lock(mu_);
  state_ = state;
  reason_ = std::move(reason);
}

std::pair<State, std::string> OutputMetrics::state() const {
  std::lock_guard lock(mu_);
  return {state_, reason_};
}

Metrics::Metrics() : started_(std::chrono::system_clock::now()) {}

SourceMetrics& Metrics::source(const std::string& name, const std::string& type) {
  std::lock_guard lock(mu_);
  if (auto it = source_index_.find(name); it != source_index_.end()) return *it->second;
  sources_.push_back(std::make_unique<SourceMetrics>(name, type));
  source_index_.emplace(name, sources_.back().get());
  return *sources_.back();
}

SourceMetrics* Metrics::findSource(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = source_index_.find(name);
  return it == source_index_.end() ? nullptr : it->second;
}

OutputMetrics& Metrics::output(const std::string& name) {
  std::lock_guard lock(mu_);
  for (auto& o : outputs_) {
    if (o->name() == name) return *o;
  }
  outputs_.push_back(std::make_unique<OutputMetrics>(name));
  return *outputs_.back();
}

void Metrics::documents(std::string_view source, std::string_view output, Outcome outcome,
                        std::uint64_t count) {
  if (count == 0) return;
  std::lock_guard lock(mu_);
  documents_[std::make_tuple(std::string(source), std::string(output), outcome)] += count;
}

std::uint64_t Metrics::documentsOf(std::string_view source, std::string_view output,
                                   Outcome outcome) const {
  std::lock_guard lock(mu_);
  auto it = documents_.find(std::make_tuple(std::string(source), std::string(output), outcome));
  return it == documents_.end() ? 0 : it->second;
}

void Metrics::setOutboxProbe(std::function<std::optional<OutboxSize>()> probe,
                             std::uint64_t max_bytes) {
  std::lock_guard lock(mu_);
  outbox_probe_ = std::move(probe);
  outbox_max_bytes_ = max_bytes;
}

void Metrics::logMessage(std::string_view level) {
  std::lock_guard lock(mu_);
  auto it = log_messages_.find(level);
  if (it == log_messages_.end()) {
    log_messages_.emplace(std::string(level), 1);
  } else {
    ++it->second;
  }
}

std::uint64_t Metrics::logMessages(std::string_view level) const {
  std::lock_guard lock(mu_);
  auto it = log_messages_.find(level);
  return it == log_messages_.end() ? 0 : it->second;
}

std::optional<Metrics::OutboxSize> Metrics::outboxNow() const {
  // The probe reads the store (its own lock): called without holding ours.
  std::function<std::optional<OutboxSize>()> probe;
  {
    std::lock_guard lock(mu_);
    probe = outbox_probe_;
  }
  return probe ? probe() : std::nullopt;
}

std::string Metrics::prometheus(std::chrono::system_clock::time_point now) const {
  const std::optional<OutboxSize> outbox = outboxNow();

  std::lock_guard lock(mu_);
  Exposition e;
  e.family("mdecollect_build_info", "gauge", "The running version.");
  e.sample("mdecollect_build_info", "version=\"" MDEC_VERSION_STRING "\"", 1);
  e.family("mdecollect_start_time_seconds", "gauge", "When the process started (Unix time).");
  e.sample("mdecollect_start_time_seconds", "", unixMillis(started_) / 1000);

  auto per_source = [&](std::string_view name, std::string_view type, std::string_view help,
                        auto value_of) {
    e.family(name, type, help);
    for (const auto& s : sources_) {
      e.sample(name, fmt::format("source=\"{}\"", label(s->name())), value_of(*s));
    }
  };
  e.family("mdecollect_source_requests_total", "counter",
           "API requests by HTTP status (status=\"error\": no HTTP answer).");
  for (const auto& s : sources_) {
    for (const auto& [status, count] : s->requestsByStatus()) {
      e.sample("mdecollect_source_requests_total",
               fmt::format("source=\"{}\",status=\"{}\"", label(s->name()),
                           status == 0 ? std::string("error") : std::to_string(status)),
               count);
    }
  }
  per_source("mdecollect_source_alerts_fetched_total", "counter",
             "Alert versions received from the API (re-reads of the overlap included).",
             [](const SourceMetrics& s) { return s.alerts_fetched.load(); });
  per_source("mdecollect_source_documents_produced_total", "counter",
             "ECS documents mapped from new alert versions.",
             [](const SourceMetrics& s) { return s.documents_produced.load(); });
  per_source("mdecollect_source_error_documents_total", "counter",
             "Error documents among them (alerts that could not be mapped; raw text kept).",
             [](const SourceMetrics& s) { return s.error_documents.load(); });
  per_source("mdecollect_source_future_versions_total", "counter",
             "New alert versions stamped past the API's clock (delivered; the watermark does not "
             "follow them).",
             [](const SourceMetrics& s) { return s.future_versions.load(); });
  per_source("mdecollect_source_dates_dropped_total", "counter",
             "Incident evidence dates that did not parse, dropped as Elastic's pipeline drops "
             "them (no error.message).",
             [](const SourceMetrics& s) { return s.dates_dropped.load(); });
  per_source("mdecollect_source_restarts_total", "counter",
             "Times the source was started again after it failed unexpectedly.",
             [](const SourceMetrics& s) { return s.restarts.load(); });
  per_source("mdecollect_source_retries_total", "counter", "Requests sent again after a fault.",
             [](const SourceMetrics& s) { return s.retries.load(); });
  per_source("mdecollect_source_throttled_total", "counter",
             "HTTP 429 answers waited out as Retry-After said.",
             [](const SourceMetrics& s) { return s.throttled.load(); });
  per_source("mdecollect_source_token_refreshes_total", "counter", "Access tokens fetched.",
             [](const SourceMetrics& s) { return s.token_refreshes.load(); });
  per_source("mdecollect_source_polls_total", "counter", "Polls finished (failed ones too).",
             [](const SourceMetrics& s) { return s.polls.load(); });
  per_source("mdecollect_source_poll_failures_total", "counter", "Polls that failed.",
             [](const SourceMetrics& s) { return s.poll_failures.load(); });
  e.family("mdecollect_source_watermark_lag_seconds", "gauge",
           "Now minus the source's watermark (the newest lastUpdateTime delivered).");
  for (const auto& s : sources_) {
    const std::int64_t wm = s->watermark_unix_ms.load();
    if (wm == 0) continue;
    e.sample("mdecollect_source_watermark_lag_seconds",
             fmt::format("source=\"{}\"", label(s->name())),
             static_cast<double>(unixMillis(now) + s->server_offset_ms.load() - wm) / 1000.0);
  }
  e.family("mdecollect_source_last_success_timestamp_seconds", "gauge",
           "When the source's last successful poll ended (Unix time).");
  for (const auto& s : sources_) {
    const std::int64_t t = s->last_success_unix_ms.load();
    if (t == 0) continue;
    e.sample("mdecollect_source_last_success_timestamp_seconds",
             fmt::format("source=\"{}\"", label(s->name())), static_cast<double>(t) / 1000.0);
  }
  e.family("mdecollect_source_state", "gauge", "1 for the state the source is in.");
  for (const auto& s : sources_) {
    const State current = s->state().first;
    for (State st : {State::kStarting, State::kAuthenticating, State::kCollecting, State::kDegraded,
                     State::kFailing}) {
      e.sample("mdecollect_source_state",
               fmt::format("source=\"{}\",type=\"{}\",state=\"{}\"", label(s->name()),
                           label(s->type()), stateName(st)),
               st == current ? 1 : 0);
    }
  }
  for (Outcome outcome :
       {Outcome::kDelivered, Outcome::kDuplicate, Outcome::kDeadLettered, Outcome::kFailed}) {
    const std::string name = fmt::format("mdecollect_documents_{}_total", outcomeName(outcome));
    const char* help =
        outcome == Outcome::kDelivered   ? "Documents an output acknowledged."
        : outcome == Outcome::kDuplicate ? "Documents the output held already (Elasticsearch 409)."
        : outcome == Outcome::kDeadLettered
            ? "Documents refused for good, written to the dead-letter file."
            : "Documents an output failed to take this time (429/5xx), sent again later.";
    e.family(name, "counter", help);
    for (const auto& [key, count] : documents_) {
      if (std::get<2>(key) != outcome) continue;
      e.sample(name,
               fmt::format("source=\"{}\",output=\"{}\"", label(std::get<0>(key)),
                           label(std::get<1>(key))),
               count);
    }
  }
  e.family("mdecollect_output_state", "gauge", "1 for the state the output is in.");
  for (const auto& o : outputs_) {
    const State current = o->state().first;
    for (State st : {State::kStarting, State::kOk, State::kDegraded, State::kFailing}) {
      e.sample("mdecollect_output_state",
               fmt::format("output=\"{}\",state=\"{}\"", label(o->name()), stateName(st)),
               st == current ? 1 : 0);
    }
  }
  if (outbox) {
    e.family("mdecollect_outbox_documents", "gauge",
             "Documents waiting in the outbox for an output.");
    e.sample("mdecollect_outbox_documents", "", outbox->documents);
    e.family("mdecollect_outbox_bytes", "gauge", "Bytes waiting in the outbox.");
    e.sample("mdecollect_outbox_bytes", "", outbox->bytes);
  }
  e.family("mdecollect_outbox_max_bytes", "gauge",
           "max_spool_bytes: polling pauses when the outbox holds this much.");
  e.sample("mdecollect_outbox_max_bytes", "", outbox_max_bytes_);
  e.family("mdecollect_workers", "gauge", "Threads that run the sources' polls.");
  e.sample("mdecollect_workers", "", scheduler_.workers.load());
  e.family("mdecollect_polls_in_flight", "gauge",
           "Sources' turns (a poll and its backfill slices) running now.");
  e.sample("mdecollect_polls_in_flight", "", scheduler_.turns_in_flight.load());
  e.family("mdecollect_polls_started_total", "counter", "Sources' turns started.");
  e.sample("mdecollect_polls_started_total", "", scheduler_.turns.load());
  e.family("mdecollect_poll_start_delay_seconds", "gauge",
           "How late the last started turn was after it was due (the pool was full).");
  e.sample("mdecollect_poll_start_delay_seconds", "",
           static_cast<double>(scheduler_.start_delay_ms.load()) / 1000.0);
  e.family("mdecollect_log_messages_total", "counter", "Log messages by level.");
  for (const char* level : {"warning", "error"}) {
    auto it = log_messages_.find(std::string_view(level));
    e.sample("mdecollect_log_messages_total", fmt::format("level=\"{}\"", level),
             it == log_messages_.end() ? 0 : it->second);
  }
  return e.take();
}

Metrics::Health Metrics::health(std::chrono::system_clock::time_point now) const {
  const std::optional<OutboxSize> outbox = outboxNow();

  std::lock_guard lock(mu_);
  bool failing = false;
  bool degraded = false;
  bool starting = false;
  std::string sources = "{";
  for (const auto& s : sources_) {
    const auto [state, reason] = s->state();
    failing = failing || state == State::kFailing;
    degraded = degraded || state == State::kDegraded;
    starting = starting || state == State::kStarting || state == State::kAuthenticating;
    if (sources.size() > 1) sources += ',';
    core::appendString(sources, s->name());
    sources += R"(:{"type":)";
    core::appendString(sources, s->type());
    sources += R"(,"state":)";
    core::appendString(sources, stateName(state));
    if (!reason.empty()) {
      sources += R"(,"reason":)";
      core::appendString(sources, reason);
    }
    if (const std::int64_t t = s->last_success_unix_ms.load(); t != 0) {
      sources += R"(,"last_success":)";
      core::appendString(sources, isoOfMillis(t));
    }
    if (const std::int64_t wm = s->watermark_unix_ms.load(); wm != 0) {
      sources += R"(,"watermark":)";
      core::appendString(sources, isoOfMillis(wm));
      sources += fmt::format(R"(,"lag_seconds":{})",
                             (unixMillis(now) + s->server_offset_ms.load() - wm) / 1000);
    }
    sources += '}';
  }
  sources += '}';
  std::string outputs = "{";
  for (const auto& o : outputs_) {
    const auto [state, reason] = o->state();
    failing = failing || state == State::kFailing;
    degraded = degraded || state == State::kDegraded;
    starting = starting || state == State::kStarting;
    if (outputs.size() > 1) outputs += ',';
    core::appendString(outputs, o->name());
    outputs += R"(:{"state":)";
    core::appendString(outputs, stateName(state));
    if (!reason.empty()) {
      outputs += R"(,"reason":)";
      core::appendString(outputs, reason);
    }
    outputs += '}';
  }
  outputs += '}';

  Health h;
  h.http_status = failing ? 503 : 200;
  h.json = R"({"status":)";
  core::appendString(h.json, failing    ? "failing"
                             : degraded ? "degraded"
                             : starting ? "starting"
                                        : "ok");
  h.json += R"(,"version":")" MDEC_VERSION_STRING R"(")";
  h.json += fmt::format(R"(,"uptime_seconds":{})",
                        duration_cast<std::chrono::seconds>(now - started_).count());
  h.json += R"(,"sources":)" + sources + R"(,"outputs":)" + outputs;
  if (outbox) {
    h.json += fmt::format(R"(,"outbox":{{"documents":{},"bytes":{},"max_bytes":{}}})",
                          outbox->documents, outbox->bytes, outbox_max_bytes_);
  }
  h.json += "}\n";
  return h;
}

std::int64_t unixMillisOf(std::string_view iso_time) {
  auto t = core::parseIsoDateTime(iso_time);
  if (!t) return 0;
  return t->seconds * 1000 + t->nanos / 1'000'000;
}

}  // namespace mdec::telemetry
