// --throttle and --max-rate pacing (kcopy::Pacer) on a simulated clock: the
// engine's loop is played out event by event, nothing sleeps.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <deque>

#include "kcopy/pacer.hpp"

using namespace kcopy;
using namespace std::chrono_literals;
using Clock = Pacer::Clock;
using Duration = Pacer::Duration;

namespace {

constexpr std::uint64_t MiB = 1 << 20;
constexpr std::uint64_t KiB = 1 << 10;

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

struct Workload {
  std::uint64_t total_bytes = UINT64_MAX;  ///< stop once this much was started and is done
  std::uint64_t sub_job = 512 * KiB;       ///< bytes of one sub-job
  Duration io_time = 5ms;                  ///< how long a started sub-job keeps the devices busy
  unsigned depth = 4;                      ///< sub-jobs in flight at most (the page pool)
  Duration horizon = 1s;                   ///< stop starting sub-jobs after this long
  Duration wake_late = 0ns;                ///< how much later than asked each sleep ends
};

struct Outcome {
  Duration elapsed{0};        ///< from the start to the end of the last sub-job
  Duration busy{0};           ///< time with at least one sub-job in flight
  Duration longest_sleep{0};  ///< the longest sleep the pacer asked for
  std::uint64_t started = 0;  ///< bytes started
  unsigned sleeps = 0;
  bool refused_once = false;  ///< may_start said no at least once
};

// The engine's loop as kcopyd runs it: start sub-jobs while the pacer allows
// and the pool has room; with something in flight, wait for the next
// completion; with nothing in flight, sleep as long as the pacer says (and
// wake up w.wake_late later than asked, as a busy machine does).
Outcome simulate(Pacer& pacer, Clock::time_point t0, const Workload& w) {
  Outcome out;
  Clock::time_point now = t0, busy_since = t0;
  std::deque<Clock::time_point> in_flight;  // completion times, in order (one io_time each)
  auto more = [&] { return out.started < w.total_bytes && now - t0 < w.horizon; };
  for (;;) {
    while (in_flight.size() < w.depth && more()) {
      if (!pacer.may_start(w.sub_job, now)) {
        out.refused_once = true;
        break;
      }
      if (in_flight.empty()) {
        pacer.io_busy(now);
        busy_since = now;
      }
      pacer.started_reads(w.sub_job, now);
      out.started += w.sub_job;
      in_flight.push_back(now + w.io_time);
    }
    if (in_flight.empty()) {
      if (!more()) break;
      const Duration d = pacer.sleep_for(now);
      REQUIRE(d > 0ns);  // the next sub-job may not start: the pacer must say how long to wait
      out.longest_sleep = std::max(out.longest_sleep, d);
      ++out.sleeps;
      now += d + w.wake_late;
      continue;
    }
    now = in_flight.front();  // reap: the next completion
    in_flight.pop_front();
    if (in_flight.empty()) {
      pacer.io_idle(now);
      out.busy += now - busy_since;
    }
  }
  out.elapsed = now - t0;
  return out;
}

}  // namespace

TEST_CASE("without --throttle or --max-rate the copy is never delayed") {
  const Clock::time_point t0{};
  Pacer pacer(100, 0, t0);
  REQUIRE_FALSE(pacer.limited());
  Workload w;
  w.total_bytes = 64 * MiB;
  w.horizon = 1h;
  const Outcome o = simulate(pacer, t0, w);
  REQUIRE(o.started == 64 * MiB);
  REQUIRE_FALSE(o.refused_once);
  REQUIRE(o.sleeps == 0);
  // 128 sub-jobs, 4 at a time, 5 ms each: back to back.
  REQUIRE(o.elapsed == 32 * 5ms);
  REQUIRE(pacer.sleep_for(t0 + 1s) == 0ns);
}

TEST_CASE("--throttle 30 keeps devices that would always be busy busy 30% of a second") {
  const Clock::time_point t0{};
  Pacer pacer(30, 0, t0);
  REQUIRE(pacer.limited());
  const Outcome o = simulate(pacer, t0, Workload{});
  const double share = seconds(o.busy) / seconds(o.elapsed);
  CAPTURE(share, seconds(o.elapsed), o.sleeps);
  REQUIRE(o.elapsed >= 1s);
  REQUIRE(share == Approx(0.30).margin(0.02));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--throttle holds over several seconds, for short and long requests alike") {
  const unsigned percent = GENERATE(10u, 50u, 90u);
  const Duration io_time = GENERATE(Duration{1ms}, Duration{40ms}, Duration{250ms});
  const Clock::time_point t0{};
  Pacer pacer(percent, 0, t0);
  Workload w;
  w.io_time = io_time;
  w.horizon = 10s;
  const Outcome o = simulate(pacer, t0, w);
  const double share = seconds(o.busy) / seconds(o.elapsed);
  CAPTURE(percent, seconds(io_time), share, o.sleeps);
  // The last request may overshoot by its own length: 250 ms in 10 s is 2.5%.
  REQUIRE(share == Approx(percent / 100.0).margin(0.03));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--throttle: a long idle time before the copy buys a short burst only") {
  const Clock::time_point t0{};
  Pacer pacer(30, 0, t0);
  // Ten idle seconds (setup, a prompt), then sub-jobs that keep the devices busy.
  const Clock::time_point start = t0 + 10s;
  REQUIRE(pacer.may_start(0, start));
  pacer.io_busy(start);
  Clock::time_point now = start;
  while (pacer.may_start(0, now)) now += 1ms;
  // The decaying window (about a second) caps the credit near 30% of it.
  CAPTURE(seconds(now - start));
  REQUIRE(now - start <= 350ms);
  REQUIRE(now - start >= 100ms);
}

TEST_CASE("--max-rate 20 MiB/s copies 64 MiB in 3.2 s") {
  const Clock::time_point t0{};
  Pacer pacer(100, 20 * MiB, t0);
  REQUIRE(pacer.limited());
  Workload w;
  w.total_bytes = 64 * MiB;
  w.io_time = 2ms;
  w.horizon = 1h;
  const Outcome o = simulate(pacer, t0, w);
  CAPTURE(seconds(o.elapsed), o.sleeps);
  REQUIRE(o.started == 64 * MiB);
  REQUIRE(seconds(o.elapsed) == Approx(3.2).epsilon(0.05));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--max-rate: a long idle time buys one sub-job, or 50 ms of the rate if more") {
  const Clock::time_point t0{};
  const Clock::time_point later = t0 + 1h;
  SECTION("1 MiB sub-jobs at 10 MiB/s: one sub-job at once, then one per 100 ms") {
    Pacer pacer(100, 10 * MiB, t0);
    REQUIRE(pacer.may_start(1 * MiB, later));
    pacer.started_reads(1 * MiB, later);
    REQUIRE_FALSE(pacer.may_start(1 * MiB, later));
    REQUIRE(pacer.sleep_for(later) == 100ms);
    REQUIRE_FALSE(pacer.may_start(1 * MiB, later + 99ms));
    REQUIRE(pacer.may_start(1 * MiB, later + 100ms));
  }
  SECTION("64 KiB sub-jobs at 64 MiB/s: 50 ms worth (3.2 MiB, 51 sub-jobs) at once") {
    Pacer pacer(100, 64 * MiB, t0);
    unsigned burst = 0;
    while (pacer.may_start(64 * KiB, later)) {
      pacer.started_reads(64 * KiB, later);
      ++burst;
    }
    CAPTURE(burst);
    REQUIRE(burst == 51);  // 50 ms at 64 MiB/s is 51.2 sub-jobs
    // The 52nd is paid for 52 / 1024 s - 50 ms (0.78 ms) later.
    REQUIRE(pacer.sleep_for(later) > 780us);
    REQUIRE(pacer.sleep_for(later) < 782us);
  }
}

TEST_CASE("--max-rate applies to a copy of one sub-job (--max-rate 512, 4 KiB: 8 s)") {
  const Clock::time_point t0{};
  Pacer pacer(100, 512, t0);
  Clock::time_point now = t0;
  while (!pacer.may_start(4 * KiB, now)) {
    const Duration d = pacer.sleep_for(now);
    REQUIRE(d > 0ns);
    REQUIRE(d <= Pacer::max_sleep);
    now += d;
  }
  REQUIRE(now - t0 == 8s);
}

TEST_CASE("--max-rate asks for sleeps of at most 100 ms even for one large sub-job") {
  const Clock::time_point t0{};
  Pacer pacer(100, 1 * MiB, t0);
  REQUIRE(pacer.may_start(8 * MiB, t0 + 8s));  // 8 s to pay for, paid from the start
  pacer.started_reads(8 * MiB, t0 + 8s);
  Clock::time_point now = t0 + 8s;
  unsigned sleeps = 0;
  while (!pacer.may_start(8 * MiB, now)) {
    const Duration d = pacer.sleep_for(now);
    REQUIRE(d > 0ns);
    REQUIRE(d <= Pacer::max_sleep);
    now += d;
    ++sleeps;
  }
  REQUIRE(now - t0 == 16s);
  REQUIRE(sleeps == 80);
}

TEST_CASE(
    "--max-rate holds within 10% from 1 MiB/s to 1 GiB/s, for small and large sub-jobs, when every wake-up is late") {
  // The engine's sleeps end late (timer slack, a busy machine: up to a
  // millisecond here), and a sub-job the rate allows while requests are in
  // flight waits for the next completion. A pacer that lost that time would
  // run 64 KiB sub-jobs at about one per wake-up: 64 MiB/s at most.
  const std::uint64_t rate = GENERATE(1 * MiB, 20 * MiB, 100 * MiB, 400 * MiB, 1024 * MiB);
  const std::uint64_t sub_job = GENERATE(4 * KiB, 64 * KiB, 512 * KiB, 4 * MiB);
  const Duration late = GENERATE(Duration{0}, Duration{60us}, Duration{1ms});
  const unsigned depth = GENERATE(1u, 16u);
  const Clock::time_point t0{};
  Pacer pacer(100, rate, t0);
  Workload w;
  w.sub_job = sub_job;
  w.depth = depth;
  // Devices faster than every rate: about 4 GB/s, even one request at a time.
  w.io_time = Duration{std::max<std::int64_t>(1'000, static_cast<std::int64_t>(sub_job / 4))};  // 4 bytes per ns
  w.wake_late = late;
  // At least 2 s of copying, and at least 64 sub-jobs.
  w.total_bytes = std::max<std::uint64_t>(2 * rate, 64 * sub_job);
  w.horizon = 1h;
  const Outcome o = simulate(pacer, t0, w);
  const double achieved = static_cast<double>(o.started) / seconds(o.elapsed);
  CAPTURE(rate, sub_job, seconds(late), depth, achieved / static_cast<double>(rate), seconds(o.elapsed));
  REQUIRE(o.started == w.total_bytes);
  REQUIRE(achieved <= 1.10 * static_cast<double>(rate));
  REQUIRE(achieved >= 0.90 * static_cast<double>(rate));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--throttle holds with 64 KiB sub-jobs and late wake-ups") {
  const unsigned percent = GENERATE(10u, 50u, 90u);
  const Clock::time_point t0{};
  Pacer pacer(percent, 0, t0);
  Workload w;
  w.sub_job = 64 * KiB;
  w.io_time = 40us;
  w.depth = 1;
  w.wake_late = 1ms;
  w.horizon = 4s;
  const Outcome o = simulate(pacer, t0, w);
  const double share = seconds(o.busy) / seconds(o.elapsed);
  CAPTURE(percent, share, o.sleeps);
  REQUIRE(share == Approx(percent / 100.0).margin(0.03));
}

TEST_CASE("--throttle and --max-rate together: the stricter one sets the pace") {
  const Clock::time_point t0{};
  Workload w;
  w.total_bytes = 32 * MiB;
  w.io_time = 10ms;  // 512 KiB in 10 ms: the devices alone would do 50 MiB/s per sub-job
  w.depth = 1;
  w.horizon = 1h;

  SECTION("the rate is stricter") {
    Pacer pacer(50, 8 * MiB, t0);  // 8 MiB/s keeps the devices busy 16% of the time
    const Outcome o = simulate(pacer, t0, w);
    CAPTURE(seconds(o.elapsed));
    REQUIRE(seconds(o.elapsed) == Approx(4.0).epsilon(0.05));
    REQUIRE(seconds(o.busy) / seconds(o.elapsed) < 0.5);
  }
  SECTION("the throttle is stricter") {
    Pacer pacer(10, 100 * MiB, t0);  // 10% of 50 MiB/s is 5 MiB/s
    const Outcome o = simulate(pacer, t0, w);
    CAPTURE(seconds(o.elapsed));
    REQUIRE(seconds(o.elapsed) == Approx(6.4).epsilon(0.05));
    REQUIRE(seconds(o.busy) / seconds(o.elapsed) == Approx(0.10).margin(0.01));
    REQUIRE(o.longest_sleep <= Pacer::max_sleep);
  }
}
