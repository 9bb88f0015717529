// dtype dispatch for the CUDA launchers (torch-free, so no AT_DISPATCH here).
#pragma once

#include "cuda/cuda_compat.h"
#include "kernels/macros.h"

namespace fastinpaint {

// Calls f(T{}) with T the element type named by `dtype` and returns what f returns (a launch
// error message or nullptr). Under emulation __half / __nv_bfloat16 are cuda_compat.h's
// bit-compatible software types, so the half-precision kernels are tested on the CPU too.
template <typename F>
const char* fi_dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    case DType::Float16:
      return f(__half{});
    case DType::BFloat16:
      return f(__nv_bfloat16{});
    default:
      return "this dtype is not supported by this build of the fastinpaint CUDA kernels";
  }
}

}  // namespace fastinpaint
