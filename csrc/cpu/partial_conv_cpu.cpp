// CPU backend of the fused partial convolution: at::parallel_for loops around the per-element
// math of kernels/partial_conv.h. Inner loops run over the contiguous dimension with no
// branches the compiler cannot turn into selects, so they vectorize.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#define FI_BACKEND_NS cpu
#include "kernels/partial_conv_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace cpu {
namespace {

// Elements per parallel task below which splitting costs more than it saves.
constexpr int64_t kGrain = 1 << 14;

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

template <typename T>
void apply_mask(const T* x, const T* mask, T* out, const ActLayout& act, const PConvMaskLayout& L) {
  using Acc = acc_t<T>;
  const int64_t P = act.P, C = act.C;
  if (!act.channels_last) {
    at::parallel_for(0, act.N * C, std::max<int64_t>(1, kGrain / P), [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        const T* m = mask + (n * L.S + L.chan_seg[c]) * P;
        const T* xi = x + nc * P;
        T* o = out + nc * P;
        for (int64_t p = 0; p < P; ++p) o[p] = T(pconv_masked_value<Acc>(xi[p], m[p]));
      }
    });
  } else {
    at::parallel_for(0, act.N * P, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
      for (int64_t np = begin; np < end; ++np) {
        const int64_t n = np / P, p = np % P;
        const T* m = mask + n * L.S * P + p;
        const T* xi = x + np * C;
        T* o = out + np * C;
        for (int64_t s = 0; s < L.S; ++s) {  // runs of channels sharing one mask value
          const Acc ms = m[s * P];
          for (int64_t c = L.seg_start[s]; c < L.seg_start[s + 1]; ++c) o[c] = T(pconv_masked_value<Acc>(xi[c], ms));
        }
      }
    });
  }
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
void forward_epilogue(T* out, const acc_t<T>* ratio, const T* bias, const ActLayout& act, int64_t G) {
  using Acc = acc_t<T>;
  const int64_t P = act.P, C = act.C, cpg = C / G;
  if (!act.channels_last) {
    at::parallel_for(0, act.N * C, std::max<int64_t>(1, kGrain / P), [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        const Acc* r = ratio + (n * G + c / cpg) * P;
        const Acc b = bias ? Acc(bias[c]) : Acc(0);
        T* o = out + nc * P;
        for (int64_t p = 0; p < P; ++p) o[p] = T(pconv_forward_value<Acc>(o[p], r[p], b));
      }
    });
  } else {
    at::parallel_for(0, act.N * P, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
      for (int64_t np = begin; np < end; ++np) {
        const int64_t n = np / P, p = np % P;
        T* o = out + np * C;
        for (int64_t g = 0; g < G; ++g) {
          const Acc r = ratio[(n * G + g) * P + p];
          for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
            o[c] = T(pconv_forward_value<Acc>(o[c], r, bias ? Acc(bias[c]) : Acc(0)));
        }
      }
    });
  }
}

template <typename T>
void backward_epilogue(const T* grad_out, const acc_t<T>* ratio, T* grad_conv, acc_t<T>* bias_partial,
                       const ActLayout& act, int64_t G) {
  using Acc = acc_t<T>;
  const int64_t P = act.P, C = act.C, cpg = C / G;
  if (!act.channels_last) {
    at::parallel_for(0, act.N * C, std::max<int64_t>(1, kGrain / P), [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        const Acc* r = ratio + (n * G + c / cpg) * P;
        const T* go = grad_out + nc * P;
        T* gc = grad_conv + nc * P;
        Acc bias_sum = Acc(0);
        for (int64_t p = 0; p < P; ++p) {
          gc[p] = T(pconv_grad_conv_value<Acc>(go[p], r[p]));
          bias_sum += pconv_grad_bias_term<Acc>(go[p], r[p]);
        }
        if (bias_partial) bias_partial[nc] = bias_sum;
      }
    });
    return;
  }
  // channels_last: pixels are the outer dimension, so the per-channel bias sum is reduced over
  // a fixed number of pixel chunks (deterministic: chunk sums are added in order afterwards).
  const int64_t chunks = std::min<int64_t>(P, 64);
  std::vector<Acc> chunk_sums(bias_partial ? act.N * chunks * C : 0, Acc(0));
  at::parallel_for(0, act.N * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / chunks, k = nk % chunks;
      Acc* sums = bias_partial ? chunk_sums.data() + nk * C : nullptr;
      for (int64_t p = k * P / chunks; p < (k + 1) * P / chunks; ++p) {
        const T* go = grad_out + (n * P + p) * C;
        T* gc = grad_conv + (n * P + p) * C;
        for (int64_t g = 0; g < G; ++g) {
          const Acc r = ratio[(n * G + g) * P + p];
          for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
            gc[c] = T(pconv_grad_conv_value<Acc>(go[c], r));
            if (sums) sums[c] += pconv_grad_bias_term<Acc>(go[c], r);
          }
        }
      }
    }
  });
  if (!bias_partial) return;
  for (int64_t n = 0; n < act.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      Acc s = Acc(0);
      for (int64_t k = 0; k < chunks; ++k) s += chunk_sums[(n * chunks + k) * C + c];
      bias_partial[n * C + c] = s;
    }
}

}  // namespace

const char* pconv_apply_mask(DType dtype, const void* x, const void* mask, void* out, ActLayout act,
                             PConvMaskLayout layout, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    apply_mask(static_cast<const T*>(x), static_cast<const T*>(mask), static_cast<T*>(out), act, layout);
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

const char* pconv_forward_epilogue(DType dtype, void* out, const void* ratio, const void* bias, ActLayout act,
                                   int64_t groups, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    forward_epilogue(static_cast<T*>(out), static_cast<const acc_t<T>*>(ratio), static_cast<const T*>(bias), act,
                     groups);
  });
}

const char* pconv_backward_epilogue(DType dtype, const void* grad_out, const void* ratio, void* grad_conv,
                                    void* bias_partial, ActLayout act, int64_t groups, void* /*stream*/) {
  return dispatch_float_types(dtype, [&](auto tag) {
    using T = decltype(tag);
    backward_epilogue(static_cast<const T*>(grad_out), static_cast<const acc_t<T>*>(ratio), static_cast<T*>(grad_conv),
                      static_cast<acc_t<T>*>(bias_partial), act, groups);
  });
}

}  // namespace cpu
}  // namespace fastinpaint
