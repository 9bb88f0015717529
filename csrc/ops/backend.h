// Which backend runs an op's kernels, and the one place that calls into them.
//
//   CPU            csrc/cpu/      CPU tensors (the default)
//   CUDA           csrc/cuda/     CUDA tensors, when the extension was built with nvcc
//   CUDAEmulated   csrc/cuda/     CPU tensors while CUDA emulation is switched on: the very
//                                 CUDA kernels, compiled by g++ through cuda/cuda_compat.h, run
//                                 on the CPU. Tests use it to check the GPU code without a GPU.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/macros.h"

namespace fastinpaint {

enum class Backend { CPU, CUDA, CUDAEmulated };

#ifdef FASTINPAINT_WITH_CUDA
inline constexpr bool kBuiltWithCuda = true;
#else
inline constexpr bool kBuiltWithCuda = false;
#endif
#ifdef FASTINPAINT_WITH_CUDA_EMULATION
inline constexpr bool kBuiltWithCudaEmulation = true;
#else
inline constexpr bool kBuiltWithCudaEmulation = false;
#endif

// Process-wide switch (not thread-local: autograd may run backward on another thread).
void set_cuda_emulation(bool enabled);
bool cuda_emulation_enabled();

// The backend for tensors on t's device; raises a clear error when that backend is not built.
Backend backend_for(const at::Tensor& t);

// Our torch-free dtype tag for t (float32/float64, and float16/bfloat16 on CUDA).
DType kernel_dtype(const at::Tensor& t);

// The stream the kernels of a call on t run on: PyTorch's current CUDA stream of t's device for a
// CUDA tensor (what torch.cuda.stream(...) selected), nullptr on the CPU. Taken here, in C++, as
// ATen's own kernels take it, so no caller passes streams around. Device-generic (c10's guard
// interface): the extension links no CUDA library of torch, and builds against a CPU-only torch.
void* current_stream(const at::Tensor& t);

// Raises (RuntimeError) with the kernel's name when a backend call reported an error.
void check_kernel_result(const char* kernel, const char* error);

}  // namespace fastinpaint

// FI_BACKEND_CALL(backend, fn, args...) calls fastinpaint::{cpu,cuda,cuda_emu}::fn(args...) and
// checks its result. The including file must have declared fn in the three namespaces (each
// op's kernels/<op>_backend.h, through ops/declare_backends.h). `if constexpr` keeps a backend that
// was not built from being referenced at link time.
#define FI_BACKEND_CALL(backend, fn, ...)                                                          \
  ::fastinpaint::check_kernel_result(#fn, [&]() -> const char* {                                   \
    switch (backend) {                                                                             \
      case ::fastinpaint::Backend::CPU:                                                            \
        return ::fastinpaint::cpu::fn(__VA_ARGS__);                                                \
      case ::fastinpaint::Backend::CUDA:                                                           \
        if constexpr (::fastinpaint::kBuiltWithCuda) return ::fastinpaint::cuda::fn(__VA_ARGS__);  \
        break;                                                                                     \
      case ::fastinpaint::Backend::CUDAEmulated:                                                   \
        if constexpr (::fastinpaint::kBuiltWithCudaEmulation)                                      \
          return ::fastinpaint::cuda_emu::fn(__VA_ARGS__);                                         \
        break;                                                                                     \
    }                                                                                              \
    return "this backend is not part of this build";                                               \
  }())

