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

}  // namespace mdec::ecs
