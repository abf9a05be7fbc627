// Test support: structural comparison of ECS documents and small JSON accessors.
//
// The comparison follows the shared fixtures' rules (tests/golden/ecsdiff.py): JSON values
// compared with key order free and types mattering; `agent.*`, `event.ingested` and
// `input.*` left out; an expected `"@timestamp": "RUNTIME"` matches any value; an expected
// `error.message` only needs a non-empty array of strings; `event.original` compared after
// parsing it as JSON (when it parses). simdjson stays inside json_compare.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/ecs/mapper.h"

namespace mdec::testing {

// Differences between two ECS documents under the ecsdiff rules, as "path: expected X got Y"
// lines; empty when they match. A text that is not JSON is reported as a difference.
std::vector<std::string> diffEcsDocuments(std::string_view expected, std::string_view actual);

// Differences between two JSON texts as plain values (key order free, types matter,
// int64 and uint64 are the same type; no ECS rules). Duplicate keys are reported.
std::vector<std::string> diffJson(std::string_view expected, std::string_view actual);

// Joins differences one per line, for failure messages.
std::string joinLines(const std::vector<std::string>& lines);

// A document as the mapper handed it over (the views copied).
struct CollectedDocument {
  std::string id;
  std::string json;
  bool error = false;
  std::uint32_t evidence_index = 0;
};

// A DocumentSink that keeps every document, in order.
class CollectingSink final : public mdec::ecs::DocumentSink {
 public:
  void onDocument(const mdec::ecs::DocumentView& doc) override;
  std::vector<CollectedDocument> documents;
};

// Every line of a file without its '\n' (a trailing '\r' is kept). A final newline does
// not start another line. nullopt when the file cannot be read.
std::optional<std::vector<std::string>> readLines(const std::string& path);

// The lines that hold something other than whitespace.
std::vector<std::string> nonBlankLines(const std::vector<std::string>& lines);

// Read-only access to one parsed JSON document by dotted path ("event.kind"; "" is the
// root). Keys are looked up literally, so "a.b" means {"a":{"b":...}}.
class JsonDoc {
 public:
  explicit JsonDoc(std::string_view json);
  ~JsonDoc();
  JsonDoc(JsonDoc&&) noexcept;
  JsonDoc& operator=(JsonDoc&&) noexcept;
  JsonDoc(const JsonDoc&) = delete;
  JsonDoc& operator=(const JsonDoc&) = delete;

  bool valid() const;  // parsed as JSON
  const std::string& parseError() const;

  bool has(std::string_view path) const;
  // "missing", "null", "bool", "int" (int64 or uint64), "double", "string", "array", "object".
  std::string type(std::string_view path) const;
  std::optional<std::string> getString(std::string_view path) const;
  std::optional<std::int64_t> getInt(std::string_view path) const;
  std::optional<double> getDouble(std::string_view path) const;
  std::optional<bool> getBool(std::string_view path) const;
  // An array whose elements are all strings.
  std::optional<std::vector<std::string>> getStrings(std::string_view path) const;
  // The value at path as compact JSON.
  std::optional<std::string> getJson(std::string_view path) const;
  // The keys of the object at path, in document order (empty when not an object).
  std::vector<std::string> keys(std::string_view path) const;
  // Every key of every object at any depth (array elements included), in document order.
  std::vector<std::string> allKeys() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdec::testing
