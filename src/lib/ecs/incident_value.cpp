#include "ecs/incident_value.h"

#include <algorithm>
#include <utility>

#include "mdecollect/core/json_writer.h"

namespace mdec::ecs::incident {

Value Value::string(std::string s) {
  Value v;
  v.type = Type::kString;
  v.str = std::move(s);
  return v;
}

Value Value::integer(std::int64_t i) {
  Value v;
  v.type = Type::kInt;
  v.int_value = i;
  return v;
}

Value Value::object() {
  Value v;
  v.type = Type::kObject;
  return v;
}

Value Value::array() {
  Value v;
  v.type = Type::kArray;
  return v;
}

bool operator==(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return a.boolean == b.boolean;
    case Value::Type::kInt:
      return a.int_value == b.int_value;
    case Value::Type::kUint:
      return a.uint_value == b.uint_value;
    case Value::Type::kDouble:
      return a.double_value == b.double_value;
    case Value::Type::kString:
      return a.str == b.str;
    case Value::Type::kArray:
      return a.items == b.items;
    case Value::Type::kObject:
      if (a.members.size() != b.members.size()) return false;
      for (const Member& m : a.members) {
        const Value* other = find(b, m.key);
        if (other == nullptr || !(*other == m.value)) return false;
      }
      return true;
  }
  return false;
}

Value* find(Value& obj, std::string_view key) {
  if (!obj.isObject()) return nullptr;
  for (Member& m : obj.members) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

const Value* find(const Value& obj, std::string_view key) {
  if (!obj.isObject()) return nullptr;
  for (const Member& m : obj.members) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

Value* findPath(Value& root, Path path) {
  Value* cur = &root;
  for (std::string_view k : path) {
    cur = find(*cur, k);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

const Value* findPath(const Value& root, Path path) {
  const Value* cur = &root;
  for (std::string_view k : path) {
    cur = find(*cur, k);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

Value& ensure(Value& root, Path path) {
  Value* cur = &root;
  for (std::string_view k : path) {
    if (!cur->isObject()) *cur = Value::object();
    Value* next = find(*cur, k);
    if (next == nullptr) {
      cur->members.push_back(Member{std::string(k), Value{}});
      next = &cur->members.back().value;
    }
    cur = next;
  }
  return *cur;
}

void set(Value& root, Path path, Value v) { ensure(root, path) = std::move(v); }

std::optional<Value> take(Value& obj, std::string_view key) {
  if (!obj.isObject()) return std::nullopt;
  auto it = std::find_if(obj.members.begin(), obj.members.end(),
                         [&](const Member& m) { return m.key == key; });
  if (it == obj.members.end()) return std::nullopt;
  Value v = std::move(it->value);
  obj.members.erase(it);
  return v;
}

std::optional<Value> takePath(Value& root, Path path) {
  if (path.size() == 0) return std::nullopt;
  Value* parent = &root;
  auto it = path.begin();
  for (std::size_t i = 0; i + 1 < path.size(); ++i, ++it) {
    parent = find(*parent, *it);
    if (parent == nullptr) return std::nullopt;
  }
  return take(*parent, *it);
}

void erasePath(Value& root, Path path) { (void)takePath(root, path); }

namespace {
void pushUnique(std::vector<Value>& items, const Value& v) {
  if (std::find(items.begin(), items.end(), v) == items.end()) items.push_back(v);
}
}  // namespace

void appendUnique(Value& root, Path path, const Value& v) {
  Value& target = ensure(root, path);
  if (target.isNull() && path.size() != 0) {
    target = Value::array();
  } else if (!target.isArray()) {
    Value scalar = std::move(target);
    target = Value::array();
    target.items.push_back(std::move(scalar));
  }
  if (v.isArray()) {
    for (const Value& item : v.items) pushUnique(target.items, item);
  } else {
    pushUnique(target.items, v);
  }
}

std::string render(const Value& v) {
  // A string as its text, null as nothing, anything else as its JSON.
  if (v.type == Value::Type::kString) return v.str;
  std::string out;
  if (v.type != Value::Type::kNull) writeJson(out, v);
  return out;
}

void writeJson(std::string& out, const Value& v) {
  switch (v.type) {
    case Value::Type::kNull:
      out.append("null");
      break;
    case Value::Type::kBool:
      out.append(v.boolean ? "true" : "false");
      break;
    case Value::Type::kInt:
      core::appendInt(out, v.int_value);
      break;
    case Value::Type::kUint:
      core::appendUint(out, v.uint_value);
      break;
    case Value::Type::kDouble:
      core::appendDouble(out, v.double_value);
      break;
    case Value::Type::kString:
      core::appendString(out, v.str);
      break;
    case Value::Type::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Value& item : v.items) {
        if (!first) out.push_back(',');
        first = false;
        writeJson(out, item);
      }
      out.push_back(']');
      break;
    }
    case Value::Type::kObject: {
      out.push_back('{');
      bool first = true;
      for (const Member& m : v.members) {
        if (!first) out.push_back(',');
        first = false;
        core::appendString(out, m.key);
        out.push_back(':');
        writeJson(out, m.value);
      }
      out.push_back('}');
      break;
    }
  }
}

namespace {
template <typename Drop>
bool pruneWith(Value& v, Drop&& drop_scalar) {
  if (v.isObject()) {
    std::erase_if(v.members, [&](Member& m) { return pruneWith(m.value, drop_scalar); });
    return v.members.empty();
  }
  if (v.isArray()) {
    std::erase_if(v.items, [&](Value& item) { return pruneWith(item, drop_scalar); });
    return v.items.empty();
  }
  return drop_scalar(v);
}
}  // namespace

bool prune(Value& v) {
  return pruneWith(v, [](const Value& s) { return s.isNull() || (s.isString() && s.str.empty()); });
}

bool dropEmptyStrings(Value& v) {
  return pruneWith(v, [](const Value& s) { return s.isString() && s.str.empty(); });
}

}  // namespace mdec::ecs::incident
