// CPU multigrid-preconditioned conjugate gradients for the biharmonic inpainting system.
//
// The matrix A (one row per hole pixel, the 13-point biharmonic stencil, known pixels moved to
// the right-hand side) is symmetric positive definite. Flexible conjugate gradients, preconditioned
// by one multigrid cycle:
//   * levels: the hole pixels of the image grid; the next coarser level's unknowns are the grid
//     points (2Y, 2X) whose bilinear interpolation reaches a fine unknown, so the hole's shape is
//     followed at every level and known pixels stay pinned (the interpolation is cut there);
//   * coarse matrices: Galerkin products P^T A P (5 x 5 stencils), hence SPD and consistent with
//     the boundary — re-discretising the stencil on a coarsened mask does not converge;
//   * smoother: multi-colour Gauss-Seidel (9 colours, parallel within a colour), forward colour
//     order before the coarse correction and backward after;
//   * K-cycle: each coarse problem gets two flexible-CG steps preconditioned by the next level's
//     cycle (bilinear Galerkin operators of a fourth-order problem degrade level after level; a
//     V-cycle needs ~3x more outer iterations). The K-cycle is not a fixed linear operator, hence
//     flexible CG outside;
//   * coarsest level (<= kCoarsestMax unknowns): dense Cholesky.
// Measured on 512 x 320 photos with 16-60 % free-form holes: ~10 iterations to a relative
// residual of 1e-6, i.e. ~1e-5 max abs error on [0, 1] images.
// The per-row math is in kernels/biharmonic.h.
#include "cpu/biharmonic_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <cmath>
#include <vector>

#include "kernels/biharmonic.h"

namespace fastinpaint {
namespace cpu {
namespace {

// Rows per parallel task. Large on purpose: every parallel region waits for all its threads, and
// on our shared 2-core machine (one core busy with other work) a solve of 25k unknowns went from
// ~90 ms to seconds with fine-grained regions, and one of 93k unknowns from ~290 ms to ~560 ms
// with regions of 64k rows. So only the loops of very large levels (> kGrain unknowns) run in
// parallel; on an idle many-core machine a smaller grain would pay.
constexpr int64_t kGrain = 262144;
constexpr int64_t kCoarsestMax = 150;   // unknowns of a level solved by dense Cholesky
constexpr int kMaxLevels = 24;
constexpr double kStallRatio = 0.8;     // stop coarsening when a level keeps > 80 % of the unknowns
constexpr int kCoarsestSweeps = 8;      // smoothing-only coarsest level (coarsening stalled)
// K-cycles only on levels of at least this many unknowns: a level is visited 2^depth times per
// iteration, and on the small deep levels that buys nothing measurable.
constexpr int64_t kKCycleMin = 512;

struct Level {
  int64_t H = 0, W = 0;  // grid
  int64_t n = 0;         // unknowns; index n is the dummy (value 0)
  int taps = 0, diag = 0;
  std::vector<int32_t> y, x;          // grid position of each unknown (colour-major numbering)
  std::vector<int64_t> colour_start;  // unknowns of colour k: [colour_start[k], colour_start[k + 1])
  std::vector<int32_t> map;           // (H + 4) x (W + 4) grid (2-cell margin) -> unknown or n
  std::vector<float> a;               // (n + 1) x taps, dummy row zero; dropped on the finest
                                      // level once the next is built (rows come from the table)
  const float* table = nullptr;       // finest level: the 81 stencil classes (81 x 13)
  std::vector<uint8_t> cls;           // finest level: each unknown's stencil class
  std::vector<int32_t> nbr;           // n x taps
  std::vector<int32_t> parent;        // n x 4, into the next coarser level (dummy: its n)
  std::vector<double> parent_w;
  std::vector<int32_t> child;         // n x 9, into the next finer level (dummy: its n)
  std::vector<double> child_w;
  std::vector<double> xv, bv, rv;     // (n + 1) x C work vectors of a cycle
  std::vector<double> ke, kr, kp, kq; // (n + 1) x C work vectors of the K-cycle
  std::vector<double> chol;           // coarsest level: dense Cholesky factor (lower, n x n)
  int64_t map_index(int64_t yy, int64_t xx) const { return (yy + 2) * (W + 4) + (xx + 2); }
  // Row i's coefficients. On the finest level, the class's stencil: its taps on known pixels are
  // not zeroed, but they multiply the dummy's zero. Reading 13 doubles from a table of 81 rows
  // instead of from an n x 13 array cuts the finest level's memory traffic by two thirds.
  const float* row(int64_t i) const { return table ? table + cls[i] * taps : a.data() + i * taps; }
};

// Calls f(std::integral_constant<int, taps>) so that the row loops are compiled (and unrolled)
// for the 13-tap and the 25-tap stencil.
template <typename F>
void with_taps(const Level& L, const F& f) {
  if (L.taps == kBhFineTaps)
    f(std::integral_constant<int, kBhFineTaps>{});
  else
    f(std::integral_constant<int, kBhCoarseTaps>{});
}

// Numbers the unknowns at (ys, xs) (raster order) colour-major, raster order within a colour,
// and builds the level's grid map. Returns perm: perm[new index] = index in (ys, xs).
std::vector<int64_t> number_unknowns(Level& L, const std::vector<int32_t>& ys, const std::vector<int32_t>& xs) {
  const int64_t n = static_cast<int64_t>(ys.size());
  L.n = n;
  std::vector<int64_t> count(kBhColours + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++count[bh_colour(ys[i], xs[i]) + 1];
  L.colour_start.assign(kBhColours + 1, 0);
  for (int k = 0; k < kBhColours; ++k) L.colour_start[k + 1] = L.colour_start[k] + count[k + 1];
  std::vector<int64_t> next(L.colour_start.begin(), L.colour_start.end() - 1), perm(n);
  L.y.resize(n);
  L.x.resize(n);
  L.map.assign((L.H + 4) * (L.W + 4), static_cast<int32_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = next[bh_colour(ys[i], xs[i])]++;
    perm[j] = i;
    L.y[j] = ys[i];
    L.x[j] = xs[i];
    L.map[L.map_index(ys[i], xs[i])] = static_cast<int32_t>(j);
  }
  return perm;
}

void build_neighbours(Level& L) {
  int64_t offset[kBhCoarseTaps];
  for (int k = 0; k < L.taps; ++k) {
    int dy, dx;
    bh_tap_offset(L.taps, k, dy, dx);
    offset[k] = dy * (L.W + 4) + dx;
  }
  L.nbr.resize(L.n * L.taps);
  at::parallel_for(0, L.n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t* centre = L.map.data() + L.map_index(L.y[i], L.x[i]);
      for (int k = 0; k < L.taps; ++k) L.nbr[i * L.taps + k] = centre[offset[k]];
    }
  });
}

// Zero the coefficients of taps that reach no unknown (they multiply the dummy's zero anyway).
void zero_dead_taps(Level& L) {
  for (int64_t i = 0; i < L.n * L.taps; ++i)
    if (L.nbr[i] == L.n) L.a[i] = 0.0f;
}

// The next coarser level of F: unknowns, transfer links and Galerkin matrix.
Level coarsen(Level& F) {
  Level Cl;
  Cl.H = F.H / 2 + 1;
  Cl.W = F.W / 2 + 1;
  Cl.taps = kBhCoarseTaps;
  Cl.diag = kBhCoarseDiag;
  // Bilinear parents of fine (y, x): (y/2) if y is even, else ((y-1)/2, (y+1)/2); same in x.
  std::vector<uint8_t> marked(Cl.H * Cl.W, 0);
  for (int64_t i = 0; i < F.n; ++i) {
    const int32_t y0 = F.y[i] / 2, y1 = (F.y[i] + 1) / 2, x0 = F.x[i] / 2, x1 = (F.x[i] + 1) / 2;
    marked[y0 * Cl.W + x0] = marked[y0 * Cl.W + x1] = marked[y1 * Cl.W + x0] = marked[y1 * Cl.W + x1] = 1;
  }
  std::vector<int32_t> ys, xs;
  for (int32_t yy = 0; yy < Cl.H; ++yy)
    for (int32_t xx = 0; xx < Cl.W; ++xx)
      if (marked[yy * Cl.W + xx]) {
        ys.push_back(yy);
        xs.push_back(xx);
      }
  number_unknowns(Cl, ys, xs);
  build_neighbours(Cl);

  F.parent.assign(F.n * 4, static_cast<int32_t>(Cl.n));
  F.parent_w.assign(F.n * 4, 0.0);
  for (int64_t i = 0; i < F.n; ++i) {
    const int32_t yy = F.y[i], xx = F.x[i];
    const int32_t py[2] = {yy / 2, (yy + 1) / 2}, px[2] = {xx / 2, (xx + 1) / 2};
    const double wy = (yy % 2) ? 0.5 : 1.0, wx = (xx % 2) ? 0.5 : 1.0;
    int slot = 0;
    for (int a = 0; a < ((yy % 2) ? 2 : 1); ++a)
      for (int b = 0; b < ((xx % 2) ? 2 : 1); ++b) {
        F.parent[i * 4 + slot] = Cl.map[Cl.map_index(py[a], px[b])];
        F.parent_w[i * 4 + slot] = wy * wx;
        ++slot;
      }
  }
  Cl.child.assign(Cl.n * 9, static_cast<int32_t>(F.n));
  Cl.child_w.assign(Cl.n * 9, 0.0);
  for (int64_t I = 0; I < Cl.n; ++I)
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        const int k = (dy + 1) * 3 + (dx + 1);
        const int32_t i = F.map[F.map_index(2 * Cl.y[I] + dy, 2 * Cl.x[I] + dx)];
        Cl.child[I * 9 + k] = i;
        Cl.child_w[I * 9 + k] = (i == F.n) ? 0.0 : (dy ? 0.5 : 1.0) * (dx ? 0.5 : 1.0);
      }

  // Coarse matrix, with a zero dummy row (the next level's Galerkin product reads it); then the
  // coefficients of taps that reach no coarse unknown are zeroed (bh_galerkin_row needs that).
  std::vector<BhGalerkinTerm> terms(9 * F.taps * 4);
  const int n_terms = bh_galerkin_terms(F.taps, terms.data());
  Cl.a.assign((Cl.n + 1) * Cl.taps, 0.0f);
  at::parallel_for(0, Cl.n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t I = begin; I < end; ++I)
      bh_galerkin_row(I, Cl.child.data(), F.a.data(), F.taps, terms.data(), n_terms, Cl.a.data() + I * Cl.taps);
  });
  zero_dead_taps(Cl);
  return Cl;
}

// Dense Cholesky of the coarsest matrix. Galerkin coarse matrices can be singular (two coarse
// unknowns whose only fine child is shared): a pivot that vanishes relative to its diagonal is
// replaced by the diagonal, a harmless regularisation in a preconditioner (P maps that direction
// to zero anyway).
void factor_coarsest(Level& L) {
  const int64_t n = L.n;
  std::vector<double>& M = L.chol;
  M.assign(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < L.taps; ++k) {
      const int64_t j = L.nbr[i * L.taps + k];
      if (j < n) M[i * n + j] += L.a[i * L.taps + k];
    }
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

// Per-channel vector helpers on (n + 1) x C arrays (the dummy row is left alone).
template <int C>
void dot(const double* u, const double* v, int64_t n, double* out) {
  for (int c = 0; c < C; ++c) out[c] = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) out[c] += u[i * C + c] * v[i * C + c];
}

template <int C>
void axpy(const double* alpha, const double* u, int64_t n, double* v) {  // v += alpha u
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) v[i * C + c] += alpha[c] * u[i * C + c];
}

inline double safe_ratio(double num, double den) {  // 0 for a converged (zero) channel
  return den != 0.0 ? num / den : 0.0;
}

template <int C>
struct Solver {
  std::vector<Level>& levels;
  int64_t nu;
  int64_t kcycle_levels;  // coarse levels 1..kcycle_levels: two flexible-CG steps (K-cycle), deeper: one cycle

  void sweep(Level& L, bool forward) {
    for (int s = 0; s < kBhColours; ++s) {
      const int colour = forward ? s : kBhColours - 1 - s;
      with_taps(L, [&](auto taps) {
        at::parallel_for(L.colour_start[colour], L.colour_start[colour + 1], kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i)
            bh_relax_row<C>(L.row(i), L.nbr.data() + i * taps, taps, L.diag, L.bv.data(), L.xv.data(), i);
        });
      });
    }
  }

  void matvec(const Level& L, const double* p, double* q) {
    with_taps(L, [&](auto taps) {
      at::parallel_for(0, L.n, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) bh_row_apply<C>(L.row(i), L.nbr.data() + i * taps, taps, p, q + i * C);
      });
    });
  }

  void coarsest(Level& L) {
    if (L.chol.empty()) {  // coarsening stalled: smoothing only (still a symmetric operator)
      for (int s = 0; s < kCoarsestSweeps; ++s) sweep(L, true);
      for (int s = 0; s < kCoarsestSweeps; ++s) sweep(L, false);
      return;
    }
    const int64_t n = L.n;
    const double* M = L.chol.data();
    double* xv = L.xv.data();
    for (int64_t i = 0; i < n; ++i)  // L y = b
      for (int c = 0; c < C; ++c) {
        double s = L.bv[i * C + c];
        for (int64_t k = 0; k < i; ++k) s -= M[i * n + k] * xv[k * C + c];
        xv[i * C + c] = s / M[i * n + i];
      }
    for (int64_t i = n - 1; i >= 0; --i)  // L^T x = y
      for (int c = 0; c < C; ++c) {
        double s = xv[i * C + c];
        for (int64_t k = i + 1; k < n; ++k) s -= M[k * n + i] * xv[k * C + c];
        xv[i * C + c] = s / M[i * n + i];
      }
  }

  // levels[l].xv <- an approximation of A_l^{-1} levels[l].bv: pre-smoothing, coarse-grid
  // correction, post-smoothing.
  void cycle(size_t l) {
    Level& L = levels[l];
    std::fill(L.xv.begin(), L.xv.end(), 0.0);
    if (l + 1 == levels.size()) {
      coarsest(L);
      return;
    }
    Level& Cl = levels[l + 1];
    for (int64_t s = 0; s < nu; ++s) sweep(L, true);
    with_taps(L, [&](auto taps) {
      at::parallel_for(0, L.n, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          bh_residual_row<C>(L.row(i), L.nbr.data() + i * taps, taps, L.bv.data(), L.xv.data(), i, L.rv.data());
      });
    });
    at::parallel_for(0, Cl.n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t I = begin; I < end; ++I)
        bh_restrict_row<C>(Cl.child.data(), Cl.child_w.data(), L.rv.data(), I, Cl.bv.data());
    });
    const double* e = Cl.xv.data();
    if (static_cast<int64_t>(l + 1) <= kcycle_levels && l + 2 < levels.size() && Cl.n >= kKCycleMin) {
      coarse_krylov(l + 1);
      e = Cl.ke.data();
    } else {
      cycle(l + 1);
    }
    at::parallel_for(0, L.n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) bh_prolong_row<C>(L.parent.data(), L.parent_w.data(), e, i, L.xv.data());
    });
    for (int64_t s = 0; s < nu; ++s) sweep(L, false);
  }

  // K-cycle (Notay & Vassilevski): levels[m].ke <- two flexible-CG steps on A_m e = levels[m].bv,
  // each preconditioned by one cycle on level m. Much closer to an exact coarse solve than a
  // single cycle, which matters here: bilinear Galerkin operators of a fourth-order problem
  // lose accuracy level after level, and a plain V-cycle needs ~3x more outer iterations.
  void coarse_krylov(size_t m) {
    Level& L = levels[m];
    const int64_t n = L.n;
    L.kr = L.bv;  // r = b (copied: cycle(m) overwrites bv)
    // step 1: z1 = B r, p1 = z1, e = a1 p1
    cycle(m);
    L.kp = L.xv;
    matvec(L, L.kp.data(), L.kq.data());
    double pr[C], pq[C], a1[C];
    dot<C>(L.kp.data(), L.kr.data(), n, pr);
    dot<C>(L.kp.data(), L.kq.data(), n, pq);
    for (int c = 0; c < C; ++c) a1[c] = safe_ratio(pr[c], pq[c]);
    std::fill(L.ke.begin(), L.ke.end(), 0.0);
    axpy<C>(a1, L.kp.data(), n, L.ke.data());
    double minus_a1[C];
    for (int c = 0; c < C; ++c) minus_a1[c] = -a1[c];
    axpy<C>(minus_a1, L.kq.data(), n, L.kr.data());
    // step 2: z2 = B r2, p2 = z2 - (z2.q1 / p1.q1) p1, e += a2 p2
    std::copy(L.kr.begin(), L.kr.end(), L.bv.begin());
    cycle(m);
    double zq[C], beta[C];
    dot<C>(L.xv.data(), L.kq.data(), n, zq);
    for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq[c]);
    axpy<C>(beta, L.kp.data(), n, L.xv.data());  // xv is now p2
    matvec(L, L.xv.data(), L.kq.data());
    dot<C>(L.xv.data(), L.kr.data(), n, pr);
    dot<C>(L.xv.data(), L.kq.data(), n, pq);
    double a2[C];
    for (int c = 0; c < C; ++c) a2[c] = safe_ratio(pr[c], pq[c]);
    axpy<C>(a2, L.xv.data(), n, L.ke.data());
  }

  // Flexible preconditioned CG on levels[0] (the K-cycle is not a fixed linear operator), all
  // channels in lock step: each new direction is the preconditioned residual made A-orthogonal to
  // the previous direction. b and x in the level's numbering, (n + 1) x C.
  void fcg(const std::vector<double>& b, std::vector<double>& x, double rtol, int64_t max_iter, BhSolveInfo* info) {
    Level& L = levels[0];
    const int64_t n = L.n;
    std::vector<double> r(b), p(b.size(), 0.0), q(b.size(), 0.0);
    std::fill(x.begin(), x.end(), 0.0);
    double bb[C], rr[C];
    dot<C>(b.data(), b.data(), n, bb);
    auto converged = [&](double* worst) {
      dot<C>(r.data(), r.data(), n, rr);
      bool done = true;
      *worst = 0.0;
      for (int c = 0; c < C; ++c) {
        const double rel = bb[c] > 0 ? std::sqrt(rr[c] / bb[c]) : 0.0;
        *worst = std::max(*worst, rel);
        done = done && rel <= rtol;
      }
      return done;
    };
    double worst = 0.0;
    int64_t it = 0;
    bool done = converged(&worst);
    for (it = 0; it < max_iter && !done; ++it) {
      std::copy(r.begin(), r.end(), L.bv.begin());
      cycle(0);  // z = B r, in L.xv
      if (it > 0) {
        double zq[C], pq_old[C], beta[C];
        dot<C>(L.xv.data(), q.data(), n, zq);
        dot<C>(p.data(), q.data(), n, pq_old);
        for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq_old[c]);
        for (int64_t i = 0; i < n; ++i)
          for (int c = 0; c < C; ++c) p[i * C + c] = L.xv[i * C + c] + beta[c] * p[i * C + c];
      } else {
        std::copy(L.xv.begin(), L.xv.end(), p.begin());
      }
      matvec(L, p.data(), q.data());
      double pr[C], pq[C], alpha[C], minus_alpha[C];
      dot<C>(p.data(), r.data(), n, pr);
      dot<C>(p.data(), q.data(), n, pq);
      for (int c = 0; c < C; ++c) {
        alpha[c] = safe_ratio(pr[c], pq[c]);
        minus_alpha[c] = -alpha[c];
      }
      axpy<C>(alpha, p.data(), n, x.data());
      axpy<C>(minus_alpha, q.data(), n, r.data());
      done = converged(&worst);
    }
    info->iterations = it;
    info->relative_residual = worst;
  }
};

template <int C>
void solve_channels(std::vector<Level>& levels, const std::vector<int64_t>& perm, const double* b_in, int64_t C_in,
                    int64_t c0, double* x_out, double rtol, int64_t max_iter, int64_t nu, int64_t kcycle_levels,
                    BhSolveInfo* info) {
  for (Level& L : levels) {
    L.xv.assign((L.n + 1) * C, 0.0);
    L.bv.assign((L.n + 1) * C, 0.0);
    L.rv.assign((L.n + 1) * C, 0.0);
    for (auto* v : {&L.ke, &L.kr, &L.kp, &L.kq}) v->assign((L.n + 1) * C, 0.0);
  }
  const int64_t n = levels[0].n;
  std::vector<double> b((n + 1) * C, 0.0), x((n + 1) * C, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) b[i * C + c] = b_in[i * C_in + c0 + c];
  Solver<C> solver{levels, nu, kcycle_levels};
  BhSolveInfo part;
  solver.fcg(b, x, rtol, max_iter, &part);
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) x_out[perm[i] * C_in + c0 + c] = x[i * C + c];
  info->iterations = std::max(info->iterations, part.iterations);
  info->relative_residual = std::max(info->relative_residual, part.relative_residual);
}

}  // namespace

const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, double* x, double rtol, int64_t max_iter, int64_t nu,
                                int64_t kcycle_levels, BhSolveInfo* info) {
  if (H <= 0 || W <= 0) return "empty image";
  if (C < 1) return "need at least one channel";
  if (H * W >= (int64_t{1} << 31) - 1) return "image too large for 32-bit indices";
  *info = BhSolveInfo{};

  std::vector<Level> levels(1);
  Level& F = levels[0];
  F.H = H;
  F.W = W;
  F.taps = kBhFineTaps;
  F.diag = kBhFineDiag;
  std::vector<int32_t> ys, xs;
  for (int32_t yy = 0; yy < H; ++yy)
    for (int32_t xx = 0; xx < W; ++xx)
      if (hole[yy * W + xx]) {
        ys.push_back(yy);
        xs.push_back(xx);
      }
  const int64_t n = static_cast<int64_t>(ys.size());
  if (n == 0) return "no hole pixel";
  if (n == H * W) return "no known pixel";
  std::vector<float> table_f(table, table + 81 * kBhFineTaps);
  for (int k = 0; k < 81 * kBhFineTaps; ++k)
    if (static_cast<double>(table_f[k]) != table[k]) return "stencil coefficients must be exact in float32";
  const std::vector<int64_t> perm = number_unknowns(F, ys, xs);
  build_neighbours(F);

  // Rows of the fine matrix and the right-hand side: taps on known pixels move to b.
  F.a.assign((n + 1) * kBhFineTaps, 0.0f);  // + the dummy's zero row
  std::vector<double> b(n * C);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      bh_fine_row(F.y[i], F.x[i], H, W, hole, image, C, table, F.nbr.data() + i * kBhFineTaps, static_cast<int32_t>(n),
                  F.a.data() + i * kBhFineTaps, b.data() + i * C);
  });
  for (int64_t i = 0; i < n; ++i)
    if (!(F.a[i * kBhFineTaps + kBhFineDiag] > 0)) return "the matrix has a non-positive diagonal entry";

  while (levels.back().n > kCoarsestMax && static_cast<int>(levels.size()) < kMaxLevels) {
    Level next = coarsen(levels.back());
    if (next.n > kStallRatio * levels.back().n) {
      levels.back().parent.clear();
      levels.back().parent_w.clear();
      break;
    }
    levels.push_back(std::move(next));
  }
  if (levels.back().n <= kCoarsestMax) factor_coarsest(levels.back());
  if (levels.size() > 1) {  // the finest level's rows from now on come from the table (Level::row)
    Level& F0 = levels[0];
    F0.cls.resize(F0.n);
    for (int64_t i = 0; i < F0.n; ++i) F0.cls[i] = static_cast<uint8_t>(bh_stencil_class(F0.y[i], F0.x[i], H, W));
    F0.table = table_f.data();
    std::vector<float>().swap(F0.a);
  }
  info->levels = static_cast<int64_t>(levels.size());

  for (int64_t c0 = 0; c0 < C; c0 += kBhMaxChannels) {
    const int64_t group = std::min<int64_t>(kBhMaxChannels, C - c0);
    switch (group) {
      case 1: solve_channels<1>(levels, perm, b.data(), C, c0, x, rtol, max_iter, nu, kcycle_levels, info); break;
      case 2: solve_channels<2>(levels, perm, b.data(), C, c0, x, rtol, max_iter, nu, kcycle_levels, info); break;
      case 3: solve_channels<3>(levels, perm, b.data(), C, c0, x, rtol, max_iter, nu, kcycle_levels, info); break;
      default: solve_channels<4>(levels, perm, b.data(), C, c0, x, rtol, max_iter, nu, kcycle_levels, info); break;
    }
  }
  return nullptr;
}

}  // namespace cpu
}  // namespace fastinpaint
