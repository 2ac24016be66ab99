#pragma once
// Standard error, shared by the messages (spdlog) and one progress line drawn
// in place: a message never lands in the middle of the line.

#include <spdlog/sinks/base_sink.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace kcopy {

/// The spdlog sink of kcopy's messages, and the owner of the progress line.
///
/// While a line is drawn (draw_line), a message clears it, is written on a line
/// of its own, and the line is drawn again below it, all in one write(2). The
/// line is redrawn with a carriage return and blanks over the rest of the
/// previous one: no terminal escape sequence. Writes go straight to file
/// descriptor 2 (no stdio buffer); a failed write (a closed stderr, a dead
/// pipe: EPIPE, SIGPIPE being ignored) only loses the text. Thread-safe: the
/// progress thread and the main thread share it.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  /// Draws `line` in place of the current one, without a newline. `line` holds
  /// no control character, and is narrower than the terminal's `columns` (a
  /// line that wraps cannot be drawn again in place); the blanks over a longer
  /// previous line stop there too (it may have been drawn before the terminal
  /// was made narrower).
  void draw_line(std::string_view line, std::size_t columns);
  /// Ends the drawn line, if any: with a newline (it stays on the screen), or
  /// cleared (the cursor back at the start of an empty line).
  void end_line(bool keep);
  /// Writes `text` (whole lines, each ending in a newline, not a spdlog
  /// message: a status line, a progress line for a log) as a message is.
  void write_lines(std::string_view text);

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  // Clears the drawn line, writes `text`, draws the line again; mutex_ held.
  void write_between_frames(std::string_view text);

  std::string line_;       // the drawn line (when drawn_)
  std::size_t width_ = 0;  // columns the terminal shows of it now
  bool drawn_ = false;
};

/// Makes a logger named "kcopy" on a new StderrSink the default logger, with
/// the pattern "kcopy: MESSAGE" and a level from `verbosity` (-v count minus
/// -q count: below 0 errors only, 0 info, 1 debug, more trace). Returns the sink.
std::shared_ptr<StderrSink> install_stderr_logger(int verbosity);

}  // namespace kcopy
