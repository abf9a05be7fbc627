// mdec-gen-corpus: writes a benchmark corpus of API pages, one page per NDJSON line.
//
//   mdec-gen-corpus --out FILE [--min-mb 50] [--alerts-per-page 1000] [--seed 42] [--graph]
// (--graph: the pages in Microsoft Graph alerts_v2 form, as the emulator serves them)
//
// Each line is what GET /api/alerts?$expand=evidence returns: {"@odata.context":...,
// "value":[...]}. Pages are written until the file holds at least min-mb MiB. The same
// arguments always give the same bytes. About half of the alerts are shown in a later version
// (assigned, in progress, resolved, commented), as a pull some hours later would see them.
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mdecollect/emulator/alert_generator.h"
#include "mdecollect/emulator/graph_json.h"

namespace {

using mdec::emulator::Alert;
using mdec::emulator::AlertGenerator;
using mdec::emulator::Rng;
using mdec::emulator::Timestamp;

struct Options {
  std::string out;
  std::uint64_t min_mb = 50;
  std::uint64_t alerts_per_page = 1000;
  std::uint64_t seed = 42;
  bool graph = false;  // Graph alerts_v2 pages instead of Defender API pages
};

constexpr std::string_view kUsage =
    "usage: mdec-gen-corpus --out FILE [--min-mb N] [--alerts-per-page N] [--seed N] [--graph]\n";

bool parseNumber(std::string_view text, std::uint64_t& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end;
}

// Returns an error message, empty on success.
std::string parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    const std::size_t eq = arg.find('=');
    if (arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "--graph") {
      options.graph = true;
      continue;
    } else if (arg == "--help" || arg == "-h") {
      return "help";
    } else {
      if (i + 1 >= argc) return "missing value for " + std::string(arg);
      value = argv[++i];
    }
    if (arg != "--out" && arg != "--min-mb" && arg != "--alerts-per-page" && arg != "--seed") {
      return "unknown option " + std::string(arg);
    }
    if (arg == "--out") {
      options.out = std::string(value);
    } else if (arg == "--min-mb") {
      if (!parseNumber(value, options.min_mb)) return "bad --min-mb: " + std::string(value);
    } else if (arg == "--alerts-per-page") {
      if (!parseNumber(value, options.alerts_per_page) || options.alerts_per_page == 0) {
        return "bad --alerts-per-page: " + std::string(value);
      }
    } else if (arg == "--seed") {
      if (!parseNumber(value, options.seed)) return "bad --seed: " + std::string(value);
    }
  }
  if (options.out.empty()) return "--out is required";
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options options;
    if (std::string error = parseArgs(argc, argv, options); !error.empty()) {
      if (error != "help") std::cerr << "mdec-gen-corpus: " << error << "\n";
      std::cerr << kUsage;
      return error == "help" ? 0 : 2;
    }

    std::FILE* file = std::fopen(options.out.c_str(), "wb");
    if (file == nullptr) {
      std::cerr << "mdec-gen-corpus: cannot open " << options.out << " for writing\n";
      return 1;
    }

    // 2025-11-03T00:00:00Z: a fixed start, so the corpus depends on the arguments only.
    const Timestamp start(std::chrono::sys_days(std::chrono::year(2025) / 11 / 3));
    AlertGenerator generator(options.seed, start);
    Rng history(options.seed ^ 0x9e3779b97f4a7c15ULL);
    const std::uint64_t min_bytes = options.min_mb * 1024 * 1024;

    std::vector<Alert> page;
    page.reserve(options.alerts_per_page);
    std::string line;
    std::uint64_t bytes = 0;
    std::uint64_t pages = 0;
    std::uint64_t alerts = 0;
    while (bytes < min_bytes || pages == 0) {
      page.clear();
      for (std::uint64_t i = 0; i < options.alerts_per_page; ++i) {
        Alert alert = generator.next();
        if (history.chance(50)) {
          Timestamp now =
              alert.alert_creation_time + std::chrono::seconds(history.between(120, 6 * 3600));
          generator.advance(alert, now);
          if (history.chance(50)) {
            now += std::chrono::seconds(history.between(600, 2 * 86400));
            generator.advance(alert, now);
          }
        }
        page.push_back(std::move(alert));
      }
      line.clear();
      if (options.graph) {
        mdec::emulator::appendGraphPageJson(page, mdec::emulator::kGraphAlertsOdataContext, true,
                                            line);
      } else {
        mdec::emulator::appendPageJson(page, mdec::emulator::kAlertsOdataContext, true, line);
      }
      line += '\n';
      if (std::fwrite(line.data(), 1, line.size(), file) != line.size()) {
        std::cerr << "mdec-gen-corpus: write to " << options.out << " failed\n";
        std::fclose(file);
        return 1;
      }
      bytes += line.size();
      alerts += page.size();
      ++pages;
    }
    if (std::fclose(file) != 0) {
      std::cerr << "mdec-gen-corpus: closing " << options.out << " failed\n";
      return 1;
    }
    std::cout << "pages=" << pages << " alerts=" << alerts << " bytes=" << bytes << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mdec-gen-corpus: " << e.what() << "\n";
    return 1;
  }
}
