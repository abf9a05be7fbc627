// A structural pass over one NDJSON line: tells a blank line, a line that is not JSON,
// an API page (top-level object with a "value" array, whose elements it locates), a
// single object, or another JSON value. It does not build anything, so a page of
// 10,000 alerts costs one pass and a vector of offsets; each element is then parsed on
// its own by the mapper (which validates it fully).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/ecs/mapper.h"

namespace mdec::ecs {

struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;  // one past the last byte
  std::size_t size() const { return end - begin; }
};

struct ScanResult {
  enum class Kind {
    kBlank,    // nothing but white space
    kInvalid,  // not JSON: `message` says why, at `error_offset`
    kPage,     // {"value": [...], ...}: `elements` are the array's items
    kBadPage,  // an object with a "value" key that is not an array
    kObject,   // any other object (an alert)
    kOther,    // a JSON value that is not an object
  };
  Kind kind = Kind::kBlank;
  Span value;                  // the whole value, white space trimmed
  std::vector<Span> elements;  // kPage only
  std::string message;
  std::size_t error_offset = 0;
};

// Scans `line`; reuses `out`'s storage.
void scanLine(std::string_view line, ScanResult& out);

// One NDJSON line as the mappers take it: `on_value(text)` for the line's value (an object
// or any other JSON value) or for each element of a page, in order; `on_error(text,
// message)` for a line that is not JSON (the whole line) or a page whose "value" is not an
// array (the page); nothing for a blank line. Each text handed over is followed by at least
// kLinePadding readable bytes: `line` itself when `padded`, else a copy in `buffer`.
template <class OnValue, class OnError>
void dispatchLine(std::string_view line, bool padded, std::string& buffer, ScanResult& scan,
                  OnValue&& on_value, OnError&& on_error) {
  if (!padded) {
    buffer.assign(line.data(), line.size());
    buffer.append(kLinePadding, '\0');
    line = std::string_view(buffer.data(), line.size());
  }
  scanLine(line, scan);
  switch (scan.kind) {
    case ScanResult::Kind::kBlank:
      break;
    case ScanResult::Kind::kInvalid:
      on_error(line,
               "invalid JSON: " + scan.message + " at byte " + std::to_string(scan.error_offset));
      break;
    case ScanResult::Kind::kBadPage:
      on_error(line.substr(scan.value.begin, scan.value.size()),
               std::string("the page's \"value\" is not an array"));
      break;
    case ScanResult::Kind::kOther:
    case ScanResult::Kind::kObject:
      on_value(line.substr(scan.value.begin, scan.value.size()));
      break;
    case ScanResult::Kind::kPage:
      for (const Span& s : scan.elements) on_value(line.substr(s.begin, s.size()));
      break;
  }
}

}  // namespace mdec::ecs
