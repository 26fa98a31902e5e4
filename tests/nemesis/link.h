// A controllable TCP link between two roles of the nemesis cluster: it
// listens on a loopback port and relays every connection to a target port,
// and the nemesis can at any moment cut it, delay it or make it half-open.
// Needs no privileges (no iptables, no tc), so it runs wherever CI does.
//
// Modes:
//   kPass     relay bytes as they come.
//   kDelay    hold every chunk of bytes for delay_ms before relaying it (both
//             directions), as a slow network would.
//   kCut      reset every open connection (RST) and every new one at once:
//             the peer sees "connection reset" / "connection refused"-like
//             failures.
//   kHalfOpen relay nothing and close nothing: open connections stay up but
//             silent, new ones are accepted and never answered. The peer
//             waits for its timeout. Back in kPass, the connections opened
//             while half-open are reset (their other end never existed) and
//             the silent ones resume.
//
// One thread per link, poll() over its sockets; every buffer is bounded
// (a direction stops reading while 4 MiB wait to be written).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace taba::nemesis {

class Link {
 public:
  enum class Mode { kPass, kDelay, kCut, kHalfOpen };

  // name: for the timeline, e.g. "agent0->fe1".
  Link(std::string name, int target_port);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Binds a free loopback port and starts the relay thread. False (with
  // errno's text in *error) if the port cannot be had.
  bool start(std::string* error);
  void stop();

  int port() const { return port_; }
  const std::string& name() const { return name_; }

  void set_mode(Mode mode, int delay_ms = 0);
  Mode mode() const { return mode_.load(); }

  // Connections relayed since start (for the report).
  uint64_t connections() const { return connections_.load(); }

 private:
  struct Impl;
  void run();

  std::string name_;
  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: set_mode() and stop() wake the thread
  std::atomic<Mode> mode_{Mode::kPass};
  std::atomic<int> delay_ms_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

const char* mode_name(Link::Mode mode);

}  // namespace taba::nemesis
