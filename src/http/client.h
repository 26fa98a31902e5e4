// Blocking HTTP/1.1 client over POSIX sockets, for taba-cli, the benchmarks
// and the tests. Not for the event loop: every call blocks its thread (bounded
// by a timeout). The agent's forwarder threads use it too.
//
// A ClientConnection is used by one thread at a time; distinct connections
// are independent.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"

namespace taba::http {

struct ClientResponse {
  int status = 0;
  std::string reason;           // the status line's reason phrase, e.g. "Bad Request"
  std::vector<Header> headers;  // names lower-cased, in arrival order
  std::string body;             // de-chunked; Content-Encoding left as sent

  // Value of the first header with this (lower-case) name, or "" if absent.
  std::string_view header(std::string_view lower_name) const;
};

// One resolved address of a server: an IP address and a port.
struct PeerAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // "127.0.0.1:8279" or "[::1]:8279".
  std::string text() const;
  // Same family, IP address (and IPv6 scope) and port.
  friend bool operator==(const PeerAddress& a, const PeerAddress& b);
};

// One keep-alive connection to host:port.
class ClientConnection {
 public:
  // Connects within timeout_ms: to `only` when given (`host` then names the
  // server in the Host header and in messages only), else to the addresses
  // `host` resolves to, in order, until one answers. Errors read like
  // "connection refused: http://127.0.0.1:8300". `cutoff`: see set_cutoff
  // (it applies to the connect, and stays set).
  static Result<ClientConnection> connect(const std::string& host, int port, int timeout_ms,
                                          const std::optional<PeerAddress>& only = std::nullopt,
                                          const std::atomic<int64_t>* cutoff = nullptr);

  ClientConnection(ClientConnection&& other) noexcept;
  ClientConnection& operator=(ClientConnection&& other) noexcept;
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;
  ~ClientConnection();

  // Sends one request and reads the whole response within timeout_ms.
  // Adds Host and Content-Length (when there is a body or the method is
  // POST/PUT) unless `headers` has them. If a reused connection turns out to
  // have been closed by the server before any response byte arrived, it
  // reconnects to the same address and sends once more. The connection is closed (and reopened
  // by the next request) when the response asks for it or an error occurs.
  Result<ClientResponse> request(std::string_view method, std::string_view target,
                                 const std::vector<Header>& headers, std::string_view body, int timeout_ms);

  // From now on, (re)connect only to `only`; nullopt: to the addresses the
  // host resolves to, in order. An open connection to another address is
  // closed.
  void set_only(const std::optional<PeerAddress>& only);

  // The address the last request() started sending to: the connection was
  // made and request bytes were written, so the server may have received
  // them, even if the request then failed. nullopt when the last request
  // reached no server (e.g. every connect failed). A request that reconnects
  // (see request()) does so to that same address only.
  const std::optional<PeerAddress>& reached() const { return reached_; }

  // A deadline (steady clock, ms) that another thread may bring forward at
  // any time, e.g. to stop a request in flight at shutdown: every wait of
  // this connection also ends once it has passed (it is looked at every
  // 50 ms at least), with an error saying the request was cut short.
  // nullptr (the default): none. The atomic must outlive every request.
  void set_cutoff(const std::atomic<int64_t>* cutoff) { cutoff_ = cutoff; }

  // "http://host:port", for messages.
  std::string base_url() const;
  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  friend Result<ClientResponse> fetch(std::string_view method, std::string_view url,
                                      const std::vector<Header>& headers, std::string_view body,
                                      int timeout_ms);

  ClientConnection(std::string host, int port, int fd);
  // (Re)connects before deadline_ms (steady clock), to `only` if not null,
  // else to only_ if set, else to what host_ resolves to; a timeout message
  // names timeout_ms, the caller's whole budget.
  Status reopen(int64_t deadline_ms, int timeout_ms, const PeerAddress* only = nullptr);
  // request() against an absolute deadline (steady clock, ms).
  Result<ClientResponse> request_until(std::string_view method, std::string_view target,
                                       const std::vector<Header>& headers, std::string_view body,
                                       int64_t deadline_ms, int timeout_ms);
  // One attempt on the current socket. *sent_nothing_back is set when the
  // peer closed (or reset) the connection before any response byte.
  Result<ClientResponse> attempt(std::string_view method, std::string_view target,
                                 const std::vector<Header>& headers, std::string_view body,
                                 int64_t deadline_ms, int timeout_ms, bool* closed_before_response);

  std::string host_;
  int port_ = 0;
  int fd_ = -1;
  std::optional<PeerAddress> only_;     // set_only()
  std::optional<PeerAddress> peer_;     // the address fd_ is connected to
  std::optional<PeerAddress> reached_;  // reached()
  const std::atomic<int64_t>* cutoff_ = nullptr;
};

// One request on a fresh connection to an absolute "http://host:port/path?q" URL.
Result<ClientResponse> fetch(std::string_view method, std::string_view url,
                             const std::vector<Header>& headers, std::string_view body, int timeout_ms);

// zlib (RFC 1950) stream of `data`, as the original agent sends to /post_zip.
std::string zlib_compress(std::string_view data, int level = 6);
// gzip (RFC 1952) stream of `data`, for Content-Encoding: gzip.
std::string gzip_compress(std::string_view data, int level = 6);

}  // namespace taba::http
