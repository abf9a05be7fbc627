// libFuzzer target for PageScanner::scan (source/page_scan.h) on arbitrary bytes, with the
// Defender and the Graph time key, with and without @odata.nextLink. Properties checked
// beyond "no crash, no sanitizer report":
// - the body is read in its first `size` bytes only: the same result whatever the padding
//   after them holds (the buffer is exactly size + kLinePadding, so ASan sees any read past);
// - alert spans lie inside the body, in order, without overlap; an identified alert has an id;
// - when the body is valid JSON (simdjson's DOM parser agrees) with one top-level "value"
//   array: the scan succeeds with one alert per element, and each alert's id, time and the
//   page's next link are what a JSON parser reads (the first of duplicate keys; an id longer
//   than kMaxIdBytes is none);
// - scanObject: a valid JSON object is read whole, with the same id and time; any other
//   valid JSON value is refused (kParse).
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/ecs/mapper.h"
#include "mdecollect/source/page_scan.h"

namespace {

using mdec::source::PageScanner;
using mdec::source::ScannedPage;

void check(bool ok) {
  if (!ok) std::abort();
}

// The body in a buffer of exactly size + kLinePadding bytes, the padding filled with `fill`
// (a page-like tail when it is '"', to tempt a scanner that reads past `size`).
std::unique_ptr<char[]> padded(std::string_view input, char fill) {
  auto buf = std::make_unique<char[]>(input.size() + mdec::ecs::kLinePadding);
  if (!input.empty()) std::memcpy(buf.get(), input.data(), input.size());
  char* pad = buf.get() + input.size();
  if (fill == '"') {
    static constexpr char kTail[] = R"(,{"id":"pad"}],"@odata.nextLink":"https://pad/"}  )";
    static_assert(sizeof kTail - 1 <= mdec::ecs::kLinePadding);
    std::memset(pad, ' ', mdec::ecs::kLinePadding);
    std::memcpy(pad, kTail, sizeof kTail - 1);
  } else {
    std::memset(pad, fill, mdec::ecs::kLinePadding);
  }
  return buf;
}

bool same(const mdec::Result<ScannedPage>& a, const mdec::Result<ScannedPage>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return a.error().code() == b.error().code();
  if (a->next_link != b->next_link || a->alerts.size() != b->alerts.size()) return false;
  for (std::size_t i = 0; i < a->alerts.size(); ++i) {
    const auto& x = a->alerts[i];
    const auto& y = b->alerts[i];
    if (x.begin != y.begin || x.end != y.end || x.id != y.id || x.time != y.time) return false;
  }
  return true;
}

void checkShape(const mdec::Result<ScannedPage>& r, std::size_t size) {
  if (!r) {
    check(r.error().code() == mdec::ErrorCode::kParse);
    return;
  }
  std::size_t previous_end = 0;
  for (const auto& a : r->alerts) {
    check(a.begin < a.end && a.end <= size && a.begin >= previous_end);
    previous_end = a.end;
    if (a.identified()) check(!a.id.empty());
    if (a.time) check(a.time->nanos >= 0 && a.time->nanos < 1'000'000'000);
  }
}

// What a JSON parser reads for `key` in `object`: the first such field's string, if it is one.
std::optional<std::string_view> firstString(simdjson::dom::object object, std::string_view key,
                                            bool& present) {
  present = false;
  for (auto field : object) {
    if (field.key != key) continue;
    present = true;
    std::string_view s;
    if (field.value.get_string().get(s) == simdjson::SUCCESS) return s;
    return std::nullopt;
  }
  return std::nullopt;
}

// Top-level keys written exactly "value" (unescaped in the text).
int rawValueKeys(const simdjson::padded_string& copy) {
  static simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::object object;
  if (parser.iterate(copy).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(object) != simdjson::SUCCESS) {
    return -1;
  }
  int n = 0;
  for (auto field : object) {
    simdjson::ondemand::raw_json_string key;
    if (field.key().get(key) != simdjson::SUCCESS) return -1;
    n += std::strncmp(key.raw(), "value\"", 6) == 0;
  }
  return n;
}

// The id a scan takes: the string, unless it is longer than the bound.
std::string_view expectedId(std::optional<std::string_view> id) {
  return id && id->size() <= mdec::source::kMaxIdBytes ? *id : std::string_view();
}

// The body as simdjson's DOM reads it; nothing when it is not JSON (the scanner is then
// only run, not judged). Valid until the next call.
struct Reading {
  bool is_object = false;
  simdjson::dom::object object;
  int value_keys = 0;  // top-level keys written "value"
};
std::optional<Reading> readWithSimdjson(const simdjson::padded_string& body) {
  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS) return std::nullopt;
  Reading reading;
  reading.is_object = root.get_object().get(reading.object) == simdjson::SUCCESS;
  if (reading.is_object) {
    for (auto field : reading.object) reading.value_keys += field.key == "value";
  }
  return reading;
}

// scanObject against simdjson's DOM reading of the same body.
void crossCheckObject(std::string_view input, const char* time_key,
                      const mdec::Result<mdec::source::AlertRef>& r) {
  const simdjson::padded_string copy(input);
  const auto reading = readWithSimdjson(copy);
  if (!reading) return;
  if (!reading->is_object) {
    check(!r && r.error().code() == mdec::ErrorCode::kParse);
    return;
  }
  const simdjson::dom::object object = reading->object;
  // A "value" key makes it a page (or a bad one) to the structural scan: not one item.
  // Written escaped ("\u0076alue"), the scan does not see it (not checked).
  const int value_keys = reading->value_keys;
  const int raw = rawValueKeys(copy);
  if (raw > 0) {
    check(!r && r.error().code() == mdec::ErrorCode::kParse);
    return;
  }
  if (value_keys > 0) return;
  check(r.has_value());
  check(r->begin < r->end && r->end <= input.size());
  check(input[r->begin] == '{' && input[r->end - 1] == '}');
  bool present = false;
  check(r->id == expectedId(firstString(object, "id", present)));
  const auto time = firstString(object, time_key, present);
  check(r->time == (time ? mdec::core::parseIsoDateTime(*time) : std::nullopt));
}

// Compares the scan with simdjson's DOM reading of the same body, when it is a valid page.
void crossCheck(std::string_view input, const char* time_key, bool next_link,
                const mdec::Result<ScannedPage>& r) {
  const simdjson::padded_string copy(input);
  const auto reading = readWithSimdjson(copy);
  if (!reading) return;
  if (!reading->is_object) {
    check(!r);
    return;
  }
  const simdjson::dom::object object = reading->object;
  const int value_keys = reading->value_keys;
  if (value_keys == 0) {
    check(!r);
    return;
  }
  // Duplicate "value" keys: which one is the page is the scanner's choice (not checked);
  // an escaped key ("\u0076alue") is not looked for by the structural scan.
  if (value_keys != 1 || rawValueKeys(copy) != 1) return;
  simdjson::dom::array values;
  if (object["value"].get_array().get(values) != simdjson::SUCCESS) {
    check(!r);
    return;
  }
  check(r.has_value());
  check(r->alerts.size() == values.size());
  std::size_t i = 0;
  for (simdjson::dom::element element : values) {
    const auto& ref = r->alerts[i++];
    simdjson::dom::object alert;
    if (element.get_object().get(alert) != simdjson::SUCCESS) {
      check(ref.id.empty() && !ref.time);
      continue;
    }
    bool present = false;
    const auto id = firstString(alert, "id", present);
    check(ref.id == expectedId(id));
    const auto time = firstString(alert, time_key, present);
    const auto expected = time ? mdec::core::parseIsoDateTime(*time) : std::nullopt;
    check(ref.time == expected);
  }
  if (next_link) {
    bool present = false;
    const auto link = firstString(object, "@odata.nextLink", present);
    check(r->next_link == (link ? *link : std::string_view()));
  } else {
    check(r->next_link.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static PageScanner mde("lastUpdateTime");
  static PageScanner graph("lastUpdateDateTime");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t capacity = size + mdec::ecs::kLinePadding;
  const auto zeros = padded(input, '\0');
  const auto tempting = padded(input, '"');
  for (auto [scanner, key] :
       {std::pair{&mde, "lastUpdateTime"}, std::pair{&graph, "lastUpdateDateTime"}}) {
    for (bool next_link : {true, false}) {
      auto a = scanner->scan(std::string_view(zeros.get(), capacity), size, next_link);
      auto b = scanner->scan(std::string_view(tempting.get(), capacity), size, next_link);
      check(same(a, b));
      checkShape(a, size);
      crossCheck(input, key, next_link, a);
    }
    auto one = scanner->scanObject(std::string_view(zeros.get(), capacity), size);
    auto other = scanner->scanObject(std::string_view(tempting.get(), capacity), size);
    check(one.has_value() == other.has_value());
    if (one && other)
      check(one->begin == other->begin && one->end == other->end && one->id == other->id &&
            one->time == other->time);
    crossCheckObject(input, key, one);
  }
  return 0;
}
