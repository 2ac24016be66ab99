#pragma once
// --progress: a thread that shows how far the copy has got, on stderr.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <thread>

#include "kcopy/file_desc.hpp"
#include "kcopy/progress_line.hpp"
#include "kcopy/stop_signals.hpp"

namespace kcopy {

class KcopydClient;
class StderrSink;
struct JobResult;

/// How the progress is shown.
enum class ProgressStyle {
  redraw,  ///< stderr is a terminal: one line drawn again in place 5 times a
           ///< second, as wide as the terminal (read again on SIGWINCH)
  lines,   ///< stderr is a file or a pipe (a log): a plain line every 10 seconds
};

/// The progress thread. It reads only what the I/O loop already keeps
/// (KcopydClient::sectors_done and failed_destinations, relaxed atomics), takes
/// no lock the I/O loop takes, and formats and writes on its own thread, so
/// that the copy never waits for it. Frames go through `sink` (StderrSink), so
/// a message clears the line and the line comes back below it.
///
/// While it runs, the signal handlers' lines (SIGUSR1 status lines, stop
/// notices) are handed to it (StopSignals::route_lines) and it prints them
/// between frames, so that they never land in the middle of the line. Its
/// thread blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGWINCH: they reach the
/// main thread, whose I/O loop sees EINTR and looks at the stop flag.
///
/// Construct, finish and destroy it on the main thread (the one that takes the
/// signals). One instance at a time (it owns the SIGWINCH handler).
class ProgressReporter {
 public:
  /// Starts the thread; the first frame comes after 0.2 s (redraw) or 10 s
  /// (lines). `client` and `signals` must outlive it. Throws
  /// std::system_error when no thread or eventfd can be had.
  ProgressReporter(StderrSink& sink, ProgressStyle style, const KcopydClient& client, std::uint64_t total_sectors,
                   unsigned destinations, StopSignals& signals);
  /// Stops the thread if finish() did not, and clears the line.
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  /// Stops the thread and shows the final frame, from the counters and from
  /// `result` (which destinations failed), with the average rate: drawn and
  /// ended with a newline (redraw), or as one more plain line (lines).
  void finish(const JobResult& result);

 private:
  void run();
  void stop_thread();
  void print_signal_lines();
  ProgressFrame frame_now(std::chrono::steady_clock::time_point now) const;
  void show(const ProgressFrame& frame);

  StderrSink& sink_;
  const ProgressStyle style_;
  const KcopydClient& client_;
  const std::uint64_t total_sectors_;
  const unsigned destinations_;
  StopSignals& signals_;
  const std::chrono::steady_clock::time_point start_;
  FileDesc wake_fd_;  // eventfd: stop, a signal line, a resize
  std::atomic<bool> stopping_{false};
  std::size_t width_ = 80;  // the terminal's columns (redraw)
  RateWindow rate_;
  SignalLineQueue lines_;
  struct sigaction old_winch_ {};
  bool finished_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace kcopy
