#include "kcopy/stderr_sink.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

namespace kcopy {
namespace {

// Writes all of `text` to fd 2, going on after EINTR and short writes; gives up
// on any other error (nothing can be said about it: stderr is where we say things).
void write_stderr(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

void StderrSink::draw_line(std::string_view line, std::size_t columns) {
  std::lock_guard lock(mutex_);
  if (columns > 0) width_ = std::min(width_, columns - 1);
  std::string out = "\r";
  out += line;
  if (drawn_ && width_ > line.size()) out.append(width_ - line.size(), ' ');  // blank the rest of the old one
  write_stderr(out);
  width_ = std::max(line.size(), drawn_ ? width_ : 0);
  line_ = line;
  drawn_ = true;
}

void StderrSink::end_line(bool keep) {
  std::lock_guard lock(mutex_);
  if (!drawn_) return;
  write_stderr(keep ? std::string("\n") : "\r" + std::string(width_, ' ') + "\r");
  drawn_ = false;
  width_ = 0;
}

void StderrSink::write_lines(std::string_view text) {
  std::lock_guard lock(mutex_);
  write_between_frames(text);
}

void StderrSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  write_between_frames(std::string_view(formatted.data(), formatted.size()));
}

void StderrSink::write_between_frames(std::string_view text) {
  if (!drawn_) return write_stderr(text);
  std::string out = "\r" + std::string(width_, ' ') + "\r";
  out += text;
  out += line_;  // drawn again below the text, at the start of a line
  write_stderr(out);
  width_ = line_.size();
}

std::shared_ptr<StderrSink> install_stderr_logger(int verbosity) {
  auto sink = std::make_shared<StderrSink>();
  auto log = std::make_shared<spdlog::logger>("kcopy", sink);
  log->set_pattern("kcopy: %v");
  log->set_level(verbosity < 0    ? spdlog::level::err
                 : verbosity == 0 ? spdlog::level::info
                 : verbosity == 1 ? spdlog::level::debug
                                  : spdlog::level::trace);
  spdlog::set_default_logger(log);
  return sink;
}

}  // namespace kcopy
