#pragma once
// Command-line checks shared by dense-prep and dense-eval. CLI11's PositiveNumber / NonNegativeNumber report
// "Value 0 not in range 0 to 1.797...e308", which reads as if 0 were allowed; these say what the flag needs.
// CLI11 prefixes the flag name: "--shard-rows: must be a positive integer (got -5)".
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dense::cli {

// An integer >= lo.
inline CLI::Validator integer_at_least(int64_t lo) {
  return CLI::Validator(
      [lo](std::string& text) -> std::string {
        int64_t v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return fmt::format("'{}' is not an integer", text);
        if (v >= lo) return "";
        if (lo == 1) return fmt::format("must be a positive integer (got {})", text);
        if (lo == 0) return fmt::format("must be 0 or more (got {})", text);
        return fmt::format("must be at least {} (got {})", lo, text);
      },
      lo == 1 ? "INT>0" : fmt::format("INT>={}", lo));
}

// A finite number in [lo, hi], or (lo, hi] / [lo, hi) / (lo, hi) with the open ends.
inline CLI::Validator number_in(double lo, double hi, bool lo_open = false, bool hi_open = false) {
  const std::string range = fmt::format("{}{}, {}{}", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v)) return fmt::format("'{}' is not a number", text);
        const bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
        return ok ? "" : fmt::format("must be in {} (got {})", range, text);
      },
      "NUMBER in " + range);
}

// CLI11 answers a misspelt subcommand with "A subcommand is required". Called before parsing: the first word
// that is neither an option nor the value of one of `options_with_values` must name a subcommand. Prints
// "<program>: error: unknown subcommand 'x'; expected one of: a, b, c" and returns false otherwise.
inline bool check_subcommand(const CLI::App& app, int argc, char** argv, const std::string& program,
                             const std::vector<std::string>& options_with_values = {}) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (!arg.empty() && arg[0] == '-') {
      for (const auto& o : options_with_values)
        if (arg == o) ++i;  // its value follows
      continue;
    }
    for (const auto& n : names)
      if (arg == n) return true;
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "%s: error: unknown subcommand '%s'; expected one of: %s (%s SUBCOMMAND --help)\n",
                 program.c_str(), arg.c_str(), list.c_str(), program.c_str());
    return false;
  }
  return true;
}

// The subcommand names, for "a subcommand is required" messages.
inline std::string subcommand_list(const CLI::App& app) {
  std::string list;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    list += (list.empty() ? "" : ", ") + sub->get_name();
  return list;
}

}  // namespace dense::cli
