#pragma once
// SIGINT and SIGTERM during a copy: stop submitting, let the I/O in flight drain.

#include <csignal>

namespace kcopy {

class KcopydClient;

/// Installs handlers for SIGINT and SIGTERM for its lifetime (one instance at a
/// time). A signal asks the attached client to stop (KcopydClient::stop, which is
/// async-signal-safe) and writes one notice line to stderr unless `quiet`; later
/// signals only repeat the notice: the copy still drains and flushes. A signal
/// that arrives before a client is attached stops it as soon as it is.
/// The I/O loop sees EINTR from io_getevents and goes on; it notices the stop
/// at its next completion.
class StopSignals {
 public:
  explicit StopSignals(bool quiet);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// From now on signals stop `client` (which must outlive this attachment).
  void attach(KcopydClient& client);
  void detach();
  /// The first signal received (SIGINT or SIGTERM), or 0.
  int received() const;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace kcopy
