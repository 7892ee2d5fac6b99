// Each `qdm` subcommand registers itself on the CLI11 app from its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace qdm::cli {

void add_train_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_train_classifier_command(CLI::App& app);

}  // namespace qdm::cli
