#include "kcopy/stop_signals.hpp"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kcopy/kcopyd.hpp"

namespace kcopy {

bool SignalLineQueue::push(const SignalSafeLine& line) {
  const std::size_t tail = tail_.load(std::memory_order_relaxed);
  if (tail - head_.load(std::memory_order_acquire) == capacity) return false;
  lines_[tail % capacity] = line;
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

bool SignalLineQueue::pop(SignalSafeLine& line) {
  const std::size_t head = head_.load(std::memory_order_relaxed);
  if (head == tail_.load(std::memory_order_acquire)) return false;
  line = lines_[head % capacity];
  head_.store(head + 1, std::memory_order_release);
  return true;
}

namespace {

constexpr int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};

// What the handlers may touch: lock-free atomics, clock_gettime and write(2).
std::atomic<int> first_signal{0};
std::atomic<KcopydClient*> client{nullptr};
std::atomic<std::uint64_t> total{0};
std::atomic<std::int64_t> start_ns{0};
std::atomic<bool> quiet{false};
std::atomic<SignalLineQueue*> routed_lines{nullptr};
std::atomic<int> wake_fd{-1};

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// Writes `line` to stderr, or hands it to the thread that owns stderr.
void emit(const SignalSafeLine& line) {
  SignalLineQueue* q = routed_lines.load();
  if (!q) return line.write_to_stderr();
  q->push(line);
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd.load(), &one, sizeof one);
}

void write_status() {
  const KcopydClient* c = client.load();
  const std::int64_t elapsed_ns = start_ns.load() ? now_ns() - start_ns.load() : 0;
  emit(status_line({c ? c->sectors_done() : 0, total.load(),
                    static_cast<std::uint64_t>(elapsed_ns > 0 ? elapsed_ns / 1'000'000 : 0)}));
}

void write_notice(int sig) {
  if (quiet.load()) return;
  const char* what = sig == SIGINT ? "interrupted" : sig == SIGHUP ? "hangup" : "terminated";
  emit(SignalSafeLine().text("kcopy: ").text(what).text(": stopping after the I/O in flight completes\n"));
}

void on_signal(int sig) {
  const int saved_errno = errno;
  if (sig == SIGUSR1) {
    write_status();
  } else {
    int none = 0;
    first_signal.compare_exchange_strong(none, sig);
    if (KcopydClient* c = client.load()) c->stop();
    write_notice(sig);
  }
  errno = saved_errno;
}

sigset_t handled_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : handled) sigaddset(&set, sig);
  return set;
}

}  // namespace

void block_stop_signals() {
  const sigset_t set = handled_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

StopSignals::StopSignals(bool be_quiet) {
  static_assert(std::atomic<int>::is_always_lock_free && std::atomic<KcopydClient*>::is_always_lock_free &&
                std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::size_t>::is_always_lock_free);
  quiet = be_quiet;
  const sigset_t set = handled_set();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_mask = set;  // one handler at a time
  sa.sa_flags = 0;   // no SA_RESTART: a blocking wait returns EINTR and looks again
  for (std::size_t i = 0; i < std::size(handled); ++i) sigaction(handled[i], &sa, &old_[i]);
  // Signals that came while block_stop_signals() held them are handled here.
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

StopSignals::~StopSignals() {
  const sigset_t set = handled_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  detach();
  route_lines(nullptr, -1);
  for (std::size_t i = 0; i < std::size(handled); ++i) sigaction(handled[i], &old_[i], nullptr);
}

void StopSignals::set_quiet(bool be_quiet) { quiet = be_quiet; }

void StopSignals::attach(KcopydClient& c, std::uint64_t total_sectors) {
  total = total_sectors;
  start_ns = now_ns();
  client = &c;
  if (first_signal.load()) c.stop();
}

void StopSignals::detach() { client = nullptr; }

int StopSignals::received() const { return first_signal.load(); }

void StopSignals::route_lines(SignalLineQueue* lines, int fd) {
  // A handler may run between the two stores: it must never see a queue
  // without the descriptor that wakes its reader.
  if (lines) {
    wake_fd = fd;
    routed_lines = lines;
  } else {
    routed_lines = nullptr;
    wake_fd = -1;
  }
}

}  // namespace kcopy
