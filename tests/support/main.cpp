// The doctest main of every C++ test program (tests/CMakeLists.txt: mz_doctest).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
