#include "registry/cli.h"
namespace mz::cli { __attribute__((weak)) void add_hub_commands(CLI::App&) {} }
