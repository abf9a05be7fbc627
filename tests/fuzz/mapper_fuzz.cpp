// libFuzzer target for the mappers (alerts, and Graph incidents). Properties checked beyond "no
// crash, no sanitizer report": every document is one valid JSON object, error documents and only
// they say event.kind pipeline_error, and the counts the mapper reports match what it emitted.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/ecs/mapper.h"

namespace {

class CheckingSink : public mdec::ecs::DocumentSink {
 public:
  // 32 hex digits for alert documents, 28 Base64 characters for incident documents.
  explicit CheckingSink(std::size_t id_size = 32) : id_size_(id_size) {}
  void onDocument(const mdec::ecs::DocumentView& doc) override {
    ++documents;
    if (doc.error) ++errors;
    if (doc.id.size() != id_size_) std::abort();
    simdjson::padded_string copy(doc.json);
    simdjson::dom::element root;
    if (parser_.parse(copy).get(root) != simdjson::SUCCESS) std::abort();
    if (root.type() != simdjson::dom::element_type::OBJECT) std::abort();
    std::string_view kind;
    if (root.at_pointer("/event/kind").get(kind) != simdjson::SUCCESS) std::abort();
    if ((kind == "pipeline_error") != doc.error) std::abort();
    if (doc.error) {
      simdjson::dom::array messages;
      if (root.at_pointer("/error/message").get(messages) != simdjson::SUCCESS) std::abort();
      if (messages.size() == 0) std::abort();
    }
  }
  std::uint64_t documents = 0;
  std::uint64_t errors = 0;

 private:
  std::size_t id_size_;
  simdjson::dom::parser parser_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static mdec::ecs::Mapper plain(mdec::ecs::MapOptions{},
                                 [] { return std::string("2026-01-01T00:00:00.000Z"); });
  static mdec::ecs::Mapper preserving(
      [] {
        mdec::ecs::MapOptions o;
        o.preserve_original_event = true;
        return o;
      }(),
      [] { return std::string("2026-01-01T00:00:00.000Z"); });
  static mdec::ecs::IncidentMapper incidents(
      [] {
        mdec::ecs::IncidentMapOptions o;
        o.preserve_original_event = true;
        o.preserve_duplicate_custom_fields = true;
        return o;
      }(),
      [] { return std::string("2026-01-01T00:00:00.000Z"); });
  static mdec::ecs::IncidentMapper incidents_plain(
      mdec::ecs::IncidentMapOptions{}, [] { return std::string("2026-01-01T00:00:00.000Z"); });
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Each line of the input is one NDJSON line, as `mdecollect map` feeds them.
  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(start, end - start);
    for (mdec::ecs::Mapper* m : {&plain, &preserving}) {
      CheckingSink sink;
      mdec::ecs::LineContext ctx;
      ctx.file_path = "/var/log/fuzz.ndjson";
      ctx.offset = static_cast<std::int64_t>(start);
      const auto stats = m->mapLine(line, ctx, sink);
      if (stats.documents != sink.documents || stats.errors != sink.errors) std::abort();
    }
    for (mdec::ecs::IncidentMapper* m : {&incidents, &incidents_plain}) {
      CheckingSink sink(28);
      const auto stats = m->mapLine(line, mdec::ecs::LineContext{}, sink);
      if (stats.documents != sink.documents || stats.errors != sink.errors) std::abort();
      // Every incident value met gives at least one document.
      if (sink.documents < stats.alerts) std::abort();
    }
    start = end + 1;
  }
  return 0;
}
