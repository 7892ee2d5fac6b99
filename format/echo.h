// Caller input quoted in an error message: at most `max` characters (marked as cut), with
// control characters replaced, so a status never echoes unbounded or unprintable input.
#pragma once

#include <string>

namespace qdm {

std::string echo(const std::string& input, size_t max = 80);

}  // namespace qdm
