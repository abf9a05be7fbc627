// mdec-map-bench: Google Benchmark of mdec::ecs::Mapper::mapLine on one generated API page
// (1000 alerts, evidence expanded, seed 42). The sink only sums document sizes, so the time is
// the mapper's own. Bytes/s are input bytes (the page), as in bench/map-throughput.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/ecs/mapper.h"
#include "mdecollect/emulator/alert_generator.h"

namespace {

using mdec::ecs::DocumentSink;
using mdec::ecs::DocumentView;
using mdec::ecs::LineContext;
using mdec::ecs::MapOptions;
using mdec::ecs::Mapper;

class SizeSink : public DocumentSink {
 public:
  void onDocument(const DocumentView& doc) override {
    bytes += doc.json.size() + doc.id.size();
    ++documents;
  }
  std::uint64_t bytes = 0;
  std::uint64_t documents = 0;
};

std::string makePage(std::size_t alerts, bool expand_evidence) {
  using namespace std::chrono;
  mdec::emulator::AlertGenerator generator(
      42, mdec::emulator::Timestamp(sys_days(year(2025) / 11 / 3)));
  std::vector<mdec::emulator::Alert> page;
  page.reserve(alerts);
  for (std::size_t i = 0; i < alerts; ++i) page.push_back(generator.next());
  std::string out;
  mdec::emulator::appendPageJson(page, mdec::emulator::kAlertsOdataContext, expand_evidence, out);
  return out;
}

std::string fixedTimestamp() { return "2025-11-03T00:00:00Z"; }

void runMapLine(benchmark::State& state, MapOptions options, bool expand_evidence, bool padded) {
  // The page lives in a buffer with kLinePadding spare bytes after it, so the padded variant
  // may hand it over without a copy.
  std::string buffer = makePage(1000, expand_evidence);
  const std::size_t page_size = buffer.size();
  buffer.append(mdec::ecs::kLinePadding, ' ');
  const std::string_view line(buffer.data(), page_size);

  Mapper mapper(std::move(options), fixedTimestamp);
  LineContext context;
  context.padded = padded;
  SizeSink sink;
  std::uint64_t errors = 0;
  for (auto _ : state) {
    mdec::ecs::LineStats stats = mapper.mapLine(line, context, sink);
    errors += stats.errors;
    benchmark::DoNotOptimize(stats);
  }
  benchmark::DoNotOptimize(sink.bytes);
  const auto iterations = static_cast<std::int64_t>(state.iterations());
  state.SetBytesProcessed(iterations * static_cast<std::int64_t>(page_size));
  state.counters["docs"] =
      benchmark::Counter(static_cast<double>(sink.documents), benchmark::Counter::kIsRate);
  state.counters["out_MB"] =
      benchmark::Counter(static_cast<double>(sink.bytes) / 1e6, benchmark::Counter::kIsRate);
  state.counters["page_MB"] = static_cast<double>(page_size) / 1e6;
  if (errors != 0) state.SkipWithError("the mapper produced error documents on valid alerts");
}

void BM_MapLine(benchmark::State& state) { runMapLine(state, MapOptions{}, true, false); }
BENCHMARK(BM_MapLine)->Unit(benchmark::kMillisecond);

void BM_MapLinePadded(benchmark::State& state) { runMapLine(state, MapOptions{}, true, true); }
BENCHMARK(BM_MapLinePadded)->Unit(benchmark::kMillisecond);

void BM_MapLinePreserveOriginal(benchmark::State& state) {
  MapOptions options;
  options.preserve_original_event = true;
  runMapLine(state, std::move(options), true, false);
}
BENCHMARK(BM_MapLinePreserveOriginal)->Unit(benchmark::kMillisecond);

void BM_MapLineNoEvidence(benchmark::State& state) {
  runMapLine(state, MapOptions{}, false, false);
}
BENCHMARK(BM_MapLineNoEvidence)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
