// `mdecollect map`: NDJSON alerts or API pages in, one ECS document per line out.
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "mdecollect/core/line_reader.h"
#include "mdecollect/ecs/graph_translate.h"
#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::app {
namespace {

struct MapArgs {
  bool preserve_original_event = false;
  bool graph = false;      // input is Microsoft Graph alerts_v2 alerts or pages
  bool incidents = false;  // input is Microsoft Graph security incidents or pages
  bool preserve_duplicate_custom_fields = false;  // --incidents only
  std::string ns = "default";
  std::vector<std::string> tags;
  bool tags_given = false;
  std::string id_field;
  std::vector<std::string> files;
};

// Elasticsearch's rules for the namespace part of a data stream name.
std::string namespaceProblem(const std::string& ns) {
  if (ns.empty()) return "must not be empty";
  if (ns.size() > 100) return "must be at most 100 bytes";
  for (char c : ns) {
    if (c >= 'A' && c <= 'Z') return "must be lower case";
    if (std::strchr("\\/*?\"<>| ,#:-", c) != nullptr && c != '\0') {
      return fmt::format("must not contain '{}'", c);
    }
  }
  return {};
}

// Buffers documents and writes them to stdout in large blocks.
class StdoutSink : public ecs::DocumentSink {
 public:
  explicit StdoutSink(std::string id_field) : id_field_(std::move(id_field)) {
    buf_.reserve(kFlushAt + (1 << 16));
  }

  void onDocument(const ecs::DocumentView& doc) override {
    if (id_field_.empty()) {
      buf_.append(doc.json);
    } else {
      buf_.append("{\"");
      buf_.append(id_field_);
      buf_.append("\":\"");
      buf_.append(doc.id);
      buf_.append("\",");
      buf_.append(doc.json.substr(1));
    }
    buf_.push_back('\n');
    if (buf_.size() >= kFlushAt) flush();
  }

  bool flush() {
    std::size_t off = 0;
    while (off < buf_.size()) {
      const ssize_t n = ::write(STDOUT_FILENO, buf_.data() + off, buf_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        failed_errno_ = errno;
        buf_.clear();
        return false;
      }
      off += static_cast<std::size_t>(n);
    }
    buf_.clear();
    return true;
  }

  int failedErrno() const { return failed_errno_; }

 private:
  static constexpr std::size_t kFlushAt = 1 << 20;
  std::string id_field_;
  std::string buf_;
  int failed_errno_ = 0;
};

int runMap(const MapArgs& args) {
  if (auto problem = namespaceProblem(args.ns); !problem.empty()) {
    fmt::print(stderr, "mdecollect map: --namespace '{}' {}\n", args.ns, problem);
    return kExitUsage;
  }
  ecs::MapOptions options;
  options.preserve_original_event = args.preserve_original_event;
  options.data_stream_namespace = args.ns;
  if (args.tags_given) {
    options.tags.clear();
    for (const auto& t : args.tags) {
      if (!t.empty()) options.tags.push_back(t);
    }
  }
  ecs::IncidentMapOptions incident_options;
  incident_options.preserve_original_event = args.preserve_original_event;
  incident_options.preserve_duplicate_custom_fields = args.preserve_duplicate_custom_fields;
  incident_options.data_stream_namespace = args.ns;
  if (args.tags_given) incident_options.tags = options.tags;

  // Open every input first: a missing file fails the run before anything is written.
  struct Input {
    std::string name;
    int fd;
  };
  std::vector<Input> inputs;
  bool open_failed = false;
  if (args.files.empty()) {
    inputs.push_back({"-", STDIN_FILENO});
  }
  for (const auto& f : args.files) {
    if (f == "-") {
      inputs.push_back({f, STDIN_FILENO});
      continue;
    }
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fmt::print(stderr, "mdecollect map: cannot open '{}': {}\n", f, std::strerror(errno));
      open_failed = true;
      continue;
    }
    inputs.push_back({f, fd});
  }
  auto close_all = [&inputs] {
    for (const auto& in : inputs) {
      if (in.fd != STDIN_FILENO) ::close(in.fd);
    }
  };
  if (open_failed) {
    close_all();
    return kExitFailure;
  }

  ecs::Mapper mapper(options);
  ecs::GraphTranslator translator;
  std::unique_ptr<ecs::IncidentMapper> incident_mapper;
  if (args.incidents) incident_mapper = std::make_unique<ecs::IncidentMapper>(incident_options);
  StdoutSink sink(args.id_field);
  std::uint64_t lines = 0;
  ecs::LineStats total;
  int rc = kExitOk;
  ecs::LineContext context;
  context.padded = true;
  for (const auto& in : inputs) {
    core::LineReader reader(in.fd, ecs::kLinePadding);
    for (;;) {
      auto line = reader.next();
      if (!line) {
        fmt::print(stderr, "mdecollect map: '{}': {}\n", in.name, line.error().message());
        rc = kExitFailure;
        break;
      }
      if (!line->has_value()) break;
      ++lines;
      ecs::LineStats s;
      if (incident_mapper) {
        s = incident_mapper->mapLine(**line, context, sink);
      } else if (args.graph) {
        s = ecs::mapGraphLine(mapper, translator, **line, context, sink);
      } else {
        s = mapper.mapLine(**line, context, sink);
      }
      total.alerts += s.alerts;
      total.documents += s.documents;
      total.errors += s.errors;
    }
  }
  close_all();
  if (!sink.flush()) {
    fmt::print(stderr, "mdecollect map: writing the output failed: {}\n",
               std::strerror(sink.failedErrno()));
    rc = kExitFailure;
  }
  fmt::print(stderr,
             "mdecollect map: {} lines read, {} {}, {} documents written, {} error "
             "documents\n",
             lines, total.alerts, args.incidents ? "incidents" : "alerts", total.documents,
             total.errors);
  return rc;
}

}  // namespace

void addMapCommand(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<MapArgs>();
  CLI::App* cmd = app.add_subcommand(
      "map",
      "Map Defender for Endpoint alerts to ECS documents.\n"
      "Input: NDJSON from FILEs or standard input, one JSON value per line: an API page\n"
      "({\"value\":[alert,...]}), or an alert whose evidence is an array or one object.\n"
      "Output: one ECS document per evidence on standard output, in input order.\n"
      "Malformed input becomes an error document (event.kind: pipeline_error) that keeps\n"
      "the raw text. A summary goes to standard error.\n"
      "With --graph the input is Microsoft Graph security/alerts_v2 alerts or pages\n"
      "({\"value\":[alert,...]}), translated to Defender for Endpoint alerts first.\n"
      "With --incidents the input is Microsoft Graph security/incidents incidents or pages\n"
      "({\"value\":[incident,...]}); each gives one m365_defender.incident document per alert\n"
      "in its \"alerts\" (one when it has none).\n"
      "Exit: 0 all input read, 1 an input could not be opened or read, 2 usage error.");
  cmd->add_flag("--graph", args->graph,
                "Input is Microsoft Graph alerts_v2 alerts or pages (translated to Defender for "
                "Endpoint alerts, then mapped as those)");
  CLI::Option* incidents =
      cmd->add_flag("--incidents", args->incidents,
                    "Input is Microsoft Graph security incidents or pages (m365_defender.incident "
                    "documents, as Elastic's Microsoft Defender XDR integration writes them)")
          ->excludes("--graph");
  cmd->add_flag("--preserve-original-event", args->preserve_original_event,
                "Keep each alert (with --incidents: the incident with its one alert) as JSON text "
                "in event.original (and tag the document)");
  cmd->add_flag("--preserve-duplicate-custom-fields", args->preserve_duplicate_custom_fields,
                "Only with --incidents: keep the m365_defender.incident fields that duplicate ECS "
                "fields (Elastic's option of that name; tags the document)")
      ->needs(incidents);
  cmd->add_option("--namespace", args->ns, "data_stream.namespace of the documents")
      ->default_val("default");
  cmd->add_option("--tags", args->tags,
                  "Comma-separated tags replacing the default "
                  "microsoft-defender-endpoint,forwarded (with --incidents: "
                  "forwarded,m365_defender-incident)")
      ->delimiter(',')
      ->each([args](const std::string&) { args->tags_given = true; });
  cmd->add_option("--id-field", args->id_field,
                  "Also write each document's deterministic id into this top-level field "
                  "(for pipelines that take _id from the document)")
      ->check([](const std::string& v) -> std::string {
        for (char c : v) {
          if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@')) {
            return "letters, digits, '_' and '@' only";
          }
        }
        return v.empty() ? "must not be empty" : "";
      });
  cmd->add_option("FILE", args->files, "Input files ('-' for standard input; default)");
  cmd->callback([args, &run] { run = [args] { return runMap(*args); }; });
}

}  // namespace mdec::app
