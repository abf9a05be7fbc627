#include "support/json_compare.h"

#include <simdjson.h>

#include <cstddef>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

namespace mdec::testing {
namespace {

namespace dom = simdjson::dom;

constexpr std::size_t kMaxShown = 160;

std::string shown(const dom::element& value) {
  std::string text = simdjson::minify(value);
  if (text.size() > kMaxShown) {
    text.resize(kMaxShown);
    text += "...";
  }
  return text;
}

const char* typeName(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY:
      return "array";
    case dom::element_type::OBJECT:
      return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
      return "int";
    case dom::element_type::DOUBLE:
      return "double";
    case dom::element_type::STRING:
      return "string";
    case dom::element_type::BOOL:
      return "bool";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

bool sameInteger(const dom::element& a, const dom::element& b) {
  const bool a_signed = a.type() == dom::element_type::INT64;
  const bool b_signed = b.type() == dom::element_type::INT64;
  if (a_signed && b_signed) return a.get_int64().value_unsafe() == b.get_int64().value_unsafe();
  if (!a_signed && !b_signed) {
    return a.get_uint64().value_unsafe() == b.get_uint64().value_unsafe();
  }
  const dom::element& s = a_signed ? a : b;
  const dom::element& u = a_signed ? b : a;
  const std::int64_t sv = s.get_int64().value_unsafe();
  return sv >= 0 && static_cast<std::uint64_t>(sv) == u.get_uint64().value_unsafe();
}

// Equal scalars of the same JSON type (int64/uint64 are one type). Containers: false.
bool sameScalar(const dom::element& a, const dom::element& b) {
  if (std::string_view(typeName(a.type())) != typeName(b.type())) return false;
  switch (a.type()) {
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
      return sameInteger(a, b);
    case dom::element_type::DOUBLE:
      return a.get_double().value_unsafe() == b.get_double().value_unsafe();
    case dom::element_type::STRING:
      return a.get_string().value_unsafe() == b.get_string().value_unsafe();
    case dom::element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    case dom::element_type::NULL_VALUE:
      return true;
    default:
      return false;
  }
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

bool isNonEmptyStringArray(const dom::element& value) {
  dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) return false;
  if (array.size() == 0) return false;
  for (dom::element item : array) {
    if (!item.is_string()) return false;
  }
  return true;
}

// Keys of an object; duplicates reported to `problems` under `side`.
std::map<std::string_view, dom::element> keyMap(const dom::object& object, const std::string& path,
                                                const char* side,
                                                std::vector<std::string>& problems) {
  std::map<std::string_view, dom::element> keys;
  for (dom::key_value_pair field : object) {
    if (!keys.emplace(field.key, field.value).second) {
      problems.push_back(join(path, field.key) + ": duplicate key in " + side);
    }
  }
  return keys;
}

class Differ {
 public:
  explicit Differ(bool ecs_rules) : ecs_rules_(ecs_rules) {}

  void diff(const dom::element& expected, const dom::element& actual, const std::string& path) {
    if (ecs_rules_ && path == "event.original") {
      diffOriginal(expected, actual, path);
      return;
    }
    if (ecs_rules_ && path == "error.message" && !expected.is_null() &&
        isNonEmptyStringArray(actual)) {
      return;
    }
    const auto expected_type = expected.type();
    const auto actual_type = actual.type();
    if (expected_type == dom::element_type::OBJECT && actual_type == dom::element_type::OBJECT) {
      diffObjects(expected.get_object().value_unsafe(), actual.get_object().value_unsafe(), path);
      return;
    }
    if (expected_type == dom::element_type::ARRAY && actual_type == dom::element_type::ARRAY) {
      const dom::array expected_array = expected.get_array().value_unsafe();
      const dom::array actual_array = actual.get_array().value_unsafe();
      if (expected_array.size() != actual_array.size()) {
        leaf(expected, actual, path);
        return;
      }
      std::size_t index = 0;
      auto it = actual_array.begin();
      for (dom::element item : expected_array) {
        diff(item, *it, path + "[" + std::to_string(index) + "]");
        ++it;
        ++index;
      }
      return;
    }
    if (!sameScalar(expected, actual)) leaf(expected, actual, path);
  }

  std::vector<std::string> out;

 private:
  void leaf(const dom::element& expected, const dom::element& actual, const std::string& path) {
    std::string where = path.empty() ? "(document)" : path;
    std::string line = where + ": expected " + shown(expected) + " got " + shown(actual);
    if (std::string_view(typeName(expected.type())) != typeName(actual.type())) {
      line +=
          std::string(" (") + typeName(expected.type()) + " vs " + typeName(actual.type()) + ")";
    }
    out.push_back(std::move(line));
  }

  bool skipped(const std::string& path, std::string_view key) const {
    if (!ecs_rules_) return false;
    if (path.empty()) return key == "agent" || key == "input";
    if (path == "event") return key == "ingested";
    return false;
  }

  void diffObjects(const dom::object& expected, const dom::object& actual,
                   const std::string& path) {
    const auto expected_keys = keyMap(expected, path, "expected", out);
    const auto actual_keys = keyMap(actual, path, "actual", out);
    for (const auto& [key, value] : expected_keys) {
      if (skipped(path, key)) continue;
      const std::string child = join(path, key);
      auto found = actual_keys.find(key);
      if (found == actual_keys.end()) {
        out.push_back(child + ": missing (expected " + shown(value) + ")");
        continue;
      }
      if (ecs_rules_ && path.empty() && key == "@timestamp" && value.is_string() &&
          value.get_string().value_unsafe() == "RUNTIME") {
        continue;  // any value matches, but it must be there
      }
      diff(value, found->second, child);
    }
    for (const auto& [key, value] : actual_keys) {
      if (skipped(path, key)) continue;
      if (expected_keys.find(key) == expected_keys.end()) {
        out.push_back(join(path, key) + ": unexpected " + shown(value));
      }
    }
  }

  // event.original: each side parsed as JSON when it is a string that parses.
  void diffOriginal(const dom::element& expected, const dom::element& actual,
                    const std::string& path) {
    const dom::element expected_value = reparse(expected);
    const dom::element actual_value = reparse(actual);
    Differ plain(false);
    plain.diff(expected_value, actual_value, path);
    for (auto& line : plain.out) out.push_back(std::move(line));
  }

  dom::element reparse(const dom::element& value) {
    std::string_view text;
    if (value.get_string().get(text) != simdjson::SUCCESS) return value;
    dom::parser& parser = parsers_.emplace_back();
    dom::element parsed;
    if (parser.parse(text.data(), text.size()).get(parsed) != simdjson::SUCCESS) return value;
    return parsed;
  }

  bool ecs_rules_;
  std::deque<dom::parser> parsers_;  // keep re-parsed event.original values alive
};

std::vector<std::string> diffTexts(std::string_view expected, std::string_view actual,
                                   bool ecs_rules) {
  dom::parser expected_parser;
  dom::parser actual_parser;
  dom::element expected_root;
  dom::element actual_root;
  std::vector<std::string> problems;
  if (auto error = expected_parser.parse(expected.data(), expected.size()).get(expected_root)) {
    problems.push_back(std::string("expected is not JSON: ") + simdjson::error_message(error));
  }
  if (auto error = actual_parser.parse(actual.data(), actual.size()).get(actual_root)) {
    problems.push_back(std::string("actual is not JSON: ") + simdjson::error_message(error));
  }
  if (!problems.empty()) return problems;
  Differ differ(ecs_rules);
  differ.diff(expected_root, actual_root, "");
  return std::move(differ.out);
}

}  // namespace

std::vector<std::string> diffEcsDocuments(std::string_view expected, std::string_view actual) {
  return diffTexts(expected, actual, true);
}

std::vector<std::string> diffJson(std::string_view expected, std::string_view actual) {
  return diffTexts(expected, actual, false);
}

std::string joinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) {
    text += line;
    text += '\n';
  }
  return text;
}

void CollectingSink::onDocument(const mdec::ecs::DocumentView& doc) {
  documents.push_back(
      CollectedDocument{std::string(doc.id), std::string(doc.json), doc.error, doc.evidence_index});
}

std::optional<std::vector<std::string>> readLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return std::nullopt;
  const std::string text = buffer.str();
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::vector<std::string> nonBlankLines(const std::vector<std::string>& lines) {
  std::vector<std::string> kept;
  for (const auto& line : lines) {
    if (line.find_first_not_of(" \t\r\n") != std::string::npos) kept.push_back(line);
  }
  return kept;
}

struct JsonDoc::Impl {
  dom::parser parser;
  dom::element root;
  bool ok = false;
  std::string error;

  // The element at a dotted path, or nullopt.
  std::optional<dom::element> find(std::string_view path) const {
    if (!ok) return std::nullopt;
    dom::element current = root;
    if (path.empty()) return current;
    std::size_t start = 0;
    while (true) {
      const std::size_t dot = path.find('.', start);
      const std::string_view key =
          path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
      dom::object object;
      if (current.get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
      if (object.at_key(key).get(current) != simdjson::SUCCESS) return std::nullopt;
      if (dot == std::string_view::npos) return current;
      start = dot + 1;
    }
  }
};

namespace {
void collectKeys(const dom::element& value, std::vector<std::string>& keys) {
  dom::object object;
  dom::array array;
  if (value.get_object().get(object) == simdjson::SUCCESS) {
    for (dom::key_value_pair field : object) {
      keys.emplace_back(field.key);
      collectKeys(field.value, keys);
    }
  } else if (value.get_array().get(array) == simdjson::SUCCESS) {
    for (dom::element item : array) collectKeys(item, keys);
  }
}
}  // namespace

JsonDoc::JsonDoc(std::string_view json) : impl_(std::make_unique<Impl>()) {
  auto error = impl_->parser.parse(json.data(), json.size()).get(impl_->root);
  impl_->ok = error == simdjson::SUCCESS;
  if (!impl_->ok) impl_->error = simdjson::error_message(error);
}
JsonDoc::~JsonDoc() = default;
JsonDoc::JsonDoc(JsonDoc&&) noexcept = default;
JsonDoc& JsonDoc::operator=(JsonDoc&&) noexcept = default;

bool JsonDoc::valid() const { return impl_->ok; }
const std::string& JsonDoc::parseError() const { return impl_->error; }

bool JsonDoc::has(std::string_view path) const { return impl_->find(path).has_value(); }

std::string JsonDoc::type(std::string_view path) const {
  auto value = impl_->find(path);
  return value ? typeName(value->type()) : "missing";
}

std::optional<std::string> JsonDoc::getString(std::string_view path) const {
  auto value = impl_->find(path);
  std::string_view text;
  if (!value || value->get_string().get(text) != simdjson::SUCCESS) return std::nullopt;
  return std::string(text);
}

std::optional<std::int64_t> JsonDoc::getInt(std::string_view path) const {
  auto value = impl_->find(path);
  if (!value ||
      !(value->type() == dom::element_type::INT64 || value->type() == dom::element_type::UINT64)) {
    return std::nullopt;
  }
  std::int64_t number = 0;
  if (value->get_int64().get(number) != simdjson::SUCCESS) return std::nullopt;
  return number;
}

std::optional<double> JsonDoc::getDouble(std::string_view path) const {
  auto value = impl_->find(path);
  double number = 0;
  if (!value || value->type() != dom::element_type::DOUBLE ||
      value->get_double().get(number) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return number;
}

std::optional<bool> JsonDoc::getBool(std::string_view path) const {
  auto value = impl_->find(path);
  bool flag = false;
  if (!value || value->get_bool().get(flag) != simdjson::SUCCESS) return std::nullopt;
  return flag;
}

std::optional<std::vector<std::string>> JsonDoc::getStrings(std::string_view path) const {
  auto value = impl_->find(path);
  dom::array array;
  if (!value || value->get_array().get(array) != simdjson::SUCCESS) return std::nullopt;
  std::vector<std::string> strings;
  for (dom::element item : array) {
    std::string_view text;
    if (item.get_string().get(text) != simdjson::SUCCESS) return std::nullopt;
    strings.emplace_back(text);
  }
  return strings;
}

std::optional<std::string> JsonDoc::getJson(std::string_view path) const {
  auto value = impl_->find(path);
  if (!value) return std::nullopt;
  return simdjson::minify(*value);
}

std::vector<std::string> JsonDoc::keys(std::string_view path) const {
  std::vector<std::string> names;
  auto value = impl_->find(path);
  dom::object object;
  if (!value || value->get_object().get(object) != simdjson::SUCCESS) return names;
  for (dom::key_value_pair field : object) names.emplace_back(field.key);
  return names;
}

std::vector<std::string> JsonDoc::allKeys() const {
  std::vector<std::string> names;
  if (impl_->ok) collectKeys(impl_->root, names);
  return names;
}

}  // namespace mdec::testing
