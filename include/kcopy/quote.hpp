#pragma once
// Every user-given string (a path, an argument) inside a message goes through here,
// so that a message is always one line and never drives the terminal.

#include <string>
#include <string_view>

namespace kcopy {

/// `text` with every control character other than a tab (a newline, a carriage
/// return, ESC, DEL) written as a C escape (\n, \r, \x1b, \x7f). Other bytes,
/// UTF-8 included, stay as they are.
std::string printable(std::string_view text);

/// printable(text) in single quotes: how a message names a path or an argument.
std::string quote(std::string_view text);

}  // namespace kcopy
