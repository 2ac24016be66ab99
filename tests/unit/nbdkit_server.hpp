#pragma once
// An nbdkit server for the NBD unit tests: on a Unix socket in a temporary
// directory, nothing leaves the machine.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace kcopy::test {

inline bool nbdkit_installed() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', at), dirs.size());
    if (::access((dirs.substr(at, end - at) + "/nbdkit").c_str(), X_OK) == 0) return true;
    at = end + 1;
  }
  return false;
}

// `nbdkit -f --exit-with-parent -U SOCKET ARGS...` in a temporary directory,
// killed and removed at the end of the test.
class Nbdkit {
 public:
  // The server, or nothing (and a warning) where nbdkit is not installed.
  static std::unique_ptr<Nbdkit> start(const std::vector<std::string>& args) {
    if (!nbdkit_installed()) {
      WARN("nbdkit is not installed (apt-get install nbdkit): NBD test skipped");
      return nullptr;
    }
    return std::unique_ptr<Nbdkit>(new Nbdkit(args));
  }

  ~Nbdkit() {
    kill();
    ::unlink(socket_.c_str());
    ::unlink(pidfile_.c_str());
    ::rmdir(dir_.c_str());
  }

  std::string uri() const { return "nbd+unix:///?socket=" + socket_; }
  const std::string& dir() const { return dir_; }

  // SIGKILL, as a crash or a pulled cable would end it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  explicit Nbdkit(const std::vector<std::string>& args) {
    char name[] = "/tmp/kcopy-nbd-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    dir_ = name;
    socket_ = dir_ + "/sock";
    pidfile_ = dir_ + "/pid";
    std::vector<std::string> all = {"nbdkit", "-f", "--exit-with-parent", "-U", socket_, "-P", pidfile_};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);  // its messages about injected errors are expected
      ::dup2(null, STDERR_FILENO);
      ::execvp("nbdkit", argv.data());
      ::_exit(127);
    }
    // Ready when the PID file is written: nbdkit listens on the socket by then.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    struct stat st {};
    while (::stat(pidfile_.c_str(), &st) != 0 || st.st_size == 0) {
      int status = 0;
      REQUIRE(::waitpid(pid_, &status, WNOHANG) == 0);  // nbdkit exited: bad arguments
      REQUIRE(std::chrono::steady_clock::now() < give_up);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  std::string dir_;
  std::string socket_;
  std::string pidfile_;
  pid_t pid_ = -1;
};

}  // namespace kcopy::test
