// Names of the CUDA kernels launched under CPU emulation (cuda_compat.h records every launch).
//
// Torch-free and free of the emulation macros, so that both the emulated .cu translation units
// and the bindings can include it; the inline function's static is one object per process.
// Tests read it through fastinpaint._C.emulated_kernel_launches() to prove that every
// __global__ kernel in csrc/cuda/ really ran on the CPU in CI.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace fi_emu_detail {

struct LaunchRegistry {
  std::mutex mu;
  std::set<std::string> names;
};

inline LaunchRegistry& launch_registry() {
  static LaunchRegistry registry;
  return registry;
}

// `expr` is the launch macro's kernel argument as written, e.g. "pconv_apply_mask_kernel<T>".
inline void record_launch(const char* expr) {
  std::string name(expr);
  name = name.substr(0, name.find('<'));
  while (!name.empty() && name.back() == ' ') name.pop_back();
  LaunchRegistry& r = launch_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.names.insert(name);
}

inline std::vector<std::string> launched_kernels() {
  LaunchRegistry& r = launch_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return {r.names.begin(), r.names.end()};
}

}  // namespace fi_emu_detail
