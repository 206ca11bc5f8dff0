// The mz CLI is assembled from groups of subcommands, one file per group (registry/cli/*_commands.cpp).
// Two programs share them: `mz`, the LibTorch-free front end (hub commands; registry/cli/mz_main.cpp),
// and `mz-torch`, which has every command (registry/cli/mz_torch_main.cpp).
#pragma once

#include <exception>
#include <string>

#include <CLI/CLI.hpp>

namespace mz::cli {

void add_model_commands(CLI::App& app);  // list, info, convert, forward, bench   (model_commands.cpp)
void add_hub_commands(CLI::App& app);    // download, verify, cache              (hub_commands.cpp)
void add_fleet_commands(CLI::App& app);  // lock, mirror                         (fleet_commands.cpp)
void add_predict_commands(CLI::App& app);  // predict, preprocess                (predict_commands.cpp)
void add_doctor_commands(CLI::App& app);   // doctor                             (doctor_commands.cpp)
void add_text_commands(CLI::App& app);     // tokenize, embed                    (text_commands.cpp)
void add_audio_commands(CLI::App& app);    // transcribe                         (audio_commands.cpp)
void add_spec_commands(CLI::App& app);     // build                              (spec_commands.cpp)

// The file the dynamic linker bound libblas.so.3 to in this process ("" if none): LibTorch's BLAS.
std::string resolved_blas();

// Refuses, before any work, an output file that cannot be written: a directory, or a path whose parent is
// not an existing directory (mz::UsageError naming the path).
void check_output_file(const std::string& path);

// Why `path` cannot be an input file ("" when it can): missing, a directory, or not a regular file. The
// commands check their inputs with it before any work and throw their domain's error (ImageError, ...).
std::string unreadable_file(const std::string& path);

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();

// Parses and runs `app` (the CLI's name and description are set here), reporting every failure as
// one line "mz: ..." on stderr. Exit codes: mz::Error's own (2 usage, 3 checkpoint, 4 load, 5 hub,
// 7 image, 8 audio), 2 for CLI11's parse errors too, `other_exit_code(e)` for any other exception (default 1).
int run(CLI::App& app, int argc, char** argv, int (*other_exit_code)(const std::exception&) = nullptr);

}  // namespace mz::cli
