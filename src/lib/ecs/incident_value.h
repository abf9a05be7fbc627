// A small mutable JSON tree for the incident mapper. Elastic's incident pipeline renames,
// moves and appends fields all over the document, in an order that fixes the order of every
// array, so the mapper replays it on a tree rather than streaming it (incidents are few and
// small next to alerts: a page holds at most 50).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdec::ecs::incident {

struct Member;

struct Value {
  enum class Type : std::uint8_t { kNull, kBool, kInt, kUint, kDouble, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::int64_t int_value = 0;
  std::uint64_t uint_value = 0;
  double double_value = 0;
  std::string str;
  std::vector<Value> items;     // kArray
  std::vector<Member> members;  // kObject, in input order; keys are unique

  static Value string(std::string s);
  static Value integer(std::int64_t v);
  static Value object();
  static Value array();

  bool isNull() const { return type == Type::kNull; }
  bool isString() const { return type == Type::kString; }
  bool isObject() const { return type == Type::kObject; }
  bool isArray() const { return type == Type::kArray; }
  bool isNumber() const {
    return type == Type::kInt || type == Type::kUint || type == Type::kDouble;
  }
};

struct Member {
  std::string key;
  Value value;
};

using Path = std::initializer_list<std::string_view>;

bool operator==(const Value& a, const Value& b);

// The member `key` of object `obj`, or nullptr (also when obj is not an object).
Value* find(Value& obj, std::string_view key);
const Value* find(const Value& obj, std::string_view key);
Value* findPath(Value& root, Path path);
const Value* findPath(const Value& root, Path path);
// The value at `path`, creating objects on the way (a non-object on the way is replaced).
Value& ensure(Value& root, Path path);
void set(Value& root, Path path, Value v);
// Removes and returns `key` of `obj` (nullopt when absent).
std::optional<Value> take(Value& obj, std::string_view key);
std::optional<Value> takePath(Value& root, Path path);
void erasePath(Value& root, Path path);
// Elasticsearch's append processor with allow_duplicates: false: a scalar already there
// becomes an array; an array value appends each element; exact duplicates are skipped.
void appendUnique(Value& root, Path path, const Value& v);

// What a mustache template `{{{field}}}` renders for a scalar (strings as they are,
// numbers in decimal).
std::string render(const Value& v);

// Compact JSON.
void writeJson(std::string& out, const Value& v);

// Removes every null, "" and every object or array that becomes empty, at any depth.
// Returns true when `v` itself is now empty (or null or "").
bool prune(Value& v);
// Removes "" values and objects/arrays that become empty (nulls stay).
bool dropEmptyStrings(Value& v);

}  // namespace mdec::ecs::incident
