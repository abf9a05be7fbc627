// Microsoft Graph `alerts_v2` alert -> Defender for Endpoint alert (spec: graph.md).
//
// A Graph alert is first translated into the shape of a Defender for Endpoint alert, then
// mapped by the unchanged Mapper (mapping.md). The translation is pure and self-contained:
//   - enum values (status, classification, determination, investigationState, the
//     evidence's detectionStatus) go from lower camel case to Pascal case; severity
//     `unknown` becomes `UnSpecified`; detectionSource follows graph.md's table;
//   - renamed keys: threatDisplayName -> threatName, tenantId -> aadTenantId,
//     createdDateTime / lastUpdateDateTime / firstActivityDateTime / lastActivityDateTime /
//     resolvedDateTime -> alertCreationTime / lastUpdateTime / firstEventTime /
//     lastEventTime / resolvedTime;
//   - the first deviceEvidence gives machineId, computerDnsName, rbacGroupName and
//     relatedUser (its first loggedOnUsers entry) and leaves the evidence; those keys are
//     written just before `evidence`;
//   - every other evidence element: @odata.type -> entityType (File, Process, Registry,
//     Machine, KubernetesPod, ...), createdDateTime -> evidenceCreationTime, fileDetails /
//     imageFile / parentProcessImageFile / userAccount flattened (what has no flat name
//     stays in a nested object), process times renamed;
//   - every other key, at any level, is kept as it is, in input order.
// Key order follows the input: a renamed key takes the place of the key it replaces.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mdecollect/ecs/mapper.h"

namespace mdec::ecs {

class GraphTranslator {
 public:
  GraphTranslator();
  ~GraphTranslator();
  GraphTranslator(const GraphTranslator&) = delete;
  GraphTranslator& operator=(const GraphTranslator&) = delete;

  // Translates one Graph alert into the compact JSON text of a Defender for Endpoint alert
  // in `out` (cleared first; its storage is reused). `text` is one JSON value followed by
  // at least kLinePadding readable bytes (as for Mapper::mapElement).
  //
  // Returns false, leaving `out` empty, when `text` is not valid JSON or not an object: the
  // caller then maps the original text, which gives the mapper's error document holding it.
  //
  // On success `out` is followed by at least kLinePadding readable bytes of its own
  // storage (out.capacity() - out.size() >= kLinePadding), so std::string_view(out) may be
  // handed straight to Mapper::mapElement. Reusing one `out` (and one translator) from
  // alert to alert allocates nothing once the largest alert has been seen. A translator is
  // used by one thread at a time.
  bool translate(std::string_view text, std::string& out);

 private:
  friend LineStats mapGraphLine(Mapper&, GraphTranslator&, std::string_view, const LineContext&,
                                DocumentSink&);
  struct Impl;  // the parser and the buffers mapGraphLine reuses from line to line
  std::unique_ptr<Impl> impl_;
};

// Maps one NDJSON line of Graph input - one alert object, or a page
// {"@odata.context":..., "value":[alert, ...]} - through the translation and `mapper`, the
// way Mapper::mapLine maps Defender for Endpoint lines: a blank line yields nothing; a line
// that is not JSON, a page whose "value" is not an array, and a value that is not an object
// become the mapper's error document holding the original text; a page element that is not a
// valid object becomes an error document holding that element. `context` is honoured as by
// Mapper::mapLine (log.file.path / log.offset, padding).
LineStats mapGraphLine(Mapper& mapper, GraphTranslator& translator, std::string_view line,
                       const LineContext& context, DocumentSink& sink);

}  // namespace mdec::ecs
