#pragma once
// Pacing a copy: a limit on how busy the devices are (dm-kcopyd's
// dm_kcopyd_throttle, set by dm-raid's and dm-mirror's throttle) and on how
// fast the source is read. Pure bookkeeping: the caller passes the time in, so
// the class is deterministic; it never sleeps, blocks or allocates.

#include <chrono>
#include <cstdint>

namespace kcopy {

/// Decides when the engine may start its next sub-job, under two limits that
/// may both be on:
///
/// - throttle PERCENT (1-100; 100 = off): the devices are busy (some request
///   in flight) at most PERCENT of the wall time. As dm-kcopyd's io_job_start /
///   io_job_finish: busy time and total time are summed, and a sub-job may
///   start while busy <= PERCENT% of total. When one starts, both sums are
///   halved if the total has reached about a second (ACCOUNT_INTERVAL_SHIFT,
///   2^SHIFT_HZ jiffies), so the share is over a decaying window of about a
///   second. Unlike dm-kcopyd, which halves at every retry, they are not
///   halved while waiting: that would count the idle time double and cut the
///   wait short, so that busy spells longer than PERCENT% of a second (a slow
///   device, large sub-jobs) would overshoot the limit. dm-kcopyd sleeps 100 ms
///   slices (at most 10) when over; here the caller sleeps exactly as long as
///   the share needs to fall back to the limit, in slices of at most 100 ms.
///   Idle time before the copy counts, but the halving caps the credit it
///   gives at about PERCENT% of a second of busy time.
/// - max rate RATE (bytes of source reads started per second; 0 = off): a
///   token bucket (the generic cell rate algorithm) paid in advance: a sub-job
///   may start once the bytes started before it and its own have been paid
///   for at RATE since the copy began. So N sub-jobs of B bytes take N * B /
///   RATE (a copy of one sub-job too), whatever B is. Time the engine lets go
///   by without starting what it could (a wake-up that comes late, a wait for
///   a completion, a device slower than RATE) is credited, up to rate_credit
///   or one sub-job's time if longer: the sub-jobs it held back then start at
///   once, in a burst, and the average holds. So over any interval T at most
///   RATE * T bytes are started, plus RATE * rate_credit or one sub-job,
///   whichever is more (idle time before the copy counts too, as far). dm-kcopyd
///   has no such limit.
///
/// How the engine calls it (one thread; `now` from Clock::now(), never
/// decreasing from call to call):
///
///     before starting a sub-job:  if (!pacer.may_start(read_bytes, now)) stop starting;
///                                 else start it and pacer.started_reads(read_bytes, now)
///     first request in flight:    pacer.io_busy(now)
///     last request completed:     pacer.io_idle(now)
///     nothing in flight, and the next sub-job may not start:
///                                 sleep until now + pacer.sleep_for(now) (exactly:
///                                 not a fixed tick), then ask again
///
/// While requests are in flight and may_start() says no, the engine just waits
/// for completions (a busy share only grows while busy; a start the rate allows
/// meanwhile waits for the next completion, and is credited as above).
class Pacer {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::nanoseconds;

  /// The longest sleep_for() ever asks: signals and progress stay responsive.
  static constexpr Duration max_sleep = std::chrono::milliseconds(100);
  /// The most time the rate credits for starts the engine made late (see above).
  static constexpr Duration rate_credit = std::chrono::milliseconds(50);
  /// The throttle's window: busy and total time are halved as the total
  /// reaches it (dm-kcopyd: 1 << ACCOUNT_INTERVAL_SHIFT jiffies, 1.024 s at HZ=1000).
  static constexpr Duration throttle_window = std::chrono::milliseconds(1024);

  /// `throttle_percent`: 1 to 100, 100 = no throttle; `max_rate`: bytes per
  /// second, 0 = no limit (both checked by the caller; asserted here). `now`:
  /// when the copy starts (time before it counts as idle).
  Pacer(unsigned throttle_percent, std::uint64_t max_rate, Clock::time_point now);

  /// Whether either limit is on. When not, may_start() is always true and
  /// sleep_for() always 0: the engine may skip every call.
  bool limited() const { return throttle_percent_ < 100 || max_rate_ > 0; }

  /// Whether a sub-job that reads `read_bytes` from the source (0: it reads
  /// nothing, e.g. a zeroing one) may start at `now`: the busy share is within
  /// the throttle, and the rate has paid for every byte started so far and for
  /// these. (dm-kcopyd's io_job_start, without its sleep.) A refusal
  /// remembers `read_bytes` for sleep_for().
  bool may_start(std::uint64_t read_bytes, Clock::time_point now);

  /// How long, from `now`, until may_start() will say yes to the sub-job it
  /// last refused, if the devices stay idle meanwhile: 0 when it would say yes
  /// now, otherwise at most max_sleep (ask again after sleeping). Meant for
  /// when nothing is in flight; called while busy it is a lower bound.
  Duration sleep_for(Clock::time_point now);

  /// The engine started `bytes` bytes of source reads at `now` (a sub-job's
  /// read, just after may_start(bytes, now) said yes): charged to the rate.
  void started_reads(std::uint64_t bytes, Clock::time_point now);

  /// The first request went in flight at `now` (the devices become busy), and
  /// the last one completed at `now` (they become idle). dm-kcopyd counts its
  /// jobs in flight (num_io_jobs) in io_job_start / io_job_finish; the engine
  /// knows its own count and reports only the edges. Calling io_busy() while
  /// busy, or io_idle() while idle, only accounts the time.
  void io_busy(Clock::time_point now);
  void io_idle(Clock::time_point now);

  /// The throttle's busy share as of the last call, in [0, 1] (0 with nothing
  /// accounted yet, and without a throttle): for progress and tests.
  double busy_share() const;

 private:
  // Adds the time since the last call to the throttle's sums (busy time only
  // while busy): dm-kcopyd's io_job_start and io_job_finish accounting.
  void account(Clock::time_point now);
  // Halves both sums as often as needed to bring the total under the window.
  void decay();
  // Idle time the throttle needs before the busy share is within the limit.
  Duration throttle_wait() const;
  // Time until the rate has paid for every byte started and `bytes` more.
  Duration rate_wait(std::uint64_t bytes, Clock::time_point now) const;
  // What `bytes` cost at the rate.
  Duration cost(std::uint64_t bytes) const;
  // paid_until_, moved forward so that the credit for time gone by is at most
  // rate_credit, or `cost` if longer.
  Clock::time_point paid_from(Duration cost, Clock::time_point now) const;

  unsigned throttle_percent_;
  std::uint64_t max_rate_;  // bytes per second
  // The throttle: dm_kcopyd_throttle's io_period, total_period, last_jiffies
  // and (reduced to a flag) num_io_jobs.
  Duration busy_{0};
  Duration total_{0};
  Clock::time_point last_;
  bool in_flight_ = false;
  // The rate: when the bytes started so far are paid for (the "theoretical
  // arrival time" of the generic cell rate algorithm), and the bytes of the
  // sub-job last refused.
  Clock::time_point paid_until_;
  std::uint64_t held_bytes_ = 0;
};

}  // namespace kcopy
