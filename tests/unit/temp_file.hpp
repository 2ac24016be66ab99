#pragma once
// For the backends' unit tests: a temporary file with known contents.

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

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

}  // namespace kcopy::test
