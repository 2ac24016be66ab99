#pragma once
// What the user is told when a copy ends: messages on stderr and the exit status.

#include <span>

#include "kcopy/copy_plan.hpp"
#include "kcopy/kcopyd.hpp"

namespace kcopy {

/// The exit status of the contract: bit i-1 for each failed destination i, +64 for
/// a source read error; 128+signal when a signal cut the copy short.
int exit_status(const JobResult& result, int signal);

/// Logs (spdlog, stderr) one line per failed range: which endpoint, which
/// sectors (on that device), and strerror; and, when the copy was cut short,
/// how far each destination got. `endpoints` are the plan's (0 = source).
void report_result(const JobResult& result, const CopyPlan& plan, std::span<const EndpointInfo> endpoints,
                   bool ignore_errors);

}  // namespace kcopy
