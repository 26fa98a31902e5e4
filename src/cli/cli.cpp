// taba-cli: run() strings the command line, the request and the reply's
// formatting together around one HTTP exchange (cli.h).
#include "cli/cli.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/request.h"
#include "cli/reshard_wait.h"
#include "cli/text.h"
#include "http/client.h"

namespace taba::cli {

namespace {

int usage_error(std::ostream& err, const std::string& message, const std::string& command) {
  err << "taba-cli: " << message << "\n";
  err << (command.empty() ? "Run 'taba-cli --help' for usage.\n"
                          : fmt::format("Run 'taba-cli {} --help' for usage.\n", command));
  return kExitUsage;
}

double now_seconds() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return static_cast<double>(ms) / 1000.0;
}

// The content of --file (or of `in` for "-"); false after reporting on err.
bool read_post_file(const std::string& path, std::istream& in, std::ostream& err, std::string* out) {
  if (path == "-") {
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
      err << "taba-cli: cannot read standard input\n";
      return false;
    }
    return true;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    err << fmt::format("taba-cli: cannot read {}: {}\n", path, std::strerror(errno));
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (file.bad()) {
    err << fmt::format("taba-cli: cannot read {}\n", path);
    return false;
  }
  return true;
}

// One exchange on a fresh connection. Error: no answer, as the stderr line
// without "taba-cli: " (cannot connect, or no reply).
Result<http::ClientResponse> send(const Invocation& inv, const HttpCall& call) {
  const std::string url = inv.server.origin + call.target;
  const auto start = std::chrono::steady_clock::now();
  Result<http::ClientConnection> conn =
      http::ClientConnection::connect(inv.server.host, inv.server.port, inv.timeout_ms);
  if (!conn.ok()) {
    return Status::Unavailable(fmt::format("cannot connect to {}: {}", inv.server.origin,
                                           connect_failure_reason(conn.status().message(), inv.server.origin)));
  }
  auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  int left = std::max(1, inv.timeout_ms - static_cast<int>(spent.count()));
  Result<http::ClientResponse> response = conn->request(call.method, call.target, call.headers, call.body, left);
  if (!response.ok()) {
    return Status::Unavailable(fmt::format("no reply to {} {}: {}", call.method, url, response.status().message()));
  }
  return response;
}

int execute(const Invocation& inv, const HttpCall& call, std::ostream& out, std::ostream& err) {
  const std::string url = inv.server.origin + call.target;
  Result<http::ClientResponse> response = send(inv, call);
  if (!response.ok()) {
    err << "taba-cli: " << response.status().message() << "\n";
    return kExitUsage;
  }
  // POST /reshard answers 202: the move is started, not done.
  const bool accepted = response->status == 202 && inv.command == "reshard";
  if (response->status != 200 && !accepted) {
    err << format_http_error(call.method, url, response->status, response->reason, response->body);
    return kExitServerError;
  }
  if (inv.command == "post" && !trim(response->body).empty()) {
    // The server applied the body but refused some of its name blocks.
    err << fmt::format("taba-cli: {} name block(s) refused, the rest applied ({} {}):\n{}",
                       response->header("taba-refused-blocks"), call.method, url, with_newline(response->body));
    return kExitServerError;
  }
  std::vector<std::string> missing;
  Result<std::string> text = format_reply(inv, response->body, &missing);
  if (!text.ok()) {
    err << fmt::format("taba-cli: unexpected reply from {}: {}\n", url, text.status().message());
    return kExitServerError;
  }
  out << *text;
  if (missing.empty()) return kExitOk;
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  err << fmt::format("taba-cli: no data from {} for: {}\n", inv.server.origin, list);
  return kExitServerError;
}

}  // namespace

int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string command_seen;
  Result<Invocation> parsed = parse_command_line(args, process_env(), &command_seen);
  if (!parsed.ok()) return usage_error(err, parsed.status().message(), command_seen);
  const Invocation& inv = *parsed;
  if (inv.help) {
    out << help_text(inv.command);
    return kExitOk;
  }
  std::string file_body;
  if (inv.command == "post" && inv.file && !read_post_file(*inv.file, in, err, &file_body)) return kExitUsage;
  Result<HttpCall> call = plan_request(inv, now_seconds(), file_body);
  if (!call.ok()) return usage_error(err, call.status().message(), inv.command);
  if (inv.command == "reshard" && inv.wait) {
    return reshard_and_wait(
        inv, *call, [&inv](const HttpCall& c) { return send(inv, c); }, 1000, out, err);
  }
  return execute(inv, *call, out, err);
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return run(args, std::cin, out, err);
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.empty()) args.push_back("taba-cli");
  return run(args, std::cin, std::cout, std::cerr);
}

}  // namespace taba::cli