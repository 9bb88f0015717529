// Per-pixel math of the multigrid solver for biharmonic inpainting (csrc/cpu/biharmonic/).
//
// The system has one unknown per hole pixel: the 13-point biharmonic stencil (the diamond
// |dy| + |dx| <= 2), truncated near the image border as scikit-image truncates it, with the taps
// on known pixels moved to the right-hand side. The solver's coarse levels are Galerkin products
// P^T A P with masked bilinear interpolation P; they stay within 5 x 5 taps.
//
// Here: the tap layouts, the stencil class of a pixel, the bilinear (hat) weights shared by
// restriction and prolongation, the terms of the Galerkin product and the Chebyshev smoother's
// recurrence. Pure functions on raw pointers, no torch headers: the same math is usable from a
// CUDA kernel.
#pragma once

#include <cstdint>

#include "kernels/macros.h"

namespace fastinpaint {

constexpr int kBhFineTaps = 13;    // diamond |dy| + |dx| <= 2, raster order
constexpr int kBhCoarseTaps = 25;  // 5 x 5, raster order
constexpr int kBhFineCentre = 6;   // tap (0, 0) of the diamond
constexpr int kBhCoarseCentre = 12;  // tap (0, 0) of the 5 x 5 window
constexpr int kBhInteriorClass = 80;  // stencil class of pixels at least 2 away from every edge
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

// Stencil class of pixel (y, x) in an H x W image: its distances to the top, bottom, left and
// right edges clipped to the stencil radius 2, ((top * 3 + bottom) * 3 + left) * 3 + right; the
// classes' 13-tap rows (81 x 13, zero on taps outside the image) come from the caller.
C10_HOST_DEVICE FI_INLINE int bh_stencil_class(int64_t y, int64_t x, int64_t H, int64_t W) {
  auto clip = [](int64_t d) { return static_cast<int>(d < 2 ? d : 2); };
  return ((clip(y) * 3 + clip(H - 1 - y)) * 3 + clip(x)) * 3 + clip(W - 1 - x);
}

// 1-D bilinear weight of a fine point d fine cells away from a coarse point (d in -2..2).
C10_HOST_DEVICE FI_INLINE double bh_hat(int d) { return d == 0 ? 1.0 : (d == 1 || d == -1) ? 0.5 : 0.0; }

// Galerkin product A_c = P^T A P by geometry. With bilinear P, coarse unknown I's fine children
// sit at 2I + c, c = (cy, cx), |cy|, |cx| <= 1, with weight hat(cy) hat(cx), and a fine unknown at
// 2I + t receives weight hat(ty - 2 DY) hat(tx - 2 DX) from the coarse unknown I + (DY, DX). So
//   A_c[I, I + D] = sum over t of S_I(t) hat(ty - 2 DY) hat(tx - 2 DX),
//   S_I(t) = sum over children c and fine taps k with c + offset(k) = t of hat(cy) hat(cx) a[2I + c, k],
// t in [-3, 3]^2: a gather of the fine coefficients into 7 x 7 targets (one term per child and
// tap), then a separable restriction of the targets to the 5 x 5 coarse taps (3 hat weights per
// axis). Expanding the product instead costs ~4 terms per child and tap. The fine coefficients
// must be zero on taps that reach no fine unknown and at points that are not unknowns; a fine
// unknown's bilinear parents are all coarse unknowns (that is how the coarse unknowns are chosen).
constexpr int kBhGalerkinTargets = 49;  // t in [-3, 3]^2, index (ty + 3) * 7 + tx + 3
struct BhGalerkinGather {
  int16_t child;   // c = (cy + 1) * 3 + (cx + 1)
  int16_t tap;     // k, tap of the fine stencil
  int16_t target;  // t = c + offset(k)
  float weight;    // hat(cy) hat(cx)
};

// The gather terms for a fine stencil of `fine_taps` (13 or 25): 9 * fine_taps of them, into terms.
C10_HOST_DEVICE FI_INLINE int bh_galerkin_gathers(int fine_taps, BhGalerkinGather* terms) {
  int n = 0;
  for (int c = 0; c < 9; ++c) {
    const int cy = c / 3 - 1, cx = c % 3 - 1;
    for (int k = 0; k < fine_taps; ++k) {
      int dy, dx;
      bh_tap_offset(fine_taps, k, dy, dx);
      terms[n++] = BhGalerkinGather{static_cast<int16_t>(c), static_cast<int16_t>(k),
                                    static_cast<int16_t>((cy + dy + 3) * 7 + (cx + dx + 3)),
                                    static_cast<float>(bh_hat(cy) * bh_hat(cx))};
    }
  }
  return n;
}

// Chebyshev smoothing of A x = b, Jacobi-preconditioned, aimed at the eigenvalues of D^-1 A in
// [lmax / ratio, lmax] (the ones the coarse level cannot represent). Step 0: d = D^-1 r / theta;
// step j >= 1: d = coef_d * d + coef_r * D^-1 r, with r the residual after the previous steps;
// x += d at every step. bh_chebyshev_step gives (coef_d, coef_r) of step j >= 1 and carries rho.
struct BhChebyshev {
  double theta, delta, sigma, rho;
};

C10_HOST_DEVICE FI_INLINE BhChebyshev bh_chebyshev_init(double lmax, double ratio) {
  const double lmin = lmax / ratio;
  BhChebyshev s;
  s.theta = 0.5 * (lmax + lmin);
  s.delta = 0.5 * (lmax - lmin);
  s.sigma = s.theta / s.delta;
  s.rho = 1.0 / s.sigma;
  return s;
}

C10_HOST_DEVICE FI_INLINE void bh_chebyshev_step(BhChebyshev& s, double& coef_d, double& coef_r) {
  const double rho_next = 1.0 / (2.0 * s.sigma - s.rho);
  coef_d = rho_next * s.rho;
  coef_r = 2.0 * rho_next / s.delta;
  s.rho = rho_next;
}

}  // namespace fastinpaint
