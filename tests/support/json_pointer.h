// A JSON document read by JSON Pointer (RFC 6901) in tests: has("/a/0/b"), str(), integer(),
// number(), boolean(), keys(). A value that is absent or of another type reads as nullopt (or
// "<absent>" / "<not a string>" for str(), which shows in a failing assertion).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mdec::testing {

// A parsed document; lives where it is declared (its elements point into it).
class Json {
 public:
  explicit Json(const std::string& text) : text_(text) {
    ok_ = parser_.parse(text_).get(root_) == simdjson::SUCCESS;
  }
  Json(const Json&) = delete;
  Json& operator=(const Json&) = delete;

  bool ok() const { return ok_; }
  simdjson::dom::element root() const { return root_; }

  bool has(const char* pointer) const {
    simdjson::dom::element e;
    return ok_ && root_.at_pointer(pointer).get(e) == simdjson::SUCCESS;
  }
  // A string value; "<absent>" or "<not a string>" otherwise.
  std::string str(const char* pointer) const {
    simdjson::dom::element e;
    if (!ok_ || root_.at_pointer(pointer).get(e) != simdjson::SUCCESS) return "<absent>";
    std::string_view s;
    if (e.get(s) != simdjson::SUCCESS) return "<not a string>";
    return std::string(s);
  }
  std::optional<std::int64_t> integer(const char* pointer) const {
    simdjson::dom::element e;
    std::int64_t v = 0;
    if (!ok_ || root_.at_pointer(pointer).get(e) != simdjson::SUCCESS ||
        e.get(v) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    return v;
  }
  std::optional<double> number(const char* pointer) const {
    simdjson::dom::element e;
    double v = 0;
    if (!ok_ || root_.at_pointer(pointer).get(e) != simdjson::SUCCESS ||
        e.get_double().get(v) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> boolean(const char* pointer) const {
    simdjson::dom::element e;
    bool v = false;
    if (!ok_ || root_.at_pointer(pointer).get(e) != simdjson::SUCCESS ||
        e.get(v) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    return v;
  }
  std::vector<std::string> keys(const char* pointer) const {
    std::vector<std::string> out;
    simdjson::dom::object o;
    if (ok_ && root_.at_pointer(pointer).get(o) == simdjson::SUCCESS) {
      for (auto field : o) out.emplace_back(field.key);
    }
    return out;
  }

 private:
  simdjson::padded_string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  bool ok_ = false;
};

}  // namespace mdec::testing
