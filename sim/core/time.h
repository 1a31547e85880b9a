// Simulated time: signed 64-bit integer nanoseconds (about 292 years of range).
// Integer time keeps event ordering exact and runs byte-identical across
// machines; seconds appear only at the edges (config in, reports out).
#pragma once
#include <cmath>
#include <cstdint>

namespace pdsim {

using SimTime = std::int64_t;  // nanoseconds since simulation start

constexpr SimTime kNsPerSecond = 1'000'000'000;
// The latest a batch may end (~32 years): far inside the int64 range, so
// sums of times cannot overflow it.
constexpr double kMaxSimSeconds = 1e9;

// Rounds to the nearest nanosecond; durations below 0.5 ns become 0.
inline SimTime seconds_to_ns(double seconds) {
  return static_cast<SimTime>(std::llround(seconds * 1e9));
}
inline double ns_to_seconds(SimTime ns) { return static_cast<double>(ns) * 1e-9; }

}  // namespace pdsim
