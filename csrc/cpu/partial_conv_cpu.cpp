// CPU backend of the fused partial convolution: at::parallel_for loops around the per-element
// math of kernels/partial_conv.h.
//
// Every pass works on whole pixel ranges of one image (all channels of a pixel in one task) and
// walks memory in the order the two layouts allow: contiguous on both sides when input and output
// layouts agree (so the inner loops vectorize), contiguous reads and cache-resident strided writes
// in pixel tiles when the pass also transposes NCHW <-> NHWC.
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#define FI_BACKEND_NS cpu
#include "kernels/partial_conv_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace cpu {
namespace {

// Elements per parallel task below which splitting costs more than it saves.
constexpr int64_t kGrain = 1 << 15;
// Blocks a transposing pass goes through: kBlockP pixels (a 64-byte cache line of floats, read
// or written whole along the pixel axis) x kBlockC channels.
constexpr int64_t kBlockP = 16, kBlockC = 8;
// Smallest pixel chunk per parallel task.
constexpr int64_t kTile = 16;

template <typename F>
const char* dispatch_float_types(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return nullptr;
    case DType::Float64:
      f(double{});
      return nullptr;
    default:
      return "the CPU kernels of fastinpaint support float32 and float64 only";
  }
}

// Calls f(std::bool_constant<in_cl>, std::bool_constant<out_cl>) so that layouts are compile-time.
template <typename F>
void dispatch_layouts(bool in_cl, bool out_cl, F&& f) {
  if (in_cl) {
    if (out_cl) f(std::true_type{}, std::true_type{});
    else f(std::true_type{}, std::false_type{});
  } else {
    if (out_cl) f(std::false_type{}, std::true_type{});
    else f(std::false_type{}, std::false_type{});
  }
}

// Pixel chunks per image: a function of the shape only (never of the thread count), so that the
// per-chunk partial sums of the backward pass, and hence the bias gradient, are deterministic.
int64_t chunks_per_image(const ActLayout& a) {
  return std::clamp<int64_t>(a.P * a.C / kGrain, 1, std::max<int64_t>(1, a.P / kTile));
}

// Runs f(n, k, p_begin, p_end) over every pixel chunk of every image, in parallel.
template <typename F>
void parallel_over_pixel_chunks(const ActLayout& a, int64_t K, F&& f) {
  at::parallel_for(0, a.N * K, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / K, k = nk % K;
      f(n, k, k * a.P / K, (k + 1) * a.P / K);
    }
  });
}

// out[out_index] = value(c, p, in_index) for every channel c and pixel p in [p0, p1) of image n.
// When the layouts agree both sides are walked contiguously (the inner loop vectorizes). When the
// pass transposes, it goes through kBlockP x kBlockC blocks: values are computed reading the input
// contiguously into a small buffer, which is then stored contiguously in the output's layout —
// instead of one strided access per element.
template <bool InCL, bool OutCL, typename T, typename Value>
FI_INLINE void visit_pixels(const ActLayout& a, int64_t n, int64_t p0, int64_t p1, T* out, Value&& value) {
  const int64_t C = a.C, P = a.P;
  if constexpr (!InCL && !OutCL) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t base = (n * C + c) * P;
      for (int64_t p = p0; p < p1; ++p) out[base + p] = value(c, p, base + p);
    }
  } else if constexpr (InCL && OutCL) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t base = (n * P + p) * C;
      for (int64_t c = 0; c < C; ++c) out[base + c] = value(c, p, base + c);
    }
  } else {
    T buf[kBlockP][kBlockC];
    for (int64_t t0 = p0; t0 < p1; t0 += kBlockP) {
      const int64_t tp = std::min(kBlockP, p1 - t0);
      for (int64_t c0 = 0; c0 < C; c0 += kBlockC) {
        const int64_t tc = std::min(kBlockC, C - c0);
        if constexpr (!InCL) {  // NCHW -> NHWC: read along p, write along c
          for (int64_t c = 0; c < tc; ++c) {
            const int64_t base = (n * C + c0 + c) * P + t0;
            for (int64_t p = 0; p < tp; ++p) buf[p][c] = value(c0 + c, t0 + p, base + p);
          }
          for (int64_t p = 0; p < tp; ++p) {
            T* dst = out + (n * P + t0 + p) * C + c0;
            for (int64_t c = 0; c < tc; ++c) dst[c] = buf[p][c];
          }
        } else {  // NHWC -> NCHW: read along c, write along p
          for (int64_t p = 0; p < tp; ++p) {
            const int64_t base = (n * P + t0 + p) * C + c0;
            for (int64_t c = 0; c < tc; ++c) buf[p][c] = value(c0 + c, t0 + p, base + c);
          }
          for (int64_t c = 0; c < tc; ++c) {
            T* dst = out + (n * C + c0 + c) * P + t0;
            for (int64_t p = 0; p < tp; ++p) dst[p] = buf[p][c];
          }
        }
      }
    }
  }
}

// Conv group of output channel c; the division is skipped in the common groups == 1 case.
FI_INLINE int64_t group_of(int64_t c, int64_t G, int64_t channels_per_group) {
  return G == 1 ? 0 : c / channels_per_group;
}

template <typename T>
void apply_mask(const T* x, const ActLayout& act, const T* mask, T* out, bool out_cl, const PConvMaskLayout& L) {
  using Acc = acc_t<T>;
  dispatch_layouts(act.channels_last, out_cl, [&](auto in_cl, auto o_cl) {
    parallel_over_pixel_chunks(act, chunks_per_image(act), [&](int64_t n, int64_t, int64_t p0, int64_t p1) {
      const T* mask_n = mask + n * L.S * act.P;
      visit_pixels<in_cl, o_cl>(act, n, p0, p1, out, [&](int64_t c, int64_t p, int64_t i) {
        return T(pconv_masked_value<Acc>(x[i], mask_n[L.chan_seg[c] * act.P + p]));
      });
    });
  });
}

template <typename T>
void mask_ratio(const T* mask, const PConvMaskLayout& L, const PConvWindow& w, int64_t N, acc_t<T>* ratio,
                T* new_mask) {
  const int64_t work_per_row = w.OW * w.kh * w.kw * (L.S + L.G);
  at::parallel_for(0, N * w.OH, std::max<int64_t>(1, kGrain / work_per_row), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / w.OH, oh = row % w.OH;
      for (int64_t ow = 0; ow < w.OW; ++ow) pconv_mask_ratio_at<T, acc_t<T>>(mask, L, w, n, oh, ow, ratio, new_mask);
    }
  });
}

template <typename T>
void forward_epilogue(const T* conv, const ActLayout& act, T* out, bool out_cl, const acc_t<T>* ratio,
                      const T* bias, int64_t G) {
  using Acc = acc_t<T>;
  const int64_t cpg = act.C / G;
  dispatch_layouts(act.channels_last, out_cl, [&](auto in_cl, auto o_cl) {
    parallel_over_pixel_chunks(act, chunks_per_image(act), [&](int64_t n, int64_t, int64_t p0, int64_t p1) {
      const Acc* ratio_n = ratio + n * G * act.P;
      visit_pixels<in_cl, o_cl>(act, n, p0, p1, out, [&](int64_t c, int64_t p, int64_t i) {
        const Acc b = bias ? Acc(bias[c]) : Acc(0);
        return T(pconv_forward_value<Acc>(conv[i], ratio_n[group_of(c, G, cpg) * act.P + p], b));
      });
    });
  });
}

template <typename T>
void backward_epilogue(const T* grad_out, const ActLayout& act, T* grad_conv, bool out_cl, const acc_t<T>* ratio,
                       acc_t<T>* bias_partial, int64_t G) {
  using Acc = acc_t<T>;
  const int64_t C = act.C, cpg = C / G, K = chunks_per_image(act);
  // Bias-gradient partial sums per (image, pixel chunk, channel), added in a fixed order below.
  std::vector<Acc> chunk_sums(bias_partial ? act.N * K * C : 0, Acc(0));
  dispatch_layouts(act.channels_last, out_cl, [&](auto in_cl, auto o_cl) {
    parallel_over_pixel_chunks(act, K, [&](int64_t n, int64_t k, int64_t p0, int64_t p1) {
      const Acc* ratio_n = ratio + n * G * act.P;
      Acc* sums = bias_partial ? chunk_sums.data() + (n * K + k) * C : nullptr;
      visit_pixels<in_cl, o_cl>(act, n, p0, p1, grad_conv, [&](int64_t c, int64_t p, int64_t i) {
        const Acc go = grad_out[i], r = ratio_n[group_of(c, G, cpg) * act.P + p];
        if (sums) sums[c] += pconv_grad_bias_term<Acc>(go, r);
        return T(pconv_grad_conv_value<Acc>(go, r));
      });
    });
  });
  if (!bias_partial) return;
  for (int64_t n = 0; n < act.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      Acc s = Acc(0);
      for (int64_t k = 0; k < K; ++k) s += chunk_sums[(n * K + k) * C + c];
      bias_partial[n * C + c] = s;
    }
}

}  // namespace

const char* pconv_apply_mask(DType dtype, const void* x, ActLayout x_act, const void* mask, void* out,
                             bool out_channels_last, PConvMaskLayout layout, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    apply_mask(static_cast<const T*>(x), x_act, static_cast<const T*>(mask), static_cast<T*>(out),
               out_channels_last, layout);
  });
}

const char* pconv_mask_ratio(DType dtype, const void* mask, PConvMaskLayout layout, PConvWindow window, int64_t N,
                             void* ratio, void* new_mask, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    mask_ratio(static_cast<const T*>(mask), layout, window, N, static_cast<acc_t<T>*>(ratio),
               static_cast<T*>(new_mask));
  });
}

const char* pconv_forward_epilogue(DType dtype, const void* conv, ActLayout conv_act, void* out,
                                   bool out_channels_last, const void* ratio, const void* bias, int64_t groups,
                                   void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    forward_epilogue(static_cast<const T*>(conv), conv_act, static_cast<T*>(out), out_channels_last,
                     static_cast<const acc_t<T>*>(ratio), static_cast<const T*>(bias), groups);
  });
}

const char* pconv_backward_epilogue(DType dtype, const void* grad_out, ActLayout grad_act, void* grad_conv,
                                    bool grad_conv_channels_last, const void* ratio, void* bias_partial,
                                    int64_t groups, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    backward_epilogue(static_cast<const T*>(grad_out), grad_act, static_cast<T*>(grad_conv),
                      grad_conv_channels_last, static_cast<const acc_t<T>*>(ratio),
                      static_cast<acc_t<T>*>(bias_partial), groups);
  });
}

}  // namespace cpu
}  // namespace fastinpaint
