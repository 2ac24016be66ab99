#pragma once
// What libkcopy.so exports of the C++ engine: the engine is compiled with
// -fvisibility=hidden, and KCOPY_API marks the functions of the C++ API (so
// that no template instantiated inside, of the standard library or of fmt, is
// exported with them).

#define KCOPY_API __attribute__((visibility("default")))
