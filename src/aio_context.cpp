#include "kcopy/aio_context.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "kcopy/error.hpp"

namespace kcopy {

AioContext::AioContext(unsigned max_events) {
  const int rc = io_setup(static_cast<int>(max_events), &ctx_);
  if (rc == -EAGAIN)
    throw Error("cannot set up an AIO context for " + std::to_string(max_events) +
                    " requests: the system limit is reached (see /proc/sys/fs/aio-max-nr "
                    "and /proc/sys/fs/aio-nr), or ask for fewer requests",
                EAGAIN);
  if (rc < 0) throw Error(std::string("cannot set up an AIO context: ") + std::strerror(-rc), -rc);
}

AioContext::AioContext(AioContext&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

AioContext::~AioContext() {
  if (ctx_) io_destroy(ctx_);
}

int AioContext::submit(std::span<iocb*> iocbs) {
  for (;;) {
    const int rc = io_submit(ctx_, static_cast<long>(iocbs.size()), iocbs.data());
    if (rc != -EINTR) return rc;
  }
}

int AioContext::get_events(std::span<io_event> events, long min_nr) {
  for (;;) {
    const int rc = io_getevents(ctx_, min_nr, static_cast<long>(events.size()), events.data(), nullptr);
    if (rc != -EINTR) return rc;
  }
}

}  // namespace kcopy
