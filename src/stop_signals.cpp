#include "kcopy/stop_signals.hpp"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include "kcopy/kcopyd.hpp"

namespace kcopy {
namespace {

// What the handler may touch: lock-free atomics and write(2).
std::atomic<int> first_signal{0};
std::atomic<KcopydClient*> client{nullptr};
std::atomic<bool> quiet{false};

void write_notice(int sig) {
  if (quiet.load()) return;
  const char* text = sig == SIGINT ? "kcopy: interrupted: stopping after the I/O in flight completes\n"
                                   : "kcopy: terminated: stopping after the I/O in flight completes\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, text, std::strlen(text));
}

void on_signal(int sig) {
  int none = 0;
  first_signal.compare_exchange_strong(none, sig);
  if (KcopydClient* c = client.load()) c->stop();
  write_notice(sig);
}

}  // namespace

StopSignals::StopSignals(bool be_quiet) {
  static_assert(std::atomic<int>::is_always_lock_free && std::atomic<KcopydClient*>::is_always_lock_free);
  quiet = be_quiet;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns EINTR and looks again
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  detach();
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

void StopSignals::attach(KcopydClient& c) {
  client = &c;
  if (first_signal.load()) c.stop();
}

void StopSignals::detach() { client = nullptr; }

int StopSignals::received() const { return first_signal.load(); }

}  // namespace kcopy
