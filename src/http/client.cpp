// Blocking HTTP/1.1 client: non-blocking sockets driven by poll() so that
// every step honours one deadline; responses parsed by llhttp.
#include "http/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "core/ascii.h"
#include "http/url.h"

namespace taba::http {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int remaining_ms(int64_t deadline_ms) {
  int64_t left = deadline_ms - now_ms();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

std::string format_base_url(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return fmt::format("http://[{}]:{}", host, port);
  return fmt::format("http://{}:{}", host, port);
}

bool has_header(const std::vector<Header>& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const Header& h) { return ascii_iequals(h.name, name); });
}

// How often a wait looks at a cutoff (ClientConnection::set_cutoff).
constexpr int64_t kCutoffCheckMs = 50;

// The earlier of a request's deadline and its cutoff (if any).
int64_t effective_deadline(int64_t deadline_ms, const std::atomic<int64_t>* cutoff) {
  return cutoff ? std::min(deadline_ms, cutoff->load(std::memory_order_relaxed)) : deadline_ms;
}

// Whether a wait that ended at `deadline_ms` was cut short by the cutoff.
bool cut_short(int64_t deadline_ms, const std::atomic<int64_t>* cutoff) {
  return cutoff && now_ms() < deadline_ms && now_ms() >= cutoff->load(std::memory_order_relaxed);
}

// Waits until `fd` is ready for `events` or the deadline (or the cutoff)
// passes. Returns the revents (0 on timeout) or -1 with errno set.
int wait_ready(int fd, short events, int64_t deadline_ms, const std::atomic<int64_t>* cutoff) {
  for (;;) {
    int64_t until = effective_deadline(deadline_ms, cutoff);
    int wait = remaining_ms(until);
    if (cutoff) wait = static_cast<int>(std::min<int64_t>(wait, kCutoffCheckMs));
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, wait);
    if (n > 0) return p.revents;
    if (n == 0) {
      if (now_ms() >= effective_deadline(deadline_ms, cutoff)) return 0;
      continue;
    }
    if (errno != EINTR) return -1;
  }
}

// Connects one resolved address. Returns the socket or -1 with *err set to
// an errno value (ETIMEDOUT when the deadline passed).
int connect_address(const addrinfo* ai, int64_t deadline_ms, const std::atomic<int64_t>* cutoff, int* err) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      *err = errno;
      ::close(fd);
      return -1;
    }
    int ready = wait_ready(fd, POLLOUT, deadline_ms, cutoff);
    if (ready <= 0) {
      *err = ready == 0 ? ETIMEDOUT : errno;
      ::close(fd);
      return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
    if (so_error != 0) {
      *err = so_error;
      ::close(fd);
      return -1;
    }
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// What the llhttp callbacks collect for one response.
struct ParseState {
  ClientResponse response;
  std::string field;     // header name being received
  bool head = false;     // the request was HEAD: no body follows
  bool interim = false;  // a 1xx response is being skipped
  bool done = false;     // the final response is complete
};

ParseState* state_of(llhttp_t* p) {
  return static_cast<ParseState*>(p->data);
}

int on_status(llhttp_t* p, const char* at, size_t len) {
  state_of(p)->response.reason.append(at, len);
  return 0;
}

int on_header_field(llhttp_t* p, const char* at, size_t len) {
  state_of(p)->field.append(at, len);
  return 0;
}

int on_header_field_complete(llhttp_t* p) {
  ParseState* s = state_of(p);
  std::string name = std::move(s->field);
  s->field.clear();
  for (char& c : name) c = ascii_lower(c);
  s->response.headers.push_back(Header{std::move(name), std::string()});
  return 0;
}

int on_header_value(llhttp_t* p, const char* at, size_t len) {
  ParseState* s = state_of(p);
  if (s->response.headers.empty()) return -1;
  s->response.headers.back().value.append(at, len);
  return 0;
}

int on_headers_complete(llhttp_t* p) {
  ParseState* s = state_of(p);
  for (Header& h : s->response.headers) {
    while (!h.value.empty() && (h.value.back() == ' ' || h.value.back() == '\t')) h.value.pop_back();
  }
  s->response.status = p->status_code;
  s->interim = p->status_code >= 100 && p->status_code < 200 && p->status_code != 101;
  return s->head && !s->interim ? 1 : 0;
}

int on_body(llhttp_t* p, const char* at, size_t len) {
  state_of(p)->response.body.append(at, len);
  return 0;
}

int on_message_complete(llhttp_t* p) {
  ParseState* s = state_of(p);
  if (s->interim) {
    s->response = ClientResponse{};
    s->interim = false;
    return 0;
  }
  s->done = true;
  return HPE_PAUSED;
}

const llhttp_settings_t& parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_status = on_status;
    st.on_header_field = on_header_field;
    st.on_header_field_complete = on_header_field_complete;
    st.on_header_value = on_header_value;
    st.on_headers_complete = on_headers_complete;
    st.on_body = on_body;
    st.on_message_complete = on_message_complete;
    return st;
  }();
  return settings;
}

std::string build_head(std::string_view method, std::string_view target, const std::string& host, int port,
                       const std::vector<Header>& headers, std::string_view body) {
  std::string head;
  head.reserve(256);
  head.append(method).append(" ").append(target.empty() ? "/" : target).append(" HTTP/1.1\r\n");
  if (!has_header(headers, "host")) {
    if (host.find(':') != std::string::npos) {
      head.append(fmt::format("Host: [{}]:{}\r\n", host, port));
    } else {
      head.append(fmt::format("Host: {}:{}\r\n", host, port));
    }
  }
  for (const Header& h : headers) head.append(h.name).append(": ").append(h.value).append("\r\n");
  bool wants_length = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (wants_length && !has_header(headers, "content-length") && !has_header(headers, "transfer-encoding")) {
    head.append(fmt::format("Content-Length: {}\r\n", body.size()));
  }
  head.append("\r\n");
  return head;
}

}  // namespace

std::string PeerAddress::text() const {
  char ip[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(in->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    if (in6->sin6_scope_id != 0) return fmt::format("[{}%{}]:{}", ip, in6->sin6_scope_id, ntohs(in6->sin6_port));
    return fmt::format("[{}]:{}", ip, ntohs(in6->sin6_port));
  }
  return fmt::format("(address family {})", storage.ss_family);
}

bool operator==(const PeerAddress& a, const PeerAddress& b) {
  if (a.storage.ss_family != b.storage.ss_family) return false;
  if (a.storage.ss_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.storage.ss_family == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

std::string_view ClientResponse::header(std::string_view lower_name) const {
  for (const Header& h : headers) {
    if (h.name == lower_name) return h.value;
  }
  return {};
}

ClientConnection::ClientConnection(std::string host, int port, int fd)
    : host_(std::move(host)), port_(port), fd_(fd) {}

ClientConnection::ClientConnection(ClientConnection&& other) noexcept
    : host_(std::move(other.host_)),
      port_(other.port_),
      fd_(other.fd_),
      only_(std::move(other.only_)),
      peer_(std::move(other.peer_)),
      reached_(std::move(other.reached_)),
      cutoff_(other.cutoff_) {
  other.fd_ = -1;
}

ClientConnection& ClientConnection::operator=(ClientConnection&& other) noexcept {
  if (this != &other) {
    close();
    host_ = std::move(other.host_);
    port_ = other.port_;
    fd_ = other.fd_;
    only_ = std::move(other.only_);
    peer_ = std::move(other.peer_);
    reached_ = std::move(other.reached_);
    cutoff_ = other.cutoff_;
    other.fd_ = -1;
  }
  return *this;
}

ClientConnection::~ClientConnection() {
  close();
}

void ClientConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  peer_.reset();
}

void ClientConnection::set_only(const std::optional<PeerAddress>& only) {
  only_ = only;
  if (only_ && fd_ >= 0 && !(peer_ && *peer_ == *only_)) close();
}

std::string ClientConnection::base_url() const {
  return format_base_url(host_, port_);
}

Result<ClientConnection> ClientConnection::connect(const std::string& host, int port, int timeout_ms,
                                                   const std::optional<PeerAddress>& only,
                                                   const std::atomic<int64_t>* cutoff) {
  ClientConnection conn(host, port, -1);
  conn.only_ = only;
  conn.cutoff_ = cutoff;
  TABA_RETURN_IF_ERROR(conn.reopen(now_ms() + std::max(timeout_ms, 0), timeout_ms));
  return conn;
}

namespace {

Status connect_failure(int err, const std::string& url, int timeout_ms, int64_t deadline_ms,
                       const std::atomic<int64_t>* cutoff) {
  if (err == ECONNREFUSED) return Status::Unavailable(fmt::format("connection refused: {}", url));
  if (err == ETIMEDOUT && cut_short(deadline_ms, cutoff)) {
    return Status::Unavailable(fmt::format("cut short (cutoff reached) connecting to {}", url));
  }
  if (err == ETIMEDOUT) {
    return Status::Unavailable(fmt::format("timed out after {} ms connecting to {}", timeout_ms, url));
  }
  return Status::Unavailable(fmt::format("cannot connect to {}: {}", url, std::strerror(err)));
}

}  // namespace

Status ClientConnection::reopen(int64_t deadline_ms, int timeout_ms, const PeerAddress* only) {
  close();
  if (only == nullptr && only_) only = &*only_;
  if (only != nullptr) {
    addrinfo ai{};
    ai.ai_family = only->storage.ss_family;
    ai.ai_socktype = SOCK_STREAM;
    ai.ai_protocol = IPPROTO_TCP;
    ai.ai_addrlen = only->length;
    ai.ai_addr = const_cast<sockaddr*>(reinterpret_cast<const sockaddr*>(&only->storage));
    int err = 0;
    fd_ = connect_address(&ai, deadline_ms, cutoff_, &err);
    if (fd_ < 0) {
      return connect_failure(err, fmt::format("{} at {}", base_url(), only->text()), timeout_ms, deadline_ms,
                             cutoff_);
    }
    peer_ = *only;
    return Status::Ok();
  }
  const std::string url = base_url();
  if (port_ < 1 || port_ > 65535) return Status::Invalid(fmt::format("bad port {}: {}", port_, url));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  std::string port_text = std::to_string(port_);
  int rc = ::getaddrinfo(host_.c_str(), port_text.c_str(), &hints, &list);
  if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
    hints.ai_flags = AI_NUMERICSERV;  // loopback-only hosts have no configured address family
    rc = ::getaddrinfo(host_.c_str(), port_text.c_str(), &hints, &list);
  }
  if (rc != 0) {
    return Status::Unavailable(
        fmt::format("cannot resolve host '{}': {}: {}", host_, ::gai_strerror(rc), url));
  }
  int err = ECONNREFUSED;
  for (const addrinfo* ai = list; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    fd_ = connect_address(ai, deadline_ms, cutoff_, &err);
    if (fd_ >= 0 && ai->ai_addrlen <= sizeof(sockaddr_storage)) {
      PeerAddress peer;
      std::memcpy(&peer.storage, ai->ai_addr, ai->ai_addrlen);
      peer.length = ai->ai_addrlen;
      peer_ = peer;
    }
    if (err == ETIMEDOUT && fd_ < 0) break;
  }
  ::freeaddrinfo(list);
  if (fd_ >= 0) return Status::Ok();
  return connect_failure(err, url, timeout_ms, deadline_ms, cutoff_);
}

Result<ClientResponse> ClientConnection::request(std::string_view method, std::string_view target,
                                                 const std::vector<Header>& headers, std::string_view body,
                                                 int timeout_ms) {
  return request_until(method, target, headers, body, now_ms() + std::max(timeout_ms, 0), timeout_ms);
}

Result<ClientResponse> ClientConnection::request_until(std::string_view method, std::string_view target,
                                                       const std::vector<Header>& headers,
                                                       std::string_view body, int64_t deadline,
                                                       int timeout_ms) {
  reached_.reset();
  bool reused = fd_ >= 0;
  if (!reused) {
    TABA_RETURN_IF_ERROR(reopen(deadline, timeout_ms));
  }
  bool closed_before_response = false;
  Result<ClientResponse> result =
      attempt(method, target, headers, body, deadline, timeout_ms, &closed_before_response);
  if (!result.ok() && reused && closed_before_response) {
    // The server had closed this idle keep-alive connection: one fresh try,
    // at the same address (the server may also have taken the request and
    // died before answering: another address would get it a second time).
    std::optional<PeerAddress> same = reached_;
    TABA_RETURN_IF_ERROR(reopen(deadline, timeout_ms, same ? &*same : nullptr));
    closed_before_response = false;
    result = attempt(method, target, headers, body, deadline, timeout_ms, &closed_before_response);
  }
  if (!result.ok()) close();
  return result;
}

Result<ClientResponse> ClientConnection::attempt(std::string_view method, std::string_view target,
                                                 const std::vector<Header>& headers, std::string_view body,
                                                 int64_t deadline_ms, int timeout_ms,
                                                 bool* closed_before_response) {
  const std::string url = base_url();
  auto timed_out = [&](const char* what) {
    if (cut_short(deadline_ms, cutoff_)) {
      return Status::Unavailable(fmt::format("cut short (cutoff reached) {} {}", what, url));
    }
    return Status::Unavailable(fmt::format("timed out after {} ms {} {}", timeout_ms, what, url));
  };
  const std::string head = build_head(method, target, host_, port_, headers, body);
  reached_ = peer_;

  // Send head and body. Stop early if the server starts answering (e.g. 413
  // before the whole body arrived): its reply is read below.
  size_t total = head.size() + body.size();
  size_t sent = 0;
  bool answered_early = false;
  while (sent < total) {
    iovec iov[2];
    int n_iov = 0;
    if (sent < head.size()) {
      iov[n_iov++] = {const_cast<char*>(head.data() + sent), head.size() - sent};
      if (!body.empty()) iov[n_iov++] = {const_cast<char*>(body.data()), body.size()};
    } else {
      size_t off = sent - head.size();
      iov[n_iov++] = {const_cast<char*>(body.data() + off), body.size() - off};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n_iov);
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int ready = wait_ready(fd_, POLLOUT | POLLIN, deadline_ms, cutoff_);
      if (ready == 0) return timed_out("sending to");
      if (ready < 0) return Status::IoError(fmt::format("poll failed on {}: {}", url, std::strerror(errno)));
      if ((ready & POLLIN) != 0) {
        answered_early = true;
        break;
      }
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      *closed_before_response = true;
      return Status::Unavailable(fmt::format("connection closed by {} while sending", url));
    }
    return Status::IoError(fmt::format("send to {} failed: {}", url, std::strerror(errno)));
  }

  ParseState state;
  state.head = method == "HEAD";
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &parser_settings());
  parser.data = &state;
  bool received_any = false;
  bool leftover = false;
  char buf[64 * 1024];
  while (!state.done) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int ready = wait_ready(fd_, POLLIN, deadline_ms, cutoff_);
        if (ready == 0) return timed_out("waiting for a response from");
        if (ready < 0)
          return Status::IoError(fmt::format("poll failed on {}: {}", url, std::strerror(errno)));
        continue;
      }
      if (errno == ECONNRESET && !received_any) {
        *closed_before_response = true;
        return Status::Unavailable(fmt::format("connection reset by {} before a response", url));
      }
      return Status::IoError(fmt::format("receive from {} failed: {}", url, std::strerror(errno)));
    }
    if (n == 0) {
      if (!received_any) {
        *closed_before_response = true;
        return Status::Unavailable(fmt::format("connection closed by {} before a response", url));
      }
      llhttp_errno_t err = llhttp_finish(&parser);
      if (err == HPE_OK && !state.done) err = HPE_INVALID_EOF_STATE;
      if (err != HPE_OK && err != HPE_PAUSED) {
        return Status::IoError(fmt::format("connection closed by {} in the middle of a response", url));
      }
      break;
    }
    received_any = true;
    llhttp_errno_t err = llhttp_execute(&parser, buf, static_cast<size_t>(n));
    if (err == HPE_PAUSED) {
      const char* stop = llhttp_get_error_pos(&parser);
      leftover = stop != nullptr && stop < buf + n;
    } else if (err != HPE_OK) {
      return Status::IoError(fmt::format("malformed HTTP response from {}: {} ({})", url,
                                         llhttp_errno_name(err), llhttp_get_error_reason(&parser)));
    }
  }
  if (answered_early || leftover || !llhttp_should_keep_alive(&parser)) close();
  return std::move(state.response);
}

Result<ClientResponse> fetch(std::string_view method, std::string_view url,
                             const std::vector<Header>& headers, std::string_view body, int timeout_ms) {
  Result<Url> parsed = parse_url(url);
  TABA_RETURN_IF_ERROR(parsed);
  int64_t deadline = now_ms() + std::max(timeout_ms, 0);
  ClientConnection conn(parsed->host, parsed->port, -1);
  return conn.request_until(method, parsed->target, headers, body, deadline, timeout_ms);
}

namespace {

std::string deflate_with(std::string_view data, int level, int window_bits) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string();
}

}  // namespace

std::string zlib_compress(std::string_view data, int level) {
  return deflate_with(data, level, 15);
}

std::string gzip_compress(std::string_view data, int level) {
  return deflate_with(data, level, 15 + 16);
}

}  // namespace taba::http
