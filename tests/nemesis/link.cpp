#include "link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

namespace taba::nemesis {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBuffered = 4u << 20;

// Closes with an RST instead of a FIN: the peer sees a reset connection.
void reset_close(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

struct Chunk {
  Clock::time_point due;
  std::string bytes;
  size_t sent = 0;
};

// One direction of a relayed connection.
struct Pipe {
  std::deque<Chunk> chunks;
  size_t buffered = 0;
  bool eof = false;       // the reading side sent FIN
  bool shut = false;      // FIN passed on to the writing side
};

struct Conn {
  int client = -1;
  int upstream = -1;
  bool connecting = false;
  bool born_half_open = false;  // accepted while half-open: never relayed
  Pipe up;                      // client -> upstream
  Pipe down;                    // upstream -> client
  bool dead = false;
};

}  // namespace

const char* mode_name(Link::Mode mode) {
  switch (mode) {
    case Link::Mode::kPass: return "pass";
    case Link::Mode::kDelay: return "delay";
    case Link::Mode::kCut: return "cut";
    case Link::Mode::kHalfOpen: return "half-open";
  }
  return "?";
}

Link::Link(std::string name, int target_port) : name_(std::move(name)), target_port_(target_port) {}

Link::~Link() { stop(); }

bool Link::start(std::string* error) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = std::strerror(errno);
    return false;
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
  return true;
}

void Link::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  char c = 's';
  (void)!::write(wake_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void Link::set_mode(Mode mode, int delay_ms) {
  delay_ms_ = delay_ms;
  mode_ = mode;
  char c = 'm';
  (void)!::write(wake_[1], &c, 1);
}

void Link::run() {
  std::vector<std::unique_ptr<Conn>> conns;
  Mode last_mode = Mode::kPass;

  auto kill = [](Conn& c) {
    reset_close(c.client);
    reset_close(c.upstream);
    c.client = c.upstream = -1;
    c.dead = true;
  };
  auto open_upstream = [this](Conn& c) {
    c.upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (c.upstream < 0) return false;
    if (::connect(c.upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
    if (errno == EINPROGRESS) {
      c.connecting = true;
      return true;
    }
    return false;
  };
  // Reads what fd has into pipe p (due after the link's delay).
  auto pull = [this](int fd, Pipe& p) {
    char buf[64 << 10];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      int delay = mode_.load() == Mode::kDelay ? delay_ms_.load() : 0;
      p.chunks.push_back({Clock::now() + std::chrono::milliseconds(delay), std::string(buf, static_cast<size_t>(n))});
      p.buffered += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) {
      p.eof = true;
      return true;
    }
    return errno == EAGAIN || errno == EINTR;
  };
  // Writes the due chunks of p to fd; passes a FIN on once p is drained.
  auto push = [](int fd, Pipe& p) {
    auto now = Clock::now();
    while (!p.chunks.empty() && p.chunks.front().due <= now) {
      Chunk& c = p.chunks.front();
      ssize_t n = ::send(fd, c.bytes.data() + c.sent, c.bytes.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.sent += static_cast<size_t>(n);
      p.buffered -= static_cast<size_t>(n);
      if (c.sent < c.bytes.size()) return true;
      p.chunks.pop_front();
    }
    if (p.chunks.empty() && p.eof && !p.shut) {
      ::shutdown(fd, SHUT_WR);
      p.shut = true;
    }
    return true;
  };

  while (!stopping_.load()) {
    Mode mode = mode_.load();
    if (mode != last_mode) {
      for (auto& c : conns) {
        if (mode == Mode::kCut) kill(*c);
        if ((mode == Mode::kPass || mode == Mode::kDelay) && c->born_half_open) kill(*c);
      }
      last_mode = mode;
    }
    bool relaying = mode == Mode::kPass || mode == Mode::kDelay;

    std::vector<pollfd> fds;
    std::vector<std::pair<Conn*, bool>> owners;  // (conn, is_client) per fd after the first two
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    int timeout_ms = 100;
    auto now = Clock::now();
    if (relaying) {
      for (auto& c : conns) {
        if (c->dead) continue;
        short cev = 0, uev = 0;
        if (c->connecting) {
          uev = POLLOUT;
        } else {
          if (!c->up.eof && c->up.buffered < kMaxBuffered) cev |= POLLIN;
          if (!c->down.eof && c->down.buffered < kMaxBuffered) uev |= POLLIN;
          for (auto [pipe, ev] : {std::pair<Pipe*, short*>{&c->up, &uev}, {&c->down, &cev}}) {
            if (pipe->chunks.empty()) {
              if (pipe->eof && !pipe->shut) *ev |= POLLOUT;
              continue;
            }
            auto due = pipe->chunks.front().due;
            if (due <= now) {
              *ev |= POLLOUT;
            } else {
              int wait = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count()) + 1;
              timeout_ms = std::min(timeout_ms, wait);
            }
          }
        }
        fds.push_back({c->client, cev, 0});
        owners.emplace_back(c.get(), true);
        fds.push_back({c->upstream, uev, 0});
        owners.emplace_back(c.get(), false);
      }
    }
    ::poll(fds.data(), fds.size(), timeout_ms);
    if (fds[0].revents & POLLIN) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        ++connections_;
        Mode m = mode_.load();
        if (m == Mode::kCut) {
          reset_close(fd);
          continue;
        }
        auto c = std::make_unique<Conn>();
        c->client = fd;
        if (m == Mode::kHalfOpen) {
          c->born_half_open = true;
        } else if (!open_upstream(*c)) {
          kill(*c);
          continue;
        }
        conns.push_back(std::move(c));
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      auto [c, is_client] = owners[i - 2];
      if (c->dead || fds[i].revents == 0) continue;
      short rev = fds[i].revents;
      bool ok = true;
      if (!is_client && c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          ok = false;
        } else {
          c->connecting = false;
        }
      } else {
        if (rev & (POLLIN | POLLHUP)) ok = pull(is_client ? c->client : c->upstream, is_client ? c->up : c->down);
        if (ok && (rev & POLLOUT)) ok = push(is_client ? c->client : c->upstream, is_client ? c->down : c->up);
        if (rev & POLLERR) ok = false;
      }
      if (!ok) kill(*c);
    }
    // Chunks that became due, and FINs to pass on, without waiting for POLLOUT.
    if (relaying) {
      for (auto& c : conns) {
        if (c->dead || c->connecting) continue;
        if (!push(c->upstream, c->up) || !push(c->client, c->down)) kill(*c);
        if (!c->dead && c->up.shut && c->down.shut) {
          ::close(c->client);
          ::close(c->upstream);
          c->client = c->upstream = -1;
          c->dead = true;
        }
      }
    }
    std::erase_if(conns, [](const std::unique_ptr<Conn>& c) { return c->dead; });
  }
  for (auto& c : conns) kill(*c);
}

}  // namespace taba::nemesis
