// The io_uring backend on real files: what the engine relies on. Skipped (with a
// warning) where io_uring cannot be set up.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend_harness.hpp"
#include "kcopy/error.hpp"
#include "kcopy/page_pool.hpp"
#include "kcopy/uring_backend.hpp"

using namespace kcopy;
using kcopy::test::each_once;
using kcopy::test::endpoint;
using kcopy::test::reap_all;
using kcopy::test::TempFile;

namespace {

// The backend, or nothing (and a warning) where io_uring cannot be set up here.
std::unique_ptr<UringBackend> try_uring(std::vector<FdEndpoint> eps, std::size_t max_requests) {
  try {
    return std::make_unique<UringBackend>(std::move(eps), max_requests);
  } catch (const Error& e) {
    WARN("io_uring unavailable, test skipped: " << e.what());
    return nullptr;
  }
}

IoRequest make_read(unsigned endpoint, std::span<std::byte> buffer, std::uint64_t offset) {
  return IoRequest::make_read(endpoint, buffer, offset, nullptr);
}

IoRequest make_write(unsigned endpoint, std::span<std::byte> buffer, std::uint64_t offset) {
  return IoRequest::make_write(endpoint, buffer, offset, nullptr);
}

}  // namespace

TEST_CASE("io_uring copies a file byte for byte, through registered page-pool memory or not") {
  const bool registered = GENERATE(true, false);
  // 1 MiB + 1000 bytes: the aligned part goes through O_DIRECT, the tail through
  // the page cache.
  const std::size_t size = (1 << 20) + 1000;
  TempFile src(size), dst(0);
  auto b = try_uring({endpoint(src.direct_fd, src.fd, 4096), endpoint(dst.direct_fd, dst.fd, 4096)}, 8);
  if (!b) return;
  PagePool pool(64);  // 4 buffers of 64 KiB
  if (registered) b->register_buffers(pool.memory());
  REQUIRE(b->fixed_buffers() == registered);

  std::vector<std::span<std::byte>> bufs;
  for (std::size_t i = 0; i < 4; ++i) bufs.push_back(pool.get(64 * 1024));
  for (std::size_t at = 0; at < size; at += bufs.size() * bufs[0].size()) {
    std::vector<IoRequest> reads, writes;
    for (std::size_t i = 0; i < bufs.size() && at + i * bufs[i].size() < size; ++i) {
      const std::size_t offset = at + i * bufs[i].size();
      reads.push_back(make_read(0, bufs[i].first(std::min(bufs[i].size(), size - offset)), offset));
    }
    std::vector<IoRequest*> rp;
    for (auto& r : reads) rp.push_back(&r);
    REQUIRE(each_once(reap_all(*b, rp)));
    for (auto& r : reads) {
      REQUIRE(r.result == static_cast<long>(r.buffer.size()));
      writes.push_back(make_write(1, r.buffer, r.offset));
    }
    std::vector<IoRequest*> wp;
    for (auto& w : writes) wp.push_back(&w);
    REQUIRE(each_once(reap_all(*b, wp)));
    for (auto& w : writes) REQUIRE(w.result == static_cast<long>(w.buffer.size()));
  }
  REQUIRE(b->flush(1) == 0);
  REQUIRE(dst.contents() == src.contents());

  // A buffer outside the registered memory still works (a plain READ).
  alignas(4096) static std::byte outside[4096];
  IoRequest rd = make_read(0, outside, 8192);
  REQUIRE(each_once(reap_all(*b, {&rd})));
  REQUIRE(rd.result == 4096);
  REQUIRE(std::to_integer<int>(outside[0]) == 8192 % 251);
  for (auto& buf : bufs) pool.put(buf);
}

TEST_CASE("io_uring returns a refused request exactly once, with -errno") {
  TempFile src(8192);
  const int ro = ::open(src.path.c_str(), O_RDONLY);
  REQUIRE(ro >= 0);
  const int closed = 1000;  // a high number: not reused by the ring's own descriptor
  REQUIRE(::fcntl(closed, F_GETFD) < 0);
  // 0: read-only; 1: O_DIRECT claimed aligned to 1 byte (so misaligned requests
  // reach it); 2: a descriptor that is not open.
  auto b = try_uring({endpoint(ro, ro, 1), endpoint(src.direct_fd, src.direct_fd, 1), endpoint(closed, closed, 1)}, 8);
  if (!b) {
    ::close(ro);
    return;
  }
  alignas(4096) static std::byte buf[3][4096];
  IoRequest wr = make_write(0, buf[0], 0);                               // writing a read-only fd
  IoRequest misaligned = make_read(1, std::span(buf[1]).first(512), 1);  // O_DIRECT at byte 1
  IoRequest bad_fd = make_read(2, buf[2], 0);
  IoRequest good = make_read(0, buf[2], 4096);
  REQUIRE(each_once(reap_all(*b, {&wr, &misaligned, &bad_fd, &good})));
  REQUIRE(wr.result == -EBADF);
  REQUIRE(misaligned.result == -EINVAL);
  REQUIRE(bad_fd.result == -EBADF);
  REQUIRE(good.result == 4096);
  ::close(ro);
}

TEST_CASE("io_uring returns a read past the end of a file short, not as an error") {
  TempFile src(10000);
  auto b = try_uring({endpoint(src.fd, src.fd, 1)}, 8);
  if (!b) return;
  alignas(4096) static std::byte buf[2][8192];
  IoRequest straddling = make_read(0, buf[0], 4096);
  IoRequest beyond = make_read(0, buf[1], 20000);
  REQUIRE(each_once(reap_all(*b, {&straddling, &beyond})));
  REQUIRE(straddling.result == 10000 - 4096);
  REQUIRE(beyond.result == 0);
}

TEST_CASE("io_uring completes more requests than its SQ ring holds, each exactly once") {
  const std::size_t count = 5000;
  TempFile src(count * 512);
  auto b = try_uring({endpoint(src.fd, src.fd, 1)}, count);
  if (!b) return;
  REQUIRE(b->sq_entries() < count);
  std::vector<std::byte> buf(count * 512);
  std::vector<IoRequest> reqs;
  for (std::size_t i = 0; i < count; ++i) reqs.push_back(make_read(0, std::span(buf).subspan(i * 512, 512), i * 512));
  std::vector<IoRequest*> ptrs;
  for (auto& r : reqs) ptrs.push_back(&r);
  REQUIRE(each_once(reap_all(*b, ptrs, 100)));
  for (auto& r : reqs) REQUIRE(r.result == 512);
  REQUIRE(std::memcmp(buf.data(), src.contents().data(), buf.size()) == 0);
}

TEST_CASE("io_uring keeps requests beyond its completion ring waiting, and completes each exactly once") {
  // More than the kernel's largest CQ (65536 entries): the backend holds the
  // rest back until completions make room.
  const std::size_t count = 70000;
  TempFile src(count * 8);
  auto b = try_uring({endpoint(src.fd, src.fd, 1)}, count);
  if (!b) return;
  std::vector<std::byte> buf(count * 8);
  std::vector<IoRequest> reqs;
  for (std::size_t i = 0; i < count; ++i) reqs.push_back(make_read(0, std::span(buf).subspan(i * 8, 8), i * 8));
  std::vector<IoRequest*> ptrs;
  for (auto& r : reqs) ptrs.push_back(&r);
  REQUIRE(each_once(reap_all(*b, ptrs, 1000)));
  for (auto& r : reqs) REQUIRE(r.result == 8);
  REQUIRE(std::memcmp(buf.data(), src.contents().data(), buf.size()) == 0);
}

TEST_CASE("io_uring reap returns 0 when nothing is in flight") {
  TempFile src(4096);
  auto b = try_uring({endpoint(src.fd, src.fd, 1)}, 4);
  if (!b) return;
  std::vector<IoRequest*> out(4);
  REQUIRE(b->reap(out, 0) == 0);
  REQUIRE(b->reap(out, 1) == 0);
  alignas(4096) static std::byte buf[4096];
  IoRequest rd = make_read(0, buf, 0);
  REQUIRE(each_once(reap_all(*b, {&rd})));
  REQUIRE(b->reap(out, 0) == 0);
  REQUIRE(b->reap(out, 1) == 0);
}

namespace {
std::atomic<int> alarms{0};
void on_alarm(int) { alarms.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

TEST_CASE("a signal during io_uring reap neither loses the completion nor ends the wait early") {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  auto b = try_uring({endpoint(pipe_fds[0], pipe_fds[0], 1)}, 4);
  if (!b) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return;
  }
  // SIGALRM every 2 ms, without SA_RESTART, while reap waits for a read of an
  // empty pipe that a writer fills after 100 ms.
  struct sigaction action {
  }, old_action{};
  action.sa_handler = on_alarm;
  sigemptyset(&action.sa_mask);
  REQUIRE(::sigaction(SIGALRM, &action, &old_action) == 0);
  sigset_t alarm_set, old_set;
  sigemptyset(&alarm_set);
  sigaddset(&alarm_set, SIGALRM);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &alarm_set, &old_set) == 0);  // the writer never takes it
  ssize_t written = 0;                                               // Catch2's REQUIRE is for the main thread only
  std::thread writer([fd = pipe_fds[1], &written] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const char data[512] = {'k'};
    written = ::write(fd, data, sizeof data);
  });
  REQUIRE(::pthread_sigmask(SIG_SETMASK, &old_set, nullptr) == 0);
  alarms = 0;
  itimerval every_2ms{{0, 2000}, {0, 2000}}, off{};
  REQUIRE(::setitimer(ITIMER_REAL, &every_2ms, nullptr) == 0);

  std::array<std::byte, 512> buf{};
  IoRequest rd = make_read(0, buf, 0);
  IoRequest* p = &rd;
  b->submit(std::span(&p, 1));
  std::vector<IoRequest*> out(4);
  const std::size_t n = b->reap(out, 1);

  ::setitimer(ITIMER_REAL, &off, nullptr);
  writer.join();
  ::sigaction(SIGALRM, &old_action, nullptr);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  REQUIRE(written == 512);
  REQUIRE(alarms > 0);
  REQUIRE(n == 1);
  REQUIRE(out[0] == &rd);
  REQUIRE(rd.result == 512);
  REQUIRE(std::to_integer<char>(buf[0]) == 'k');
}

namespace {
// From now on, io_uring_enter refuses (EAGAIN) to submit exactly one SQE, as a
// kernel with no room for requests would, but submits more, and waits. For a
// forked child only.
bool refuse_single_submissions() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[1])),  // to_submit (low half)
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}
}  // namespace

TEST_CASE("io_uring fails a request the kernel cannot take while nothing is in flight, once, instead of hanging") {
  TempFile src(8192);
  if (!try_uring({endpoint(src.fd, src.fd, 1)}, 4)) return;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // no Catch2 here: the exit status says what went wrong
    UringBackend b({endpoint(src.fd, src.fd, 1)}, 4);
    if (!refuse_single_submissions()) ::_exit(1);
    alignas(4096) static std::byte buf[3][4096];
    IoRequest refused = make_read(0, buf[0], 0);
    IoRequest* p = &refused;
    b.submit(std::span(&p, 1));
    std::vector<IoRequest*> out(4);
    int status = 0;
    if (b.reap(out, 1) != 1 || out[0] != &refused || refused.result != -EAGAIN) status |= 2;
    // The refused request is gone from the ring: two more (submitted together)
    // come back, and it does not come back again.
    IoRequest a = make_read(0, buf[1], 0), c = make_read(0, buf[2], 4096);
    IoRequest* pair[] = {&a, &c};
    b.submit(pair);
    std::size_t back = 0;
    for (std::size_t n; (n = b.reap(out, 1)) > 0;)
      for (std::size_t i = 0; i < n; ++i) {
        ++back;
        if (out[i] == &refused) status |= 4;
      }
    if (back != 2 || a.result != 4096 || c.result != 4096) status |= 8;
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

TEST_CASE("io_uring refuses a FUSE file added later (it would report its failures as done); others are added") {
  TempFile file(4096);
  auto b = try_uring({}, 4);
  if (!b) return;
  FdEndpoint fuse = endpoint(file.direct_fd, file.direct_fd, 1);
  fuse.on_fuse = true;
  REQUIRE(b->add_endpoint(fuse) == -ENOTSUP);
  REQUIRE(b->add_endpoint(endpoint(file.direct_fd, file.direct_fd, 1)) == 0);
}
