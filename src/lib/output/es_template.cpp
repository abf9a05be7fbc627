// The Elasticsearch index template (see the header). The mappings and the field table come
// from the generated es_template_data.cpp; this file adds what surrounds them.
#include "mdecollect/output/es_template.h"

#include <algorithm>
#include <cstdint>

#include "mdecollect/core/json_writer.h"
#include "output/es_template_data.h"

namespace mdec::output {

namespace {

constexpr std::string_view kManagedBy = "mdecollect";

// The whole body, with `version` in _meta.
//
// template.mappings sets no "dynamic": the default (true) stays, so a key the list of emitted
// fields does not name (a future Defender key under microsoft.defender_endpoint, a Graph
// evidence type, the keys of a dictionary such as Graph's additionalData) is still indexed,
// with a type Elasticsearch picks from its first value. "dynamic": false would keep such
// fields in _source only, unsearchable, without a word; "strict" would reject the document.
std::string buildBody(const IndexTemplateOptions& options, int version) {
  std::string out;
  out.reserve(generated::kMappingsJson.size() + 256);
  out.append("{\"index_patterns\":[");
  core::appendString(out, kIndexPattern);
  out.append("],\"data_stream\":{},\"priority\":");
  core::appendInt(out, kIndexTemplatePriority);
  out.append(",\"composed_of\":[],\"template\":{\"settings\":{");
  if (!options.ilm_policy.empty()) {
    out.append("\"index\":{\"lifecycle\":{\"name\":");
    core::appendString(out, options.ilm_policy);
    out.append("}}");
  }
  out.append("},\"mappings\":");
  out.append(generated::kMappingsJson);
  out.append("},\"_meta\":{\"managed_by\":");
  core::appendString(out, kManagedBy);
  out.append(",\"version\":");
  core::appendInt(out, version);
  out.append("}}");
  return out;
}

// FNV-1a (64 bits) folded to a positive 31-bit int.
int versionOf(std::string_view text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  const auto folded = static_cast<std::uint32_t>((h >> 32) ^ h) & 0x7fffffffU;
  return folded == 0 ? 1 : static_cast<int>(folded);
}

}  // namespace

int indexTemplateVersion() {
  static const int version = versionOf(buildBody(IndexTemplateOptions{}, 0));
  return version;
}

std::string indexTemplateJson(const IndexTemplateOptions& options) {
  return buildBody(options, indexTemplateVersion());
}

std::string_view mappedType(std::string_view field) {
  const auto fields = generated::kMappedFields;
  const auto it = std::lower_bound(
      fields.begin(), fields.end(), field,
      [](const generated::MappedField& f, std::string_view name) { return f.field < name; });
  if (it == fields.end() || it->field != field) return {};
  return it->type;
}

std::vector<std::string_view> mappedFields() {
  std::vector<std::string_view> out;
  out.reserve(generated::kMappedFields.size());
  for (const auto& f : generated::kMappedFields) out.push_back(f.field);
  return out;
}

}  // namespace mdec::output
