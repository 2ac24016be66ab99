#pragma once
// For the backends' unit tests: a temporary file with known contents, an
// FdEndpoint over it, and a loop that submits requests and reaps them all.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/io_backend.hpp"

namespace kcopy::test {

// A temporary file of `bytes` bytes, each byte = its offset % 251, opened twice:
// `fd` through the page cache and `direct_fd` with O_DIRECT; removed at the end.
struct TempFile {
  std::string path;
  int fd = -1;
  int direct_fd = -1;
  explicit TempFile(std::size_t bytes) {
    char name[] = "/var/tmp/kcopy-unit-XXXXXX";
    fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    std::string data(bytes, '\0');
    for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i % 251);
    REQUIRE(::pwrite(fd, data.data(), bytes, 0) == static_cast<ssize_t>(bytes));
    direct_fd = ::open(name, O_RDWR | O_DIRECT);
    REQUIRE(direct_fd >= 0);
  }
  ~TempFile() {
    ::close(direct_fd);
    ::close(fd);
    ::unlink(path.c_str());
  }
  std::string contents() const {
    std::string s(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
    REQUIRE(::pread(fd, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size()));
    return s;
  }
};

/// An endpoint of two descriptors with the given direct-I/O alignment.
inline FdEndpoint endpoint(int direct_fd, int buffered_fd, std::uint32_t alignment) {
  FdEndpoint ep;
  ep.direct_fd = direct_fd;
  ep.buffered_fd = buffered_fd;
  ep.alignment = alignment;
  return ep;
}

/// Submits `reqs`, reaps (at most `batch` at a time) until the backend says
/// nothing is in flight, and returns how often each request came back.
inline std::vector<int> reap_all(IoBackend& b, const std::vector<IoRequest*>& reqs, std::size_t batch = 16) {
  std::unordered_map<const IoRequest*, std::size_t> index;
  for (std::size_t i = 0; i < reqs.size(); ++i) index[reqs[i]] = i;
  b.submit(reqs);
  std::vector<int> times(reqs.size());
  std::vector<IoRequest*> out(batch);
  for (;;) {
    const std::size_t n = b.reap(out, 1);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) ++times.at(index.at(out[i]));
  }
  return times;
}

/// Every request came back exactly once.
inline bool each_once(const std::vector<int>& times) {
  return std::all_of(times.begin(), times.end(), [](int t) { return t == 1; });
}

}  // namespace kcopy::test
