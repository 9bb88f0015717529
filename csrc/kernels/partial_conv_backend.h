// Entry points every backend of the fused partial convolution provides, on raw pointers.
//
// Deliberately without an include guard: it is included once per backend namespace
// (FI_BACKEND_NS = cpu, cuda, cuda_emu), so that the CPU loops, the CUDA launchers and their
// CPU emulation share one declaration and the op glue (csrc/ops/partial_conv.cpp) can call any of
// them with the same arguments. Torch-free, so that .cu files can include it.
//
// Every function returns nullptr on success or a message naming what failed. `stream` is a
// cudaStream_t for the CUDA backend and ignored elsewhere. Pointers are typed by `dtype`:
//   x, out, mask, new_mask, bias, grad_out, grad_conv: dtype
//   ratio, bias_partial: acc_t<dtype> (float, or double for Float64)
#include "kernels/macros.h"
#include "kernels/partial_conv.h"

#ifndef FI_BACKEND_NS
#error "define FI_BACKEND_NS (cpu, cuda or cuda_emu) before including kernels/partial_conv_backend.h"
#endif

namespace fastinpaint {
namespace FI_BACKEND_NS {

// out = x ⊙ M, with each input channel taking the mask plane of its segment. out may equal x.
//   x, out: activations laid out as `act` (C = C_in, P = H*W); mask: [N, S, H, W]
const char* pconv_apply_mask(DType dtype, const void* x, const void* mask, void* out, ActLayout act,
                             PConvMaskLayout layout, void* stream);

// ratio [N, G, OH, OW] and new_mask [N, new_mask_channels, OH, OW] from mask [N, S, H, W].
const char* pconv_mask_ratio(DType dtype, const void* mask, PConvMaskLayout layout, PConvWindow window,
                             int64_t N, void* ratio, void* new_mask, void* stream);

// In place on the bias-free conv output `out` (laid out as `act`, C = C_out, P = OH*OW):
// out = ratio > 0 ? out * ratio + bias : 0. `bias` may be null.
const char* pconv_forward_epilogue(DType dtype, void* out, const void* ratio, const void* bias, ActLayout act,
                                   int64_t groups, void* stream);

// grad_conv = grad_out * ratio; if bias_partial is not null, bias_partial[n, c] = Σ_p grad_out
// over the pixels with ratio > 0 (the bias gradient is its sum over n).
const char* pconv_backward_epilogue(DType dtype, const void* grad_out, const void* ratio, void* grad_conv,
                                    void* bias_partial, ActLayout act, int64_t groups, void* stream);

}  // namespace FI_BACKEND_NS
}  // namespace fastinpaint
