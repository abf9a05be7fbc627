#include "mdecollect/pipeline/worker_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "mdecollect/http/http_client.h"

namespace mdec::pipeline {

WorkerPool::WorkerPool(int workers) : tasks_(std::max(workers, 1)) {
  const int n = std::max(workers, 1);
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->io = http::makeCurlLoopIo();  // null: curl cannot start; sends then block their worker
    w->loop.setIo(w->io.get());
    w->loop.setTaskThreads(&tasks_);
    Worker* raw = w.get();
    w->thread = std::thread([raw, i] {
      // The loop catches what its fibers throw; anything else is a defect, said loudly, and
      // the loop goes on (its fibers are intact: they live on their own stacks).
      for (int restarts = 0; restarts < 1000; ++restarts) {
        try {
          raw->loop.run();
          return;
        } catch (const std::exception& e) {
          spdlog::critical("worker {}: its loop failed ({}); started again", i, e.what());
        } catch (...) {
          spdlog::critical("worker {}: its loop failed; started again", i);
        }
      }
    });
    workers_.push_back(std::move(w));
  }
}

WorkerPool::~WorkerPool() { finish(); }

void WorkerPool::post(std::function<void()> fn) {
  Worker* best = workers_.front().get();
  for (const auto& w : workers_) {
    if (w->loop.live() < best->loop.live()) best = w.get();
  }
  best->loop.post(std::move(fn));
}

std::size_t WorkerPool::live() const {
  std::size_t n = 0;
  for (const auto& w : workers_) n += w->loop.live();
  return n;
}

void WorkerPool::finish() {
  for (const auto& w : workers_) w->loop.finish();
  for (const auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void WorkerPool::cancelTransfers() {
  for (const auto& w : workers_) {
    if (w->io) w->io->cancel();
  }
}

int WorkerPool::defaultWorkers() {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp(cores * 2, 2u, 16u));
}

}  // namespace mdec::pipeline
