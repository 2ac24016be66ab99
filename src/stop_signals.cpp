#include "kcopy/stop_signals.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "kcopy/kcopyd.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

constexpr int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};

// What the handlers may touch: lock-free atomics, clock_gettime and write(2).
std::atomic<int> first_signal{0};
std::atomic<KcopydClient*> client{nullptr};
std::atomic<std::uint64_t> total{0};
std::atomic<std::int64_t> start_ns{0};
std::atomic<bool> quiet{false};

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// A line built without allocation or locale, for a signal handler.
class Line {
 public:
  Line& text(const char* s) {
    while (*s && len_ < sizeof buf_) buf_[len_++] = *s++;
    return *this;
  }
  Line& number(std::uint64_t n) {
    char digits[20];
    std::size_t k = 0;
    do digits[k++] = static_cast<char>('0' + n % 10);
    while ((n /= 10) != 0);
    while (k > 0 && len_ < sizeof buf_) buf_[len_++] = digits[--k];
    return *this;
  }
  // A number with one decimal, from tenths.
  Line& tenths(std::uint64_t t) { return number(t / 10).text(".").number(t % 10); }
  void write() const { [[maybe_unused]] auto n = ::write(STDERR_FILENO, buf_, len_); }

 private:
  char buf_[160];
  std::size_t len_ = 0;
};

void write_status() {
  const KcopydClient* c = client.load();
  const std::uint64_t done = c ? c->sectors_done() : 0;
  const std::uint64_t all = total.load();
  const std::int64_t elapsed_ns = start_ns.load() ? now_ns() - start_ns.load() : 0;
  const std::uint64_t ms = static_cast<std::uint64_t>(elapsed_ns > 0 ? elapsed_ns / 1'000'000 : 0);
  const std::uint64_t mib_tenths = ms ? sectors_to_bytes(done) * 10 * 1000 / ms >> 20 : 0;
  Line()
      .text("kcopy: ")
      .number(done)
      .text(" of ")
      .number(all)
      .text(" sectors copied (")
      .number(all ? done * 100 / all : 0)
      .text("%), ")
      .tenths(ms / 100)
      .text(" s, ")
      .tenths(mib_tenths)
      .text(" MiB/s\n")
      .write();
}

void write_notice(int sig) {
  if (quiet.load()) return;
  const char* what = sig == SIGINT ? "interrupted" : sig == SIGHUP ? "hangup" : "terminated";
  Line().text("kcopy: ").text(what).text(": stopping after the I/O in flight completes\n").write();
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

}  // namespace

StopSignals::StopSignals(bool be_quiet) {
  static_assert(std::atomic<int>::is_always_lock_free && std::atomic<KcopydClient*>::is_always_lock_free &&
                std::atomic<std::uint64_t>::is_always_lock_free);
  quiet = be_quiet;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : handled) sigaddset(&sa.sa_mask, sig);  // one handler at a time
  sa.sa_flags = 0;                                      // no SA_RESTART: a blocking wait returns EINTR and looks again
  for (std::size_t i = 0; i < std::size(handled); ++i) sigaction(handled[i], &sa, &old_[i]);
}

StopSignals::~StopSignals() {
  detach();
  for (std::size_t i = 0; i < std::size(handled); ++i) sigaction(handled[i], &old_[i], nullptr);
}

void StopSignals::attach(KcopydClient& c, std::uint64_t total_sectors) {
  total = total_sectors;
  start_ns = now_ns();
  client = &c;
  if (first_signal.load()) c.stop();
}

void StopSignals::detach() { client = nullptr; }

int StopSignals::received() const { return first_signal.load(); }

}  // namespace kcopy
