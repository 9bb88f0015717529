// dtype dispatch for the CUDA launchers (torch-free, so no AT_DISPATCH here).
#pragma once

#include "cuda/cuda_compat.h"
#include "kernels/macros.h"

namespace fastinpaint {

// Calls f(T{}) with T the element type named by `dtype` and returns what f returns (a launch
// error message or nullptr). Half types exist only for the real GPU build: the CPU emulation
// has no __half, and the CPU backend itself is float32/float64.
template <typename F>
const char* fi_dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
#if defined(__CUDACC__)
    case DType::Float16:
      return f(__half{});
    case DType::BFloat16:
      return f(__nv_bfloat16{});
#endif
    default:
      return "this dtype is not supported by this build of the fastinpaint CUDA kernels";
  }
}

}  // namespace fastinpaint
