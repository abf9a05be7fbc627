// mdec-bulk-bench: how fast the Elasticsearch output builds bulk bodies. The documents are
// the mapper's own for one generated API page (1000 alerts, evidence expanded, seed 42);
// each iteration frames all of them as `create` actions into one body (BM_BuildBulk), and
// then gzips it as the output does (BM_BuildBulkGzip). Bytes/s are bulk-body bytes.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "mdecollect/ecs/mapper.h"
#include "mdecollect/emulator/alert_generator.h"
#include "mdecollect/output/elasticsearch_output.h"

namespace {

struct Doc {
  std::string id;
  std::string body;
};

class KeepSink : public mdec::ecs::DocumentSink {
 public:
  void onDocument(const mdec::ecs::DocumentView& d) override {
    docs.push_back({std::string(d.id), std::string(d.json)});
  }
  std::vector<Doc> docs;
};

const std::vector<Doc>& documents() {
  static const std::vector<Doc> docs = [] {
    using namespace std::chrono;
    mdec::emulator::AlertGenerator generator(
        42, mdec::emulator::Timestamp(sys_days(year(2025) / 11 / 3)));
    std::vector<mdec::emulator::Alert> page;
    for (int i = 0; i < 1000; ++i) page.push_back(generator.next());
    std::string json;
    mdec::emulator::appendPageJson(page, mdec::emulator::kAlertsOdataContext, true, json);
    mdec::ecs::Mapper mapper(mdec::ecs::MapOptions{},
                             [] { return std::string("2025-11-03T00:00:00Z"); });
    KeepSink sink;
    mapper.mapLine(json, sink);
    return sink.docs;
  }();
  return docs;
}

std::string build(const std::vector<Doc>& docs) {
  std::string body;
  for (const Doc& d : docs) {
    mdec::output::appendCreate(body, mdec::output::dataStreamOf(d.body), d.id, d.body);
  }
  return body;
}

void BM_BuildBulk(benchmark::State& state) {
  const auto& docs = documents();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string body = build(docs);
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes));
  state.counters["docs"] =
      benchmark::Counter(static_cast<double>(docs.size()) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BuildBulk)->Unit(benchmark::kMillisecond);

void BM_BuildBulkGzip(benchmark::State& state) {
  const auto& docs = documents();
  std::size_t bytes = 0;
  std::size_t packed = 0;
  for (auto _ : state) {
    std::string body = build(docs);
    bytes = body.size();
    auto gz = mdec::output::gzip(body);
    if (!gz) {
      state.SkipWithError("gzip failed");
      return;
    }
    packed = gz->size();
    benchmark::DoNotOptimize(gz->data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes));
  state.counters["ratio"] = static_cast<double>(bytes) / static_cast<double>(packed);
}
BENCHMARK(BM_BuildBulkGzip)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
