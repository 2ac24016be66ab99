#pragma once
// Signals during a copy: SIGINT, SIGTERM and SIGHUP stop it cleanly (the I/O in
// flight drains, the destinations are flushed); SIGUSR1 prints a status line.

#include <csignal>
#include <cstdint>

namespace kcopy {

class KcopydClient;

/// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGUSR1 for its lifetime
/// (one instance at a time).
///
/// SIGINT, SIGTERM, SIGHUP (a dropped SSH session): asks the attached client to
/// stop (KcopydClient::stop, async-signal-safe) and writes one notice line to
/// stderr unless `quiet`; later signals only repeat the notice: the copy still
/// drains and flushes, and the first signal decides the exit status (128+N). A
/// signal that arrives before a client is attached stops it as soon as it is.
///
/// SIGUSR1 (dd's habit): writes one status line to stderr, "kcopy: N of M
/// sectors copied (P%), T s, R MiB/s", from the client's counters; the copy
/// goes on. Written even with `quiet`: the user asked for it.
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

  /// From now on signals stop `client` (which must outlive this attachment),
  /// and SIGUSR1 reports its progress out of `total_sectors`.
  void attach(KcopydClient& client, std::uint64_t total_sectors);
  void detach();
  /// The first stopping signal received (SIGINT, SIGTERM or SIGHUP), or 0.
  int received() const;

 private:
  struct sigaction old_[4]{};
};

}  // namespace kcopy
