// A scripted HTTP server on a loopback port, for testing HTTP clients.
// It serves one connection at a time on a background thread: for each
// request (head plus Content-Length body) it writes the bytes the test's
// `respond` function returns, verbatim, then closes the connection if asked.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace taba::test {

class CannedHttpServer {
 public:
  struct Reply {
    std::string bytes;   // written as they are: status line, headers, body
    bool close = false;  // close the connection after writing
  };
  using Responder = std::function<Reply(const std::string& request)>;

  explicit CannedHttpServer(Responder respond) : respond_(std::move(respond)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("CannedHttpServer: cannot listen on loopback");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~CannedHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  CannedHttpServer(const CannedHttpServer&) = delete;
  CannedHttpServer& operator=(const CannedHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Every request received so far, raw.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int connections() const { return connections_.load(); }

 private:
  // Waits up to 50 ms for `fd` to be readable; false on timeout.
  static bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 50) > 0;
  }

  void serve() {
    while (!stop_) {
      if (!readable(listen_fd_)) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      serve_connection(fd);
      ::close(fd);
    }
  }

  void serve_connection(int fd) {
    std::string buffer;
    while (!stop_) {
      size_t head_end = buffer.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t total = head_end + 4 + content_length(buffer.substr(0, head_end));
        if (buffer.size() >= total) {
          std::string request = buffer.substr(0, total);
          buffer.erase(0, total);
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(request);
          }
          Reply reply = respond_(request);
          if (!write_all(fd, reply.bytes) || reply.close) return;
          continue;
        }
      }
      if (!readable(fd)) continue;
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }

  static size_t content_length(const std::string& head) {
    std::string lower;
    for (char c : head) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    size_t pos = lower.find("\r\ncontent-length:");
    if (pos == std::string::npos) return 0;
    return static_cast<size_t>(std::strtoull(lower.c_str() + pos + 17, nullptr, 10));
  }

  static bool write_all(int fd, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  Responder respond_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// "HTTP/1.1 <status>" response with a Content-Length body.
inline std::string canned_response(const std::string& status_line, const std::string& content_type,
                                   const std::string& body) {
  return "HTTP/1.1 " + status_line + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace taba::test
