// Per-unknown math of the multigrid solver for biharmonic inpainting (csrc/cpu/biharmonic_cpu.cpp).
//
// Every level of the hierarchy is a set of unknowns on a grid, each with a stencil of `taps`
// coefficients (row of the matrix) and the index of the unknown under each tap. Taps that fall
// on a known pixel, outside the image or outside the level's unknowns point at the dummy
// unknown `n`, whose value is kept at zero in every vector — so no row needs a branch.
//   fine level:   the 13-point biharmonic stencil (the diamond |dy| + |dx| <= 2);
//   coarse level: Galerkin products P^T A P with bilinear P, which stay within 5 x 5 taps.
// Coefficients are stored in float (the finest level's are small integers, exact in float; the
// coarse levels only serve the preconditioner), vectors and sums in double.
// Vectors hold C channels interleaved: value of unknown i, channel c at [i * C + c]; the
// channels share the matrix, so one pass over a row serves all of them.
//
// Pure functions on raw pointers, no torch headers: the same math is usable from a CUDA kernel.
#pragma once

#include <cstdint>

#include "kernels/macros.h"

namespace fastinpaint {

constexpr int kBhFineTaps = 13;    // diamond |dy| + |dx| <= 2, raster order
constexpr int kBhCoarseTaps = 25;  // 5 x 5, raster order
constexpr int kBhFineDiag = 6;     // tap (0, 0) of the diamond
constexpr int kBhCoarseDiag = 12;  // tap (0, 0) of the 5 x 5 window
constexpr int kBhMaxChannels = 4;  // channels solved together (more are solved in groups)

// Offset (dy, dx) of tap k in a stencil of `taps` (13: diamond, 25: 5 x 5 window).
C10_HOST_DEVICE FI_INLINE void bh_tap_offset(int taps, int k, int& dy, int& dx) {
  if (taps == kBhCoarseTaps) {
    dy = k / 5 - 2;
    dx = k % 5 - 2;
    return;
  }
  // Rows of the diamond have 1, 3, 5, 3, 1 taps.
  const int row_start[6] = {0, 1, 4, 9, 12, 13};
  int r = 0;
  while (k >= row_start[r + 1]) ++r;
  dy = r - 2;
  const int half = (r == 0 || r == 4) ? 0 : (r == 2 ? 2 : 1);
  dx = k - row_start[r] - half;
}

// Colour of a grid point for Gauss-Seidel: two points of the same colour are >= 3 apart in y
// or x, so outside each other's 5 x 5 stencil; a colour's points can be relaxed in parallel.
constexpr int kBhColours = 9;
C10_HOST_DEVICE FI_INLINE int bh_colour(int64_t y, int64_t x) { return static_cast<int>((y % 3) * 3 + (x % 3)); }

// Stencil class of pixel (y, x) in an H x W image: its distances to the top, bottom, left and
// right edges clipped to the stencil radius 2, ((top * 3 + bottom) * 3 + left) * 3 + right; the
// classes' 13-tap rows (81 x 13, zero on taps outside the image) come from the caller.
C10_HOST_DEVICE FI_INLINE int bh_stencil_class(int64_t y, int64_t x, int64_t H, int64_t W) {
  auto clip = [](int64_t d) { return static_cast<int>(d < 2 ? d : 2); };
  return ((clip(y) * 3 + clip(H - 1 - y)) * 3 + clip(x)) * 3 + clip(W - 1 - x);
}

// Row of the fine matrix for hole pixel (y, x) and its right-hand side (C channels):
// a[k] = coefficient of tap k if that tap is a hole pixel (nbr[k] != dummy), else 0;
// b[c] = -sum of coefficient * image value over the taps on known pixels inside the image.
// image: H x W x C, hole: H x W (non-zero = hole).
C10_HOST_DEVICE FI_INLINE void bh_fine_row(int64_t y, int64_t x, int64_t H, int64_t W, const uint8_t* hole,
                                           const double* image, int64_t C, const double* table, const int32_t* nbr,
                                           int32_t dummy, float* a, double* b) {
  const double* row = table + bh_stencil_class(y, x, H, W) * kBhFineTaps;
  for (int64_t c = 0; c < C; ++c) b[c] = 0.0;
  for (int k = 0; k < kBhFineTaps; ++k) {
    a[k] = 0.0;
    if (row[k] == 0.0) continue;  // outside the image (or a zero coefficient)
    if (nbr[k] != dummy) {
      a[k] = static_cast<float>(row[k]);  // exact: the stencils' coefficients are small integers
      continue;
    }
    int dy, dx;
    bh_tap_offset(kBhFineTaps, k, dy, dx);
    const int64_t yy = y + dy, xx = x + dx;
    if (yy < 0 || yy >= H || xx < 0 || xx >= W || hole[yy * W + xx]) continue;
    const double* v = image + (yy * W + xx) * C;
    for (int64_t c = 0; c < C; ++c) b[c] -= row[k] * v[c];
  }
}

// out[c] = sum_k a[k] * v[nbr[k] * C + c] for the C channels of one row.
template <int C>
C10_HOST_DEVICE FI_INLINE void bh_row_apply(const float* a, const int32_t* nbr, int taps, const double* v,
                                            double* out) {
  double acc[C];
#pragma unroll
  for (int c = 0; c < C; ++c) acc[c] = 0.0;
  for (int k = 0; k < taps; ++k) {
    const double ak = static_cast<double>(a[k]);
    const double* vj = v + static_cast<int64_t>(nbr[k]) * C;
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] += ak * vj[c];
  }
#pragma unroll
  for (int c = 0; c < C; ++c) out[c] = acc[c];
}

// Residual of row i: r_i = b_i - (A x)_i; a_i, nbr_i: row i's coefficients and columns.
template <int C>
C10_HOST_DEVICE FI_INLINE void bh_residual_row(const float* a_i, const int32_t* nbr_i, int taps, const double* b,
                                               const double* x, int64_t i, double* r) {
  double ax[C];
  bh_row_apply<C>(a_i, nbr_i, taps, x, ax);
#pragma unroll
  for (int c = 0; c < C; ++c) r[i * C + c] = b[i * C + c] - ax[c];
}

// Gauss-Seidel update of unknown i (in place): x_i += (b_i - (A x)_i) / a_ii.
template <int C>
C10_HOST_DEVICE FI_INLINE void bh_relax_row(const float* a_i, const int32_t* nbr_i, int taps, int diag,
                                            const double* b, double* x, int64_t i) {
  double ax[C];
  bh_row_apply<C>(a_i, nbr_i, taps, x, ax);
  const double inv = 1.0 / static_cast<double>(a_i[diag]);
#pragma unroll
  for (int c = 0; c < C; ++c) x[i * C + c] += (b[i * C + c] - ax[c]) * inv;
}

// Restriction (P^T r) for coarse unknown I: sum of its (up to 9) fine children's residuals,
// weighted by the bilinear weights; absent children point at the fine dummy (zero).
template <int C>
C10_HOST_DEVICE FI_INLINE void bh_restrict_row(const int32_t* child, const double* child_w, const double* r_fine,
                                               int64_t I, double* b_coarse) {
  double acc[C];
#pragma unroll
  for (int c = 0; c < C; ++c) acc[c] = 0.0;
  for (int k = 0; k < 9; ++k) {
    const double w = child_w[I * 9 + k];
    const double* rj = r_fine + static_cast<int64_t>(child[I * 9 + k]) * C;
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] += w * rj[c];
  }
#pragma unroll
  for (int c = 0; c < C; ++c) b_coarse[I * C + c] = acc[c];
}

// Prolongation (x += P e) for fine unknown i: bilinear interpolation from its (up to 4) coarse
// parents; absent parents point at the coarse dummy (zero).
template <int C>
C10_HOST_DEVICE FI_INLINE void bh_prolong_row(const int32_t* parent, const double* parent_w, const double* e_coarse,
                                              int64_t i, double* x_fine) {
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const double w = parent_w[i * 4 + k];
    const double* ej = e_coarse + static_cast<int64_t>(parent[i * 4 + k]) * C;
#pragma unroll
    for (int c = 0; c < C; ++c) x_fine[i * C + c] += w * ej[c];
  }
}

// Row I of the Galerkin product A_c = P^T A P (5 x 5 taps, out[25]), by geometry.
// With bilinear P, coarse unknown I's fine children sit at 2I + (cy, cx), |cy|, |cx| <= 1, with
// weight hat(cy) hat(cx) (hat(0) = 1, hat(+-1) = 1/2), and a fine unknown at 2I + (py, px)
// receives weight hat(py - 2 DY) hat(px - 2 DX) from the coarse unknown I + (DY, DX). So
//   A_c[I, I + (DY, DX)] = sum over children c and fine taps k of a[child_c, k] * T(c, k, DY, DX),
// where T only depends on the offsets: the `terms` (n_terms of them) list its non-zeros as
// (child c, fine tap k, slot (DY + 2) * 5 + DX + 2, weight). Requirements: the fine matrix has
// zero coefficients on taps that do not reach a fine unknown, and a zero row at the dummy index
// (absent children point at it); a fine unknown's coarse parents are coarse unknowns (that is
// how the coarse unknowns are chosen), so no coarse index is needed here.
struct BhGalerkinTerm {
  int16_t child;  // c = (cy + 1) * 3 + (cx + 1)
  int16_t tap;    // k, tap of the fine stencil
  int32_t slot;   // coarse tap, (DY + 2) * 5 + (DX + 2)
  double weight;
};

C10_HOST_DEVICE FI_INLINE double bh_hat(int d) { return d == 0 ? 1.0 : (d == 1 || d == -1) ? 0.5 : 0.0; }

C10_HOST_DEVICE FI_INLINE void bh_galerkin_row(int64_t I, const int32_t* child, const float* fine_a, int fine_taps,
                                               const BhGalerkinTerm* terms, int n_terms, float* out) {
  double acc[kBhCoarseTaps];
  for (int s = 0; s < kBhCoarseTaps; ++s) acc[s] = 0.0;
  for (int t = 0; t < n_terms; ++t) {
    const BhGalerkinTerm term = terms[t];
    acc[term.slot] += term.weight * fine_a[static_cast<int64_t>(child[I * 9 + term.child]) * fine_taps + term.tap];
  }
  for (int s = 0; s < kBhCoarseTaps; ++s) out[s] = static_cast<float>(acc[s]);
}

// The non-zeros of T for a fine stencil of `fine_taps` (13 or 25); `terms` must hold
// 9 * fine_taps * 4 entries. Returns how many were written.
C10_HOST_DEVICE FI_INLINE int bh_galerkin_terms(int fine_taps, BhGalerkinTerm* terms) {
  int n = 0;
  for (int c = 0; c < 9; ++c) {
    const int cy = c / 3 - 1, cx = c % 3 - 1;
    const double wc = bh_hat(cy) * bh_hat(cx);
    for (int k = 0; k < fine_taps; ++k) {
      int dy, dx;
      bh_tap_offset(fine_taps, k, dy, dx);
      const int py = cy + dy, px = cx + dx;
      for (int DY = -2; DY <= 2; ++DY)
        for (int DX = -2; DX <= 2; ++DX) {
          const double w = wc * bh_hat(py - 2 * DY) * bh_hat(px - 2 * DX);
          if (w != 0.0) terms[n++] = BhGalerkinTerm{static_cast<int16_t>(c), static_cast<int16_t>(k), (DY + 2) * 5 + (DX + 2), w};
        }
    }
  }
  return n;
}

}  // namespace fastinpaint
