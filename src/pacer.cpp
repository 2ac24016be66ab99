#include "kcopy/pacer.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>

namespace kcopy {

Pacer::Pacer(unsigned throttle_percent, std::uint64_t max_rate, Clock::time_point now)
    : throttle_percent_(throttle_percent), max_rate_(max_rate), last_(now), paid_until_(now) {
  assert(throttle_percent >= 1 && throttle_percent <= 100);
}

void Pacer::account(Clock::time_point now) {
  if (throttle_percent_ >= 100) return;
  const Duration elapsed = std::max(Duration{0}, std::chrono::duration_cast<Duration>(now - last_));
  last_ = std::max(last_, now);
  if (in_flight_) busy_ += elapsed;
  total_ += elapsed;
  busy_ = std::min(busy_, total_);
}

void Pacer::decay() {
  // As dm-kcopyd: once the total reaches the window, halve both (more than
  // once after a long gap) so that old time weighs less and less.
  if (total_ >= throttle_window) {
    const auto shift = std::bit_width(static_cast<std::uint64_t>(total_ / throttle_window));
    total_ = Duration{total_.count() >> shift};
    busy_ = Duration{busy_.count() >> shift};
  }
}

Pacer::Duration Pacer::throttle_wait() const {
  if (throttle_percent_ >= 100) return Duration{0};
  // Busy <= percent% of total, i.e. 100 * busy <= percent * total: idle time t
  // adds to the total only, so t = (100 * busy - percent * total) / percent.
  // (At most 100 * 2 windows of nanoseconds: far from overflowing.)
  const std::int64_t over = 100 * busy_.count() - static_cast<std::int64_t>(throttle_percent_) * total_.count();
  if (over <= 0) return Duration{0};
  return Duration{(over + throttle_percent_ - 1) / throttle_percent_};
}

Pacer::Duration Pacer::cost(std::uint64_t bytes) const {
  const double seconds = static_cast<double>(bytes) / static_cast<double>(max_rate_);
  return Duration{std::llround(seconds * 1e9)};
}

Pacer::Clock::time_point Pacer::paid_from(Duration cost, Clock::time_point now) const {
  return std::max(paid_until_, now - std::max(rate_credit, cost));
}

Pacer::Duration Pacer::rate_wait(std::uint64_t bytes, Clock::time_point now) const {
  if (max_rate_ == 0) return Duration{0};
  const Duration c = cost(bytes);
  const Clock::time_point paid = paid_from(c, now) + c;
  return paid <= now ? Duration{0} : std::chrono::duration_cast<Duration>(paid - now);
}

bool Pacer::may_start(std::uint64_t read_bytes, Clock::time_point now) {
  account(now);
  if (throttle_wait() > Duration{0} || rate_wait(read_bytes, now) > Duration{0}) {
    held_bytes_ = read_bytes;
    return false;
  }
  decay();
  return true;
}

Pacer::Duration Pacer::sleep_for(Clock::time_point now) {
  account(now);
  return std::min(std::max(throttle_wait(), rate_wait(held_bytes_, now)), max_sleep);
}

void Pacer::started_reads(std::uint64_t bytes, Clock::time_point now) {
  if (max_rate_ == 0) return;
  const Duration c = cost(bytes);
  paid_until_ = paid_from(c, now) + c;
}

void Pacer::io_busy(Clock::time_point now) {
  account(now);
  in_flight_ = true;
}

void Pacer::io_idle(Clock::time_point now) {
  account(now);
  in_flight_ = false;
}

double Pacer::busy_share() const {
  return total_.count() > 0 ? static_cast<double>(busy_.count()) / static_cast<double>(total_.count()) : 0.0;
}

}  // namespace kcopy
