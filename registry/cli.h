// The mz CLI is assembled from groups of subcommands, one file per group (registry/cli_*.cpp).
#pragma once

#include <CLI/CLI.hpp>

namespace mz::cli {

void add_model_commands(CLI::App& app);  // list, info, convert, forward, bench   (cli_models.cpp)
void add_hub_commands(CLI::App& app);    // download, verify, cache              (cli_hub.cpp)
void add_predict_commands(CLI::App& app);  // predict, preprocess                (cli_predict.cpp)

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();

}  // namespace mz::cli
