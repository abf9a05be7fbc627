#include "mdecollect/source/page_scan.h"

#include <simdjson.h>

#include "ecs/line_scanner.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::source {

static_assert(ecs::kLinePadding >= simdjson::SIMDJSON_PADDING);

struct PageScanner::Impl {
  std::string time_key;
  ecs::ScanResult scan;
  simdjson::ondemand::parser parser;

  // The alert's top-level "id" and time; the first of each wins (a JSON parser may take
  // either of duplicate keys; the mapper's document takes the first too).
  void identify(const char* data, std::size_t size, std::size_t capacity, AlertRef& ref) {
    simdjson::ondemand::document doc;
    if (parser.iterate(data, size, capacity).get(doc) != simdjson::SUCCESS) return;
    simdjson::ondemand::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return;
    bool have_id = false;
    bool have_time = false;
    for (auto field : object) {
      std::string_view key;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) return;
      if (!have_id && key == "id") {
        have_id = true;
        std::string_view id;
        if (field.value().get_string().get(id) == simdjson::SUCCESS && id.size() <= kMaxIdBytes) {
          ref.id = std::string(id);
        }
      } else if (!have_time && key == time_key) {
        have_time = true;
        std::string_view text;
        if (field.value().get_string().get(text) == simdjson::SUCCESS) {
          ref.time = core::parseIsoDateTime(text);
        }
      }
      if (have_id && have_time) return;
    }
  }

  // The top-level "@odata.nextLink" string; "" when absent or not a string.
  std::string nextLink(const char* data, std::size_t size, std::size_t capacity) {
    simdjson::ondemand::document doc;
    if (parser.iterate(data, size, capacity).get(doc) != simdjson::SUCCESS) return {};
    simdjson::ondemand::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return {};
    for (auto field : object) {
      std::string_view key;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) return {};
      if (key != "@odata.nextLink") continue;
      std::string_view link;
      if (field.value().get_string().get(link) != simdjson::SUCCESS) return {};
      return std::string(link);
    }
    return {};
  }
};

PageScanner::PageScanner(std::string time_key) : impl_(std::make_unique<Impl>()) {
  impl_->time_key = std::move(time_key);
}

PageScanner::~PageScanner() = default;

void PageScanner::trim() {
  impl_->parser = simdjson::ondemand::parser();
  impl_->scan = ecs::ScanResult();
}

Result<ScannedPage> PageScanner::scan(std::string_view body, std::size_t size, bool next_link) {
  if (body.size() < size + ecs::kLinePadding) {
    return Error(ErrorCode::kInternal, "page body without its padding");
  }
  ecs::ScanResult& scan = impl_->scan;
  ecs::scanLine(body.substr(0, size), scan);
  if (scan.kind != ecs::ScanResult::Kind::kPage) {
    std::string what = scan.kind == ecs::ScanResult::Kind::kInvalid   ? "not JSON: " + scan.message
                       : scan.kind == ecs::ScanResult::Kind::kBadPage ? "\"value\" is not an array"
                       : scan.kind == ecs::ScanResult::Kind::kBlank   ? "an empty body"
                                                                      : "no \"value\" array";
    return Error(ErrorCode::kParse, "the body is not a page of alerts (" + what + ")");
  }
  ScannedPage page;
  page.alerts.resize(scan.elements.size());
  for (std::size_t i = 0; i < scan.elements.size(); ++i) {
    AlertRef& ref = page.alerts[i];
    ref.begin = scan.elements[i].begin;
    ref.end = scan.elements[i].end;
    impl_->identify(body.data() + ref.begin, ref.end - ref.begin, body.size() - ref.begin, ref);
  }
  if (next_link) page.next_link = impl_->nextLink(body.data(), size, body.size());
  return page;
}

Result<AlertRef> PageScanner::scanObject(std::string_view body, std::size_t size) {
  if (body.size() < size + ecs::kLinePadding) {
    return Error(ErrorCode::kInternal, "body without its padding");
  }
  ecs::ScanResult& scan = impl_->scan;
  ecs::scanLine(body.substr(0, size), scan);
  if (scan.kind != ecs::ScanResult::Kind::kObject) {
    return Error(ErrorCode::kParse, scan.kind == ecs::ScanResult::Kind::kInvalid
                                        ? "not JSON: " + scan.message
                                        : std::string("not one object"));
  }
  AlertRef ref;
  ref.begin = scan.value.begin;
  ref.end = scan.value.end;
  impl_->identify(body.data() + ref.begin, ref.end - ref.begin, body.size() - ref.begin, ref);
  return ref;
}

}  // namespace mdec::source
