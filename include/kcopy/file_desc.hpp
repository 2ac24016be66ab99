#pragma once
// A move-only owner of one file descriptor (Seastar's file_desc, reduced).

#include <unistd.h>

#include <utility>

namespace kcopy {

/// Owns one fd and closes it on destruction. -1 means "none".
class FileDesc {
 public:
  FileDesc() = default;
  explicit FileDesc(int fd) : fd_(fd) {}
  FileDesc(FileDesc&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDesc& operator=(FileDesc&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  FileDesc(const FileDesc&) = delete;
  FileDesc& operator=(const FileDesc&) = delete;
  ~FileDesc() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

}  // namespace kcopy
