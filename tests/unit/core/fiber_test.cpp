// Fibers (core/fiber.h): a loop runs many on one thread; a fiber that sleeps or waits holds
// no thread; a stop ends a sleep early; wakes that come late are ignored; Task runs beside
// its caller. No real waits beyond a few milliseconds: sleeps that would take long are
// ended by a stop, and what the tests check is order, not time.
#include "mdecollect/core/fiber.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MDEC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MDEC_TEST_ASAN 1
#endif
#endif
#ifdef MDEC_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace mdec::core {
namespace {

using namespace std::chrono_literals;

TEST(FiberLoop, RunsEveryPostedFunctionOnItsThread) {
  FiberLoop loop;
  int ran = 0;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 1000; ++i) {
    loop.post([&] {
      ++ran;
      threads.push_back(std::this_thread::get_id());
      EXPECT_EQ(FiberLoop::current(), &loop);
    });
  }
  EXPECT_EQ(loop.live(), 1000u);
  loop.finish();
  loop.run();
  EXPECT_EQ(ran, 1000);
  EXPECT_EQ(loop.live(), 0u);
  for (const auto& t : threads) EXPECT_EQ(t, std::this_thread::get_id());
  EXPECT_EQ(FiberLoop::current(), nullptr);  // off the loop again
}

// A fiber asleep for an hour: the next fiber runs meanwhile, and its stop request ends the
// sleep early (sleepFor says false). A sleep that held the thread would hang here.
TEST(FiberLoop, ASleepingFiberHoldsNoThreadAndAStopEndsItsSleep) {
  FiberLoop loop;
  std::stop_source stop;
  std::vector<std::string> order;
  bool slept_whole = true;
  loop.post([&] {
    order.push_back("sleeper sleeps");
    slept_whole = core::sleepFor(std::chrono::hours(1), stop.get_token());
    order.push_back("sleeper woke");
  });
  loop.post([&] {
    order.push_back("other runs");
    stop.request_stop();
  });
  loop.finish();
  loop.run();
  EXPECT_FALSE(slept_whole);
  EXPECT_EQ(order, (std::vector<std::string>{"sleeper sleeps", "other runs", "sleeper woke"}));
}

TEST(FiberLoop, ShortSleepsEndInTheOrderOfTheirTimes) {
  FiberLoop loop;
  std::vector<int> woke;
  for (int ms : {30, 10, 20}) {
    loop.post([&woke, ms] {
      EXPECT_TRUE(core::sleepFor(std::chrono::milliseconds(ms), std::stop_token()));
      woke.push_back(ms);
    });
  }
  loop.finish();
  loop.run();
  EXPECT_EQ(woke, (std::vector<int>{10, 20, 30}));
}

TEST(FiberLoop, AStopRequestedFromAnotherThreadWakesASleepingFiber) {
  FiberLoop loop;
  std::stop_source stop;
  bool slept_whole = true;
  FiberEvent asleep;
  loop.post([&] {
    asleep.set();
    slept_whole = core::sleepFor(std::chrono::hours(1), stop.get_token());
  });
  std::thread stopper([&] {
    asleep.wait();  // a plain thread: blocks
    stop.request_stop();
  });
  loop.finish();
  loop.run();
  stopper.join();
  EXPECT_FALSE(slept_whole);
}

// A wake with an old handle (a timer and a stop racing for one sleep) does not end a later
// wait of the same fiber.
TEST(FiberLoop, AStaleWakeIsIgnored) {
  FiberLoop loop;
  std::vector<std::string> order;
  FiberEvent second_wait_ready;
  FiberHandle second;
  loop.post([&] {
    const FiberHandle first = loop.prepareWait();
    FiberLoop::resume(first);  // ready at once
    loop.suspend();
    order.push_back("first wait over");
    second = loop.prepareWait();
    FiberLoop::resume(first);  // stale: ignored (were it not, this fiber would run first)
    second_wait_ready.set();
    loop.suspend();
    order.push_back("second wait over");
  });
  loop.post([&] {
    second_wait_ready.wait();
    order.push_back("other runs");
    FiberLoop::resume(second);
  });
  loop.finish();
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"first wait over", "other runs", "second wait over"}));
}

TEST(FiberEvent, WakesFibersWaitingOnItWhenSetFromAnotherThread) {
  FiberLoop loop;
  FiberEvent go;
  int woke = 0;
  for (int i = 0; i < 5; ++i) {
    loop.post([&] {
      go.wait();
      ++woke;
    });
  }
  std::thread setter([&] { go.set(); });
  loop.finish();
  loop.run();
  setter.join();
  EXPECT_EQ(woke, 5);
  EXPECT_TRUE(go.isSet());
}

TEST(Task, RunsBesideTheCallerInAFiberAndOnAThreadOffOne) {
  FiberLoop loop;
  std::vector<std::string> order;
  int value = 0;
  loop.post([&] {
    Task<int> task([&] {
      order.push_back("task runs");
      return 42;
    });
    order.push_back("caller goes on");  // the task has not run yet: same thread
    value = task.get();
    order.push_back("caller has the value");
  });
  loop.finish();
  loop.run();
  EXPECT_EQ(value, 42);
  EXPECT_EQ(order,
            (std::vector<std::string>{"caller goes on", "task runs", "caller has the value"}));

  Task<std::string> off([] { return std::string("from a thread"); });
  EXPECT_EQ(off.get(), "from a thread");
}

// With TaskThreads, a fiber's Task runs on one of them while the loop goes on: here the
// task waits for an event a second fiber of the loop sets (it would never be set if the
// task held the loop's thread).
TEST(Task, OnTaskThreadsItRunsBesideTheLoop) {
  TaskThreads threads(2);
  FiberLoop loop;
  loop.setTaskThreads(&threads);
  FiberEvent other_ran;
  std::thread::id task_thread;
  int value = 0;
  loop.post([&] {
    Task<int> task([&] {
      task_thread = std::this_thread::get_id();
      other_ran.wait();  // a plain thread: blocks it, not the loop
      return 7;
    });
    value = task.get();
  });
  loop.post([&] { other_ran.set(); });
  loop.finish();
  loop.run();
  EXPECT_EQ(value, 7);
  EXPECT_NE(task_thread, std::this_thread::get_id());
}

TEST(Task, AnExceptionReachesTheCallerOfGet) {
  FiberLoop loop;
  std::string caught;
  loop.post([&] {
    Task<int> task([]() -> int { throw std::runtime_error("boom"); });
    try {
      (void)task.get();
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  });
  loop.finish();
  loop.run();
  EXPECT_EQ(caught, "boom");
}

// Deep recursion on a fiber's stack (a few hundred KiB) works: the stack is not tiny.
int depth(int n) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(n);
  return n == 0 ? pad[0] : depth(n - 1) + 1;
}

TEST(FiberLoop, AFiberHasRoomForDeepCalls) {
  FiberLoop loop;
  int reached = 0;
  loop.post([&] { reached = depth(200); });
  loop.finish();
  loop.run();
  EXPECT_EQ(reached, 200);
}

// Ended fibers' stacks are reused: a second round of many fibers runs as the first did.
TEST(FiberLoop, ManyRoundsOfManyFibers) {
  FiberLoop loop;
  int ran = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 200; ++i) {
      loop.post([&] {
        EXPECT_TRUE(core::sleepFor(1ms, std::stop_token()));
        ++ran;
      });
    }
  }
  loop.finish();
  loop.run();
  EXPECT_EQ(ran, 600);
}

// The mapping of /proc/self/maps that holds `address`: {start, end}, or {0, 0}.
std::pair<std::uintptr_t, std::uintptr_t> mappingOf(std::uintptr_t address) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const auto dash = line.find('-');
    const auto space = line.find(' ');
    if (dash == std::string::npos || space == std::string::npos || space < dash) continue;
    const std::uintptr_t start = std::stoull(line.substr(0, dash), nullptr, 16);
    const std::uintptr_t end = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
    if (start <= address && address < end) return {start, end};
  }
  return {0, 0};
}

// A fiber's frames poison their redzones in ASan's shadow; a frame that never returns (here a
// fiber still suspended when its loop goes) leaves them poisoned, and munmap does not clear
// shadow. The next mapping at that address — SQLite's -shm file, in the CI run that found
// this — was then reported as a stack-buffer-underflow when SQLite zeroed it. A loop clears
// the shadow of every stack it unmaps.
TEST(FiberLoop, AnUnmappedStackLeavesNoPoisonedShadow) {
  if (!kSanitized) GTEST_SKIP() << "only AddressSanitizer keeps a shadow";
  std::uintptr_t local = 0;
  std::pair<std::uintptr_t, std::uintptr_t> stack;
  {
    FiberLoop loop;
    bool suspended = false;
    loop.post([&] {
      volatile char frame[64] = {};  // redzones around it, poisoned while the frame lives
      local = reinterpret_cast<std::uintptr_t>(&frame[0]);
      suspended = true;
      loop.prepareWait();
      loop.suspend();  // never resumed: the loop goes with this frame on its stack
      frame[0] = 1;
    });
    loop.runUntil([&] { return suspended; });
    ASSERT_NE(local, 0u);
    stack = mappingOf(local);
    ASSERT_NE(stack.first, 0u) << "the fiber's stack is not in /proc/self/maps";
#ifdef MDEC_TEST_ASAN
    // The frame's redzones are poisoned now: the check below can see poison.
    EXPECT_NE(
        __asan_region_is_poisoned(reinterpret_cast<void*>(stack.first), stack.second - stack.first),
        nullptr);
#endif
  }
#ifdef MDEC_TEST_ASAN
  EXPECT_EQ(
      __asan_region_is_poisoned(reinterpret_cast<void*>(stack.first), stack.second - stack.first),
      nullptr);
#endif
}

}  // namespace
}  // namespace mdec::core
