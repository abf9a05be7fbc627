#include "mdecollect/core/fiber.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#if defined(__SANITIZE_ADDRESS__)
#define MDEC_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MDEC_FIBER_ASAN 1
#endif
#endif
#ifdef MDEC_FIBER_ASAN
#include <dlfcn.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace mdec::core {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// The loop running on this thread (set by run()).
thread_local FiberLoop* t_loop = nullptr;

// Ended fibers keep their stacks for the next ones, up to this many per loop.
constexpr std::size_t kPooledStacks = 64;
// A loop looks at its inbox and timers at least this often.
constexpr milliseconds kMaxIdle{1000};

std::size_t pageSize() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

#ifdef MDEC_FIBER_ASAN
// ASan's swapcontext interceptor writes a warning to stderr at its first use (a line that is
// not the log's JSON). The switches here are annotated for ASan, so libc's own is called.
int switchContext(ucontext_t* from, const ucontext_t* to) {
  using Fn = int (*)(ucontext_t*, const ucontext_t*);
  static const Fn real = [] {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return libc != nullptr ? reinterpret_cast<Fn>(dlsym(libc, "swapcontext")) : nullptr;
  }();
  return real != nullptr ? real(from, to) : swapcontext(from, to);
}
#else
int switchContext(ucontext_t* from, const ucontext_t* to) { return swapcontext(from, to); }
#endif

}  // namespace

struct FiberLoop::Fiber {
  ucontext_t context{};
  void* mapping = nullptr;  // guard page, then the stack; null: not mapped
  std::size_t mapped = 0;
  std::function<void()> fn;
  std::uint64_t wait = 0;
  bool waiting = false;
  bool done = false;
  void* fake_stack = nullptr;  // ASan's, while the fiber is switched out

  char* stackBottom() const { return static_cast<char*>(mapping) + pageSize(); }
  std::size_t stackSize() const { return mapped - pageSize(); }
};

TaskThreads::TaskThreads(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> fn;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
          if (queue_.empty()) return;  // stopping, and nothing left
          fn = std::move(queue_.front());
          queue_.pop_front();
        }
        fn();  // Task's body catches what it throws
      }
    });
  }
}

TaskThreads::~TaskThreads() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TaskThreads::run(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

FiberLoop::FiberLoop(std::size_t stack_bytes)
    : stack_bytes_((std::max<std::size_t>(stack_bytes, 64u << 10) + pageSize() - 1) / pageSize() *
                   pageSize()) {}

FiberLoop::~FiberLoop() {
  for (Fiber* f : all_) {
    unmapStack(f);
    delete f;
  }
}

// A stack's frames that never returned (entry()'s, a fiber's still suspended) leave their
// redzones poisoned in ASan's shadow, which munmap does not clear: whatever the process
// maps there next (SQLite's -shm file, for one) would be reported as a stack overflow when
// written. So the shadow is cleared first.
void FiberLoop::unmapStack(Fiber* f) {
  if (f->mapping == nullptr) return;
#ifdef MDEC_FIBER_ASAN
  __asan_unpoison_memory_region(f->mapping, f->mapped);
#endif
  munmap(f->mapping, f->mapped);
  f->mapping = nullptr;
  f->mapped = 0;
}

FiberLoop* FiberLoop::current() {
  return t_loop != nullptr && t_loop->running_ != nullptr ? t_loop : nullptr;
}

void FiberLoop::post(std::function<void()> fn) {
  ++live_;
  {
    std::lock_guard lock(mu_);
    posted_.push_back(std::move(fn));
  }
  if (io_ != nullptr) {
    io_->wake();
  } else {
    cv_.notify_one();
  }
}

void FiberLoop::finish() {
  {
    std::lock_guard lock(mu_);
    finishing_ = true;
  }
  if (io_ != nullptr) {
    io_->wake();
  } else {
    cv_.notify_one();
  }
}

FiberLoop::Fiber* FiberLoop::newFiber(std::function<void()> fn) {
  Fiber* f = nullptr;
  if (!free_.empty()) {
    f = free_.back();
    free_.pop_back();
  } else {
    f = new Fiber;
    all_.push_back(f);
  }
  if (f->mapping == nullptr) {
    const std::size_t size = stack_bytes_ + pageSize();
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
      std::fputs("mdecollect: cannot map a fiber's stack (out of memory)\n", stderr);
      std::abort();
    }
    mprotect(m, pageSize(), PROT_NONE);  // the guard page: an overflow faults
    f->mapping = m;
    f->mapped = size;
  }
#ifdef MDEC_FIBER_ASAN
  // The previous fiber on this stack never returned from entry(): its frame's redzones are
  // still poisoned.
  __asan_unpoison_memory_region(f->stackBottom(), f->stackSize());
#endif
  f->fn = std::move(fn);
  f->done = false;
  f->waiting = false;
  f->fake_stack = nullptr;
  getcontext(&f->context);
  f->context.uc_stack.ss_sp = f->stackBottom();
  f->context.uc_stack.ss_size = f->stackSize();
  f->context.uc_link = nullptr;
  makecontext(&f->context, &FiberLoop::entry, 0);
  return f;
}

void FiberLoop::release(Fiber* f) {
  f->fn = nullptr;
  if (free_.size() >= kPooledStacks) unmapStack(f);
  free_.push_back(f);
}

void FiberLoop::entry() {
  FiberLoop* loop = t_loop;
  Fiber* f = loop->running_;
#ifdef MDEC_FIBER_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &loop->loop_stack_bottom_, &loop->loop_stack_size_);
#endif
  try {
    f->fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mdecollect: a fiber ended with an exception: %s\n", e.what());
  } catch (...) {
    std::fputs("mdecollect: a fiber ended with an unknown exception\n", stderr);
  }
  f->fn = nullptr;  // its captures go now, on this stack
  loop->switchToLoop(true);
}

void FiberLoop::switchTo(Fiber* f) {
  running_ = f;
#ifdef MDEC_FIBER_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, f->stackBottom(), f->stackSize());
#endif
  switchContext(static_cast<ucontext_t*>(loop_context_), &f->context);
#ifdef MDEC_FIBER_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  running_ = nullptr;
  if (f->done) {
    release(f);
    --live_;
  }
}

void FiberLoop::switchToLoop(bool done) {
  Fiber* f = running_;
  f->done = done;
#ifdef MDEC_FIBER_ASAN
  __sanitizer_start_switch_fiber(done ? nullptr : &f->fake_stack, loop_stack_bottom_,
                                 loop_stack_size_);
#endif
  switchContext(&f->context, static_cast<ucontext_t*>(loop_context_));
#ifdef MDEC_FIBER_ASAN
  // The stack it came from: runUntil() may be called from another thread than before.
  __sanitizer_finish_switch_fiber(f->fake_stack, &loop_stack_bottom_, &loop_stack_size_);
#endif
}

FiberHandle FiberLoop::prepareWait() {
  Fiber* f = running_;
  f->wait = ++next_wait_;
  f->waiting = true;
  return FiberHandle{this, f, f->wait};
}

void FiberLoop::suspend() { switchToLoop(false); }

void FiberLoop::resume(const FiberHandle& h) {
  if (!h) return;
  FiberLoop* loop = h.loop;
  if (t_loop == loop) {
    auto* f = static_cast<Fiber*>(h.fiber);
    if (f->waiting && f->wait == h.wait) {
      f->waiting = false;
      loop->ready_.push_back(f);
    }
    return;
  }
  {
    std::lock_guard lock(loop->mu_);
    loop->woken_.push_back(h);
  }
  if (loop->io_ != nullptr) {
    loop->io_->wake();
  } else {
    loop->cv_.notify_one();
  }
}

bool FiberLoop::sleepFor(milliseconds d, std::stop_token stop) {
  if (stop.stop_requested()) return false;
  if (d.count() <= 0) return true;
  const FiberHandle h = prepareWait();
  timers_.emplace(steady_clock::now() + d, h);
  {
    std::stop_callback wake(stop, [h] { FiberLoop::resume(h); });
    suspend();
  }
  // A sleep ended by a stop leaves its timer behind: it fires later, stale, and is ignored.
  return !stop.stop_requested();
}

void FiberLoop::drainInbox() {
  std::vector<std::function<void()>> posted;
  std::vector<FiberHandle> woken;
  {
    std::lock_guard lock(mu_);
    posted.swap(posted_);
    woken.swap(woken_);
  }
  for (auto& fn : posted) ready_.push_back(newFiber(std::move(fn)));
  for (const auto& h : woken) resume(h);  // on this thread now: marks them ready
}

void FiberLoop::runReady() {
  // Only the fibers ready now: one that wakes another does not starve the timers and I/O.
  for (std::size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
    Fiber* f = ready_.front();
    ready_.pop_front();
    switchTo(f);
  }
}

void FiberLoop::run() { runLoop(nullptr); }

void FiberLoop::runUntil(const std::function<bool()>& done) { runLoop(&done); }

void FiberLoop::runLoop(const std::function<bool()>* done) {
  FiberLoop* const outer = t_loop;
  t_loop = this;
  ucontext_t loop_context;
  loop_context_ = &loop_context;
  for (;;) {
    drainInbox();
    runReady();
    // runUntil(): done, or nothing left that could make it so.
    if (done != nullptr && ((*done)() || live_.load() == 0)) break;
    const auto now = steady_clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      const FiberHandle h = timers_.begin()->second;
      timers_.erase(timers_.begin());
      resume(h);
    }
    if (!ready_.empty()) continue;
    milliseconds timeout = kMaxIdle;
    if (!timers_.empty()) {
      timeout = std::clamp(std::chrono::ceil<milliseconds>(timers_.begin()->first - now),
                           milliseconds(0), kMaxIdle);
    }
    {
      std::unique_lock lock(mu_);
      if (done == nullptr && finishing_ && live_.load() == 0 && posted_.empty()) break;
      if (!posted_.empty() || !woken_.empty()) timeout = milliseconds(0);
      if (io_ == nullptr) {
        cv_.wait_for(lock, timeout, [this] {
          return !posted_.empty() || !woken_.empty() || (finishing_ && live_.load() == 0);
        });
        continue;
      }
    }
    io_->poll(timeout);
  }
  loop_context_ = nullptr;
  t_loop = outer;
}

void FiberEvent::set() {
  std::vector<FiberHandle> fibers;
  {
    std::lock_guard lock(mu_);
    set_ = true;
    fibers.swap(fibers_);
  }
  cv_.notify_all();
  for (const auto& h : fibers) FiberLoop::resume(h);
}

bool FiberEvent::isSet() {
  std::lock_guard lock(mu_);
  return set_;
}

void FiberEvent::wait() {
  if (FiberLoop* loop = FiberLoop::current()) {
    {
      std::lock_guard lock(mu_);
      if (set_) return;
      fibers_.push_back(loop->prepareWait());
    }
    loop->suspend();
    return;
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return set_; });
}

void yieldFiber() {
  FiberLoop* loop = FiberLoop::current();
  if (loop == nullptr) return;
  FiberLoop::resume(loop->prepareWait());  // ready again at once, behind the others
  loop->suspend();
}

bool sleepFor(milliseconds d, std::stop_token stop) {
  if (FiberLoop* loop = FiberLoop::current()) return loop->sleepFor(d, stop);
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock<std::mutex> lock(mu);
  // wait_for returns the predicate (always false here), not whether it was stopped.
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace mdec::core
