// The Elasticsearch index templates (see the header). The mappings and the field tables come
// from the generated es_template_data.cpp and es_template_incident_data.cpp; this file adds
// what surrounds them.
#include "mdecollect/output/es_template.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "mdecollect/core/json_writer.h"
#include "output/es_template_data.h"

namespace mdec::output {

namespace {

constexpr std::string_view kManagedBy = "mdecollect";

constexpr std::array<IndexTemplateSpec, 2> kTemplates = {kEndpointTemplate, kIncidentTemplate};

struct TemplateData {
  std::string_view mappings_json;
  std::span<const generated::MappedField> fields;
};

std::size_t indexOf(IndexTemplateId id) {
  switch (id) {
    case IndexTemplateId::kEndpoint:
      return 0;
    case IndexTemplateId::kIncident:
      return 1;
  }
  std::abort();  // not an IndexTemplateId
}

TemplateData dataOf(IndexTemplateId id) {
  switch (id) {
    case IndexTemplateId::kEndpoint:
      return {generated::endpoint::kMappingsJson, generated::endpoint::kMappedFields};
    case IndexTemplateId::kIncident:
      return {generated::incident::kMappingsJson, generated::incident::kMappedFields};
  }
  std::abort();  // not an IndexTemplateId
}

// The whole body, with `version` in _meta.
//
// template.mappings sets no "dynamic": the default (true) stays, so a key the list of emitted
// fields does not name (a future Defender key under microsoft.defender_endpoint, a Graph
// evidence type, the keys of a dictionary such as Graph's additionalData) is still indexed,
// with a type Elasticsearch picks from its first value. "dynamic": false would keep such
// fields in _source only, unsearchable, without a word; "strict" would reject the document.
//
// index.default_pipeline is "_none" (no default ingest pipeline): the documents are final, and
// must not run through the Elastic integration's pipeline when its assets are installed.
std::string buildBody(const IndexTemplateSpec& spec, const IndexTemplateOptions& options,
                      int version) {
  const std::string_view mappings = dataOf(spec.id).mappings_json;
  std::string out;
  out.reserve(mappings.size() + 320);
  out.append("{\"index_patterns\":[");
  core::appendString(out, spec.pattern);
  out.append("],\"data_stream\":{},\"priority\":");
  core::appendInt(out, spec.priority);
  out.append(",\"composed_of\":[],\"template\":{\"settings\":{\"index\":{\"default_pipeline\":");
  core::appendString(out, kDefaultPipeline);
  if (!options.ilm_policy.empty()) {
    out.append(",\"lifecycle\":{\"name\":");
    core::appendString(out, options.ilm_policy);
    out.append("}");
  }
  out.append("}},\"mappings\":");
  out.append(mappings);
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

const generated::MappedField* find(std::span<const generated::MappedField> fields,
                                   std::string_view field) {
  const auto it = std::lower_bound(
      fields.begin(), fields.end(), field,
      [](const generated::MappedField& f, std::string_view name) { return f.field < name; });
  if (it == fields.end() || it->field != field) return nullptr;
  return &*it;
}

}  // namespace

std::span<const IndexTemplateSpec> indexTemplates() { return kTemplates; }

const IndexTemplateSpec& indexTemplate(IndexTemplateId id) { return kTemplates[indexOf(id)]; }

int indexTemplateVersion(const IndexTemplateSpec& spec) {
  static const std::array<int, kTemplates.size()> versions = [] {
    std::array<int, kTemplates.size()> out{};
    for (std::size_t i = 0; i < kTemplates.size(); ++i) {
      out[i] = versionOf(buildBody(kTemplates[i], IndexTemplateOptions{}, 0));
    }
    return out;
  }();
  return versions[indexOf(spec.id)];
}

int indexTemplateVersion() { return indexTemplateVersion(kEndpointTemplate); }

std::string indexTemplateJson(const IndexTemplateSpec& spec, const IndexTemplateOptions& options) {
  return buildBody(spec, options, indexTemplateVersion(spec));
}

std::string indexTemplateJson(const IndexTemplateOptions& options) {
  return indexTemplateJson(kEndpointTemplate, options);
}

std::string_view mappedType(const IndexTemplateSpec& spec, std::string_view field) {
  const auto fields = dataOf(spec.id).fields;
  if (const auto* f = find(fields, field)) return f->type;
  // A key below a flattened field: the nearest mapped ancestor decides.
  for (auto dot = field.rfind('.'); dot != std::string_view::npos && dot > 0;
       dot = field.rfind('.', dot - 1)) {
    if (const auto* f = find(fields, field.substr(0, dot))) {
      return f->type == "flattened" ? f->type : std::string_view();
    }
  }
  return {};
}

std::string_view mappedType(std::string_view field) { return mappedType(kEndpointTemplate, field); }

std::vector<std::string_view> mappedFields(const IndexTemplateSpec& spec) {
  const auto fields = dataOf(spec.id).fields;
  std::vector<std::string_view> out;
  out.reserve(fields.size());
  for (const auto& f : fields) out.push_back(f.field);
  return out;
}

std::vector<std::string_view> mappedFields() { return mappedFields(kEndpointTemplate); }

}  // namespace mdec::output
