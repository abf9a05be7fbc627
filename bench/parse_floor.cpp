// mdec-parse-floor: the throughput floor for mapping an NDJSON corpus.
//
//   mdec-parse-floor FILE
//
// Reads FILE in large chunks, parses every line with one reused simdjson DOM parser straight
// from the read buffer (no copy: the buffer keeps SIMDJSON_PADDING bytes spare past its end),
// and walks the whole tree touching every key and value, folding them into a checksum that is
// printed so the work cannot be optimised away. Writes nothing else. Lines of any length (tens
// of MB) are handled by growing the buffer. Prints:
//
//   floor: bytes=N seconds=S MB/s=R checksum=HEX      (MB = 10^6 bytes)
#include <simdjson.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace {

constexpr std::size_t kInitialBuffer = std::size_t{16} << 20;  // 16 MiB per read

class Checksum {
 public:
  void add(std::uint64_t v) { h_ = (h_ ^ v) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL; }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

void walk(simdjson::dom::element element, Checksum& sum) {
  using simdjson::dom::element_type;
  switch (element.type()) {
    case element_type::OBJECT:
      for (simdjson::dom::key_value_pair field : simdjson::dom::object(element)) {
        sum.add(field.key.size());
        walk(field.value, sum);
      }
      break;
    case element_type::ARRAY: {
      std::uint64_t n = 0;
      for (simdjson::dom::element child : simdjson::dom::array(element)) {
        walk(child, sum);
        ++n;
      }
      sum.add(n);
      break;
    }
    case element_type::STRING:
      sum.add(element.get_string().value_unsafe().size());
      break;
    case element_type::INT64:
      sum.add(static_cast<std::uint64_t>(element.get_int64().value_unsafe()));
      break;
    case element_type::UINT64:
      sum.add(element.get_uint64().value_unsafe());
      break;
    case element_type::DOUBLE:
      sum.add(std::bit_cast<std::uint64_t>(element.get_double().value_unsafe()));
      break;
    case element_type::BOOL:
      sum.add(element.get_bool().value_unsafe() ? 3 : 2);
      break;
    case element_type::NULL_VALUE:
      sum.add(1);
      break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc != 2) {
      std::cerr << "usage: mdec-parse-floor FILE\n";
      return 2;
    }
    const auto started = std::chrono::steady_clock::now();
    std::FILE* file = std::fopen(argv[1], "rb");
    if (file == nullptr) {
      std::cerr << "mdec-parse-floor: cannot open " << argv[1] << "\n";
      return 1;
    }

    // Data lives in buffer[begin, end); capacity bytes plus padding are allocated, so any line
    // inside the data can be parsed in place.
    std::size_t capacity = kInitialBuffer;
    auto buffer = std::make_unique<char[]>(capacity + simdjson::SIMDJSON_PADDING);
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t scanned = 0;  // [begin, scanned) has no newline
    simdjson::dom::parser parser;
    Checksum sum;
    std::uint64_t bytes = 0;
    std::uint64_t lines = 0;
    std::uint64_t errors = 0;

    auto parseLine = [&](std::size_t from, std::size_t to) {
      if (to > from && buffer[to - 1] == '\r') --to;
      if (to == from) return;
      ++lines;
      simdjson::dom::element root;
      auto error =
          parser.parse(reinterpret_cast<const std::uint8_t*>(buffer.get() + from), to - from, false)
              .get(root);
      if (error) {
        ++errors;
        return;
      }
      walk(root, sum);
    };

    bool eof = false;
    while (!eof) {
      // Refill: keep the unfinished line, grow when it fills the whole buffer.
      if (begin > 0) {
        std::memmove(buffer.get(), buffer.get() + begin, end - begin);
        end -= begin;
        scanned -= begin;
        begin = 0;
      }
      if (end == capacity) {
        const std::size_t grown = capacity * 2;
        auto bigger = std::make_unique<char[]>(grown + simdjson::SIMDJSON_PADDING);
        std::memcpy(bigger.get(), buffer.get(), end);
        buffer = std::move(bigger);
        capacity = grown;
      }
      const std::size_t got = std::fread(buffer.get() + end, 1, capacity - end, file);
      if (got == 0) {
        if (std::ferror(file)) {
          std::cerr << "mdec-parse-floor: read error\n";
          std::fclose(file);
          return 1;
        }
        eof = true;
      }
      end += got;
      bytes += got;

      // Every complete line in the buffer.
      while (scanned < end) {
        const void* nl = std::memchr(buffer.get() + scanned, '\n', end - scanned);
        if (nl == nullptr) {
          scanned = end;
          break;
        }
        const auto pos = static_cast<std::size_t>(static_cast<const char*>(nl) - buffer.get());
        parseLine(begin, pos);
        begin = pos + 1;
        scanned = begin;
      }
    }
    parseLine(begin, end);  // a last line without a newline
    std::fclose(file);

    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double mb_per_s = seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0;
    std::cout << "floor: bytes=" << bytes << " seconds=" << std::fixed << std::setprecision(4)
              << seconds << " MB/s=" << std::setprecision(1) << mb_per_s << " checksum=" << std::hex
              << std::setw(16) << std::setfill('0') << sum.value() << std::dec << "\n";
    if (errors != 0) {
      std::cerr << "mdec-parse-floor: " << errors << " of " << lines << " lines did not parse\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mdec-parse-floor: " << e.what() << "\n";
    return 1;
  }
}
