// The `k2forge` subcommands. Each parses its own options (cxxopts, with --help) and returns the
// process exit code; errors are thrown as k2f::Error and printed once by main.
#pragma once

#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "train/model_loading.h"

namespace k2f::cli {

using Args = std::vector<std::string>;

int run_init(const Args& args);
int run_inspect(const Args& args);
int run_score(const Args& args);
int run_export(const Args& args);
int run_bench(const Args& args);
int run_train(const Args& args);
int run_tokenizer(const Args& args);
int run_data(const Args& args);
int run_generate(const Args& args);
int run_plan(const Args& args);
int run_rl(const Args& args);

// Parses args (args[0] is the command name) and prints help and returns true when --help was given.
cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args, bool& wants_help);

// The value of a required option; throws naming it when absent.
std::string required_option(const cxxopts::ParseResult& parsed, const std::string& name, const std::string& command);

// The --set overrides, each "section.key=value". cxxopts splits a repeated vector option at commas
// too, so the pieces of a list value ("lora.targets=a,b") are joined back onto their key.
std::vector<std::string> recipe_overrides(const cxxopts::ParseResult& parsed);

// How `score` and `generate` open --model: --dequantize and --adapter as given.
train::LoadOptions model_load_options(const cxxopts::ParseResult& parsed);

}  // namespace k2f::cli
