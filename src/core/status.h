// Status and Result: the error values returned on every fallible path.
// Errors are values, never exceptions across module lines.
//
// Both types are [[nodiscard]]: a call whose Status or Result is dropped does
// not compile (warnings are errors). A caller that means to ignore an error
// says so: `(void)call();  // why ignoring is right here`.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace taba {

class [[nodiscard]] Status {
 public:
  // kLimit: well-formed, but refused by a configured limit (HTTP 422; the
  // agent dead-letters it rather than retrying forever).
  enum class Code { kOk = 0, kInvalid, kNotFound, kCorruption, kIoError, kUnavailable, kInternal, kLimit };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status Invalid(std::string msg) { return Status(Code::kInvalid, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  static Status Limit(std::string msg) { return Status(Code::kLimit, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error Status; never both, never neither.
//
// A Result built from a Status holds an error. Building one from an OK
// Status is a programming mistake (a Result with no value and no error);
// since whether a Status is OK is known only at run time, the mistake is
// caught there, in every build: the Result holds Status::Internal naming the
// mistake, so the caller sees an ordinary error instead of a Result that
// claims success and has no value.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status)  // NOLINT: implicit by design
      : v_(status.ok() ? Status::Internal("Result built from an OK Status: no value and no error")
                       : std::move(status)) {}
  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

// The Status of a Status or of a Result (for TABA_RETURN_IF_ERROR).
inline const Status& status_of(const Status& status) { return status; }
template <typename T>
const Status& status_of(const Result<T>& result) {
  return result.status();
}

}  // namespace taba

// The early return of the plain "stop at the first error" pattern:
// TABA_RETURN_IF_ERROR(expr) evaluates expr, a Status or a Result<T>, and
// when it holds an error returns that error (as a Status) from the enclosing
// function, which may return Status or any Result<U>. Sites that add context
// to the message, or clean up first, keep their own `if`.
#define TABA_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    ::taba::Status taba_return_if_error_ = ::taba::status_of(expr);            \
    if (!taba_return_if_error_.ok()) return taba_return_if_error_;             \
  } while (0)
