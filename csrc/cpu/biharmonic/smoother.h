// The biharmonic solver's smoother: Chebyshev polynomial in D^-1 A, its degrees and the setup of
// each level's diagonal and spectral bound. Apart from the solver (cycles, FMG, outer CG) because
// it is the part of a cycle one tunes on its own.
// Compiled only as part of solver.cpp, once per instruction set (see simd.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "cpu/biharmonic/matvec.h"
#include "kernels/biharmonic.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

// Chebyshev smoothing before and after the coarse correction: degree 2 on the finest level, 1
// (damped Jacobi) on the Galerkin levels, whose K-cycles make up for it: degree 2 there gave the
// same iteration counts for twice the coarse-level work.
constexpr int kFineDegree = 2;
constexpr int kCoarseDegree = 1;
constexpr double kSmootherRatio = 6.0;  // Chebyshev aims at eigenvalues of D^-1 A in [lmax / 6, lmax]
constexpr int kStalledDegree = 16;      // coarsest level whose coarsening stalled: a long Chebyshev
constexpr double kStalledRatio = 100.0;
constexpr int kPowerIterations = 8;
constexpr double kLambdaMargin = 1.15;  // power iteration underestimates lmax

// Diagonal inverse, and for Galerkin levels lmax(D^-1 A) by power iteration (deterministic start).
void setup_smoother(Level& L) {
  L.dinv.resize(L.n + kBlock);  // + slack: read by whole blocks
  if (L.finest) {
    const float inv_interior = 1.0f / L.interior[kBhFineCentre];
    for_runs(L.runs, [&](const Run& R, int64_t, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i)
        L.dinv[k + i] = R.border ? L.mask[k + i] / L.table[bh_stencil_class(R.y, R.x0 + i, L.H, L.W) * kBhFineTaps + kBhFineCentre]
                                 : L.mask[k + i] * inv_interior;
    });
    // Gershgorin: max over the classes present of sum |a_k| / a_centre (3.2 for the interior
    // stencil, which is also the interior's exact lmax).
    bool present[81] = {};
    present[kBhInteriorClass] = true;
    for (const Run& R : L.runs)
      if (R.border)
        for (int64_t xx = R.x0; xx < R.x0 + R.len; ++xx) present[bh_stencil_class(R.y, xx, L.H, L.W)] = true;
    double bound = 0.0;
    for (int cls = 0; cls < 81; ++cls) {
      if (!present[cls]) continue;
      const float* a = L.table + cls * kBhFineTaps;
      double s = 0.0;
      for (int t = 0; t < kBhFineTaps; ++t) s += std::abs(a[t]);
      bound = std::max(bound, s / a[kBhFineCentre]);
    }
    L.lmax = bound;
    return;
  }
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    const float* a = L.coef.data() + kBhCoarseCentre * L.plane + g;
    for (int64_t i = 0; i < len; ++i) L.dinv[k + i] = a[i] > 0.0f ? 1.0f / a[i] : 0.0f;
  });
  std::vector<float> v(L.plane + kSlack, 0.0f), av(L.n);
  uint32_t state = 12345u;
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      state = state * 1664525u + 1013904223u;
      v[g + i] = L.mask[k + i] * (0.5f + static_cast<float>(state >> 8) * (1.0f / 16777216.0f));
    }
  });
  // Power iteration on D^-1 A, estimating with the Rayleigh quotient of the pencil (A, D),
  // v.Av / v.Dv: a lower bound on lmax that converges twice as fast as the norm ratio.
  double lambda = 0.0;
  for (int it = 0; it < kPowerIterations; ++it) {
    matvec<1, float>(L, setup_team(), v.data(), av.data());
    double vav = 0.0, vdv = 0.0, norm2 = 0.0;
    for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i) {
        const double vi = v[g + i], di = L.dinv[k + i];
        vav += vi * av[k + i];
        if (di > 0) vdv += vi * vi / di;
        av[k + i] *= L.dinv[k + i];
        norm2 += double(av[k + i]) * av[k + i];
      }
    });
    lambda = std::max(lambda, vdv > 0 ? vav / vdv : 0.0);
    const float scale = static_cast<float>(1.0 / std::max(std::sqrt(norm2), 1e-300));
    for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i) v[g + i] = av[k + i] * scale;
    });
  }
  L.lmax = kLambdaMargin * lambda;
}

// Chebyshev smoothing of A x = b on level L (x: grid, b: compact). zero_start: from x = 0, so
// the first step sets x (whatever x held) from b, with no product.
template <int C>
inline void smooth(Level& L, const Team& team, bool zero_start, int degree, double ratio) {
  const int64_t n = L.n, P = L.plane;
  if (!zero_start) {
    residual<C, float>(L, team, L.b.data(), L.x.data(), L.rc.data(), false);
    team.sync(L);  // the step below writes x, which the other threads' residual may still read
  }
  BhChebyshev s = bh_chebyshev_init(L.lmax, ratio);
  const float inv_theta = static_cast<float>(1.0 / s.theta);
  float* d_old = L.d.data();
  float* d_new = L.d_next.data();
  for_share(L, team, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    const float* di = L.dinv.data() + k;
    for (int c = 0; c < C; ++c) {
      float* d = d_old + c * P + g;
      float* x = L.x.data() + c * P + g;
      if (zero_start) {  // residual b; the later steps update it in rc
        const float* b = L.b.data() + c * n + k;
        for_lanes<float>(len, [&](int64_t i, int64_t m) {
          const Vec<float> di_b = inv_theta * load_vec(di + i) * load_vec(b + i);
          store_first(d + i, di_b, m);
          store_first(x + i, di_b, m);
        });
        if (degree > 1) copy_span(b, len, L.rc.data() + c * n + k);
      } else {
        const float* r = L.rc.data() + c * n + k;
        for_lanes<float>(len, [&](int64_t i, int64_t m) {
          const Vec<float> di_r = inv_theta * load_vec(di + i) * load_vec(r + i);
          store_first(d + i, di_r, m);
          store_first(x + i, load_vec(x + i) + di_r, m);
        });
      }
    }
  });
  // Later steps, fused with their product A d: the new direction goes to the other d plane
  // (the product still reads the old one around each block).
  for (int step = 1; step < degree; ++step) {
    double cd, cr;
    bh_chebyshev_step(s, cd, cr);
    const float fd = static_cast<float>(cd), fr = static_cast<float>(cr);
    matvec_apply<C, float>(L, team, d_old, [&](int64_t g, int64_t k, int64_t m, const float (*ad)[kBlock]) {
      constexpr int N = kLanes<float>;
      for (int c = 0; c < C; ++c) {
        float* r = L.rc.data() + c * n + k;
        float* x = L.x.data() + c * P + g;
        const float* dc = d_old + c * P + g;
        float* dn = d_new + c * P + g;
        for (int q = 0; q < kParts<float>; ++q) {
          const int64_t j = q * N;
          const Vec<float> rj = load_vec(r + j) - load_vec(ad[c] + j);
          const Vec<float> dj = fd * load_vec(dc + j) + fr * load_vec(L.dinv.data() + k + j) * rj;
          store_first(r + j, rj, m - j);
          store_first(dn + j, dj, m - j);
          store_first(x + j, load_vec(x + j) + dj, m - j);
        }
      }
    });
    std::swap(d_old, d_new);
  }
}

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
