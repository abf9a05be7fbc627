// Fibers: many polls on a few threads. A FiberLoop is an event loop on one thread; it runs
// fibers (stackful coroutines, each on a small stack of its own) one at a time. A fiber that
// waits — for a sleep (SystemClock::sleepFor), an HTTP answer (the curl client, through the
// loop's Io), another fiber (FiberEvent) — suspends, and the loop runs the next one, so ten
// thousand sources' polls need a few threads, and a slow or throttled tenant holds no thread.
//
// The code a fiber runs is ordinary blocking code: the seams that wait (Clock, HttpClient)
// ask currentFiber() and suspend instead of blocking. Off a loop they block as before.
//
// Rules for code that runs in a fiber (the sources do):
//   - never suspend while holding a mutex another fiber of the same loop may take (the
//     sources suspend only in sleeps and HTTP sends, with no lock held);
//   - a fiber stays on the thread that started it (thread_local state stays valid);
//   - an exception never leaves a fiber's function (post() catches and logs it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

namespace mdec::core {

class FiberLoop;

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;  // ASan's frames are larger
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// A suspended fiber and which wait it is in: resuming with a stale wait is a no-op, so a
// timer and a stop request racing to wake one sleep wake it once.
struct FiberHandle {
  FiberLoop* loop = nullptr;
  void* fiber = nullptr;
  std::uint64_t wait = 0;
  explicit operator bool() const { return loop != nullptr; }
};

// A few threads of their own that run what fibers hand off (Task): CPU work — mapping and
// committing a page — runs there while the fiber's loop goes on with its I/O (the next
// page's transfer), as a thread of its own did before fibers.
class TaskThreads {
 public:
  explicit TaskThreads(int threads);
  // Runs what is queued, then joins.
  ~TaskThreads();
  TaskThreads(const TaskThreads&) = delete;
  TaskThreads& operator=(const TaskThreads&) = delete;
  void run(std::function<void()> fn);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class FiberLoop {
 public:
  // What the loop waits on besides its timers and inbox: the HTTP layer's curl multi handle
  // (http::makeCurlLoopIo). poll() waits up to `timeout` (0: just look), runs what
  // completed (resuming its fibers); wake() is thread-safe and ends a poll() early.
  class Io {
   public:
    virtual ~Io() = default;
    virtual void poll(std::chrono::milliseconds timeout) = 0;
    virtual void wake() = 0;
    // Thread-safe: ends every wait for I/O now and every later one at once, with an error
    // (a stop request: nobody waits for a slow answer).
    virtual void cancel() = 0;
  };

  // `stack_bytes`: each fiber's stack (virtual; only the pages it touches are resident).
  explicit FiberLoop(std::size_t stack_bytes = kDefaultStackBytes);
  ~FiberLoop();
  FiberLoop(const FiberLoop&) = delete;
  FiberLoop& operator=(const FiberLoop&) = delete;

  // Before run() and any post().
  void setIo(Io* io) { io_ = io; }
  Io* io() const { return io_; }
  // Where Task runs what its fibers hand off (null: in a sibling fiber). Before run().
  void setTaskThreads(TaskThreads* t) { task_threads_ = t; }
  TaskThreads* taskThreads() const { return task_threads_; }

  // Thread-safe: runs `fn` in a new fiber of this loop.
  void post(std::function<void()> fn);
  // Runs fibers until finish() was called and none is left. On the loop's own thread.
  void run();
  // Runs fibers until `done()` (checked each time the ready ones have run) or none is left.
  // Called again, it goes on where it stopped; one thread at a time.
  void runUntil(const std::function<bool()>& done);
  // Thread-safe: run() returns once no fiber is left.
  void finish();
  // Fibers started and not yet ended (thread-safe; for balancing work among loops).
  std::size_t live() const { return live_.load(); }

  // --- in a fiber of this loop ---
  // Suspends the calling fiber until resume(handle) with the handle returned by
  // prepareWait() just before.
  FiberHandle prepareWait();
  void suspend();
  // Sleeps `d` or until `stop`; false when stopped.
  bool sleepFor(std::chrono::milliseconds d, std::stop_token stop);

  // Makes a suspended fiber ready (stale handles are ignored). Thread-safe.
  static void resume(const FiberHandle& h);

  // The loop of the calling fiber, or null on a plain thread (or on the loop's own stack).
  static FiberLoop* current();

  static constexpr std::size_t kDefaultStackBytes = kSanitized ? 4u << 20 : 1u << 20;

  struct Fiber;

 private:
  void switchTo(Fiber* f);       // loop -> fiber
  void switchToLoop(bool done);  // fiber -> loop
  static void entry();
  void runLoop(const std::function<bool()>* done);
  void drainInbox();
  void runReady();
  Fiber* newFiber(std::function<void()> fn);
  void release(Fiber* f);
  static void unmapStack(Fiber* f);

  std::size_t stack_bytes_;
  Io* io_ = nullptr;
  TaskThreads* task_threads_ = nullptr;
  std::atomic<std::size_t> live_{0};

  // Shared with other threads.
  std::mutex mu_;
  std::condition_variable cv_;  // when there is no Io
  std::vector<std::function<void()>> posted_;
  std::vector<FiberHandle> woken_;
  bool finishing_ = false;

  // The loop thread's own.
  std::deque<Fiber*> ready_;
  std::multimap<std::chrono::steady_clock::time_point, FiberHandle> timers_;
  std::vector<Fiber*> all_;   // owned; deleted with the loop (handles may outlive a fiber)
  std::vector<Fiber*> free_;  // ended fibers whose stacks are reused
  std::uint64_t next_wait_ = 0;
  Fiber* running_ = nullptr;
  void* loop_context_ = nullptr;  // ucontext_t of run()
  const void* loop_stack_bottom_ = nullptr;
  std::size_t loop_stack_size_ = 0;
};

// A one-shot event a fiber or a thread waits for, set from anywhere.
class FiberEvent {
 public:
  void set();
  void wait();
  bool isSet();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
  std::vector<FiberHandle> fibers_;
};

// Runs `fn` beside the caller: from a fiber, on its loop's TaskThreads (or, without them,
// in a new fiber of the loop: it runs while the caller waits); elsewhere on a thread of its
// own. get() waits for it (suspending a fiber) and returns what it returned.
template <typename T>
class Task {
 public:
  Task() = default;
  explicit Task(std::function<T()> fn) : state_(std::make_shared<State>()) {
    auto state = state_;
    auto body = [state, fn = std::move(fn)] {
      try {
        state->value.emplace(fn());
      } catch (...) {
        state->error = std::current_exception();
      }
      state->done.set();
    };
    if (FiberLoop* loop = FiberLoop::current()) {
      if (TaskThreads* threads = loop->taskThreads()) {
        threads->run(std::move(body));
      } else {
        loop->post(std::move(body));
      }
    } else {
      thread_ = std::jthread(std::move(body));
    }
  }
  bool valid() const { return state_ != nullptr; }
  T get() {
    state_->done.wait();
    if (thread_.joinable()) thread_.join();
    if (state_->error) std::rethrow_exception(std::exchange(state_->error, nullptr));
    T value = std::move(*state_->value);
    state_.reset();
    return value;
  }

 private:
  struct State {
    FiberEvent done;
    std::optional<T> value;
    std::exception_ptr error;
  };
  std::shared_ptr<State> state_;
  std::jthread thread_;
};

// Sleeps `d` or until `stop` (false when stopped): suspends a fiber, blocks a thread.
bool sleepFor(std::chrono::milliseconds d, std::stop_token stop);

// In a fiber: lets the loop's other ready fibers run first (back of the queue). Elsewhere:
// nothing.
void yieldFiber();

}  // namespace mdec::core
