// The forked snapshot child and its reader. See snapshot_child.h for the contract.
#include "store/embedded/snapshot_child.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/log.h"

namespace taba::store {
namespace {

// write(2) of all of data, retrying short writes; false on an error.
bool write_fully(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool fork_snapshot_child(const SnapshotSource& source, SnapshotChild* out) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    log::warn("store: cannot make a pipe for the snapshot process ({}); serializing in-process",
              std::strerror(errno));
    return false;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child: no logging, no locks (see the header).
    ::close(fds[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    Result<std::string> serialized = encode_snapshot(source);
    if (!serialized.ok()) ::_exit(2);
    const uint64_t length = serialized.value().size();
    bool ok = write_fully(fds[1], reinterpret_cast<const char*>(&length), sizeof length) &&
              write_fully(fds[1], serialized.value().data(), serialized.value().size());
    ::_exit(ok ? 0 : 3);
  }
  const int fork_errno = errno;
  ::close(fds[1]);
  if (pid > 0) {
    out->pid = pid;
    out->fd = fds[0];
    return true;
  }
  ::close(fds[0]);
  log::warn("store: cannot fork a snapshot process ({}); serializing in-process", std::strerror(fork_errno));
  return false;
}

Result<std::string> read_snapshot_child(SnapshotChild child) {
  const int fd = child.fd;
  const pid_t pid = child.pid;
  // A child that sends nothing for this long is stuck: it is killed and the
  // snapshot fails (the previous one and the WAL stay; the next interval
  // tries again).
  constexpr int kStallMs = 300'000;
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, kStallMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      bytes.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fd);
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  uint64_t length = 0;
  if (bytes.size() >= sizeof length) std::memcpy(&length, bytes.data(), sizeof length);
  if (bytes.size() < sizeof length || bytes.size() - sizeof length != length) {
    std::string how = waited != pid                  ? "(not reaped)"
                      : WIFEXITED(status)             ? fmt::format("exit status {}", WEXITSTATUS(status))
                      : WIFSIGNALED(status)           ? fmt::format("signal {}", WTERMSIG(status))
                                                      : "unknown status";
    return Status::Internal(fmt::format("snapshot process {} gave {} bytes, not a whole snapshot ({})", pid,
                                        bytes.size(), how));
  }
  bytes.erase(0, sizeof length);
  return bytes;
}

}  // namespace taba::store
