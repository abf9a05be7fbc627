#include "mdecollect/core/result.h"

namespace mdec {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kParse:
      return "parse";
    case ErrorCode::kNetwork:
      return "network";
    case ErrorCode::kHttp:
      return "http";
    case ErrorCode::kAuth:
      return "auth";
    case ErrorCode::kThrottled:
      return "throttled";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

bool Error::retryable() const {
  switch (code_) {
    case ErrorCode::kNetwork:
    case ErrorCode::kThrottled:
    case ErrorCode::kIo:
      return true;
    case ErrorCode::kHttp:
      if (!http_status_) return false;
      return *http_status_ == 408 || *http_status_ == 429 || *http_status_ >= 500;
    default:
      return false;
  }
}

}  // namespace mdec
