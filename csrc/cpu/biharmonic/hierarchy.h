// The biharmonic solver's setup of its levels: coarsening (the next level's unknowns and its
// Galerkin matrix P^T A P, from the finest level's stencil classes or the previous level's
// coefficient planes), the coefficient blocks the products read, and the dense Cholesky factor of
// the coarsest level. Runs once per solve, before the iteration.
// Compiled only as part of solver.cpp, once per instruction set (see simd.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/biharmonic/simd.h"
#include "cpu/biharmonic/team.h"
#include "kernels/biharmonic.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

constexpr int64_t kCoarsestMax = 64;  // unknowns of a level solved by dense Cholesky
constexpr int kMaxLevels = 24;
constexpr double kStallRatio = 0.8;  // stop coarsening when a level keeps > 80 % of the unknowns

// The fine coefficients as coarsen reads them for one coarse run (row Y, first column X0): tap t
// of fine pixel (2 Y + dy, 2 X0 + dx), dy in -1..1 and dx from -1 to 2 L + 1 (L: the run's length
// rounded up to whole kBlock-blocks), is at origin[t * tap_stride + dy * row_stride + dx]. Zero off
// the fine unknowns and on taps that reach none, up to the run's end.
struct FineCoefficients {
  const float* origin;
  int64_t tap_stride, row_stride;
};

// The finest level's coefficients around a coarse run, from the stencil classes (the finest
// level keeps no coefficient planes): 3 fine rows x (2 L + 2) columns x 13 taps, in buf. Interior
// pixels (all but 2 pixels along the image edges) share one stencil: a loop per tap.
FineCoefficients finest_window(const Level& F, const Run& R, std::vector<float>& buf) {
  const int64_t width = 2 * whole_blocks(R.len) + 2, rows = 3, x0 = 2 * int64_t{R.x0} - 1;
  buf.assign(kBhFineTaps * rows * width, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t y = 2 * int64_t{R.y} - 1 + r;
    if (y < 0 || y >= F.H) continue;
    const int64_t ja = std::max<int64_t>(0, -x0), jb = std::clamp<int64_t>(F.W - x0, ja, width);  // in the image
    const bool interior_row = y >= 2 && y < F.H - 2;
    const int64_t ia = interior_row ? std::clamp<int64_t>(2 - x0, ja, jb) : jb;
    const int64_t ib = interior_row ? std::clamp<int64_t>(F.W - 2 - x0, ia, jb) : jb;
    const uint8_t* u = F.unknown.data() + F.grid(y, 0) + x0;  // column j of the window
    for (int t = 0; t < kBhFineTaps; ++t) {
      float* out = buf.data() + (t * rows + r) * width;
      const uint8_t* ut = u + F.off[t];
      const float a = F.interior[t];
      for (int64_t j = ia; j < ib; ++j) out[j] = (u[j] & ut[j]) ? a : 0.0f;
    }
    for (int64_t j = ja; j < jb; ++j) {  // the image-border band
      if (j == ia) j = ib;
      if (j >= jb) break;
      if (!u[j]) continue;
      const float* row = F.table + bh_stencil_class(y, x0 + j, F.H, F.W) * kBhFineTaps;
      for (int t = 0; t < kBhFineTaps; ++t) buf[(t * rows + r) * width + j] = u[j + F.off[t]] ? row[t] : 0.0f;
    }
  }
  return {buf.data() + width + 1, rows * width, width};
}

// The gather terms of the Galerkin product (kernels/biharmonic.h) grouped by target: target t's
// are [start[t], start[t + 1]), each a weight and where its fine coefficient is (offset, for the
// run at hand).
struct GalerkinTerms {
  std::vector<BhGalerkinGather> terms;
  std::vector<float> weight;
  int start[kBhGalerkinTargets + 1] = {};

  explicit GalerkinTerms(int fine_taps) : terms(9 * fine_taps) {
    terms.resize(bh_galerkin_gathers(fine_taps, terms.data()));
    std::stable_sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.target < b.target; });
    for (const BhGalerkinGather& term : terms) {
      weight.push_back(term.weight);
      ++start[term.target + 1];
    }
    for (int t = 0; t < kBhGalerkinTargets; ++t) start[t + 1] += start[t];
  }
  // offset[i]: term i's fine coefficient from fine.origin
  void offsets(const FineCoefficients& fine, std::vector<int64_t>& offset) const {
    offset.resize(terms.size());
    for (size_t i = 0; i < terms.size(); ++i) {
      const int cy = terms[i].child / 3 - 1, cx = terms[i].child % 3 - 1;
      offset[i] = terms[i].tap * fine.tap_stride + cy * fine.row_stride + cx;
    }
  }
};

// The Galerkin coefficients of the coarse slots g .. g + m - 1 (m <= kBlock: a run's block) into
// Cl's planes, in the two stages of kernels/biharmonic.h: the gather into 7 x 7 targets, each
// summed in registers, then the separable restriction. The fine children of consecutive coarse
// points are 2 apart: origin + 2j, whole registers.
void galerkin_block(const float* origin, const GalerkinTerms& terms, const int64_t* offset, Level& Cl, int64_t g,
                    int64_t m) {
  constexpr int N = kLanes<float>, P = kParts<float>;
  Vec<float> target[kBhGalerkinTargets][P];
  for (int t = 0; t < kBhGalerkinTargets; ++t) {
    Vec<float> sum[P] = {};
    for (int i = terms.start[t]; i < terms.start[t + 1]; ++i)
      for (int p = 0; p < P; ++p) sum[p] += terms.weight[i] * load_even(origin + offset[i] + 2 * p * N);
    for (int p = 0; p < P; ++p) target[t][p] = sum[p];
  }
  // Along an axis, coarse tap D takes t = 2D - 1, 2D, 2D + 1 (within -3..3) with weights
  // hat(t - 2D) = 1/2, 1, 1/2: targets (ty, tx) -> row (ty, DX) -> coefficient (DY, DX).
  auto restrict_axis = [](auto&& in, int D, Vec<float>* out) {
    for (int p = 0; p < P; ++p) out[p] = Vec<float>{};
    for (int t = std::max(2 * D - 1, -3); t <= std::min(2 * D + 1, 3); ++t)
      for (int p = 0; p < P; ++p) out[p] += static_cast<float>(bh_hat(t - 2 * D)) * in(t + 3)[p];
  };
  Vec<float> row[7][5][P];
  for (int ty = 0; ty < 7; ++ty)
    for (int DX = -2; DX <= 2; ++DX)
      restrict_axis([&](int tx) { return target[ty * 7 + tx]; }, DX, row[ty][DX + 2]);
  for (int DY = -2; DY <= 2; ++DY)
    for (int DX = -2; DX <= 2; ++DX) {
      const int tap = (DY + 2) * 5 + DX + 2;
      Vec<float> coef[P];
      restrict_axis([&](int ty) { return row[ty][DX + 2]; }, DY, coef);
      // Taps that reach no coarse unknown are zeroed (the next Galerkin product relies on it).
      const uint8_t* reach = Cl.unknown.data() + g + Cl.off[tap];
      for (int p = 0; p < P; ++p) {
        Vec<float> keep;
        for (int j = 0; j < N; ++j) keep[j] = reach[p * N + j] ? 1.0f : 0.0f;
        store_first(Cl.coef.data() + tap * Cl.plane + g + p * N, coef[p] * keep, m - p * N);
      }
    }
}

// Cl <- the next coarser level of F: unknowns, runs and Galerkin coefficient planes. F's
// coefficients: its planes (F.taps of them, zero off the unknowns and on taps that reach none),
// or for the finest level its stencil classes.
void coarsen(const Level& F, Level& Cl) {
  init_grid(Cl, F.H / 2 + 1, F.W / 2 + 1, kBhCoarseTaps);
  // Bilinear parents of fine (y, x): y/2 if y is even, else (y-1)/2 and (y+1)/2; same in x.
  for_runs(F.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    const int64_t y0 = R.y / 2, y1 = (R.y + 1) / 2;
    uint8_t* r0 = Cl.unknown.data() + Cl.grid(y0, 0);
    uint8_t* r1 = Cl.unknown.data() + Cl.grid(y1, 0);
    for (int64_t i = 0; i < len; ++i) {
      if (!F.unknown[g + i]) continue;
      const int64_t xx = R.x0 + i;
      r0[xx / 2] = r0[(xx + 1) / 2] = r1[xx / 2] = r1[(xx + 1) / 2] = 1;
    }
  });
  build_runs(Cl);

  const GalerkinTerms terms(F.taps);
  zeroed_planes(Cl, Cl.coef, Cl.taps, Cl.coef_clean);
  Cl.coef_clean = false;
  // Run by run, block by block (a block's rows of every fine plane stay in cache). Float sums: the
  // coarse levels only serve the preconditioner. ~350 multiply-adds per slot, so the threads pay
  // off from a thousand slots.
  par_runs(Cl.runs, Cl.n, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    thread_local std::vector<float> window;
    thread_local std::vector<int64_t> offset;
    const FineCoefficients fine =
        F.finest ? finest_window(F, R, window)
                 : FineCoefficients{F.coef.data() + F.grid(2 * R.y, 2 * R.x0), F.plane, F.S};
    terms.offsets(fine, offset);
    for (int64_t i = 0; i < len; i += kBlock) galerkin_block(fine.origin + 2 * i, terms, offset.data(), Cl, g + i, len - i);
  }, 1024);
}

// The finest level's coefficient planes (13): only when it is also the coarsest (dense solve).
void finest_coef_planes(Level& F) {
  zeroed_planes(F, F.coef, kBhFineTaps, F.coef_clean);
  F.coef_clean = false;
  for_runs(F.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      if (!F.unknown[g + i]) continue;
      const float* row = F.table + bh_stencil_class(R.y, R.x0 + i, F.H, F.W) * kBhFineTaps;
      for (int t = 0; t < kBhFineTaps; ++t) F.coef[t * F.plane + g + i] = F.unknown[g + i + F.off[t]] ? row[t] : 0.0f;
    }
  });
}

// The coefficients in the row-block layout of the matrix-vector product: a coarse level's from its
// planes; the finest level's border runs' from their stencil classes (the taps on known pixels
// included: they multiply zeros of the solver's planes, and the right-hand side's known values).
void block_coefficients(Level& L) {
  L.blocks.resize(L.n_blocks * L.taps * kBlock);  // every entry is written below
  for_runs(L.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    if (L.finest && !R.border) return;
    for (int64_t i0 = 0; i0 < len; i0 += kBlock) {
      float* out = L.blocks.data() + (R.blk + i0 / kBlock) * L.taps * kBlock;
      const int64_t m = std::min<int64_t>(kBlock, len - i0);  // the block's lanes past the run: zero
      if (L.finest) {
        std::fill_n(out, L.taps * kBlock, 0.0f);
        for (int64_t j = 0; j < m; ++j) {
          if (!L.unknown[g + i0 + j]) continue;
          const float* row = L.table + bh_stencil_class(R.y, R.x0 + i0 + j, L.H, L.W) * kBhFineTaps;
          for (int t = 0; t < L.taps; ++t) out[t * kBlock + j] = row[t];
        }
        continue;
      }
      for (int t = 0; t < L.taps; ++t) {
        const float* coef = L.coef.data() + t * L.plane + g + i0;
        for (int64_t j = 0; j < kBlock; ++j) out[t * kBlock + j] = j < m ? coef[j] : 0.0f;
      }
    }
  });
}

// Dense Cholesky of the coarsest matrix. Galerkin coarse matrices can be singular (two coarse
// unknowns whose only fine child is shared): a pivot that vanishes relative to its diagonal is
// replaced by the diagonal, a harmless regularisation in a preconditioner (P maps that direction
// to zero anyway).
void factor_coarsest(Level& L) {
  const int64_t n = L.unknowns;
  L.index.assign(L.plane, -1);
  int32_t next = 0;
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i)
      if (L.unknown[g + i]) L.index[g + i] = next++;
  });
  std::vector<double>& M = L.chol;
  M.assign(n * n, 0.0);
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      if (!L.unknown[g + i]) continue;
      const int64_t row = L.index[g + i];
      for (int t = 0; t < L.taps; ++t) {
        const int32_t j = L.index[g + i + L.off[t]];
        if (j >= 0) M[row * n + j] += L.coef[t * L.plane + g + i];
      }
    }
  });
  for (int64_t j = 0; j < n; ++j) {
    const double orig = M[j * n + j];
    double d = orig;
    for (int64_t k = 0; k < j; ++k) d -= M[j * n + k] * M[j * n + k];
    if (!(d > 1e-10 * std::abs(orig))) d = std::abs(orig) > 0 ? std::abs(orig) : 1.0;
    d = std::sqrt(d);
    M[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = M[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= M[i * n + k] * M[j * n + k];
      M[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i) M[i * n + j] = 0.0;  // keep the upper triangle clean
  }
}

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
