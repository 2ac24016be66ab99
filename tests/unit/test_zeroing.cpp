// Zero and punch requests (IoRequest::make_zero / make_punch) on real files, in
// every file backend: done in place by fallocate where the file can, written
// where it cannot, and handed back exactly once either way. Files are in
// /var/tmp (a disk file system that can punch holes); a backend or file system
// that cannot be had here is skipped with a warning.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend_harness.hpp"
#include "fault_backend.hpp"
#include "kcopy/aio_backend.hpp"
#include "kcopy/error.hpp"
#include "kcopy/sync_backend.hpp"
#include "kcopy/uring_backend.hpp"
#include "kcopy/zero_offload.hpp"

using namespace kcopy;
using kcopy::test::each_once;
using kcopy::test::endpoint;
using kcopy::test::reap_all;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// One shared buffer of zeroes, as the engine passes to every zeroing request.
alignas(4096) std::byte zeroes[2 * MiB]{};

// A file of `bytes` random bytes in /var/tmp, written to disk (so that its
// blocks are allocated), opened twice: `fd` through the page cache and
// `direct_fd` with O_DIRECT. Removed at the end.
struct RandomFile {
  std::string path;
  std::string data;  // what was written
  int fd = -1;
  int direct_fd = -1;
  explicit RandomFile(std::size_t bytes) : data(bytes, '\0') {
    char name[] = "/var/tmp/kcopy-zero-XXXXXX";
    fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    std::mt19937 rng(static_cast<unsigned>(bytes));
    std::generate(data.begin(), data.end(), [&] { return static_cast<char>(rng() | 1); });  // never a zero byte
    REQUIRE(::pwrite(fd, data.data(), bytes, 0) == static_cast<ssize_t>(bytes));
    REQUIRE(::fsync(fd) == 0);
    direct_fd = ::open(name, O_RDWR | O_DIRECT);
    REQUIRE(direct_fd >= 0);
  }
  ~RandomFile() {
    ::close(direct_fd);
    ::close(fd);
    ::unlink(path.c_str());
  }
  std::string contents() const {
    std::string s(data.size(), '\0');
    REQUIRE(::pread(fd, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size()));
    return s;
  }
  blkcnt_t blocks() const {
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    return st.st_blocks;
  }
};

enum class Kind { sync, aio, uring };

const char* name(Kind k) {
  switch (k) {
    case Kind::sync:
      return "sync";
    case Kind::aio:
      return "libaio";
    case Kind::uring:
      return "io_uring";
  }
  return "?";
}

// The backend, or nothing (and a warning) where io_uring cannot be set up here.
std::unique_ptr<IoBackend> make_backend(Kind k, std::vector<FdEndpoint> eps, std::size_t max_requests = 8) {
  switch (k) {
    case Kind::sync:
      return std::make_unique<SyncBackend>(std::move(eps), max_requests);
    case Kind::aio:
      return std::make_unique<AioBackend>(std::move(eps), max_requests);
    case Kind::uring:
      try {
        return std::make_unique<UringBackend>(std::move(eps), max_requests);
      } catch (const Error& e) {
        WARN("io_uring unavailable, skipped: " << e.what());
        return nullptr;
      }
  }
  return nullptr;
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// Whether the file system of `fd` can punch holes (some cannot: skip then).
// A range past the end of the file probes without changing anything.
bool can_punch(int fd, off_t offset, off_t length) {
  return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0;
}

}  // namespace

TEST_CASE("a zero request makes its range read as zeroes and leaves the bytes around it") {
  const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
  CAPTURE(name(kind));
  RandomFile f(4 * MiB);
  auto b = make_backend(kind, {endpoint(f.direct_fd, f.fd, 4096)});
  if (!b) return;
  IoRequest z = IoRequest::make_zero(0, std::span(zeroes).first(1 * MiB), 1 * MiB + 64 * KiB, nullptr);
  REQUIRE(each_once(reap_all(*b, {&z})));
  REQUIRE(z.result == static_cast<long>(1 * MiB));
  const std::string now = f.contents();
  const std::size_t begin = 1 * MiB + 64 * KiB, end = begin + 1 * MiB;
  REQUIRE(all_zero(std::string_view(now).substr(begin, end - begin)));
  REQUIRE(now.compare(0, begin, f.data, 0, begin) == 0);
  REQUIRE(now.compare(end, std::string::npos, f.data, end, std::string::npos) == 0);
  REQUIRE(now.size() == f.data.size());  // KEEP_SIZE
}

TEST_CASE("a punch request makes a hole in a file that reads as zeroes") {
  const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
  CAPTURE(name(kind));
  RandomFile f(4 * MiB);
  if (!can_punch(f.fd, 4 * MiB, 4096)) {  // past the end: changes nothing
    WARN("this file system cannot punch holes, skipped");
    return;
  }
  auto b = make_backend(kind, {endpoint(f.direct_fd, f.fd, 4096)});
  if (!b) return;
  const blkcnt_t before = f.blocks();
  IoRequest p = IoRequest::make_punch(0, std::span(zeroes).first(2 * MiB), 1 * MiB, nullptr);
  REQUIRE(each_once(reap_all(*b, {&p})));
  REQUIRE(p.result == static_cast<long>(2 * MiB));
  const blkcnt_t after = f.blocks();
  CAPTURE(before, after);
  REQUIRE(before - after >= static_cast<blkcnt_t>(2 * MiB / 512));  // st_blocks counts 512-byte units
  REQUIRE(::lseek(f.fd, 1 * MiB, SEEK_HOLE) == static_cast<off_t>(1 * MiB));
  const std::string now = f.contents();
  REQUIRE(all_zero(std::string_view(now).substr(1 * MiB, 2 * MiB)));
  REQUIRE(now.compare(0, 1 * MiB, f.data, 0, 1 * MiB) == 0);
  REQUIRE(now.compare(3 * MiB, std::string::npos, f.data, 3 * MiB, std::string::npos) == 0);
}

TEST_CASE("zeroing not aligned to the direct-I/O alignment is written through the page cache instead") {
  const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
  const IoOp op = GENERATE(IoOp::zero, IoOp::punch);
  CAPTURE(name(kind), op == IoOp::zero ? "zero" : "punch");
  RandomFile f(64 * KiB);
  auto b = make_backend(kind, {endpoint(f.direct_fd, f.fd, 4096)});
  if (!b) return;
  // Sectors 1-3 of the first 4 KiB block, and a range over a block edge: an
  // O_DIRECT write of either would fail with EINVAL.
  IoRequest a = op == IoOp::zero ? IoRequest::make_zero(0, std::span(zeroes).first(1536), 512, nullptr)
                                 : IoRequest::make_punch(0, std::span(zeroes).first(1536), 512, nullptr);
  IoRequest c = op == IoOp::zero ? IoRequest::make_zero(0, std::span(zeroes).first(8192), 6144, nullptr)
                                 : IoRequest::make_punch(0, std::span(zeroes).first(8192), 6144, nullptr);
  REQUIRE(each_once(reap_all(*b, {&a, &c})));
  REQUIRE(a.result == 1536);
  REQUIRE(c.result == 8192);
  const std::string now = f.contents();
  REQUIRE(now.compare(0, 512, f.data, 0, 512) == 0);
  REQUIRE(all_zero(std::string_view(now).substr(512, 1536)));
  REQUIRE(now.compare(2048, 4096, f.data, 2048, 4096) == 0);
  REQUIRE(all_zero(std::string_view(now).substr(6144, 8192)));
  REQUIRE(now.compare(14336, std::string::npos, f.data, 14336, std::string::npos) == 0);
}

TEST_CASE("zeroing on a file that cannot do it in place is written, and the answer is remembered") {
  // A memfd (shmem, as tmpfs) punches holes but has no FALLOC_FL_ZERO_RANGE.
  const int fd = ::memfd_create("kcopy-zero", 0);
  REQUIRE(fd >= 0);
  const std::string data(64 * KiB, 'x');
  REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
  if (::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0) {
    WARN("this kernel's shmem zeroes ranges in place: the fallback is not exercised");
    ::close(fd);
    return;
  }
  REQUIRE(errno == EOPNOTSUPP);

  SECTION("the offload says so once") {
    ZeroOffload zo(std::vector<FdEndpoint>{endpoint(fd, fd, 1)});
    IoRequest z = IoRequest::make_zero(0, std::span(zeroes).first(4096), 0, nullptr);
    REQUIRE(zo.can(0, IoOp::zero));
    REQUIRE_FALSE(zo.try_in_place(z));
    REQUIRE_FALSE(zo.can(0, IoOp::zero));
    REQUIRE(zo.can(0, IoOp::punch));
  }
  SECTION("every backend writes the zeroes") {
    const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
    CAPTURE(name(kind));
    auto b = make_backend(kind, {endpoint(fd, fd, 1)});
    if (b) {
      IoRequest z1 = IoRequest::make_zero(0, std::span(zeroes).first(4096), 8192, nullptr);
      IoRequest z2 = IoRequest::make_zero(0, std::span(zeroes).first(4096), 20480, nullptr);
      REQUIRE(each_once(reap_all(*b, {&z1, &z2})));
      REQUIRE(z1.result == 4096);
      REQUIRE(z2.result == 4096);
      std::string now(data.size(), '\0');
      REQUIRE(::pread(fd, now.data(), now.size(), 0) == static_cast<ssize_t>(now.size()));
      REQUIRE(all_zero(std::string_view(now).substr(8192, 4096)));
      REQUIRE(all_zero(std::string_view(now).substr(20480, 4096)));
      REQUIRE(std::count(now.begin(), now.end(), 'x') == static_cast<long>(data.size() - 8192));
    }
  }
  ::close(fd);
}

TEST_CASE("an unaligned zeroing does not stop aligned ones from being done in place") {
  RandomFile f(64 * KiB);
  ZeroOffload zo(std::vector<FdEndpoint>{endpoint(f.direct_fd, f.fd, 4096)});
  REQUIRE(zo.alignment(0) == 4096);
  IoRequest unaligned = IoRequest::make_zero(0, std::span(zeroes).first(512), 512, nullptr);
  REQUIRE_FALSE(zo.try_in_place(unaligned));
  REQUIRE(zo.can(0, IoOp::zero));
  IoRequest aligned = IoRequest::make_zero(0, std::span(zeroes).first(8192), 8192, nullptr);
  REQUIRE(zo.try_in_place(aligned));
  REQUIRE(aligned.result == 8192);
  REQUIRE(zo.can(0, IoOp::zero));
}

TEST_CASE("a zeroing the kernel refuses comes back once, with -errno") {
  const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
  CAPTURE(name(kind));
  RandomFile f(64 * KiB);
  const int ro = ::open(f.path.c_str(), O_RDONLY);
  REQUIRE(ro >= 0);
  auto b = make_backend(kind, {endpoint(ro, ro, 1)});
  if (b) {
    IoRequest z = IoRequest::make_zero(0, std::span(zeroes).first(4096), 0, nullptr);
    IoRequest p = IoRequest::make_punch(0, std::span(zeroes).first(4096), 8192, nullptr);
    REQUIRE(each_once(reap_all(*b, {&z, &p})));
    REQUIRE(z.result == -EBADF);
    REQUIRE(p.result == -EBADF);
    REQUIRE(f.contents() == f.data);
  }
  ::close(ro);
}

TEST_CASE("reads, writes and zeroings mixed in one submit each come back exactly once") {
  const Kind kind = GENERATE(Kind::sync, Kind::aio, Kind::uring);
  const std::size_t batch = GENERATE(1u, 3u, 16u);
  CAPTURE(name(kind), batch);
  RandomFile src(256 * KiB), dst(256 * KiB);
  auto b = make_backend(kind, {endpoint(src.direct_fd, src.fd, 4096), endpoint(dst.direct_fd, dst.fd, 4096)}, 16);
  if (!b) return;
  alignas(4096) static std::byte buf[4][16 * KiB];
  std::vector<IoRequest> reqs;
  for (unsigned i = 0; i < 4; ++i) {
    reqs.push_back(IoRequest::make_read(0, std::span(buf[i]), i * 16 * KiB, nullptr));
    reqs.push_back(IoRequest::make_zero(1, std::span(zeroes).first(16 * KiB), (4 + i) * 16 * KiB, nullptr));
    reqs.push_back(IoRequest::make_punch(1, std::span(zeroes).first(16 * KiB), (8 + i) * 16 * KiB, nullptr));
  }
  reqs.push_back(IoRequest::make_zero(1, std::span(zeroes).first(1024), 512, nullptr));  // written: unaligned
  std::vector<IoRequest*> ptrs;
  for (auto& r : reqs) ptrs.push_back(&r);
  REQUIRE(each_once(reap_all(*b, ptrs, batch)));
  for (const auto& r : reqs) REQUIRE(r.result == static_cast<long>(r.buffer.size()));
  const std::string now = dst.contents();
  REQUIRE(all_zero(std::string_view(now).substr(64 * KiB, 128 * KiB)));
  REQUIRE(all_zero(std::string_view(now).substr(512, 1024)));
  REQUIRE(now.compare(192 * KiB, std::string::npos, dst.data, 192 * KiB, std::string::npos) == 0);
  REQUIRE(std::memcmp(buf[3], src.data.data() + 48 * KiB, 16 * KiB) == 0);
}

TEST_CASE("the fault-injecting backend zeroes in memory, counts what it zeroed, and fails zeroing where told") {
  test::FaultBackend b({std::vector<std::byte>(64 * KiB, std::byte{0xab})});
  b.faults.push_back({0, IoOp::zero, 40 * KiB, 41 * KiB, EIO});
  IoRequest z = IoRequest::make_zero(0, std::span(zeroes).first(8 * KiB), 8 * KiB, nullptr);
  IoRequest p = IoRequest::make_punch(0, std::span(zeroes).first(4 * KiB), 20 * KiB, nullptr);
  IoRequest bad = IoRequest::make_punch(0, std::span(zeroes).first(4 * KiB), 40 * KiB, nullptr);
  REQUIRE(each_once(reap_all(b, {&z, &p, &bad})));
  REQUIRE(z.result == static_cast<long>(8 * KiB));
  REQUIRE(p.result == static_cast<long>(4 * KiB));
  REQUIRE(bad.result == -EIO);
  REQUIRE(b.zeroed_bytes(0) == 12 * KiB);
  REQUIRE(b.nonzero_zeroings == 0);
  REQUIRE(b.disks_[0][8 * KiB] == std::byte{0});
  REQUIRE(b.disks_[0][16 * KiB - 1] == std::byte{0});
  REQUIRE(b.disks_[0][16 * KiB] == std::byte{0xab});
  REQUIRE(b.disks_[0][40 * KiB] == std::byte{0xab});
  REQUIRE(b.written(0)[8 * KiB] == 1);
  REQUIRE(b.written(0)[40 * KiB] == 0);
}
