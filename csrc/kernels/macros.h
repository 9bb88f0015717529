// Host/device qualifiers for the per-element math shared by the CPU and CUDA kernels.
//
// The math headers in csrc/kernels/ are included by three compilers: g++ for the CPU kernels,
// nvcc for the CUDA kernels, and g++ again for the CUDA kernels under emulation
// (csrc/cuda/cuda_compat.h). They must not pull in torch headers, because the .cu files build
// against a CPU-only torch too. So we spell C10_HOST_DEVICE ourselves, exactly as c10 does,
// unless c10 already defined it.
#pragma once

#ifndef C10_HOST_DEVICE
#if defined(__CUDACC__) || defined(__HIPCC__)
#define C10_HOST_DEVICE __host__ __device__
#else
#define C10_HOST_DEVICE
#endif
#endif

#if defined(__CUDACC__)
#define FI_INLINE __forceinline__
#else
#define FI_INLINE inline __attribute__((always_inline))
#endif

namespace fastinpaint {

// Accumulation type: half and bfloat16 accumulate in float (so does float); double in double.
template <typename T>
struct acc_type {
  using type = float;
};
template <>
struct acc_type<double> {
  using type = double;
};
template <typename T>
using acc_t = typename acc_type<T>::type;

// Element types a launcher can be asked to run on (torch-free mirror of the ATen dtypes we use).
enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

}  // namespace fastinpaint
