// CPU multigrid solver for the biharmonic inpainting system.
//
// The matrix A (one row per hole pixel, the 13-point biharmonic stencil, known pixels moved to
// the right-hand side) is symmetric positive definite. We solve it by flexible conjugate
// gradients in float64, preconditioned by one multigrid K-cycle in float32, started from a full
// multigrid (FMG) guess:
//   * levels live on image-shaped grids (2-cell zero margin), each level's unknowns listed as
//     runs of consecutive pixels of a row (runs closer than kGapMerge are merged, the gap pixels
//     being zero slots). Every inner loop walks a run, so it is contiguous in memory and written
//     with GCC vectors of the register width (this file, headers included, is compiled once per
//     instruction set, biharmonic_dispatch.cpp picks one); the matrix-vector product keeps a
//     block of kBlock pixels' sums in registers through all taps and hands them to the caller's
//     update (fused, no round trip through memory); vectors that feed a stencil are grid planes
//     that are zero off the unknowns, the others compact arrays in run order;
//   * the next coarser level's unknowns are the grid points (2Y, 2X) whose bilinear
//     interpolation reaches a fine unknown: the hole's shape is followed at every level and the
//     known pixels stay pinned (the interpolation is cut there);
//   * coarse matrices: Galerkin products P^T A P (5 x 5 stencils, built as one coefficient plane
//     per tap, then stored block by block so that a block's 25 taps are contiguous), hence SPD
//     and consistent with the hole's border; re-discretising does not converge. The first one
//     reads the finest level's coefficients from its stencil classes, a coarse run at a time;
//   * finest level: no coefficient planes: interior pixels share one constant stencil (the taps
//     on known pixels multiply the zeros of the grid plane); the runs within 2 of the image edge
//     have coefficient blocks like the coarse levels, each pixel's class row of the table;
//   * smoother: Chebyshev polynomial in D^-1 A (symmetric, and only whole-run matrix-vector
//     products, unlike multi-colour Gauss-Seidel), before and after the coarse correction: degree
//     2 on the finest level, 1 (damped Jacobi) on the Galerkin levels. Its spectral bound is
//     Gershgorin's on the finest level (exact for the interior stencil) and a power-iteration
//     estimate on the Galerkin levels (their Gershgorin bounds are 5-40x too large);
//   * K-cycle (Notay & Vassilevski): each coarse problem gets two flexible-CG steps
//     preconditioned by the next level's cycle. Bilinear transfers are too low-order for a
//     fourth-order operator (Hemker's rule m_P + m_R > 2m fails), and a plain V-cycle needs 3-5x
//     more outer iterations;
//   * coarsest level (<= kCoarsestMax unknowns): dense Cholesky in float64; if coarsening stalls
//     (1-pixel lines, isolated pixels), a long Chebyshev smoother instead;
//   * threads: one parallel region per solve (Team): every thread runs the whole algorithm on
//     its share of each level's runs and waits only where it reads what another wrote; the deep
//     levels have one worker. The setup's loops (Galerkin products, right-hand side, each
//     level's blocks and smoother bound) are split across the intra-op threads;
//   * runs are walked a register at a time and by kBlock-blocks, the last, partial one written by
//     masked store (store_first): runs average ~20 slots on free-form masks, and scalar tails
//     had cost as much as the products;
//   * passes are fused wherever the data allow: the dot products of CG steps inside their
//     matrix-vector products, the zero-start smoothing step in one pass; with BhOutput::image
//     the clipped solution goes straight into the image.
// Measured (../shared photos, 10-60 % holes and a centred square): FMG and one iteration leave
// ~1e-2 on [0, 1] images and each iteration divides the error by ~5; the caller stops on the size
// of the last change and its ratio to the one before (converged: 3-6 iterations for 1e-3 of the
// value range, leaving <= 3.1e-4).
// The per-pixel math (stencil classes, Galerkin terms, Chebyshev recurrence) is in
// kernels/biharmonic.h; the right-hand side is minus the finest operator applied to the image
// with its hole zeroed.
//
// This file is the solver proper (K-cycle, FMG, flexible CG) and the entry point; the rest is in
// headers of this folder by concern, included here alone so that the whole solver is still one
// translation unit per instruction set and every hot helper inlines as before: simd.h (registers,
// masked stores, spans), level.h (runs, levels), team.h (the thread team), matvec.h (the stencil
// products), hierarchy.h (coarsening, Galerkin products, coarsest factor), smoother.h (Chebyshev).
#include "kernels/biharmonic_backend.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/biharmonic/hierarchy.h"
#include "cpu/biharmonic/smoother.h"
#include "kernels/biharmonic.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

// K-cycles only on levels of at least this many unknowns: a level is visited 2^depth times per
// iteration, and below this the extra accuracy does not pay for itself. Chosen on the total
// solve time over the 96 photo/mask pairs of ../shared: 256 was 10-15 % slower, 320-512 alike
// (400 the lowest), with the same worst error.
constexpr int64_t kKCycleMin = 400;

inline double safe_ratio(double num, double den) {  // 0 for a converged (zero) channel
  return den != 0.0 ? num / den : 0.0;
}

// The outer iteration's stop: the last change is at most tol, and so is 4x the error it leaves
// by the last two changes' ratio rho (a contraction rho per step leaves ~change rho / (1 - rho)).
// Photographs contract by ~0.2 per step (the first test alone then decides); rough images such as
// uniform noise by up to ~0.5, where the first test alone left errors up to 1.7 tol.
inline bool converged(double update, double previous, double tol) {
  if (!(update <= tol)) return false;
  const double rho = update / previous;  // 0 after the first step
  return rho < 1.0 && update * rho <= 0.25 * tol * (1.0 - rho);
}

// Calls f(c0, std::integral_constant<int, G>{}) for each group of channels [c0, c0 + G) of C in
// turn, G = min(kBhMaxChannels, C - c0): the channel loops are unrolled for each group size.
template <typename F>
void for_channel_groups(int64_t C, const F& f) {
  for (int64_t c0 = 0; c0 < C; c0 += kBhMaxChannels) {
    switch (std::min<int64_t>(kBhMaxChannels, C - c0)) {
      case 1: f(c0, std::integral_constant<int, 1>{}); break;
      case 2: f(c0, std::integral_constant<int, 2>{}); break;
      case 3: f(c0, std::integral_constant<int, 3>{}); break;
      default: f(c0, std::integral_constant<int, 4>{}); break;
    }
  }
}

// Buffers kept from one solve to the next on the same thread, so that a solve of a similar size
// touches no fresh memory page (the page faults cost ~15 % of a solve on a 512 x 340 photo).
// Kept only for images of up to kCacheMaxPixels.
constexpr int64_t kCacheMaxPixels = int64_t{1} << 22;
struct Workspace {
  std::vector<Level> spare;  // level objects, the finest last
  std::vector<double> known, b, fx, r, q, grid;
  std::array<int64_t, 3> known_shape = {};  // the (H, W, C) of the known planes
  std::vector<float> bf;
  bool grid_clean = false;  // grid is all zero (see Level::work_clean)
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

template <int C>
struct Solver {
  std::vector<Level>& levels;
  Workspace& ws;
  Team& team;

  template <typename F>
  void each(const Level& L, const F& f) const {
    for_share(L, team, f);
  }

  // v (grid planes) at the unknowns <- value
  void fill_grid(const Level& L, std::vector<float>& v, float value) {
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) fill_span(v.data() + c * L.plane + g, len, value);
    });
  }

  void copy_compact(const Level& L, const std::vector<float>& from, std::vector<float>& to) {
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) copy_span(from.data() + c * L.n + k, len, to.data() + c * L.n + k);
    });
  }


  // Cl.b <- P^T r, r: the fine level's grid planes `r` (zero off the fine unknowns).
  void restrict_to(const Level& F, const float* r, Level& Cl) {
    team.sync(F, Cl);
    each(Cl, [&](const Run& R, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* r0 = r + c * F.plane + F.grid(2 * R.y - 1, 2 * R.x0 - 1);
        const float* r1 = r0 + F.S;
        const float* r2 = r1 + F.S;
        float* out = Cl.b.data() + c * Cl.n + k;
        for (int64_t i = 0; i < len; ++i) {
          const int64_t j = 2 * i;
          const float top = 0.5f * r0[j] + r0[j + 1] + 0.5f * r0[j + 2];
          const float mid = 0.5f * r1[j] + r1[j + 1] + 0.5f * r1[j + 2];
          const float bot = 0.5f * r2[j] + r2[j + 1] + 0.5f * r2[j + 2];
          out[i] = 0.5f * top + mid + 0.5f * bot;
        }
      }
    });
  }

  // dst (F's grid planes) += P e, e: Cl's grid planes. Fine x = 2X takes coarse X, x = 2X + 1 the
  // mean of X and X + 1; an odd row y the mean of rows y / 2 and y / 2 + 1. The coarse rows are
  // first blended into a row buffer, then each pair of fine pixels (2X, 2X + 1) is filled from
  // it: loops without per-pixel index arithmetic or branches, which the compiler vectorises.
  void prolong_add(const Level& Cl, const float* e, const Level& F, float* dst) {
    team.sync(Cl, F);
    constexpr int64_t kChunk = 256;  // fine pixels per row buffer (on the stack: no allocation here)
    each(F, [&](const Run& R, int64_t g0, int64_t k0, int64_t run_len) {
      const float wy = (R.y & 1) ? 0.5f : 0.0f;  // weight of the second coarse row
      for (int64_t i0 = 0; i0 < run_len; i0 += kChunk) {
        const int64_t x0 = R.x0 + i0, g = g0 + i0, len = std::min(kChunk, run_len - i0);
        const float* __restrict mask = F.mask.data() + k0 + i0;
        const int64_t first = x0 & 1;  // 1: the chunk starts at an odd x
        const int64_t pairs = (len + first + 1) / 2, X0 = x0 / 2;
        float row[kChunk / 2 + 2];
        for (int c = 0; c < C; ++c) {
          const float* __restrict e0 = e + c * Cl.plane + Cl.grid(R.y / 2, X0);
          const float* __restrict e1 = e + c * Cl.plane + Cl.grid((R.y + 1) / 2, X0);
          for (int64_t X = 0; X <= pairs; ++X) row[X] = (1.0f - wy) * e0[X] + wy * e1[X];
          float* __restrict out = dst + c * F.plane + g;
          int64_t i = 0;
          if (first) {  // the chunk's first pixel is odd: half a pair
            out[0] += mask[0] * 0.5f * (row[0] + row[1]);
            i = 1;
          }
          const int64_t full = (len - i) / 2;  // pixel i + 2j is even, coarse column j + first
          const float* __restrict rp = row + first;
          float* __restrict op = out + i;
          const float* __restrict mp = mask + i;
          for (int64_t j = 0; j < full; ++j) {
            op[2 * j] += mp[2 * j] * rp[j];
            op[2 * j + 1] += mp[2 * j + 1] * 0.5f * (rp[j] + rp[j + 1]);
          }
          i += 2 * full;
          if (i < len) out[i] += mask[i] * row[(i + first) / 2];
        }
      }
    });
  }

  void coarsest(Level& L) {
    if (L.chol.empty()) {  // coarsening stalled: a long smoother (still a symmetric operator)
      smooth<C>(L, team, true, kStalledDegree, kStalledRatio);
      return;
    }
    team.sync(L);  // b comes from every thread
    if (team.leader()) {
      const int64_t n = L.unknowns;
      const double* M = L.chol.data();
      double* y = L.chol_rhs.data();  // [unknown][channel]: the channels share every row operation
      for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int64_t i = 0; i < len; ++i)
          if (L.index[g + i] >= 0)
            for (int c = 0; c < C; ++c) y[L.index[g + i] * C + c] = L.b[c * L.n + k + i];
      });
      for (int64_t i = 0; i < n; ++i) {  // M y = b
        double s[C];
        for (int c = 0; c < C; ++c) s[c] = y[i * C + c];
        for (int64_t k = 0; k < i; ++k)
          for (int c = 0; c < C; ++c) s[c] -= M[i * n + k] * y[k * C + c];
        for (int c = 0; c < C; ++c) y[i * C + c] = s[c] / M[i * n + i];
      }
      for (int64_t i = n - 1; i >= 0; --i) {  // M^T x = y
        double s[C];
        for (int c = 0; c < C; ++c) s[c] = y[i * C + c];
        for (int64_t k = i + 1; k < n; ++k)
          for (int c = 0; c < C; ++c) s[c] -= M[k * n + i] * y[k * C + c];
        for (int c = 0; c < C; ++c) y[i * C + c] = s[c] / M[i * n + i];
      }
      for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (int64_t i = 0; i < len; ++i)
          if (L.index[g + i] >= 0)
            for (int c = 0; c < C; ++c) L.x[c * L.plane + g + i] = static_cast<float>(y[L.index[g + i] * C + c]);
      });
    }
    team.sync(L);
  }

  // levels[l].x <- an approximation of A_l^{-1} levels[l].b: pre-smoothing, coarse-grid
  // correction (a K-cycle below the finest level), post-smoothing.
  void cycle(size_t l) {
    Level& L = levels[l];
    if (l + 1 == levels.size()) {
      coarsest(L);
      return;
    }
    Level& Cl = levels[l + 1];
    const int degree = l == 0 ? kFineDegree : kCoarseDegree;
    smooth<C>(L, team, true, degree, kSmootherRatio);
    // residual, into the d planes (free until the post-smoothing), then restricted
    residual<C, float>(L, team, L.b.data(), L.x.data(), L.d.data(), true);
    restrict_to(L, L.d.data(), Cl);
    const float* e;
    if (l + 2 < levels.size() && Cl.unknowns >= kKCycleMin) {
      kcycle(l + 1);
      e = Cl.ke.data();
    } else {
      cycle(l + 1);
      e = Cl.x.data();
    }
    prolong_add(Cl, e, L, L.x.data());
    smooth<C>(L, team, false, degree, kSmootherRatio);
  }

  // q = A p on level L (p: grid planes, q: compact), and in the same pass the team's per-channel
  // dot products p.r (r: compact) into dots[c] and p.q into dots[C + c].
  template <typename T>
  void matvec_dots(const Level& L, const T* p, const T* r, T* q, double* dots) {
    for (int i = 0; i < 2 * C; ++i) dots[i] = 0.0;
    matvec_apply<C, T>(L, team, p, [&](int64_t g, int64_t k, int64_t m, const T (*ap)[kBlock]) {
      for (int c = 0; c < C; ++c) {
        const T* pc = p + c * L.plane + g;
        copy_span(ap[c], m, q + c * L.n + k);
        dots[c] += block_dot(pc, r + c * L.n + k, m);
        dots[C + c] += block_dot(pc, ap[c], m);
      }
    });
    team.sum(L, dots, 2 * C);
  }

  // K-cycle: levels[m].ke <- two flexible-CG steps on A_m e = levels[m].b, each preconditioned by
  // one cycle on level m. The residual is kept in b (what the second cycle solves for), so b is
  // lost.
  void kcycle(size_t m) {
    Level& L = levels[m];
    const int64_t n = L.n, P = L.plane;
    // step 1: z1 = B r, p1 = z1, e = a1 p1, r -= a1 A p1
    cycle(m);
    double dots[2 * C];  // p.r, p.q
    matvec_dots<float>(L, L.x.data(), L.b.data(), L.kq.data(), dots);
    double pq[C], a1[C];
    for (int c = 0; c < C; ++c) {
      pq[c] = dots[C + c];
      a1[c] = safe_ratio(dots[c], pq[c]);
    }
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* __restrict x = L.x.data() + c * P + g;
        float* __restrict ke = L.ke.data() + c * P + g;
        float* __restrict kp = L.kp.data() + c * n + k;
        float* __restrict r = L.b.data() + c * n + k;
        const float* __restrict kq = L.kq.data() + c * n + k;
        const float a = static_cast<float>(a1[c]);
        for_lanes<float>(len, [&](int64_t i, int64_t m) {
          const Vec<float> xi = load_vec(x + i);
          store_first(kp + i, xi, m);
          store_first(ke + i, a * xi, m);
          store_first(r + i, load_vec(r + i) - a * load_vec(kq + i), m);
        });
      }
    });
    // step 2: z2 = B r, p2 = z2 - (z2.q1 / p1.q1) p1, e += a2 p2
    cycle(m);
    double zq[C] = {}, beta[C];
    dot_grid<C>(L, team, L.x.data(), L.kq.data(), zq);
    team.sum(L, zq, C);
    for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq[c]);
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        float* __restrict x = L.x.data() + c * P + g;
        const float* __restrict kp = L.kp.data() + c * n + k;
        const float bc = static_cast<float>(beta[c]);
        for_lanes<float>(len, [&](int64_t i, int64_t m) {  // x is now p2
          store_first(x + i, load_vec(x + i) + bc * load_vec(kp + i), m);
        });
      }
    });
    matvec_dots<float>(L, L.x.data(), L.b.data(), L.kq.data(), dots);
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* __restrict x = L.x.data() + c * P + g;
        float* __restrict ke = L.ke.data() + c * P + g;
        const float a = static_cast<float>(safe_ratio(dots[c], dots[C + c]));
        for_lanes<float>(len, [&](int64_t i, int64_t m) { store_first(ke + i, load_vec(ke + i) + a * load_vec(x + i), m); });
      }
    });
  }

  // ke += x on level L's grid planes
  void add_x_to_ke(Level& L) {
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) {
        float* ke = L.ke.data() + c * L.plane + g;
        const float* x = L.x.data() + c * L.plane + g;
        for_lanes<float>(len, [&](int64_t i, int64_t m) { store_first(ke + i, load_vec(ke + i) + load_vec(x + i), m); });
      }
    });
  }

  // Full multigrid: levels[0].ke <- an approximation of the solution, from the coarsest level up
  // (each level: the prolonged coarser solution plus one cycle on its residual). b: compact,
  // float, the finest right-hand side.
  void fmg(const std::vector<float>& b) {
    // right-hand sides of every level, kept in kr (b is the cycles' input, and the K-cycles'
    // residual)
    copy_compact(levels[0], b, levels[0].kr);
    for (size_t l = 0; l + 1 < levels.size(); ++l) {
      Level& L = levels[l];
      each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int c = 0; c < C; ++c) copy_span(L.kr.data() + c * L.n + k, len, L.d.data() + c * L.plane + g);
      });
      restrict_to(L, L.d.data(), levels[l + 1]);
      copy_compact(levels[l + 1], levels[l + 1].b, levels[l + 1].kr);
    }
    Level& Lc = levels.back();
    copy_compact(Lc, Lc.kr, Lc.b);
    coarsest(Lc);
    fill_grid(Lc, Lc.ke, 0.0f);
    add_x_to_ke(Lc);
    for (size_t l = levels.size() - 1; l-- > 0;) {
      Level& L = levels[l];
      fill_grid(L, L.ke, 0.0f);
      prolong_add(levels[l + 1], levels[l + 1].ke.data(), L, L.ke.data());
      residual<C, float>(L, team, L.kr.data(), L.ke.data(), L.b.data(), false);
      cycle(l);
      add_x_to_ke(L);
    }
  }

  // Flexible preconditioned CG on the finest level in float64 (the K-cycle is not a fixed linear
  // operator), all channels in lock step, from the FMG guess. b, x: compact C x n; the caller's
  // buffers: ws.r, ws.q (C x n), ws.bf (C x n floats), ws.grid (C planes, zero off the
  // unknowns), which holds the search direction p. Stops when the last step changed no value by
  // more than tol.
  void fcg(const double* b, std::vector<double>& x, double tol, int64_t max_iter, BhSolveInfo* info) {
    Level& L = levels[0];
    const int64_t n = L.n, P = L.plane;
    double* r = ws.r.data();
    double* q = ws.q.data();
    double* p = ws.grid.data();
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) std::copy_n(b + c * n + k, len, ws.bf.data() + c * n + k);
    });
    fmg(ws.bf);
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        std::copy_n(L.ke.data() + c * P + g, len, x.data() + c * n + k);
        std::copy_n(L.ke.data() + c * P + g, len, p + c * P + g);
      }
    });
    residual<C, double>(L, team, b, p, r, false);
    team.sync(L);  // p is overwritten below
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {  // the preconditioner's input
      for (int c = 0; c < C; ++c) std::copy_n(r + c * n + k, len, L.b.data() + c * n + k);
    });

    double update = INFINITY, previous = INFINITY;
    double pq_last[C] = {};
    int64_t it = 0;
    for (; it < max_iter && !converged(update, previous, tol); ++it) {
      cycle(0);  // z = B r, in L.x
      double beta[C] = {};
      if (it > 0) {  // p = z - (z.q / p.q) p, q = A p of the last step
        double zq[C] = {};
        dot_grid<C>(L, team, L.x.data(), q, zq);
        team.sum(L, zq, C);
        for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq_last[c]);
      }
      each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (int c = 0; c < C; ++c) {
          double* pc = p + c * P + g;
          const float* z = L.x.data() + c * P + g;
          for_lanes<double>(len, [&](int64_t i, int64_t m) {
            store_first(pc + i, load_as<double>(z + i) + beta[c] * load_vec(pc + i), m);
          });
        }
      });
      double dots[2 * C];  // p.r, p.q
      matvec_dots<double>(L, p, r, q, dots);
      double alpha[C];
      for (int c = 0; c < C; ++c) {
        alpha[c] = safe_ratio(dots[c], dots[C + c]);
        pq_last[c] = dots[C + c];
      }
      double big = 0.0;  // max |alpha p|
      each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int c = 0; c < C; ++c) {
          double* xc = x.data() + c * n + k;
          double* rc = r + c * n + k;
          float* bc = L.b.data() + c * n + k;
          const double* pc = p + c * P + g;
          const double* qc = q + c * n + k;
          Vec<double> lane, big_lanes = {};  // |p| max by lanes (see dot_span)
          for (int j = 0; j < kLanes<double>; ++j) lane[j] = j;
          for_lanes<double>(len, [&](int64_t i, int64_t m) {
            const Vec<double> pv = load_vec(pc + i);
            const Vec<double> size = lane < double(m) ? (pv < 0 ? -pv : pv) : Vec<double>{};
            big_lanes = big_lanes > size ? big_lanes : size;
            store_first(xc + i, load_vec(xc + i) + alpha[c] * pv, m);
            const Vec<double> rv = load_vec(rc + i) - alpha[c] * load_vec(qc + i);
            store_first(rc + i, rv, m);
            // the next iteration's preconditioner input
            store_first(bc + i, __builtin_convertvector(rv, HalfVecFloat), m);
          });
          double pmax = 0.0;
          for (int j = 0; j < kLanes<double>; ++j) pmax = std::max(pmax, big_lanes[j]);
          big = std::max(big, std::abs(alpha[c]) * pmax);
        }
      });
      previous = update;
      update = team.max(L, big);
    }
    if (team.leader()) {
      info->iterations = std::max(info->iterations, it);
      info->last_update = std::max(info->last_update, update);
    }
  }

  // After fcg (whose last sum is a sync: nobody reads the planes any more): the solution of
  // channels [c0, c0 + C) of C_in to `result`, and the slots of the grid planes zeroed again
  // (Level::work_clean), each thread on its share.
  void finish(const std::vector<double>& x, int64_t C_in, int64_t c0, const BhOutput& result) {
    const Level& F = levels[0];
    const int64_t n = F.n;
    each(F, [&](const Run& R, int64_t g, int64_t k, int64_t len) {
      int64_t rank = R.rank;
      for (int64_t i = 0; i < len; ++i) {
        if (!F.unknown[g + i]) continue;
        if (result.image != nullptr) {
          double* pixel = result.image + (int64_t{R.y} * F.W + R.x0 + i) * C_in + c0;
          for (int c = 0; c < C; ++c) pixel[c] = std::clamp(x[c * n + k + i], result.lo[c0 + c], result.hi[c0 + c]);
        } else {
          for (int c = 0; c < C; ++c) result.x[rank * C_in + c0 + c] = x[c * n + k + i];
        }
        ++rank;
      }
      for (int c = 0; c < C; ++c) fill_span(ws.grid.data() + c * F.plane + g, len, 0.0);
    });
    for (Level& L : levels)
      each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (auto* v : {&L.x, &L.d, &L.d_next, &L.ke})
          for (int c = 0; c < C; ++c) fill_span(v->data() + c * L.plane + g, len, 0.0f);
      });
  }
};

template <int C>
void solve_channels(std::vector<Level>& levels, Workspace& ws, int64_t C_in, int64_t c0, const BhOutput& result, double tol,
                    int64_t max_iter, BhSolveInfo* info) {
  for (Level& L : levels) alloc_work(L, C);
  const Level& F = levels[0];
  const int64_t n = F.n;
  const double* b = ws.b.data() + c0 * n;
  std::vector<double>& x = ws.fx;
  // Every slot of these is written before it is read (fcg): no clearing. Slack: see alloc_work.
  x.resize(C * n + kBlock);
  for (auto* v : {&ws.r, &ws.q}) v->resize(C * n + kBlock);
  ws.bf.resize(C * n + kBlock);
  if (!ws.grid_clean || ws.grid.size() != static_cast<size_t>(C * F.plane + kSlack))
    ws.grid.assign(C * F.plane + kSlack, 0.0);
  ws.grid_clean = false;
  const Level& last = levels.back();
  if (!last.chol.empty()) levels.back().chol_rhs.assign(last.unknowns * C, 0.0);

  const int size = team_size(n);
  if (size > 1) {
    for (Level& L : levels) split_runs(L, size);
    TeamSums sums;
#pragma omp parallel num_threads(size)
    {
      Team team;
#ifdef _OPENMP
      team.id = omp_get_thread_num();
      team.size = omp_get_num_threads();
#endif
      team.sums = &sums;
      if (team.size != size) {  // the runtime gave fewer threads (nested region, limits): re-split
        team.barrier();
        if (team.leader())
          for (Level& L : levels) split_runs(L, team.size);
        team.barrier();
      }
      Solver<C> solver{levels, ws, team};
      solver.fcg(b, x, tol, max_iter, info);
      solver.finish(x, C_in, c0, result);
    }
  } else {
    Team team;
    Solver<C> solver{levels, ws, team};
    solver.fcg(b, x, tol, max_iter, info);
    solver.finish(x, C_in, c0, result);
  }
  for (Level& L : levels) L.work_clean = true;
  ws.grid_clean = true;
}

}  // namespace

const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, const BhOutput& out, double tol, int64_t max_iter,
                                BhSolveInfo* info) {
  if (H <= 0 || W <= 0) return "empty image";
  if (C < 1) return "need at least one channel";
  if ((H + 4) * (W + 4) >= (int64_t{1} << 31) - 1) return "image too large for 32-bit indices";
  *info = BhSolveInfo{};

  std::vector<float> table_f(table, table + 81 * kBhFineTaps);
  for (int k = 0; k < 81 * kBhFineTaps; ++k)
    if (static_cast<double>(table_f[k]) != table[k]) return "stencil coefficients must be exact in float32";

  Workspace& ws = workspace();
  std::vector<Level> levels;
  levels.reserve(kMaxLevels + 1);  // no reallocation: references to levels stay valid
  auto new_level = [&]() -> Level& {
    if (ws.spare.empty()) {
      levels.emplace_back();
    } else {
      levels.push_back(std::move(ws.spare.back()));
      ws.spare.pop_back();
    }
    reset_level(levels.back());
    return levels.back();
  };
  // Give the level objects back to the workspace however this function returns.
  struct GiveBack {
    std::vector<Level>& levels;
    Workspace& ws;
    bool keep;
    ~GiveBack() {
      if (!keep) {
        ws = Workspace{};
        return;
      }
      for (auto it = levels.rbegin(); it != levels.rend(); ++it) ws.spare.push_back(std::move(*it));
    }
  } give_back{levels, ws, H * W <= kCacheMaxPixels};

  Level& F = new_level();
  F.finest = true;
  F.table = table_f.data();
  for (int t = 0; t < kBhFineTaps; ++t) F.interior[t] = table_f[kBhInteriorClass * kBhFineTaps + t];
  init_grid(F, H, W, kBhFineTaps);
  for (int64_t yy = 0; yy < H; ++yy)
    for (int64_t xx = 0; xx < W; ++xx) F.unknown[F.grid(yy, xx)] = hole[yy * W + xx] != 0;
  build_runs(F);
  const int64_t n = F.n;
  if (F.unknowns == 0) return "no hole pixel";
  if (F.unknowns == H * W) return "no known pixel";
  for (const Run& R : F.runs)
    for (int64_t xx = R.x0; xx < R.x0 + R.len; ++xx)
      if (F.unknown[F.grid(R.y, xx)] && !(table[bh_stencil_class(R.y, xx, H, W) * kBhFineTaps + kBhFineCentre] > 0))
        return "the matrix has a non-positive diagonal entry";
  block_coefficients(F);  // the border runs' (the right-hand side below needs them)

  // Right-hand sides, compact channel-major (C x n): the taps on known pixels move to b, so
  // b = -(A applied to the image with its hole zeroed), at the unknowns: one matrix-vector product
  // per channel on a grid plane of the known values.
  std::vector<double>& b = ws.b;
  b.resize(C * n + kBlock);  // every slot is written below; + slack: read by whole blocks
  {
    // The known values, one plane per channel. Every image pixel is written, so the planes'
    // margins stay zero from one solve to the next of the same shape.
    std::vector<double>& known = ws.known;
    if (ws.known_shape != std::array<int64_t, 3>{H, W, C}) {
      known.assign(C * F.plane + kSlack, 0.0);
      ws.known_shape = {H, W, C};
    }
    // The same pass finds each channel's range of known values (lo, hi) and checks they are finite.
    for (int64_t c = 0; c < C; ++c) {
      out.lo[c] = INFINITY;
      out.hi[c] = -INFINITY;
    }
    bool finite = true;
    std::mutex merge;
    at::parallel_for(0, H, 16, [&](int64_t y0, int64_t y1) {
      std::vector<double> lo(C, INFINITY), hi(C, -INFINITY);
      bool ok = true;
      for (int64_t yy = y0; yy < y1; ++yy) {
        const uint8_t* h = hole + yy * W;
        const double* src = image + yy * W * C;
        if (out.image != nullptr && out.image != image) std::memcpy(out.image + yy * W * C, src, W * C * sizeof(double));
        for (int64_t c = 0; c < C; ++c) {
          double* row = known.data() + c * F.plane + F.grid(yy, 0);
          double l = lo[c], u = hi[c];
          for (int64_t xx = 0; xx < W; ++xx) {
            const double v = h[xx] ? 0.0 : src[xx * C + c];
            row[xx] = v;
            ok = ok && v - v == 0.0;  // false for NaN and inf
            if (!h[xx]) {
              l = std::min(l, v);
              u = std::max(u, v);
            }
          }
          lo[c] = l;
          hi[c] = u;
        }
      }
      std::lock_guard<std::mutex> lock(merge);
      finite = finite && ok;
      for (int64_t c = 0; c < C; ++c) {
        out.lo[c] = std::min(out.lo[c], lo[c]);
        out.hi[c] = std::max(out.hi[c], hi[c]);
      }
    });
    if (!finite) return "image has non-finite values (NaN or inf) outside the hole";
    for_channel_groups(C, [&](int64_t c0, auto group) {
      minus_matvec<decltype(group)::value>(F, known.data() + c0 * F.plane, b.data() + c0 * n);
    });
  }

  if (F.unknowns > kCoarsestMax) {
    while (levels.back().unknowns > kCoarsestMax && static_cast<int>(levels.size()) < kMaxLevels) {
      const Level& fine = levels.back();
      Level& next = new_level();
      coarsen(fine, next);
      if (next.unknowns > kStallRatio * fine.unknowns) {  // coarsening stalled: drop the level
        ws.spare.push_back(std::move(next));
        levels.pop_back();
        break;
      }
    }
  }
  // Each level's coefficient blocks and smoother bounds: independent, so the levels are dealt to
  // the threads (the second level alone is about half of the work).
  std::exception_ptr failure;
  const int64_t count = static_cast<int64_t>(levels.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min<int>(at::get_num_threads(), count)))
  for (int64_t i = 0; i < count; ++i) {
    try {
      Level& L = levels[i];
      if (!L.finest) block_coefficients(L);
      setup_smoother(L);
      if (i + 1 < count && !L.coef.empty() && !L.coef_clean) {  // served its Galerkin product and blocks
        clean_planes(L, L.coef, L.taps);
        L.coef_clean = true;
      }
    } catch (...) {
#pragma omp critical(fastinpaint_bh_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  Level& last = levels.back();
  if (last.unknowns <= kCoarsestMax) {
    if (last.finest) {  // a small system: the coarsest level is the fine one
      finest_coef_planes(last);
      last.taps = kBhFineTaps;
    }
    factor_coarsest(last);
  }
  // The last level's coefficient planes have served too (blocks, diagonals, Cholesky factor).
  if (!last.coef.empty() && !last.coef_clean) {
    clean_planes(last, last.coef, last.taps);
    last.coef_clean = true;
  }
  info->levels = static_cast<int64_t>(levels.size());

  // The tolerance is relative to the largest channel range of the known values.
  double scale = 0.0;
  for (int64_t c = 0; c < C; ++c) scale = std::max(scale, out.hi[c] - out.lo[c]);
  if (!(scale > 0)) scale = 1.0;
  tol *= scale;
  for_channel_groups(C, [&](int64_t c0, auto group) {
    solve_channels<decltype(group)::value>(levels, ws, C, c0, out, tol, max_iter, info);
  });
  info->last_update /= scale;
  return nullptr;
}

}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
