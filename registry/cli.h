// The mz CLI is assembled from groups of subcommands, one file per group (registry/cli_*.cpp).
// Two programs share them: `mz`, the LibTorch-free front end (hub commands; registry/mz_main.cpp),
// and `mz-torch`, which has every command (registry/mz_torch_main.cpp).
#pragma once

#include <exception>

#include <CLI/CLI.hpp>

namespace mz::cli {

void add_model_commands(CLI::App& app);  // list, info, convert, forward, bench   (cli_models.cpp)
void add_hub_commands(CLI::App& app);    // download, verify, cache              (cli_hub.cpp)
void add_predict_commands(CLI::App& app);  // predict, preprocess                (cli_predict.cpp)

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();

// Parses and runs `app` (the CLI's name and description are set here), reporting every failure as
// one line "mz: ..." on stderr. Exit codes: mz::Error's own (2 usage, 3 checkpoint, 4 load, 5 hub,
// 7 image), CLI11's for parse errors, `other_exit_code(e)` for any other exception (default 1).
int run(CLI::App& app, int argc, char** argv, int (*other_exit_code)(const std::exception&) = nullptr);

}  // namespace mz::cli
