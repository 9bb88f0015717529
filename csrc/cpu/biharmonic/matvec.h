// The biharmonic solver's operator: the stencil matrix-vector product by kBlock-blocks kept in
// registers, fused with whatever consumes it (residuals, dot products, smoother steps), and the
// right-hand side's product. The hottest loops of the solver: templates, so that each consumer
// is inlined into the product's loop.
// Compiled only as part of solver.cpp, once per instruction set (see simd.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/biharmonic/simd.h"
#include "cpu/biharmonic/team.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

// sum[c][j] = (A v)(g + j), j < kBlock, on the C channels; v: grid planes. Reads a whole block
// whatever the run's length (planes have kSlack spare cells). coef: the block's coefficients
// (Level::blocks), or null for the finest level's constant interior stencil, which is non-zero in
// gaps, hence the mask.
template <int C, typename T>
FI_INLINE void matvec_block(const Level& L, const T* v, int64_t g, int64_t k, const float* coef, T (*sum)[kBlock]) {
  constexpr int P = kParts<T>, N = kLanes<T>;
  Vec<T> acc[C][P] = {};
  if (coef == nullptr) {
    for (int t = 0; t < kBhFineTaps; ++t) {
      const T a = T(L.interior[t]);
      const T* vt = v + g + L.off[t];
      for (int c = 0; c < C; ++c)
        for (int p = 0; p < P; ++p) acc[c][p] += a * load_vec(vt + c * L.plane + p * N);
    }
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < P; ++p) acc[c][p] *= load_as<T>(L.mask.data() + k + p * N);
  } else {
    for (int t = 0; t < L.taps; ++t) {
      const T* vt = v + g + L.off[t];
      for (int p = 0; p < P; ++p) {
        const Vec<T> a = load_as<T>(coef + t * kBlock + p * N);
        for (int c = 0; c < C; ++c) acc[c][p] += a * load_vec(vt + c * L.plane + p * N);
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int p = 0; p < P; ++p) std::memcpy(sum[c] + p * N, &acc[c][p], sizeof(acc[c][p]));
}

// Calls f(g, k, m, sum) for every block of every run (of the team thread's share), sum[c][j] =
// (A v) at grid index g + j (compact index k + j), j < m: the product fused with what consumes
// it, so that no compact A v array makes a round trip through memory. f must only write at its
// own block's slots.
template <int C, typename T, typename F>
void matvec_apply(const Level& L, const Team& team, const T* v, const F& f) {
  team.sync(L);
  auto body = [&](const Run& R, int64_t g, int64_t k, int64_t len) {
    T sum[C][kBlock];
    for (int64_t i = 0; i < len; i += kBlock) {
      const int64_t m = std::min<int64_t>(kBlock, len - i);
      const float* coef = L.finest && !R.border ? nullptr : L.blocks.data() + (R.blk + i / kBlock) * L.taps * kBlock;
      matvec_block<C, T>(L, v, g + i, k + i, coef, sum);
      f(g + i, k + i, m, sum);
    }
  };
  if (team.runtime_threads)
    par_runs(L.runs, L.n, body);
  else
    for_share(L, team, body);
}

// out = A v on the C channels: v grid planes (stride plane), out compact (stride n).
template <int C, typename T>
void matvec(const Level& L, const Team& team, const T* v, T* out) {
  matvec_apply<C, T>(L, team, v, [&](int64_t, int64_t k, int64_t m, const T (*sum)[kBlock]) {
    for (int c = 0; c < C; ++c) copy_span(sum[c], m, out + c * L.n + k);
  });
}

// out = b - A v (compact or, with out_grid, grid planes).
template <int C, typename T>
void residual(const Level& L, const Team& team, const T* b, const T* v, T* out, bool out_grid) {
  matvec_apply<C, T>(L, team, v, [&](int64_t g, int64_t k, int64_t m, const T (*sum)[kBlock]) {
    constexpr int N = kLanes<T>;
    for (int c = 0; c < C; ++c) {
      const T* bc = b + c * L.n + k;
      T* oc = out + (out_grid ? c * L.plane + g : c * L.n + k);
      for (int p = 0; p < kParts<T>; ++p) store_first(oc + p * N, load_vec(bc + p * N) - load_vec(sum[c] + p * N), m - p * N);
    }
  });
}

// The team thread's share of per-channel dot products of grid planes and a compact array, added
// to out[C] (Team::sum completes them).
template <int C, typename T, typename U>
void dot_grid(const Level& L, const Team& team, const T* grid, const U* compact, double* out) {
  for_share(L, team, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    for (int c = 0; c < C; ++c) out[c] += dot_span(grid + c * L.plane + g, compact + c * L.n + k, len);
  });
}

// out = -A v on the finest level, C channels (v: grid planes, out: compact), on the intra-op threads.
template <int C>
void minus_matvec(const Level& F, const double* v, double* out) {
  matvec_apply<C, double>(F, setup_team(), v, [&](int64_t, int64_t k, int64_t m, const double (*sum)[kBlock]) {
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < kParts<double>; ++p)
        store_first(out + c * F.n + k + p * kLanes<double>, -load_vec(sum[c] + p * kLanes<double>), m - p * kLanes<double>);
  });
}

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
