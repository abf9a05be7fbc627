#include "mdecollect/state/state_transfer.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <utility>

#include "mdecollect/core/json_writer.h"
#include "mdecollect/core/private_file.h"
#include "mdecollect/state/run_lock.h"

namespace mdec::state {
namespace {

constexpr std::string_view kFormat = "mdecollect-state";
constexpr std::size_t kMaxPacingBytes = 1u << 20;

std::string pacingPath(const std::string& state_dir, const std::string& source) {
  return (std::filesystem::path(state_dir) / ("pacing-" + source + ".txt")).string();
}

std::optional<std::string> readPacing(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  text.resize(kMaxPacingBytes);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

// Through a temporary 0600 file renamed over the old one.
Status writePacing(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  auto file = core::openPrivateFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW);
  if (!file) return std::move(file.error());
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(file->fd.get(), text.data() + done, text.size() - done);
    if (n <= 0) return Error(ErrorCode::kIo, "cannot write " + tmp);
    done += static_cast<std::size_t>(n);
  }
  file->fd.reset();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error(ErrorCode::kIo, "cannot rename " + tmp + " to " + path);
  }
  return okStatus();
}

void appendOptional(std::string& out, const std::optional<std::string>& text) {
  if (text) {
    core::appendString(out, *text);
  } else {
    out += "null";
  }
}

// The run lock for the duration of a transfer; an error while a collector holds it.
Result<RunLock> lockStateDir(const std::string& state_dir) {
  auto lock = RunLock::tryAcquire(state_dir);
  if (!lock) return std::move(lock.error());
  if (!*lock) {
    return Error(ErrorCode::kInvalidArgument, "a collector (pid " +
                                                  std::to_string(RunLock::holder(state_dir)) +
                                                  ") runs on " + state_dir +
                                                  ": stop it first (a source's state moves only "
                                                  "while no collector uses it)");
  }
  return std::move(**lock);
}

Result<std::unique_ptr<StateStore>> openExisting(const std::string& state_dir) {
  if (!std::filesystem::exists(std::filesystem::path(state_dir) / "state.db")) {
    return Error(ErrorCode::kNotFound, "there is no state in " + state_dir + " (no state.db)");
  }
  return openSqliteStore(state_dir);
}

// ---- decoding

using simdjson::dom::element;

Error malformed(const std::string& where, const std::string& what) {
  return Error(ErrorCode::kParse,
               "the state file is not as `state export` writes it: " + where + ": " + what);
}

Status text(element e, const char* key, const std::string& where, std::string& out) {
  std::string_view v;
  if (e[key].get(v) != simdjson::SUCCESS) return malformed(where, std::string(key) + ": no text");
  out = std::string(v);
  return okStatus();
}

Status optionalText(element e, const char* key, const std::string& where,
                    std::optional<std::string>& out) {
  element v;
  if (e[key].get(v) != simdjson::SUCCESS || v.is_null()) {
    out.reset();
    return okStatus();
  }
  std::string_view t;
  if (v.get(t) != simdjson::SUCCESS) return malformed(where, std::string(key) + ": not text");
  out = std::string(t);
  return okStatus();
}

Status number(element e, const char* key, const std::string& where, std::uint64_t& out) {
  if (e[key].get(out) != simdjson::SUCCESS) {
    return malformed(where, std::string(key) + ": not a whole number");
  }
  return okStatus();
}

Result<MovedSource> decodeSource(element e, const std::string& where) {
  MovedSource moved;
  SourceState& s = moved.state;
  if (auto st = text(e, "source", where, s.source); !st) return std::move(st.error());
  if (s.source.empty()) return malformed(where, "source: empty");
  const std::string at = where + " (" + s.source + ")";
  for (auto [key, out] :
       {std::pair{"watermark", &s.watermark}, std::pair{"seen_since", &s.seen_since},
        std::pair{"collected_since", &s.collected_since}}) {
    if (auto st = optionalText(e, key, at, *out); !st) return std::move(st.error());
  }
  if (auto st = optionalText(e, "pacing", at, moved.pacing); !st) return std::move(st.error());
  simdjson::dom::array seen;
  if (e["seen"].get(seen) != simdjson::SUCCESS) return malformed(at, "seen: not a list");
  for (element v : seen) {
    simdjson::dom::array pair;
    std::string_view id;
    std::string_view time;
    if (v.get(pair) != simdjson::SUCCESS || pair.size() != 2 ||
        pair.at(0).get(id) != simdjson::SUCCESS || pair.at(1).get(time) != simdjson::SUCCESS) {
      return malformed(at, "seen: each entry is [alert id, lastUpdateTime]");
    }
    s.seen.push_back({std::string(id), std::string(time)});
  }
  simdjson::dom::array files;
  if (e["files"].get(files) != simdjson::SUCCESS) return malformed(at, "files: not a list");
  for (element f : files) {
    SourceFile& file = s.files.emplace_back();
    if (auto st = text(f, "path", at + ": files", file.path); !st) return std::move(st.error());
    if (auto st = number(f, "inode", at + ": files", file.position.inode); !st) {
      return std::move(st.error());
    }
    if (auto st = number(f, "offset", at + ": files", file.position.offset); !st) {
      return std::move(st.error());
    }
  }
  simdjson::dom::array jobs;
  if (e["backfills"].get(jobs) != simdjson::SUCCESS) return malformed(at, "backfills: not a list");
  for (element j : jobs) {
    BackfillJob& job = s.backfills.emplace_back();
    job.source = s.source;
    const std::string w = at + ": backfills";
    for (auto [key, out] :
         {std::pair{"since", &job.since}, std::pair{"until", &job.until},
          std::pair{"position", &job.position}, std::pair{"state", &job.state},
          std::pair{"message", &job.message}, std::pair{"updated", &job.updated}}) {
      if (auto st = text(j, key, w, *out); !st) return std::move(st.error());
    }
    for (auto [key, out] : {std::pair{"slices", &job.slices}, std::pair{"alerts", &job.alerts},
                            std::pair{"documents", &job.documents}}) {
      if (auto st = number(j, key, w, *out); !st) return std::move(st.error());
    }
  }
  return moved;
}

}  // namespace

std::string encodeStateExport(const std::vector<MovedSource>& sources) {
  std::string out = "{\"format\":";
  core::appendString(out, kFormat);
  out += ",\"version\":" + std::to_string(kStateExportVersion) + ",\"sources\":[";
  bool first_source = true;
  for (const MovedSource& moved : sources) {
    const SourceState& s = moved.state;
    out += first_source ? "\n" : ",\n";
    first_source = false;
    out += "{\"source\":";
    core::appendString(out, s.source);
    out += ",\"watermark\":";
    appendOptional(out, s.watermark);
    out += ",\"seen_since\":";
    appendOptional(out, s.seen_since);
    out += ",\"collected_since\":";
    appendOptional(out, s.collected_since);
    out += ",\"seen\":[";
    for (std::size_t i = 0; i < s.seen.size(); ++i) {
      out += i == 0 ? "[" : ",[";
      core::appendString(out, s.seen[i].alert_id);
      out += ',';
      core::appendString(out, s.seen[i].last_update_time);
      out += ']';
    }
    out += "],\"files\":[";
    for (std::size_t i = 0; i < s.files.size(); ++i) {
      out += i == 0 ? "{\"path\":" : ",{\"path\":";
      core::appendString(out, s.files[i].path);
      out += ",\"inode\":";
      core::appendUint(out, s.files[i].position.inode);
      out += ",\"offset\":";
      core::appendUint(out, s.files[i].position.offset);
      out += '}';
    }
    out += "],\"backfills\":[";
    for (std::size_t i = 0; i < s.backfills.size(); ++i) {
      const BackfillJob& j = s.backfills[i];
      out += i == 0 ? "{" : ",{";
      bool first = true;
      for (auto [key, value] :
           {std::pair{"since", &j.since}, std::pair{"until", &j.until},
            std::pair{"position", &j.position}, std::pair{"state", &j.state},
            std::pair{"message", &j.message}, std::pair{"updated", &j.updated}}) {
        out += first ? "\"" : ",\"";
        first = false;
        out += key;
        out += "\":";
        core::appendString(out, *value);
      }
      for (auto [key, value] : {std::pair{"slices", j.slices}, std::pair{"alerts", j.alerts},
                                std::pair{"documents", j.documents}}) {
        out += ",\"";
        out += key;
        out += "\":";
        core::appendUint(out, value);
      }
      out += '}';
    }
    out += "],\"pacing\":";
    appendOptional(out, moved.pacing);
    out += '}';
  }
  out += "\n]}\n";
  return out;
}

Result<std::vector<MovedSource>> decodeStateExport(std::string_view json) {
  simdjson::dom::parser parser;
  element root;
  if (parser.parse(simdjson::padded_string(json)).get(root) != simdjson::SUCCESS ||
      !root.is_object()) {
    return malformed("the file", "not a JSON object");
  }
  std::string_view format;
  if (root["format"].get(format) != simdjson::SUCCESS || format != kFormat) {
    return malformed("the file", "\"format\" is not \"" + std::string(kFormat) + "\"");
  }
  std::int64_t version = 0;
  if (root["version"].get(version) != simdjson::SUCCESS) {
    return malformed("the file", "no \"version\"");
  }
  if (version > kStateExportVersion || version < 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "the state file has version " + std::to_string(version) +
                     "; this mdecollect reads version " + std::to_string(kStateExportVersion));
  }
  simdjson::dom::array list;
  if (root["sources"].get(list) != simdjson::SUCCESS) {
    return malformed("the file", "\"sources\" is not a list");
  }
  std::vector<MovedSource> sources;
  std::set<std::string> names;
  std::size_t i = 0;
  for (element e : list) {
    const std::string where = "sources[" + std::to_string(i++) + "]";
    if (!e.is_object()) return malformed(where, "not an object");
    auto moved = decodeSource(e, where);
    if (!moved) return std::move(moved.error());
    if (!names.insert(moved->state.source).second) {
      return malformed(where, "source '" + moved->state.source + "' is there twice");
    }
    sources.push_back(std::move(*moved));
  }
  return sources;
}

Result<ExportResult> exportSources(const std::string& state_dir,
                                   const std::vector<std::string>& names) {
  auto store = openExisting(state_dir);
  if (!store) return std::move(store.error());
  auto lock = lockStateDir(state_dir);
  if (!lock) return std::move(lock.error());
  ExportResult result;
  std::vector<MovedSource> sources;
  std::set<std::string> done;
  for (const auto& name : names) {
    if (!done.insert(name).second) continue;
    auto state = (*store)->exportSource(name);
    if (!state) return std::move(state.error());
    auto pacing = readPacing(pacingPath(state_dir, name));
    if (!*state && !pacing) {
      result.without_state.push_back(name);
      continue;
    }
    MovedSource& moved = sources.emplace_back();
    if (*state) {
      moved.state = std::move(**state);
    } else {
      moved.state.source = name;
    }
    moved.pacing = std::move(pacing);
    result.exported.push_back(name);
  }
  result.json = encodeStateExport(sources);
  return result;
}

Result<std::vector<std::string>> importSources(const std::string& state_dir, std::string_view json,
                                               const ImportOptions& options) {
  auto sources = decodeStateExport(json);
  if (!sources) return std::move(sources.error());
  std::vector<const MovedSource*> chosen;
  for (const auto& name : options.only) {
    bool there = false;
    for (const auto& s : *sources) there = there || s.state.source == name;
    if (!there) {
      return Error(ErrorCode::kInvalidArgument, "the state file has no source '" + name + "'");
    }
  }
  for (const auto& s : *sources) {
    const bool wanted = options.only.empty() || std::find(options.only.begin(), options.only.end(),
                                                          s.state.source) != options.only.end();
    if (wanted) chosen.push_back(&s);
  }
  auto lock = lockStateDir(state_dir);
  if (!lock) return std::move(lock.error());
  auto store = openSqliteStore(state_dir);
  if (!store) return std::move(store.error());
  if (!options.force) {
    std::string refused;
    for (const MovedSource* s : chosen) {
      auto existing = (*store)->exportSource(s->state.source);
      if (!existing) return std::move(existing.error());
      if (*existing) refused += (refused.empty() ? "" : ", ") + s->state.source;
    }
    if (!refused.empty()) {
      return Error(ErrorCode::kInvalidArgument,
                   "the state in " + state_dir + " already keeps a watermark, seen versions, " +
                       "file positions or backfill jobs of: " + refused +
                       "; nothing was imported (--force replaces them)");
    }
  }
  std::vector<std::string> imported;
  for (const MovedSource* s : chosen) {
    if (auto status = (*store)->importSource(s->state, options.force); !status) {
      return std::move(status.error());
    }
    const std::string path = pacingPath(state_dir, s->state.source);
    if (s->pacing) {
      if (auto status = writePacing(path, *s->pacing); !status) return std::move(status.error());
    } else if (options.force) {
      std::filesystem::remove(path);
    }
    imported.push_back(s->state.source);
  }
  return imported;
}

Result<std::vector<std::string>> forgetSources(const std::string& state_dir,
                                               const std::vector<std::string>& names) {
  auto store = openExisting(state_dir);
  if (!store) return std::move(store.error());
  auto lock = lockStateDir(state_dir);
  if (!lock) return std::move(lock.error());
  std::vector<std::string> forgotten;
  for (const auto& name : names) {
    auto existing = (*store)->exportSource(name);
    if (!existing) return std::move(existing.error());
    std::error_code ec;
    const bool had_pacing = std::filesystem::remove(pacingPath(state_dir, name), ec);
    if (!*existing && !had_pacing) continue;
    if (auto status = (*store)->forgetSource(name); !status) return std::move(status.error());
    forgotten.push_back(name);
  }
  return forgotten;
}

}  // namespace mdec::state
