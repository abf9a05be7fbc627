// fake-elasticsearch: the test fake (support/fake_elasticsearch.h) as a process, so that
// integration tests can run the real collector against it.
//
//   fake-elasticsearch [--listen HOST:PORT] [--api-key KEY] [--username U --password P]
//                      [--fail-items-every N] [--retry-items-every N] [--max-request-bytes N]
//
// The first line on standard output is the base URL. Serves until SIGTERM or SIGINT, with
// GET /_fake/stored and GET /_fake/dead (see FakeElasticsearch::Options::fake_endpoints).
// --fail-items-every N: every Nth new _id (first time seen) is answered 400
// (mapper_parsing_exception), then and on every later attempt. --retry-items-every N: every
// Nth new _id is answered 429 on its first attempt, normally afterwards.
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <string_view>

#include "mdecollect/core/host_port.h"
#include "support/fake_elasticsearch.h"

namespace {

constexpr int kExitUsage = 2;

bool parseCount(std::string_view text, long long& out) {
  const auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc{} && r.ptr == text.data() + text.size() && out > 0;
}

int usage(const std::string& problem) {
  std::fprintf(stderr,
               "fake-elasticsearch: %s\n"
               "usage: fake-elasticsearch [--listen HOST:PORT] [--api-key KEY] "
               "[--username U --password P] [--fail-items-every N] [--retry-items-every N] "
               "[--max-request-bytes N]\n",
               problem.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    mdec::testing::FakeElasticsearch::Options options;
    options.record_bodies = false;
    options.fake_endpoints = true;
    long long fail_every = 0;
    long long retry_every = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage("help");
        return 0;
      }
      if (i + 1 >= argc) return usage("missing value after " + std::string(arg));
      const std::string value = argv[++i];
      long long n = 0;
      if (arg == "--listen") {
        auto address = mdec::core::parseHostPort(value);
        if (!address) return usage("--listen must be HOST:PORT: " + address.error().message());
        options.host = std::move(address->host);
        options.port = address->port;
      } else if (arg == "--api-key") {
        options.api_key = value;
      } else if (arg == "--username") {
        options.username = value;
      } else if (arg == "--password") {
        options.password = value;
      } else if (arg == "--fail-items-every") {
        if (!parseCount(value, fail_every)) return usage("--fail-items-every needs N > 0");
      } else if (arg == "--retry-items-every") {
        if (!parseCount(value, retry_every)) return usage("--retry-items-every needs N > 0");
      } else if (arg == "--max-request-bytes") {
        if (!parseCount(value, n)) return usage("--max-request-bytes needs N > 0");
        options.max_request_bytes = static_cast<std::size_t>(n);
      } else {
        return usage("unknown option " + std::string(arg));
      }
    }

    // Signals are taken by sigwait below, in every thread blocked (the server's included).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    mdec::testing::FakeElasticsearch fake(options);
    if (fake.port() < 0) {
      std::fprintf(stderr, "fake-elasticsearch: cannot listen on %s:%d\n", options.host.c_str(),
                   options.port);
      return 1;
    }
    if (fail_every > 0 || retry_every > 0) {
      // Runs on the server's threads with the fake's lock held: this state needs no lock.
      fake.scriptItems(
          [fail_every, retry_every, new_items = 0LL, failing = std::set<std::string>()](
              const std::string& id, int attempt) mutable {
            if (failing.count(id) > 0) return 400;
            if (attempt > 0) return 0;
            ++new_items;
            if (fail_every > 0 && new_items % fail_every == 0) {
              failing.insert(id);
              return 400;
            }
            if (retry_every > 0 && new_items % retry_every == 0) return 429;
            return 0;
          });
    }
    std::printf("%s\n", fake.url().c_str());
    std::fflush(stdout);

    int signal_number = 0;
    sigwait(&signals, &signal_number);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake-elasticsearch: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "fake-elasticsearch: unknown error\n");
    return 1;
  }
}
