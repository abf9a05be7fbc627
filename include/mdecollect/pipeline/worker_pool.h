// The collector's workers: a fixed number of threads, each a core::FiberLoop whose fibers'
// HTTP transfers run on one curl multi handle (http::makeCurlLoopIo). A poll posted to the
// pool runs in a fiber on the least busy worker; while it waits for an answer, a sleep or a
// page commit, its worker runs other polls. Ten thousand sources need a handful of threads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "mdecollect/core/fiber.h"

namespace mdec::pipeline {

class WorkerPool {
 public:
  // `workers` threads (at least 1).
  explicit WorkerPool(int workers);
  // Waits for every posted function to end, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `fn` in a fiber on the worker with the fewest fibers. Thread-safe. `fn` must not
  // throw (a fiber's exception is only logged).
  void post(std::function<void()> fn);
  // Fibers started and not ended, over every worker.
  std::size_t live() const;
  std::size_t size() const { return workers_.size(); }
  // Waits for every posted function to end and joins the threads (idempotent).
  void finish();
  // Thread-safe: every HTTP transfer of the workers' fibers, now and from now on, ends at
  // once with an error (on a stop request: nobody waits for a slow answer).
  void cancelTransfers();

  // The default number of workers: two per core, 2 to 16.
  static int defaultWorkers();

 private:
  struct Worker {
    core::FiberLoop loop;
    std::unique_ptr<core::FiberLoop::Io> io;
    std::thread thread;
  };
  // As many threads as workers: the pages' mapping and commits (core::Task), beside the
  // workers' I/O. Declared first: joined after the workers, whose fibers wait for them.
  core::TaskThreads tasks_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace mdec::pipeline
