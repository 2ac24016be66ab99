#!/usr/bin/env python3
"""What a terminal shows for the bytes a program wrote to it.

    screen.py FILE

FILE holds the bytes as written (on_pty.py turns output post-processing off).
They are played on a terminal without wrapping: "\\r" returns to the start of
the row, "\\n" ends the row (as ONLCR would make it), any other byte is written
over what the row holds at the cursor. Prints one JSON object:

    {"frames": [...],   the row as it looked each time it was redrawn or
                        ended ("\\r" or "\\n"), trailing blanks dropped,
                        empty ones left out: every state the user saw
     "lines": [...],    the rows as they stay on the screen at the end
     "carriage_returns": N, "ends_with_newline": true|false}

Standard library only.
"""
import json
import sys


def main():
    data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
    row, col = [], 0
    frames, lines = [], []

    def text():
        return "".join(row).rstrip(" ")

    for ch in data:
        if ch in "\r\n":
            if text():
                frames.append(text())
            if ch == "\n":
                lines.append(text())
                row = []
            col = 0
            continue
        if col < len(row):
            row[col] = ch
        else:
            row.extend(" " * (col - len(row)))
            row.append(ch)
        col += 1
    if text():
        lines.append(text())
    print(json.dumps({"frames": frames, "lines": lines, "carriage_returns": data.count("\r"),
                      "ends_with_newline": data.endswith("\n")}))


if __name__ == "__main__":
    main()
