#pragma once
// Signals during a copy: SIGINT, SIGTERM and SIGHUP stop it cleanly (the I/O in
// flight drains, the destinations are flushed); SIGUSR1 prints a status line.

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>

#include "kcopy/status_line.hpp"

namespace kcopy {

class KcopydClient;

/// Lines the signal handlers leave for another thread to print, while that
/// thread owns standard error (a progress line is drawn there, and a line
/// written from a handler could land in the middle of it). A ring with one
/// producer, the handlers (they run one at a time, on the main thread: the
/// reading thread blocks these signals), and one consumer. A line that finds
/// the ring full is lost.
class SignalLineQueue {
 public:
  /// Async-signal-safe. False when the ring is full.
  bool push(const SignalSafeLine& line);
  /// The oldest line not taken yet, if any.
  bool pop(SignalSafeLine& line);

 private:
  static constexpr std::size_t capacity = 16;
  SignalSafeLine lines_[capacity];
  std::atomic<std::size_t> head_{0};  // next to pop
  std::atomic<std::size_t> tail_{0};  // next to push
};

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 on the calling thread until a
/// StopSignals is constructed. Call first in main: until the handlers are in
/// place, these signals wait (pending) instead of killing the process. The
/// mask is inherited by the threads started meanwhile and kept across execve
/// (kcopy execs kcopy-nbd), so the program executed is covered from its first
/// instruction, and unblocks them when it constructs its own StopSignals.
void block_stop_signals();

/// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGUSR1 for its lifetime
/// (one instance at a time), then unblocks them on the calling thread (see
/// block_stop_signals): a signal that came while they were blocked is handled
/// there and then. Make it on the main thread, before any other thread starts
/// (threads inherit the mask), and keep it until the program exits: the
/// destructor blocks the signals again before it restores the old handlers, so
/// that one coming at exit stays pending instead of killing a finished copy.
///
/// SIGINT, SIGTERM, SIGHUP (a dropped SSH session): asks the attached client to
/// stop (KcopydClient::stop, async-signal-safe) and writes one notice line to
/// stderr unless `quiet`; later signals only repeat the notice: the copy still
/// drains and flushes, and the first signal decides the exit status (128+N). A
/// signal that arrives before a client is attached stops it as soon as it is.
///
/// SIGUSR1 (dd's habit): writes one status line to stderr (see status_line)
/// from the client's counters; the copy goes on. Written even with `quiet`:
/// the user asked for it.
///
/// The handlers only load atomics, read the clock and write(2) (stderr writes
/// that fail, e.g. EPIPE on a dead pipe, are ignored). The I/O loop sees EINTR
/// from its wait and goes on; it notices a stop at its next completion.
class StopSignals {
 public:
  explicit StopSignals(bool quiet);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Whether stop notices are written (-q: not); status lines always are.
  void set_quiet(bool quiet);

  /// From now on signals stop `client` (which must outlive this attachment),
  /// and SIGUSR1 reports its progress out of `total_sectors`.
  void attach(KcopydClient& client, std::uint64_t total_sectors);
  void detach();
  /// The first stopping signal received (SIGINT, SIGTERM or SIGHUP), or 0.
  int received() const;

  /// From now on the handlers write their lines (notices, status lines) to
  /// `lines` instead of stderr, and wake its reader by adding 1 to the eventfd
  /// `wake_fd`; nullptr: to stderr again. Call it on the thread that takes the
  /// signals (the main thread), so that no handler is half-way through a
  /// line when the route changes.
  void route_lines(SignalLineQueue* lines, int wake_fd);

 private:
  struct sigaction old_[4]{};
};

}  // namespace kcopy
