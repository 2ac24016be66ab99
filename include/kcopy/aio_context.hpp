#pragma once
// A move-only owner of one Linux AIO context (io_setup / io_destroy), after
// Seastar's linux-aio wrapper and fio's engines/libaio.c.

#include <libaio.h>

#include <span>

namespace kcopy {

/// Owns an io_context_t sized for `max_events` requests in flight.
class AioContext {
 public:
  /// io_setup(max_events). Throws kcopy::Error on failure; on EAGAIN the message
  /// points at /proc/sys/fs/aio-max-nr.
  explicit AioContext(unsigned max_events);
  AioContext(AioContext&& other) noexcept;
  AioContext& operator=(AioContext&&) = delete;
  AioContext(const AioContext&) = delete;
  ~AioContext();

  /// io_submit of `iocbs`, retried on EINTR. Returns how many were queued (from the
  /// front), or -errno for the first iocb when none was: -EAGAIN means "reap, then
  /// retry"; any other error belongs to iocbs[0] alone.
  int submit(std::span<iocb*> iocbs);

  /// io_getevents for at least `min_nr` and at most events.size() completions,
  /// retried on EINTR. Returns how many were stored (>= 0), or -errno.
  int get_events(std::span<io_event> events, long min_nr);

 private:
  io_context_t ctx_ = nullptr;
};

}  // namespace kcopy
