// Result<T> and Error: likely failures are values, never exceptions.
// The member names follow std::expected so this can become std::expected later.
#pragma once

#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace mdec {

enum class ErrorCode {
  kInvalidArgument,  // bad input or configuration
  kNotFound,         // a file or resource does not exist
  kIo,               // read/write failure
  kParse,            // malformed data
  kNetwork,          // connection-level failure
  kHttp,             // an HTTP status that is a failure
  kAuth,             // token or credential failure
  kThrottled,        // 429 and friends
  kTooLarge,         // a response or request over a size limit
  kInternal,         // a bug
};

const char* errorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::optional<int> httpStatus() const { return http_status_; }
  std::optional<std::chrono::seconds> retryAfter() const { return retry_after_; }

  Error& withHttpStatus(int status) {
    http_status_ = status;
    return *this;
  }
  Error& withRetryAfter(std::chrono::seconds after) {
    retry_after_ = after;
    return *this;
  }
  // Prefixes the message with where it happened: "page 3: <message>".
  Error& withContext(const std::string& context) {
    message_ = context + ": " + message_;
    return *this;
  }

  // The one place that decides whether an error is worth retrying.
  bool retryable() const;

 private:
  ErrorCode code_;
  std::string message_;
  std::optional<int> http_status_;
  std::optional<std::chrono::seconds> retry_after_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }
  Error& error() {
    assert(!has_value());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;
inline Status okStatus() { return Ok{}; }

}  // namespace mdec
