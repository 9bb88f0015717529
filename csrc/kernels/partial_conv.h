// Per-element math of the fused partial convolution (Liu et al. 2018), shared verbatim by the CPU
// loops (csrc/cpu/partial_conv_cpu.cpp) and the CUDA kernels (csrc/cuda/partial_conv.cu).
//
//   out = W^T (X ⊙ M) · sum(1)/sum(M) + b   where sum(M) > 0,  else 0
//   m'  = 1                                where sum(M) > 0,  else 0
//
// The image convolution W^T (X ⊙ M) is ATen's (oneDNN / cuDNN). What is ours:
//   * the mask is stored as S single-channel "segments", segment s covering a contiguous run of
//     input channels (one segment = single-channel mask, C_in segments = per-channel mask,
//     two segments = a UNet decoder's [upsampled | skip] concatenation). sum(M) of a conv group
//     is then  Σ_s overlap(s, group) · box(m_s)  — box filters on single-channel planes, never a
//     second full convolution;
//   * the renormalisation ratio sum(1)/sum(M) per (n, conv group, oh, ow), computed in float
//     (double for double inputs) — the published layer's `+ 1e-8` underflows in fp16, we never
//     add an epsilon: the ratio is 0 exactly where the window has no valid input;
//   * one fused pass over the conv output applying ratio, bias and the hole zeroing, and the
//     matching pass in backward (grad_conv = grad_out · ratio, plus the bias-gradient term).
#pragma once

#include <cstdint>

#include "kernels/macros.h"

namespace fastinpaint {

// Geometry of one 2-D convolution window, in the units of the input plane.
struct PConvWindow {
  int64_t H, W;    // input plane
  int64_t OH, OW;  // output plane
  int kh, kw, sh, sw, ph, pw, dh, dw;
};

// How the mask's S single-channel segments map onto input channels and conv groups.
// All arrays live on the device that runs the kernel (one int64 buffer, see layout_size()).
struct PConvMaskLayout {
  const int64_t* seg_start;        // [S + 1]: segment s covers channels [seg_start[s], seg_start[s+1])
  const int64_t* group_first_seg;  // [G]: first segment that overlaps conv group g
  const int64_t* chan_seg;         // [C_in]: segment of each input channel
  int64_t S;                       // number of mask segments (= mask channels)
  int64_t G;                       // conv groups
  int64_t C_in;                    // input channels
  int64_t new_mask_channels;       // 1 (all groups see the same valid set) or G
};

FI_INLINE int64_t pconv_layout_size(int64_t S, int64_t G, int64_t C_in) { return S + 1 + G + C_in; }

// Window sum of one single-channel mask plane at output pixel (oh, ow); zero padding.
template <typename T, typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_window_sum(const T* plane, const PConvWindow& w, int64_t oh, int64_t ow) {
  Acc sum = Acc(0);
  const int64_t h0 = oh * w.sh - w.ph;
  const int64_t w0 = ow * w.sw - w.pw;
  for (int i = 0; i < w.kh; ++i) {
    const int64_t h = h0 + int64_t(i) * w.dh;
    if (h < 0 || h >= w.H) continue;
    const T* row = plane + h * w.W;
    for (int j = 0; j < w.kw; ++j) {
      const int64_t x = w0 + int64_t(j) * w.dw;
      if (x < 0 || x >= w.W) continue;
      sum += static_cast<Acc>(row[x]);
    }
  }
  return sum;
}

// sum(1) / sum(M), and 0 where the window has no valid input (which doubles as the hole flag:
// ratio > 0 <=> updated mask = 1). No epsilon: see the header comment.
template <typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_renorm_ratio(Acc valid_count, Acc window_size) {
  return valid_count > Acc(0) ? window_size / valid_count : Acc(0);
}

// Ratio of every conv group, and the updated mask, at output pixel (n, oh, ow).
//   mask:      [N, S, H, W] contiguous
//   ratio:     [N, G, OH, OW] contiguous (Acc)
//   new_mask:  [N, new_mask_channels, OH, OW] contiguous
template <typename T, typename Acc>
C10_HOST_DEVICE FI_INLINE void pconv_mask_ratio_at(const T* mask, const PConvMaskLayout& L, const PConvWindow& w,
                                                   int64_t n, int64_t oh, int64_t ow, Acc* ratio, T* new_mask) {
  const int64_t plane = w.H * w.W;
  const int64_t out_plane = w.OH * w.OW;
  const int64_t pix = oh * w.OW + ow;
  const int64_t cpg = L.C_in / L.G;  // input channels per conv group
  const Acc window_size = Acc(cpg * w.kh * w.kw);
  const T* mask_n = mask + n * L.S * plane;
  bool any_valid = false;
  for (int64_t g = 0; g < L.G; ++g) {
    const int64_t c_begin = g * cpg, c_end = c_begin + cpg;
    Acc valid = Acc(0);
    for (int64_t s = L.group_first_seg[g]; s < L.S && L.seg_start[s] < c_end; ++s) {
      const int64_t lo = L.seg_start[s] > c_begin ? L.seg_start[s] : c_begin;
      const int64_t hi = L.seg_start[s + 1] < c_end ? L.seg_start[s + 1] : c_end;
      valid += Acc(hi - lo) * pconv_window_sum<T, Acc>(mask_n + s * plane, w, oh, ow);
    }
    const Acc r = pconv_renorm_ratio(valid, window_size);
    ratio[(n * L.G + g) * out_plane + pix] = r;
    if (L.new_mask_channels == L.G) new_mask[(n * L.G + g) * out_plane + pix] = T(r > Acc(0) ? Acc(1) : Acc(0));
    any_valid = any_valid || r > Acc(0);
  }
  if (L.new_mask_channels != L.G) new_mask[n * out_plane + pix] = T(any_valid ? Acc(1) : Acc(0));
}

// Masking of one input element by its channel's mask value.
template <typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_masked_value(Acc x, Acc m) {
  return x * m;
}

// Forward epilogue on one conv output element (conv has no bias): renormalise, add bias, zero holes.
template <typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_forward_value(Acc conv, Acc ratio, Acc bias) {
  return ratio > Acc(0) ? conv * ratio + bias : Acc(0);
}

// Backward epilogue: d out / d conv = ratio (0 in holes) ...
template <typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_grad_conv_value(Acc grad_out, Acc ratio) {
  return grad_out * ratio;
}

// ... and d out / d bias = 1 where the window had a valid input.
template <typename Acc>
C10_HOST_DEVICE FI_INLINE Acc pconv_grad_bias_term(Acc grad_out, Acc ratio) {
  return ratio > Acc(0) ? grad_out : Acc(0);
}

// Index helpers for the two activation layouts the kernels read and write without copies.
//   NCHW (contiguous)       : ((n * C + c) * P + p)
//   NHWC (channels_last)    : ((n * P + p) * C + c)
// where P = H * W is the plane size. A kernel may read one layout and write the other: that is
// how the op hands oneDNN the channels_last activations it convolves fastest while the caller
// keeps NCHW tensors, the transposition fused into passes we make anyway.
struct ActLayout {
  int64_t N, C, P;
  bool channels_last;
  C10_HOST_DEVICE FI_INLINE int64_t offset(int64_t n, int64_t c, int64_t p) const {
    return channels_last ? (n * P + p) * C + c : (n * C + c) * P + p;
  }
  C10_HOST_DEVICE FI_INLINE ActLayout with_channels_last(bool cl) const { return ActLayout{N, C, P, cl}; }
  // Inverse of offset() for a flat element index.
  C10_HOST_DEVICE FI_INLINE void unravel(int64_t i, int64_t& n, int64_t& c, int64_t& p) const {
    if (channels_last) {
      c = i % C;
      p = (i / C) % P;
      n = i / (C * P);
    } else {
      p = i % P;
      c = (i / P) % C;
      n = i / (C * P);
    }
  }
};

}  // namespace fastinpaint
