#include "kcopy/progress.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "kcopy/kcopyd.hpp"
#include "kcopy/stderr_sink.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto sample_interval = 200ms;  // also the frame interval when redrawing: 5 frames a second
constexpr auto log_line_interval = 10s;  // ProgressStyle::lines, as dd status=progress into a file

// What the SIGWINCH handler touches.
std::atomic<bool> resized{false};
std::atomic<int> winch_wake_fd{-1};

void on_winch(int) {
  const int saved_errno = errno;
  resized = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(winch_wake_fd.load(), &one, sizeof one);
  errno = saved_errno;
}

std::size_t terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void wake(int fd) {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

ProgressReporter::ProgressReporter(StderrSink& sink, ProgressStyle style, const KcopydClient& client,
                                   std::uint64_t total_sectors, unsigned destinations, StopSignals& signals)
    : sink_(sink),
      style_(style),
      client_(client),
      total_sectors_(total_sectors),
      destinations_(destinations),
      signals_(signals),
      start_(Clock::now()) {
  wake_fd_ = FileDesc(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
  rate_.add(0, 0);
  if (style_ == ProgressStyle::redraw) {
    width_ = terminal_width();
    winch_wake_fd = wake_fd_.get();
    resized = false;
    struct sigaction sa {};
    sa.sa_handler = on_winch;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, &old_winch_);
  }
  signals_.route_lines(&lines_, wake_fd_.get());

  // The thread starts with the signals blocked, so that they reach the main thread.
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGWINCH}) sigaddset(&block, sig);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    signals_.route_lines(nullptr, -1);
    if (style_ == ProgressStyle::redraw) sigaction(SIGWINCH, &old_winch_, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

ProgressReporter::~ProgressReporter() {
  if (!finished_) {
    stop_thread();
    sink_.end_line(/*keep=*/false);
  }
}

void ProgressReporter::finish(const JobResult& result) {
  if (finished_) return;
  stop_thread();
  ProgressFrame f = frame_now(Clock::now());
  f.final = true;
  f.failed = static_cast<unsigned>(result.write_err) & ((1u << destinations_) - 1);
  f.rate = f.elapsed_seconds > 0 ? std::optional(static_cast<double>(f.done_bytes) / f.elapsed_seconds) : std::nullopt;
  show(f);
  if (style_ == ProgressStyle::redraw) sink_.end_line(/*keep=*/true);
}

// Stops and joins the thread, takes the signal lines back to stderr, and
// prints those still queued.
void ProgressReporter::stop_thread() {
  finished_ = true;
  stopping_ = true;
  wake(wake_fd_.get());
  thread_.join();
  signals_.route_lines(nullptr, -1);
  print_signal_lines();
  if (style_ == ProgressStyle::redraw) {
    sigaction(SIGWINCH, &old_winch_, nullptr);
    winch_wake_fd = -1;
  }
}

void ProgressReporter::run() {
  auto next_sample = start_ + sample_interval;
  auto next_frame = start_ + (style_ == ProgressStyle::redraw ? sample_interval : log_line_interval);
  for (;;) {
    auto now = Clock::now();
    const auto wait = std::min(next_sample, next_frame) - now;
    const int timeout_ms = wait <= Clock::duration::zero()
                               ? 0
                               : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
    pollfd p{wake_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] auto n = ::read(wake_fd_.get(), &count, sizeof count);
    }
    print_signal_lines();
    if (stopping_.load()) return;

    now = Clock::now();
    bool redraw_now = false;
    if (resized.exchange(false)) {
      width_ = terminal_width();
      redraw_now = true;
    }
    if (now >= next_sample) {
      rate_.add(seconds_between(start_, now), sectors_to_bytes(client_.sectors_done()));
      while (next_sample <= now) next_sample += sample_interval;
    }
    if (now >= next_frame || redraw_now) {
      show(frame_now(now));
      const auto every = style_ == ProgressStyle::redraw ? sample_interval : log_line_interval;
      while (next_frame <= now) next_frame += every;
    }
  }
}

void ProgressReporter::print_signal_lines() {
  SignalSafeLine line;
  while (lines_.pop(line)) sink_.write_lines(line.view());
}

ProgressFrame ProgressReporter::frame_now(Clock::time_point now) const {
  ProgressFrame f;
  f.done_bytes = sectors_to_bytes(client_.sectors_done());
  f.total_bytes = sectors_to_bytes(total_sectors_);
  f.elapsed_seconds = seconds_between(start_, now);
  f.rate = rate_.rate();
  f.destinations = destinations_;
  f.failed = client_.failed_destinations() & ((1u << destinations_) - 1);
  return f;
}

void ProgressReporter::show(const ProgressFrame& frame) {
  if (style_ == ProgressStyle::redraw)
    // One column short of the width: a line that reaches the last column wraps on some terminals.
    sink_.draw_line(format_progress_line(frame, width_ > 1 ? width_ - 1 : 1), width_);
  else
    sink_.write_lines(format_progress_line(frame, 0) + "\n");
}

}  // namespace kcopy
