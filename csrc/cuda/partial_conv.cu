// CUDA backend of the fused partial convolution: indexing and launches only; the math is
// kernels/partial_conv.h, the same functions the CPU backend runs.
//
// Compiled twice: by nvcc for the GPU, and by g++ with FASTINPAINT_CUDA_EMULATION (namespace
// cuda_emu) so that the tests run these very kernels on the CPU (see cuda_compat.h).
#include "cuda/cuda_compat.h"
#include "cuda/dispatch.cuh"

#define FI_BACKEND_NS FI_DEVICE_NS
#include "kernels/partial_conv_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace FI_DEVICE_NS {
namespace {

constexpr unsigned kThreads = 256;

// Elementwise kernels walk the flat index of the tensor they write (coalesced stores) and read
// their input through its own layout (a transposition, when the layouts differ, costs strided
// reads only).
template <typename T>
__global__ void pconv_apply_mask_kernel(const T* x, ActLayout x_act, const T* __restrict__ mask,
                                        T* out, bool out_cl, PConvMaskLayout L) {
  using Acc = acc_t<T>;
  const ActLayout out_act = x_act.with_channels_last(out_cl);
  const int64_t total = x_act.N * x_act.C * x_act.P;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, p;
    out_act.unravel(o, n, c, p);
    const Acc m = static_cast<Acc>(mask[(n * L.S + L.chan_seg[c]) * x_act.P + p]);
    out[o] = static_cast<T>(pconv_masked_value<Acc>(static_cast<Acc>(x[x_act.offset(n, c, p)]), m));
  }
}

template <typename T>
__global__ void pconv_mask_ratio_kernel(const T* __restrict__ mask, PConvMaskLayout L, PConvWindow w, int64_t N,
                                        acc_t<T>* ratio, T* new_mask) {
  const int64_t total = N * w.OH * w.OW;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = i % w.OW, oh = (i / w.OW) % w.OH, n = i / (w.OW * w.OH);
    pconv_mask_ratio_at<T, acc_t<T>>(mask, L, w, n, oh, ow, ratio, new_mask);
  }
}

template <typename T>
__global__ void pconv_forward_epilogue_kernel(const T* conv, ActLayout conv_act, T* out, bool out_cl,
                                              const acc_t<T>* __restrict__ ratio, const T* __restrict__ bias,
                                              int64_t G) {
  using Acc = acc_t<T>;
  const ActLayout out_act = conv_act.with_channels_last(out_cl);
  const int64_t total = conv_act.N * conv_act.C * conv_act.P, cpg = conv_act.C / G;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, p;
    out_act.unravel(o, n, c, p);
    const Acc r = ratio[(n * G + c / cpg) * conv_act.P + p];
    const Acc b = bias ? static_cast<Acc>(bias[c]) : Acc(0);
    out[o] = static_cast<T>(pconv_forward_value<Acc>(static_cast<Acc>(conv[conv_act.offset(n, c, p)]), r, b));
  }
}

// One block per (n, c) output plane: every thread writes grad_conv for its pixels and the block
// reduces the bias term in shared memory, so the bias gradient needs neither atomics nor a
// second pass over grad_out. Deterministic: the reduction order is fixed.
template <typename T>
__global__ void pconv_backward_epilogue_kernel(const T* __restrict__ grad_out, ActLayout grad_act, T* grad_conv,
                                               bool out_cl, const acc_t<T>* __restrict__ ratio,
                                               acc_t<T>* bias_partial, int64_t G) {
  using Acc = acc_t<T>;
  __shared__ Acc partial[kThreads];
  const ActLayout out_act = grad_act.with_channels_last(out_cl);
  const int64_t nc = blockIdx.x;
  const int64_t n = nc / grad_act.C, c = nc % grad_act.C;
  const Acc* r = ratio + (n * G + c / (grad_act.C / G)) * grad_act.P;
  Acc sum = Acc(0);
  for (int64_t p = threadIdx.x; p < grad_act.P; p += blockDim.x) {
    const Acc go = static_cast<Acc>(grad_out[grad_act.offset(n, c, p)]);
    grad_conv[out_act.offset(n, c, p)] = static_cast<T>(pconv_grad_conv_value<Acc>(go, r[p]));
    sum += pconv_grad_bias_term<Acc>(go, r[p]);
  }
  if (bias_partial == nullptr) return;  // uniform across the block: no thread waits at a barrier
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) bias_partial[nc] = partial[0];
}

}  // namespace

const char* pconv_apply_mask(DType dtype, const void* x, ActLayout x_act, const void* mask, void* out,
                             bool out_channels_last, PConvMaskLayout layout, void* stream) {
  return fi_dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    FI_LAUNCH(pconv_apply_mask_kernel<T>, fi_blocks_for(x_act.N * x_act.C * x_act.P, kThreads), kThreads,
              static_cast<cudaStream_t>(stream), static_cast<const T*>(x), x_act, static_cast<const T*>(mask),
              static_cast<T*>(out), out_channels_last, layout);
    return fi_last_error();
  });
}

const char* pconv_mask_ratio(DType dtype, const void* mask, PConvMaskLayout layout, PConvWindow window, int64_t N,
                             void* ratio, void* new_mask, void* stream) {
  return fi_dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    FI_LAUNCH(pconv_mask_ratio_kernel<T>, fi_blocks_for(N * window.OH * window.OW, kThreads), kThreads,
              static_cast<cudaStream_t>(stream), static_cast<const T*>(mask), layout, window, N,
              static_cast<acc_t<T>*>(ratio), static_cast<T*>(new_mask));
    return fi_last_error();
  });
}

const char* pconv_forward_epilogue(DType dtype, const void* conv, ActLayout conv_act, void* out,
                                   bool out_channels_last, const void* ratio, const void* bias, int64_t groups,
                                   void* stream) {
  return fi_dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    FI_LAUNCH(pconv_forward_epilogue_kernel<T>, fi_blocks_for(conv_act.N * conv_act.C * conv_act.P, kThreads),
              kThreads, static_cast<cudaStream_t>(stream), static_cast<const T*>(conv), conv_act,
              static_cast<T*>(out), out_channels_last, static_cast<const acc_t<T>*>(ratio),
              static_cast<const T*>(bias), groups);
    return fi_last_error();
  });
}

const char* pconv_backward_epilogue(DType dtype, const void* grad_out, ActLayout grad_act, void* grad_conv,
                                    bool grad_conv_channels_last, const void* ratio, void* bias_partial,
                                    int64_t groups, void* stream) {
  if (grad_act.N * grad_act.C > 0x7fffffffLL) return "pconv_backward_epilogue: more than 2^31-1 output planes";
  return fi_dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    FI_LAUNCH_COOPERATIVE(pconv_backward_epilogue_kernel<T>, unsigned(grad_act.N * grad_act.C), kThreads,
                          static_cast<cudaStream_t>(stream), static_cast<const T*>(grad_out), grad_act,
                          static_cast<T*>(grad_conv), grad_conv_channels_last, static_cast<const acc_t<T>*>(ratio),
                          static_cast<acc_t<T>*>(bias_partial), groups);
    return fi_last_error();
  });
}

}  // namespace FI_DEVICE_NS
}  // namespace fastinpaint
