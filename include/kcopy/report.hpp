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
/// sectors (on that device), and strerror (and one line for the sectors past
/// the list, should a list overflow); and, when the copy was cut short,
/// how far each destination got. `endpoints` are the plan's (0 = source).
void report_result(const JobResult& result, const CopyPlan& plan, std::span<const EndpointInfo> endpoints,
                   bool ignore_errors);

/// Logs (at -v) how many sectors really reached the destinations in `seconds`,
/// and the rate: the whole plan only when every destination holds all of it.
void report_summary(const JobResult& result, std::size_t destinations, double seconds);

}  // namespace kcopy
