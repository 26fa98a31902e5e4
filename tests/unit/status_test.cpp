// core/status.h: a Result always holds a value or an error, and the early
// return of TABA_RETURN_IF_ERROR.
#include <catch2/catch.hpp>

#include <string>

#include "core/status.h"

using taba::Result;
using taba::Status;

namespace {

Status fails_when(bool fail) { return fail ? Status::Invalid("bad") : Status::Ok(); }

Result<int> twice(Result<int> in) {
  TABA_RETURN_IF_ERROR(in);
  return in.value() * 2;
}

Result<std::string> checked(bool fail) {
  TABA_RETURN_IF_ERROR(fails_when(fail));
  return std::string("fine");
}

}  // namespace

TEST_CASE("a Result built from an OK Status holds an internal error", "[status]") {
  Result<int> r = Status::Ok();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInternal);
  CHECK(r.status().message().find("OK Status") != std::string::npos);
}

TEST_CASE("a Result holds its value or its error", "[status]") {
  Result<int> v = 7;
  REQUIRE(v.ok());
  CHECK(v.value() == 7);
  CHECK(v.status().ok());
  Result<int> e = Status::NotFound("gone");
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == Status::Code::kNotFound);
  CHECK(e.status().message() == "gone");
}

TEST_CASE("TABA_RETURN_IF_ERROR returns the error of a Status or a Result", "[status]") {
  CHECK(twice(21).value() == 42);
  Result<int> e = twice(Status::Invalid("no number"));
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message() == "no number");
  CHECK(checked(false).value() == "fine");
  CHECK(checked(true).status().code() == Status::Code::kInvalid);
}
