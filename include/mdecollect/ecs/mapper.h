// The alert -> ECS mapper (spec: mapping.md). Pure: no I/O, no global state.
//
// Feed it one NDJSON line at a time; it calls the sink once per ECS document, in input
// order. Malformed input never fails the call: it becomes an error document
// (event.kind: pipeline_error) that keeps the raw text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mdec::ecs {

// Bytes that must be readable past the end of a line handed over with `padded = true`.
inline constexpr std::size_t kLinePadding = 64;

struct MapOptions {
  bool preserve_original_event = false;
  std::string data_stream_namespace = "default";
  std::vector<std::string> tags = {"microsoft-defender-endpoint", "forwarded"};
};

// Where a line came from, for documents read from a file (log.file.path, log.offset).
struct LineContext {
  std::string_view file_path;  // empty: not from a file, no log.* fields
  std::int64_t offset = -1;    // byte offset of the line in that file
  // true when kLinePadding bytes after line.end() may be read (saves a copy).
  bool padded = false;
};

struct DocumentView {
  std::string_view id;    // deterministic id (hex), stable across processes and versions
  std::string_view json;  // one compact JSON object, no trailing newline
  bool error = false;     // true for event.kind: pipeline_error documents
  std::uint32_t evidence_index = 0;
  // The alert version the document comes from (empty for a line or value that is not an
  // alert object): the collector's seen-set key.
  std::string_view alert_id;
  std::string_view last_update_time;
};

class DocumentSink {
 public:
  virtual ~DocumentSink() = default;
  // The views are valid only during the call.
  virtual void onDocument(const DocumentView& doc) = 0;
};

struct LineStats {
  std::uint64_t alerts = 0;     // alert values met (page elements or whole-line alerts)
  std::uint64_t documents = 0;  // documents produced, error documents included
  std::uint64_t errors = 0;     // error documents produced
  // Incidents: evidence dates that did not parse, dropped as Elastic's pipeline drops them
  // (no error.message: incidents.md §4.5, D8).
  std::uint64_t dropped_dates = 0;
};

// Returns the current time as RFC 3339 UTC text; used for @timestamp when an alert has
// no alertCreationTime and for error documents. Injected so tests are deterministic.
using TimestampFn = std::function<std::string()>;
std::string systemTimestamp();

class Mapper {
 public:
  explicit Mapper(MapOptions options, TimestampFn now = systemTimestamp);
  ~Mapper();
  Mapper(const Mapper&) = delete;
  Mapper& operator=(const Mapper&) = delete;

  // Maps one NDJSON line (without its newline). Blank lines yield nothing.
  LineStats mapLine(std::string_view line, const LineContext& context, DocumentSink& sink);
  LineStats mapLine(std::string_view line, DocumentSink& sink) {
    return mapLine(line, LineContext{}, sink);
  }
  // One element of a page's "value" array that a structural scan of the page already
  // delimited (it is not scanned again): mapped as mapLine maps that element of the page.
  // At least kLinePadding readable bytes must follow it.
  LineStats mapElement(std::string_view element, DocumentSink& sink);

  const MapOptions& options() const;

  // Frees the buffers mapping grew (the parser's, the document's); the next map allocates.
  void trim();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The deterministic document id of (event.id, lastUpdateTime, evidence index): 32 hex
// digits of SHA-256 over the three values. Documented and pinned by tests: changing it
// would make every output store every alert again after an upgrade.
std::string documentId(std::string_view alert_id, std::string_view last_update_time,
                       std::uint32_t evidence_index);

}  // namespace mdec::ecs
