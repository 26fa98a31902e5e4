// A relay that loses replies, for the client tests (client_library_test.cpp,
// client_pinning_test.cpp).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "harness.h"

namespace taba::test {

// A one-connection-at-a-time HTTP relay in front of tabad that swallows the
// responses to the first `lose` POSTs it relays (it closes the connection
// instead), as when a 200 is lost on the way back. Requests are relayed
// whole, with their Taba-Batch-Id. It listens on `ip` (an IPv4 or IPv6
// literal) at `port` (0: a free one) until it is destroyed; then that
// address refuses connections.
class LossyRelay {
 public:
  LossyRelay(std::string upstream, int lose, const std::string& ip = "127.0.0.1", int port = 0)
      : upstream_(std::move(upstream)), lose_(lose), ip_(ip) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof *v4;
    } else {
      REQUIRE(::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1);
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof *v6;
    }
    listen_fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    REQUIRE(::listen(listen_fd_, 8) == 0);
    port_ = ntohs(addr.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LossyRelay() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  LossyRelay(const LossyRelay&) = delete;
  LossyRelay& operator=(const LossyRelay&) = delete;
  std::string url() const {
    return ip_.find(':') != std::string::npos ? "http://[" + ip_ + "]:" + std::to_string(port_)
                                              : "http://" + ip_ + ":" + std::to_string(port_);
  }
  int relayed() const { return relayed_; }
  // From now on, losing a reply also stops the listening (before the
  // client's connection closes), as when a server took a request and died
  // before answering it: the address refuses connections from then on.
  void die_with_lost_replies() { die_ = true; }
  std::set<std::string> batch_ids() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }

 private:
  void serve() {
    while (!stop_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      while (relay_one(fd)) {
      }
      ::close(fd);
    }
  }

  // Relays one request; false when the connection is done.
  bool relay_one(int fd) {
    std::string in;
    size_t head_end;
    char buf[65536];
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    std::string head = in.substr(0, head_end);
    auto header = [&](const std::string& lower) {
      std::string h;
      for (size_t i = 0; i < head.size(); ++i) h.push_back(static_cast<char>(std::tolower(head[i])));
      size_t at = h.find("\r\n" + lower + ":");
      if (at == std::string::npos) return std::string();
      size_t v = at + lower.size() + 3, e = head.find("\r\n", v);
      std::string value = head.substr(v, e == std::string::npos ? std::string::npos : e - v);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      return value;
    };
    size_t length = std::stoul(header("content-length").empty() ? "0" : header("content-length"));
    std::string body = in.substr(head_end + 4);
    while (body.size() < length) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      body.append(buf, static_cast<size_t>(n));
    }
    std::string id = header("taba-batch-id");
    {
      std::lock_guard<std::mutex> lock(mu_);
      ids_.insert(id);
    }
    auto r = taba::test::post(upstream_, "/post", body, {{"Taba-Batch-Id", id}});
    if (++relayed_ <= lose_ || !r.ok()) {  // the answer is lost
      if (die_) ::shutdown(listen_fd_, SHUT_RDWR);
      return false;
    }
    std::string out = "HTTP/1.1 " + std::to_string(r.value().status) +
                      " X\r\nContent-Length: " + std::to_string(r.value().body.size()) + "\r\n\r\n" +
                      r.value().body;
    return ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  }

  std::string upstream_;
  int lose_;
  std::string ip_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> die_{false};
  std::atomic<int> relayed_{0};
  mutable std::mutex mu_;
  std::set<std::string> ids_;
  std::thread thread_;
};

}  // namespace taba::test
