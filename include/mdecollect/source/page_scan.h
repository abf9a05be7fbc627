// Reads a page of alerts as the API sent it ({"value":[…], "@odata.nextLink":"…", …}),
// whatever its white space: where each alert's text is (for the mapper), and each alert's
// identity — its `id` and its time (`lastUpdateTime`, or Graph's `lastUpdateDateTime`) —
// read with simdjson, as a JSON parser reads them (escapes, spacing, key order).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"

namespace mdec::source {

// The longest `id` taken as an identity (Defender, Graph alert and incident ids are a few
// dozen bytes at most). A longer one is not an id to key state by or to put in a URL: the
// alert is unidentified, and mapped as it is.
inline constexpr std::size_t kMaxIdBytes = 256;

struct AlertRef {
  std::size_t begin = 0;  // the alert's JSON text in the body: [begin, end)
  std::size_t end = 0;
  std::string id;  // "" when the alert has no string id, or a longer one than kMaxIdBytes
  std::optional<core::Instant> time;  // its time, when it has a valid one
  bool identified() const { return !id.empty() && time.has_value(); }
};

struct ScannedPage {
  std::vector<AlertRef> alerts;  // in the order the API sent them
  std::string next_link;         // @odata.nextLink (unescaped); "" when there is none
};

class PageScanner {
 public:
  // `time_key`: "lastUpdateTime" (Defender) or "lastUpdateDateTime" (Graph).
  explicit PageScanner(std::string time_key);
  ~PageScanner();
  PageScanner(const PageScanner&) = delete;
  PageScanner& operator=(const PageScanner&) = delete;

  // `body` holds the page in its first `size` bytes and at least ecs::kLinePadding readable
  // bytes after them. kParse when the body is not a JSON object with a "value" array (the
  // message says what it is instead). `next_link`: read @odata.nextLink too.
  Result<ScannedPage> scan(std::string_view body, std::size_t size, bool next_link);

  // One object alone (a single item's response, such as GET …/incidents/{id}), read as an
  // element of a page is: kParse unless the body is one whole JSON object. Same padding.
  Result<AlertRef> scanObject(std::string_view body, std::size_t size);

  // Frees the parser's buffers (they grow to the largest page); the next scan allocates.
  void trim();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdec::source
