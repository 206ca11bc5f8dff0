// Compiles tests/support/support.h on its own, and builds the tests' shared precompiled header.
#include "tests/support/support.h"
